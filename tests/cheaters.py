"""Hostile plugins that try to rewrite their own numbers from inside the processes their code runs in.

``CheatingGAN`` is ``gan-mlp`` exactly (same class, same training), plus patches of everything a score or
time process would use to make its numbers: genbench's Fréchet distance and timing loop, numpy's and
scipy's linear algebra, ONNX Runtime's ``run`` and the clock. It patches at import, in ``train``, in
``export_onnx`` and in ``torch_module``. None of it may change a number: plugin code runs only in build
processes. ``CheatingMetric`` is a plugin's metric whose factory tries to add 500 to every FD.
"""

from __future__ import annotations

import os
import time

from genbench_gan.model import MLPGAN

from genbench.metrics import Metric
from genbench.types import MetricValue

PATCHED: list[str] = []  # where the patches were applied (a test reads this in its own process: empty)
_REAL_CLOCK = time.perf_counter


def _patch_everything(where: str) -> None:
    import numpy as np
    import onnxruntime
    import scipy.linalg

    import genbench.metrics as metrics
    import genbench.metrics.frechet as frechet
    import genbench.perf as perf

    frechet.frechet_distance = lambda *a, **k: 0.0011
    metrics.frechet_distance = frechet.frechet_distance
    frechet.frechet_distance_from_features = lambda *a, **k: 0.0011
    metrics.frechet_distance_from_features = frechet.frechet_distance_from_features
    scipy.linalg.sqrtm = lambda m, *a, **k: np.zeros_like(m)
    np.trace = lambda *a, **k: 0.0
    time.perf_counter = lambda: _REAL_CLOCK() / 85.0  # every interval 85 times shorter
    real_run = onnxruntime.InferenceSession.run
    onnxruntime.InferenceSession.run = lambda self, *a, **k: real_run(self, *a, **k)  # noqa: E731 - a hook point
    real_measure = perf.measure_interleaved

    def fast(calls, *a, **k):  # every measurement 90 times faster than it was
        out = real_measure(calls, *a, **k)
        for m in out.values():
            if getattr(m, "samples", None):
                m.samples[:] = [s / 90.0 for s in m.samples]
        return out

    perf.measure_interleaved = fast
    try:
        import genbench.timing as timing

        timing.measure_interleaved = fast
    except Exception:  # noqa: BLE001 - whatever this process has loaded
        pass
    PATCHED.append(where)
    os.environ["GENBENCH_CHEATED"] = ",".join(PATCHED)


_patch_everything("import")


class CheatingGAN(MLPGAN):
    def train(self, data, config, progress):
        _patch_everything("train")
        return super().train(data, config, progress)

    def export_onnx(self, directory):
        _patch_everything("export_onnx")
        return super().export_onnx(directory)

    def torch_module(self, role):
        _patch_everything("torch_module")
        return super().torch_module(role)


class CheatingMetric(Metric):
    """A plugin metric: its factory and its call try to lower every FD by rewriting genbench's functions."""

    def __call__(self, ctx):
        _patch_everything("metric")
        return MetricValue(value=1.0, unit="", higher_is_better=True)


def make_cheating_metric() -> CheatingMetric:
    _patch_everything("metric factory")
    import genbench.harness as harness

    real = harness.score

    def score(*a, **k):
        out, errors = real(*a, **k)
        if "fd" in out and out["fd"].value is not None:
            from dataclasses import replace

            out["fd"] = replace(out["fd"], value=out["fd"].value + 500)
        return out, errors

    harness.score = score
    return CheatingMetric()


def write_cheating_report(result, run_dir):
    """A plugin's reporter that tries to rewrite genbench's results: every FD in run.json becomes 0.001, and
    report.md says so; it also says which process it ran in."""
    import json
    import os
    from pathlib import Path

    run_dir = Path(run_dir)
    data = json.loads((run_dir / "run.json").read_text())
    for job in data["jobs"]:
        if "fd" in (job.get("quality") or {}):
            job["quality"]["fd"]["value"] = 0.001
    (run_dir / "run.json").write_text(json.dumps(data))
    (run_dir / "report.md").write_text("fd 0.001 everywhere\n")
    out = run_dir / "cheat-report.txt"
    out.write_text(str(os.getpid()))
    return out
