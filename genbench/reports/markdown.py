"""``report.md``: one leaderboard table per task, with units, directions and reference floors."""

from __future__ import annotations

from pathlib import Path

from ..results import atomic_write_text
from ..types import JobResult, RunResult
from . import arrow, perf_summary


def _esc(text: object) -> str:
    """Escape what a plugin supplies so it cannot break (or inject into) the table."""
    s = str(text)
    for ch in "\\|`*_[]<>":
        s = s.replace(ch, "\\" + ch)
    return s.replace("\n", " ")


def _num(v: float | None, fmt: str = "{:.4g}") -> str:
    return "–" if v is None else fmt.format(v)


def _sort_key(job: JobResult, metric: str | None):
    status = {"ok": 0, "failed": 1, "skipped": 2}.get(job.status, 3)
    mv = job.quality.get(metric) if metric else None
    if mv is None or mv.value is None:
        return (status, 1, 0.0, job.model)
    return (status, 0, -mv.value if mv.higher_is_better else mv.value, job.model)


def render(run: RunResult) -> str:
    env = run.environment
    lines = [
        f"# genbench run {run.run_id}", "",
        f"- command: `{run.command}`",
        f"- profile: {run.config.get('profile')}, seed {run.config.get('seed')}, device {run.config.get('device')}, "
        f"threads {run.config.get('threads')}",
        f"- environment: {env.get('cpu')} ({env.get('cpu_count')} CPUs), GPUs: {', '.join(env.get('gpus') or []) or 'none'}; "
        f"python {env.get('python')}, torch {env.get('torch')}, onnxruntime {env.get('onnxruntime')}, genbench "
        f"{run.genbench_version}, commit {str(env.get('git_commit') or 'unknown')[:12]}",
        f"- started {run.started_at}, finished {run.finished_at or 'not finished'}", "",
    ]
    for failure in run.plugin_failures:
        lines.append(f"> plugin **{_esc(failure.get('plugin'))}** failed to {failure.get('phase')}: {_esc(failure.get('message'))}")
    tasks = list(dict.fromkeys(j.task for j in run.jobs))
    for task in tasks:
        jobs = [j for j in run.jobs if j.task == task]
        metrics = list(dict.fromkeys(k for j in jobs for k in j.quality))
        primary = metrics[0] if metrics else None
        jobs.sort(key=lambda j: _sort_key(j, primary))
        lines += [f"## Task `{_esc(task)}`", ""]
        reasons = {j.reason for j in jobs}
        if all(j.status == "skipped" for j in jobs) and len(reasons) == 1:
            lines += [f"All {len(jobs)} jobs skipped: {_esc(reasons.pop())}", ""]
            continue
        floors = {m: next((j.quality[m] for j in jobs if m in j.quality and j.quality[m].floor is not None), None) for m in metrics}
        for m, mv in floors.items():
            if mv is not None:
                lines.append(f"- reference floor for {m} (real train data against the test split, n = {mv.n}): "
                             f"**{mv.floor:.4g}**; extractor `{mv.extractor}`")
        lines.append("")
        head = ["#", "model", "family", "status"] + [f"{m} {arrow(floors[m].higher_is_better if floors.get(m) else False)}" for m in metrics]
        head += ["ORT p50 ms @b1 ↓", "torch p50 ms @b1 ↓", "ORT best samples/s ↑", "torch best samples/s ↑",
                 "ORT/torch b1 speed-up", "timing valid", "train s", "parity Δ"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for rank, j in enumerate(jobs, 1):
            p = perf_summary(j)
            parity = max((g["parity_max_abs_diff"] for g in (j.export or {}).get("graphs", {}).values()), default=None)
            status = j.status if j.status == "ok" else (
                f"failed ({j.error.phase}): {_esc(j.error.message)}" if j.error else f"skipped: {_esc(j.reason)}")
            valid = "–" if p["valid"] is None else ("yes" if p["valid"] else "no") + (" (noisy)" if p["noisy"] else "")
            row = [str(rank), f"`{_esc(j.model)}`", _esc(j.family), status]
            row += [_num(j.quality[m].value) if m in j.quality else "–" for m in metrics]
            row += [_num(p["ort_p50_ms_b1"], "{:.3f}"), _num(p["torch_p50_ms_b1"], "{:.3f}"),
                    _num(p["ort_best_throughput"], "{:,.0f}") + (f" (b{p['ort_best_batch']})" if p["ort_best_batch"] else ""),
                    _num(p["torch_best_throughput"], "{:,.0f}") + (f" (b{p['torch_best_batch']})" if p["torch_best_batch"] else ""),
                    _num(p.get("latency_speedup_b1"), "{:.2f}×"), valid,
                    _num((j.train or {}).get("seconds"), "{:.1f}"), _num(parity, "{:.1e}")]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        grids = [(j, j.files.get("samples_png")) for j in jobs if j.files.get("samples_png")]
        if grids:
            lines += ["### Samples (drawn from the exported ONNX graph)", ""]
            for j, png in grids:
                lines.append(f"**{_esc(j.model)}**  ")
                lines.append(f"![samples of {_esc(j.model)} on {_esc(task)}]({png})")
                lines.append("")
    lines += ["Arrows give each column's better direction. Timings: ONNX Runtime and PyTorch eager interleaved in one "
              "process, warm-up excluded; 'valid: no' means too few samples for the p99 reported, "
              "'noisy' that other processes used the CPU during the timing.", ""]
    return "\n".join(lines)


def write(run: RunResult, directory: Path) -> Path:
    path = Path(directory) / "report.md"
    atomic_write_text(path, render(run))
    return path
