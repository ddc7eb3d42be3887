"""``genbench leaderboard RUN_DIR...``: merged, ranked tables per task, every row traceable to its run."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ..types import JobResult, RunResult
from . import arrow, md_escape as _md, order_metrics, perf_summary

FORMATS = ("md", "csv", "json")


def merge(runs: list[RunResult], tasks: tuple[str, ...] = ()) -> dict[str, list[tuple[JobResult, RunResult]]]:
    """Per task, the latest ok result of each (model, device) over the runs given."""
    latest: dict[tuple[str, str, str], tuple[JobResult, RunResult]] = {}
    for run in sorted(runs, key=lambda r: r.started_at):
        for j in run.jobs:
            if j.status == "ok" and (not tasks or j.task in tasks):
                latest[(j.task, j.model, j.device)] = (j, run)
    by_task: dict[str, list[tuple[JobResult, RunResult]]] = {}
    for (task, _, _), pair in sorted(latest.items()):
        by_task.setdefault(task, []).append(pair)
    return by_task


def ranked(rows: list[tuple[JobResult, RunResult]]) -> tuple[list[str], list[tuple[JobResult, RunResult]]]:
    metrics = order_metrics(j for j, _ in rows)
    if not metrics:
        return metrics, rows
    key = metrics[0]

    def sort_key(pair: tuple[JobResult, RunResult]) -> tuple:
        mv = pair[0].quality.get(key)
        if mv is None or mv.value is None:
            return (1, 0.0)
        return (0, -mv.value if mv.higher_is_better else mv.value)

    return metrics, sorted(rows, key=sort_key)


def _env(run: RunResult) -> str:
    e = run.environment
    hw = ", ".join(e.get("gpus") or []) or f"{e.get('cpu')} ×{e.get('cpu_count')}"
    return f"{hw}; torch {e.get('torch')}, ORT {e.get('onnxruntime')}"


def table_rows(runs: list[RunResult], tasks: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    out = []
    for task, rows in merge(runs, tasks).items():
        metrics, rows = ranked(rows)
        for rank, (j, run) in enumerate(rows, 1):
            p = perf_summary(j)
            row: dict[str, Any] = {"task": task, "rank": rank, "model": j.model, "family": j.family, "plugin": j.plugin,
                                   "plugin_version": j.plugin_version, "device": j.device}
            for m in metrics:
                mv = j.quality.get(m)
                row[m] = None if mv is None else mv.value
                row[f"{m}_err"] = None if mv is None else (mv.stderr if mv.stderr is not None else mv.std)
                row[f"{m}_unit"] = None if mv is None else mv.unit
                row[f"{m}_higher_is_better"] = None if mv is None else mv.higher_is_better
            row.update({"ort_p50_ms_b1": p["ort_p50_ms_b1"], "ort_best_throughput": p["ort_best_throughput"],
                        "torch_best_throughput": p["torch_best_throughput"], "timing_valid": p["valid"],
                        "environment": _env(run), "run_id": run.run_id, "command": run.command})
            out.append(row)
    return out


def render_markdown(runs: list[RunResult], tasks: tuple[str, ...] = ()) -> str:
    lines = ["# genbench leaderboard", "", f"Merged from {len(runs)} run(s): "
             + ", ".join(f"`{r.run_id}`" for r in runs), ""]
    for task, rows in merge(runs, tasks).items():
        metrics, rows = ranked(rows)
        lines += [f"## {task}", ""]
        head = ["#", "model", "family"]
        for m in metrics:
            mv = next(j.quality[m] for j, _ in rows if m in j.quality)
            head.append(f"{m}{f' ({mv.unit})' if mv.unit else ''} {arrow(mv.higher_is_better)}")
        head += ["ORT p50 ms @b1 ↓", "ORT best /s ↑", "environment", "reproduce"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for rank, (j, run) in enumerate(rows, 1):
            cells = [str(rank), f"`{_md(j.model)}`", _md(j.family)]
            for m in metrics:
                mv = j.quality.get(m)
                err = None if mv is None else (mv.stderr if mv.stderr is not None else mv.std)
                cells.append("–" if mv is None or mv.value is None else f"{mv.value:.4g}" + (f" ± {err:.2g}" if err else ""))
            p = perf_summary(j)
            cells += ["–" if p["ort_p50_ms_b1"] is None else f"{p['ort_p50_ms_b1']:.3f}",
                      "–" if p["ort_best_throughput"] is None else f"{p['ort_best_throughput']:,.0f}",
                      _md(_env(run)), f"`{_md(run.command)}`"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def render(runs: list[RunResult], fmt: str, tasks: tuple[str, ...] = ()) -> str:
    if fmt == "md":
        return render_markdown(runs, tasks)
    rows = table_rows(runs, tasks)
    if fmt == "json":
        return json.dumps({"schema": "genbench.leaderboard/1", "runs": [r.run_id for r in runs], "rows": rows}, indent=2)
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()
