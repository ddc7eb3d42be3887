"""genbench: plugin-based benchmarking of generative models through their exported ONNX graphs.

Importing genbench does not import torch: plugins register lazily, and torch loads when a job runs.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from .errors import (BundleError, ConfigError, DataError, DataUnavailableError, GenbenchError, PluginError,
                     ResultsError, SpecError, TaskDeclined, UnknownNameError)
from .export import export_torch_module
from .hookspecs import hookimpl, hookspec
from .model import GenerativeModel, Progress
from .plugins import make_plugin_manager
from .types import (DatasetSpec, GraphSpec, JobResult, MetricSpec, MetricValue, ModelSpec, OnnxBundle, PerfRecord,
                    ReporterSpec, RunResult, TensorSpec, TrainConfig, TrainSummary)


def run(*args: Any, **kwargs: Any) -> RunResult:
    """Run the benchmark; see :func:`genbench.runner.run` (the same function ``genbench run`` calls)."""
    from .runner import run as _run

    return _run(*args, **kwargs)


def score(samples: Any, **kwargs: Any) -> RunResult:
    """Score samples made elsewhere; see :func:`genbench.score_samples.score` (what ``genbench score`` calls)."""
    from .score_samples import score as _score

    return _score(samples, **kwargs)


def run_onnx(**kwargs: Any) -> RunResult:
    """Benchmark exported ONNX graphs; see :func:`genbench.onnx_model.run_onnx` (``genbench run --onnx``)."""
    from .onnx_model import run_onnx as _run_onnx

    return _run_onnx(**kwargs)


def load_run(path: Any) -> RunResult:
    """Read a ``run.json`` (or a run directory) back into a :class:`RunResult`."""
    from .results import load_run as _load

    return _load(path)


__all__ = [
    "BundleError", "ConfigError", "DataError", "DataUnavailableError", "DatasetSpec", "GenbenchError",
    "GenerativeModel", "GraphSpec", "JobResult", "MetricSpec", "MetricValue", "ModelSpec", "OnnxBundle",
    "PerfRecord", "PluginError", "Progress", "ReporterSpec", "ResultsError", "RunResult", "SpecError",
    "TaskDeclined", "TensorSpec", "TrainConfig", "TrainSummary", "UnknownNameError", "__version__",
    "export_torch_module", "hookimpl", "hookspec", "load_run", "make_plugin_manager", "run", "run_onnx", "score",
]
