"""Where a run's time went: wall time of each stage, and job time per phase, for ``report.md``."""

from __future__ import annotations

import datetime as dt

from ..types import RunResult
from . import mapping, md_escape

#: the phases of a job in the order they run (build stage, then timing)
PHASES = ("load", "restore", "train", "export", "validate", "sample", "likelihood", "quality", "timing")


def _wall_seconds(run: RunResult) -> float | None:
    try:
        start = dt.datetime.fromisoformat(run.started_at)
        end = dt.datetime.fromisoformat(run.finished_at) if run.finished_at else None
    except (TypeError, ValueError):
        return None
    return None if end is None else (end - start).total_seconds()


def section(run: RunResult) -> list[str]:
    """Markdown lines: the run's wall time by stage, then a table of job seconds per phase (summed over
    jobs and seeds, with the slowest job of each phase). Empty when no job recorded phase times."""
    totals: dict[str, float] = {}
    slowest: dict[str, tuple[float, str]] = {}
    for j in run.jobs:
        for phase, secs in (j.phase_seconds or {}).items():
            totals[phase] = totals.get(phase, 0.0) + secs
            if secs > slowest.get(phase, (-1.0, ""))[0]:
                slowest[phase] = (secs, f"{j.model} on {j.task}")
    if not totals:
        return []
    wall = _wall_seconds(run)
    stages = run.environment.get("stage_seconds") or {}
    jobs = run.config.get("jobs")
    lines = ["## Where the time went", ""]
    parts = []
    if wall is not None:
        parts.append(f"run wall time {wall:.0f} s")
    if stages.get("build_seconds") is not None:
        parts.append(f"build-and-score stage {stages['build_seconds']:.0f} s"
                     + (f" (up to {jobs} units at once)" if jobs else ""))
    timed = any(j.performance or mapping(j.timing).get("status") in ("done", "failed") for j in run.jobs)
    if stages.get("timing_seconds") is not None and timed:  # a run that timed nothing has no timing stage to tell
        parts.append(f"timing stage {stages['timing_seconds']:.0f} s (one job at a time, alone; the matmul "
                     "ceiling included)")
    if parts:
        lines += ["- " + "; ".join(parts), ""]
    order = [p for p in PHASES if p in totals] + sorted(p for p in totals if p not in PHASES)
    total = sum(totals.values())
    lines += ["| phase | job seconds | share | slowest job |", "|---|---|---|---|"]
    for phase in order:
        secs, who = slowest[phase]
        lines.append(f"| {md_escape(phase)} | {totals[phase]:.1f} | {totals[phase] / total:.0%} | "
                     f"{md_escape(who)} ({secs:.1f} s) |")
    lines += [f"| all | {total:.1f} | 100% | |", "",
              "Job seconds add up every job's (and seed's) time in a phase; units of the build stage run side by "
              "side, so that stage's wall time is shorter than its job seconds.", ""]
    ceiling = run.environment.get("matmul_gflops") or {}
    if ceiling.get("note"):
        lines += [f"- GEMM ceiling exceeded: {md_escape(ceiling['note'])}", ""]
    elif ceiling.get("noisy"):
        lines += [f"- the GEMM ceiling was measured under background load ({ceiling.get('background_cpu_cores', 0):.2f} "
                  "cores busy elsewhere): read shares of it with care", ""]
    if run.config.get("device_note"):
        lines += [f"- {md_escape(run.config['device_note'])}", ""]
    return lines


__all__ = ["PHASES", "section"]
