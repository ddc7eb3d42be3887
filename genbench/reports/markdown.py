"""``report.md``: one leaderboard table per task, with units, directions and reference floors."""

from __future__ import annotations

import re
from pathlib import Path

from ..results import atomic_write_text
from ..types import JobResult, RunResult
from . import arrow, md_escape as _esc, order_metrics, perf_summary, phases


def _num(v: float | None, fmt: str = "{:.4g}") -> str:
    return "–" if v is None else fmt.format(v)


def _sort_key(job: JobResult, metric: str | None):
    status = {"ok": 0, "failed": 1, "skipped": 2}.get(job.status, 3)
    mv = job.quality.get(metric) if metric else None
    if mv is None or mv.value is None:
        return (status, 1, 0.0, job.model)
    return (status, 0, -mv.value if mv.higher_is_better else mv.value, job.model)


def render(run: RunResult, run_dir: Path | None = None) -> str:
    env = run.environment
    lines = [
        f"# genbench run {run.run_id}", "",
        f"- command: `{run.command}`",
        f"- profile: {run.config.get('profile')}, seed {run.config.get('seed')}, device {run.config.get('device')}, "
        f"threads {run.config.get('threads')}",
        f"- environment: {env.get('cpu')} ({env.get('cpu_count')} CPUs), GPUs: {', '.join(env.get('gpus') or []) or 'none'}; "
        f"python {env.get('python')}, torch {env.get('torch')}, onnxruntime {env.get('onnxruntime')}, genbench "
        f"{run.genbench_version}, commit {str(env.get('git_commit') or 'unknown')[:12]}",
        f"- started {run.started_at}, finished {run.finished_at or 'not finished'}",
        f"- matmul ceiling (float32 1024², {((env.get('matmul_gflops') or {}).get('threads'))} threads): "
        f"{_num((env.get('matmul_gflops') or {}).get('ceiling'), '{:.1f}')} GFLOP/s", "",
    ]
    for failure in run.plugin_failures:
        lines.append(f"> plugin **{_esc(failure.get('plugin'))}** failed to {failure.get('phase')}: {_esc(failure.get('message'))}")
    tasks = list(dict.fromkeys(j.task for j in run.jobs))
    for task in tasks:
        jobs = [j for j in run.jobs if j.task == task]
        lines += [f"## Task `{_esc(task)}`", ""]
        reasons = {j.reason for j in jobs}
        if all(j.status == "skipped" for j in jobs) and len(reasons) == 1:
            lines += [f"All {len(jobs)} jobs skipped: {_esc(reasons.pop())}", ""]
            continue
        ceiling = (run.environment.get("matmul_gflops") or {}).get("ceiling")
        lines += _quality_table(jobs) + _speed_table(jobs, ceiling) + _grids(jobs, task, run_dir)
    lines += phases.section(run)
    lines += ["Arrows give each column's better direction. Timings: ONNX Runtime and PyTorch eager interleaved in one "
              "process, warm-up excluded; 'valid: no' means too few samples for the p99 reported, "
              "'noisy' that other processes used the CPU during the timing.", ""]
    return "\n".join(lines)


def _metric_cell(mv) -> str:
    if mv is None or mv.value is None:
        return "–"
    return _num(mv.value) + (f" ± {mv.stderr:.2g}" if mv.stderr is not None else "") + (
        f" ± {mv.std:.2g}" if mv.std is not None else "")


def _quality_table(jobs: list[JobResult]) -> list[str]:
    metrics = order_metrics(jobs)
    jobs = sorted(jobs, key=lambda j: _sort_key(j, metrics[0] if metrics else None))
    first = {m: next(j.quality[m] for j in jobs if m in j.quality) for m in metrics}
    lines = []
    for m, mv in first.items():
        floor = next((j.quality[m] for j in jobs if m in j.quality and j.quality[m].floor is not None), None)
        if floor is not None:
            lines.append(f"- floor for {m} (real training data scored the same way, n = {floor.n}): **{floor.floor:.4g}**"
                         + (f"; extractor `{floor.extractor}`" if floor.extractor else ""))
        if mv.params:
            lines.append(f"- {m}: " + ", ".join(f"{k} {_esc(v)}" for k, v in mv.params.items() if k != "graph")
                         + (f" ({_esc(mv.note)})" if mv.note else ""))
    lines.append("")
    head = ["#", "model", "family", "status"]
    head += [f"{m}" + (f" ({first[m].unit})" if first[m].unit else "") + f" {arrow(first[m].higher_is_better)}"
             for m in metrics]
    head += ["train s", "parity Δ"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, j in enumerate(jobs, 1):
        parity = max((g["parity_max_abs_diff"] for g in (j.export or {}).get("graphs", {}).values()), default=None)
        status = j.status if j.status in ("ok", "pending") else (
            f"failed ({j.error.phase}): {_esc(j.error.message)}" if j.error else f"skipped: {_esc(j.reason)}")
        row = [str(rank), f"`{_esc(j.model)}`", _esc(j.family), status]
        row += [_metric_cell(j.quality.get(m)) for m in metrics]
        cached = " (cached)" if (j.cache or {}).get("status") == "hit" else ""
        row += [_num((j.train or {}).get("seconds"), "{:.1f}") + cached, _num(parity, "{:.1e}")]
        lines.append("| " + " | ".join(row) + " |")
    notes = [f"- warning, `{_esc(j.model)}`: {_esc(w)}" for j in jobs for w in j.warnings]
    notes += [f"- cache, `{_esc(j.model)}`: {_esc(j.cache['reason'])}" for j in jobs if (j.cache or {}).get("reason")]
    if any((j.cache or {}).get("status") == "hit" for j in jobs):
        notes.append("- (cached): restored from the model cache, not trained in this run; train s is the original "
                     "training time. `genbench run --no-cache` retrains.")
    return lines + [""] + (notes + [""] if notes else [])


def _speed_table(jobs: list[JobResult], ceiling: float | None = None) -> list[str]:
    rows = []
    for j in jobs:
        for graph, scenario in dict.fromkeys((p.graph, p.scenario) for p in j.performance):
            p = perf_summary(j, graph, scenario)
            valid = "yes" if p["valid"] else "no"
            what = graph if scenario == "forward" else f"{graph}: sampling loop, {p['unit']}"
            rows.append([f"`{_esc(j.model)}`", _esc(what), _num(p["ort_p50_ms_b1"], "{:.3f}"), _num(p["torch_p50_ms_b1"], "{:.3f}"),
                         _num(p.get("latency_speedup_b1"), "{:.2f}×"),
                         _num(p["ort_best_throughput"], "{:,.0f}") + (f" (b{p['ort_best_batch']})" if p["ort_best_batch"] else ""),
                         _num(p["torch_best_throughput"], "{:,.0f}") + (f" (b{p['torch_best_batch']})" if p["torch_best_batch"] else ""),
                         _num(p.get("throughput_ratio_best"), "{:.2f}×"), valid + (" (noisy)" if p["noisy"] else ""),
                         _limit(j, graph, scenario, ceiling)])
    if not rows:
        return []
    head = ["model", "graph", "ORT p50 ms @b1 ↓", "torch p50 ms @b1 ↓", "ORT/torch latency ↑", "ORT best /s ↑",
            "torch best /s ↑", "ORT/torch throughput ↑", "timing valid", "GFLOP/s ORT / torch (of ceiling)"]
    return ["### Speed (ONNX Runtime against PyTorch eager)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + \
        ["| " + " | ".join(r) + " |" for r in rows] + [""]


def _limit(j: JobResult, graph: str, scenario: str, ceiling: float | None) -> str:
    """Best achieved GFLOP/s per runtime, and its share of the machine's measured matmul ceiling."""
    best = {}
    for p in j.performance:
        if p.graph == graph and p.scenario == scenario and p.gflops_per_s:
            best[p.runtime] = max(best.get(p.runtime, 0.0), p.gflops_per_s)
    if not best:
        return "–"
    text = " / ".join(f"{best.get(r, 0):.1f}" for r in ("onnxruntime", "torch-eager"))
    if ceiling:
        text += " (" + " / ".join(f"{best.get(r, 0) / ceiling:.0%}" for r in ("onnxruntime", "torch-eager")) + ")"
    return text


def _grids(jobs: list[JobResult], task: str, run_dir: Path | None = None) -> list[str]:
    grids = [(j, j.files.get("samples_png")) for j in jobs if j.files.get("samples_png")]
    texts = [(j, j.files.get("samples_txt")) for j in jobs if j.files.get("samples_txt")]
    if not grids and not texts:
        return []
    lines = ["### Samples (drawn by genbench from the exported ONNX graph)", ""]
    for j, png in grids:
        lines += [f"**{_esc(j.model)}**  ", f"![samples of {_esc(j.model)} on {_esc(task)}]({png})", ""]
    for j, txt in texts:
        path = (run_dir / txt) if run_dir else None
        body = path.read_text(encoding="utf-8", errors="replace")[:1500] if path and path.is_file() else ""
        fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", body)), default=0))
        lines += [f"**{_esc(j.model)}** ([{txt}]({txt}))", "", fence + "text", body, fence, ""]
    return lines


def write(run: RunResult, directory: Path) -> Path:
    path = Path(directory) / "report.md"
    atomic_write_text(path, render(run, Path(directory)))
    return path
