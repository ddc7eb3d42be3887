"""genbench: plugin-based benchmarking of generative models through their exported ONNX graphs.

Importing genbench does not import torch: plugins register lazily, and torch loads when a job runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

from .errors import (BundleError, ConfigError, DataError, DataUnavailableError, GenbenchError, PluginError,
                     ResultsError, SpecError, TaskDeclined, UnknownNameError)
from .export import export_torch_module
from .hookspecs import hookimpl, hookspec
from .model import GenerativeModel, Progress
from .types import (DatasetSpec, GraphSpec, JobResult, MetricSpec, MetricValue, ModelSpec, OnnxBundle, PerfRecord,
                    ReporterSpec, RunResult, TensorSpec, TrainConfig, TrainSummary)


if TYPE_CHECKING:  # the real functions and signatures, for type checkers and IDEs
    from .onnx_command import run_onnx
    from .plugins import make_plugin_manager
    from .results import load_run
    from .runner import run
    from .score_samples import score

#: public functions defined in other modules, imported when first used (they import numpy, and runs import torch)
_LAZY = {"run": "runner", "score": "score_samples", "run_onnx": "onnx_command", "load_run": "results",
         "make_plugin_manager": "plugins"}


def __getattr__(name: str) -> Any:
    """``genbench.run`` (:func:`genbench.runner.run`, what ``genbench run`` calls), ``genbench.score``
    (:func:`genbench.score_samples.score`), ``genbench.run_onnx``, ``genbench.load_run`` and
    ``genbench.make_plugin_manager``: the functions
    themselves, with their own signatures and docstrings, imported on first use."""
    if name in _LAZY:
        import importlib

        function = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = function
        return function
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BundleError", "ConfigError", "DataError", "DataUnavailableError", "DatasetSpec", "GenbenchError",
    "GenerativeModel", "GraphSpec", "JobResult", "MetricSpec", "MetricValue", "ModelSpec", "OnnxBundle",
    "PerfRecord", "PluginError", "Progress", "ReporterSpec", "ResultsError", "RunResult", "SpecError",
    "TaskDeclined", "TensorSpec", "TrainConfig", "TrainSummary", "UnknownNameError", "__version__",
    "export_torch_module", "hookimpl", "hookspec", "load_run", "make_plugin_manager", "run", "run_onnx", "score",
]
