"""``results.csv``: one row per job, flat columns, readable by ``pandas.read_csv`` as it is.

``error`` holds a failed job's ``phase: message`` only; ``note`` says why a job was skipped, or what a reader
should know about an ok row (e.g. a baseline is not timed). ``profile``, ``data_sha256`` and ``extractors``
say what the row's numbers are comparable on (:data:`KEY_COLUMNS`).

A metric whose numbers differ in comparability key within a task (``bpd`` of binarised and of quantised
pixels) gets one set of columns per key, named as in the leaderboard (``bpd [data variant binarized, ...]``).
Per metric column: the value, its one ``err`` with what that is (``err_kind``: se, spread or seed sd) and over
what (``err_of``), the 95% interval over seeds (clipped to the metric's range), the run's 95% sampling interval
(``interval_low``, ``interval_high``, ``interval_of``: a bootstrap over samples and reference), the floor at the row's n (``floor_n``: the held-out examples
it was computed from, only where that is not n), n, and the unit. No cell starts a spreadsheet formula.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..comparability import UNKNOWN, key_of
from ..results import atomic_write_text
from ..types import RunResult
from . import csv_cell, mapping, number, safe_perf_summary, text_of
from .leaderboard import (clipped, column_group, column_labels, error_of, floor_n, reference_kind, sampling_interval,
                          scale_of, seed_sd)

PERF_COLUMNS = ["ort_p50_ms_b1", "ort_p99_ms_b1", "torch_p50_ms_b1", "ort_best_throughput", "ort_best_batch",
                "torch_best_throughput", "torch_best_batch", "latency_speedup_b1", "throughput_ratio_best", "valid",
                "noisy"]
METRIC_FIELDS = ("floor", "floor_n", "n", "err", "err_kind", "err_of", "seed_std", "ci95_low", "ci95_high", "unit",
                 "interval_low", "interval_high", "interval_of")


#: what makes a row's numbers comparable with another's, per row: the profile, the data's sha256 and the feature
#: extractors its metrics were computed in (distinct values, space-separated; per metric the column labels split)
KEY_COLUMNS = ("profile", "data_sha256", "extractors")


def _key_cells(job: Any, run: RunResult) -> dict[str, str]:
    keys = [key_of(mv, job.task) for mv in job.quality.values()]

    def distinct(field: str) -> str:
        return " ".join(sorted({text_of(k[field]) for k in keys if k.get(field) not in (None, UNKNOWN)}))

    profile = distinct("profile") or text_of(mapping(run.config).get("profile") or "")
    return {"profile": profile, "data_sha256": distinct("data"), "extractors": distinct("extractor")}


def _labels(run: RunResult) -> dict[tuple, str]:
    """(task, metric, column group) -> column label, split per task exactly as the leaderboard splits."""
    groups: dict[tuple[str, str], list[tuple]] = {}
    for j in run.jobs:
        for m, mv in j.quality.items():
            g = column_group(mv, j.task)
            if g not in groups.setdefault((j.task, m), []):
                groups[(j.task, m)].append(g)
    out = {}
    for (task, metric), gs in groups.items():
        for g, (label, _) in zip(gs, column_labels(metric, gs)):
            out[(task, metric, g)] = label
    return out


def _metric_cells(metric: str, mv: Any, task: str) -> dict[str, Any]:
    ci = mv.ci95 if isinstance(mv.ci95, (list, tuple)) and len(mv.ci95) == 2 else (None, None)
    ci = clipped(metric, number(ci[0]), number(ci[1]), mv)[:2]  # to the metric's range, as every report shows it
    iv = sampling_interval(mv)
    iv = clipped(metric, *iv, mv)[:2] if iv is not None else (None, None)
    err_kind, err, err_of = error_of(mv)
    return {"": number(mv.value), "floor": number(mv.floor), "floor_n": floor_n(mv), "n": number(mv.n), "err": err,
            "err_kind": err_kind, "err_of": err_of, "seed_std": seed_sd(mv), "ci95_low": number(ci[0]),
            "ci95_high": number(ci[1]), "unit": scale_of(metric, mv, key_of(mv, task)), "interval_low": iv[0],
            "interval_high": iv[1], "interval_of": text_of(mv.interval_of) if iv[0] is not None and mv.interval_of
            else None}


def render(run: RunResult) -> str:
    labels = _labels(run)
    metric_cols = list(dict.fromkeys(labels.values()))
    header = ["run_id", "genbench_version", "git_commit", "model", "family", "reference", "plugin", "plugin_version",
              "task", "device", "status", "error", "note", "seeds", *KEY_COLUMNS]
    for label in metric_cols:
        header += [label] + [f"{label}_{f}" for f in METRIC_FIELDS]
    header += PERF_COLUMNS + ["train_seconds", "train_steps"]
    commit = text_of(mapping(run.environment).get("git_commit") or UNKNOWN)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([csv_cell(h) for h in header])
    for j in run.jobs:
        row: dict[str, Any] = {
            "run_id": run.run_id, "genbench_version": run.genbench_version, "git_commit": commit, "model": j.model,
            "family": j.family, "reference": reference_kind(j), "plugin": j.plugin, "plugin_version": j.plugin_version,
            "task": j.task, "device": j.device, "status": j.status, "seeds": " ".join(map(str, j.seeds)),
            "error": f"{j.error.phase}: {j.error.message}" if j.error else "",
            "note": j.reason or "",  # why a job was skipped, or a note on an ok row (e.g. not timed)
            **_key_cells(j, run)}
        for m, mv in j.quality.items():
            label = labels[(j.task, m, column_group(mv, j.task))]
            for f, v in _metric_cells(m, mv, j.task).items():
                row[f"{label}_{f}" if f else label] = v
        p = safe_perf_summary(j)
        row.update({c: p.get(c) for c in PERF_COLUMNS})
        train = mapping(j.train)
        row.update(train_seconds=number(train.get("seconds")), train_steps=number(train.get("steps")))
        w.writerow([csv_cell(row.get(h)) for h in header])
    return buf.getvalue()


def write(run: RunResult, directory: Path) -> Path:
    path = Path(directory) / "results.csv"
    atomic_write_text(path, render(run))
    return path
