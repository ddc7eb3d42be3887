"""``results.csv``: one row per job, flat columns, readable by ``pandas.read_csv`` as it is."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..results import atomic_write_text
from ..types import RunResult
from . import perf_summary


def render(run: RunResult) -> str:
    metrics = list(dict.fromkeys(k for j in run.jobs for k in j.quality))
    perf_cols = ["ort_p50_ms_b1", "ort_p99_ms_b1", "torch_p50_ms_b1", "ort_best_throughput", "ort_best_batch",
                 "torch_best_throughput", "torch_best_batch", "latency_speedup_b1", "throughput_ratio_best", "valid", "noisy"]
    header = ["run_id", "model", "family", "plugin", "plugin_version", "task", "device", "status", "error"]
    for m in metrics:
        header += [m, f"{m}_floor", f"{m}_n"]
    header += perf_cols + ["train_seconds", "train_steps"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for j in run.jobs:
        row = [run.run_id, j.model, j.family, j.plugin, j.plugin_version, j.task, j.device, j.status,
               (f"{j.error.phase}: {j.error.message}" if j.error else j.reason or "")]
        for m in metrics:
            mv = j.quality.get(m)
            row += [mv.value, mv.floor, mv.n] if mv else ["", "", ""]
        p = perf_summary(j)
        row += ["" if p.get(c) is None else p.get(c) for c in perf_cols]
        row += [(j.train or {}).get("seconds", ""), (j.train or {}).get("steps", "")]
        w.writerow(row)
    return buf.getvalue()


def write(run: RunResult, directory: Path) -> Path:
    path = Path(directory) / "results.csv"
    atomic_write_text(path, render(run))
    return path
