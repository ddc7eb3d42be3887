"""One job from its parts: the seeds' build-and-score results and the timing stage, into a JobResult.

With several training seeds every quality metric becomes the mean over seeds, with the standard deviation
across seeds and a 95% Student-t interval of the mean (``scipy.stats.t``); each seed's value is kept in
``per_seed``. The comparability key records how many seeds were averaged (``seeds``), so a 3-seed mean never
shares a ranked column with a single run, and which (``seed_ids``). A mean over seeds has no sampling interval of
its own: its t-interval over the seeds (``ci95``) holds each seed's sampling noise.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Mapping, Sequence

from .types import JobError, JobResult, MetricValue, SeedResult, TimingResult


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float | None,
                                                                    tuple[float, float] | None]:
    """(mean, std with ddof 1 or None, the ``level`` t-interval of the mean or None) of ``values``."""
    from scipy import stats

    k = len(values)
    mean = math.fsum(values) / k
    if k < 2:
        return mean, None, None
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (k - 1))
    half = float(stats.t.ppf(0.5 + level / 2, k - 1)) * std / math.sqrt(k)
    return mean, std, (mean - half, mean + half)


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present and len(present) == len(values) else None


def aggregate_metric(name: str, seeds: Sequence[SeedResult]) -> MetricValue:
    """One metric over the ok seeds that ran: mean ± std and t-interval, per-seed values kept."""
    values = [s.quality.get(name) for s in seeds]
    first = next(v for v in values if v is not None)
    per_seed = tuple(None if v is None else v.value for v in values)
    key = {**(first.key or {}), "seeds": len(seeds), "seed_ids": [int(s.seed) for s in seeds]}
    missing = [s.seed for s, v in zip(seeds, values) if v is None or v.value is None]
    if len(seeds) == 1:
        return replace(first, key=key, per_seed=per_seed)
    if missing:
        reasons = {s.seed: (v.error if v is not None else "not reported") for s, v in zip(seeds, values)
                   if v is None or v.value is None}
        text = "; ".join(f"seed {seed}: {why}" for seed, why in reasons.items())
        return replace(first, value=None, key=key, per_seed=per_seed, error=f"no value for every seed ({text})",
                       std=None, stderr=None, interval=None, interval_of=None)
    mean, std, ci = t_interval([float(v) for v in per_seed])
    return replace(first, value=mean, key=key, per_seed=per_seed, seed_std=std, ci95=ci,
                   floor=_mean_or_none([v.floor for v in values]), std=_mean_or_none([v.std for v in values]),
                   stderr=_mean_or_none([v.stderr for v in values]), error=None, interval=None, interval_of=None,
                   params=_flagged_params(first.params, [(s.seed, v) for s, v in zip(seeds, values)]))


def _flagged_params(params: Mapping[str, Any] | None, values: Sequence[tuple[int, MetricValue | None]]) -> Any:
    """The first seed's params, with the flag (and what it says is copied or replayed) of every seed that raised
    one: a model that copies in one seed of three copies, whichever seed came first."""
    flagged = [(seed, v.params) for seed, v in values if v is not None and isinstance(v.params, Mapping)
               and v.params.get("flag")]
    if not flagged:
        return params
    seed, first_flagged = flagged[0]
    out = dict(params or {})
    out["flag"] = (str(first_flagged["flag"]) if len(flagged) == len(values) else
                   f"seed {seed}: {first_flagged['flag']} (flagged in {len(flagged)} of {len(values)} seeds)")
    out.pop("copies", None)
    out.pop("replayed", None)
    if any(p.get("replayed") is True for _, p in flagged):  # beyond the floor's interval in some seed
        out["replayed"] = True
    copied = [p["copies"] for _, p in flagged if p.get("copies")]
    return {**out, "copies": copied[0]} if copied else out


def aggregate_quality(seeds: Sequence[SeedResult]) -> dict[str, MetricValue]:
    ok = [s for s in seeds if s.status == "ok"]
    names = list(dict.fromkeys(name for s in ok for name in s.quality))
    return {name: aggregate_metric(name, ok) for name in names}


def assemble(head: Mapping[str, Any], seeds: Sequence[int], results: Mapping[int, SeedResult],
             timing: TimingResult | None, timing_needed: bool, timing_off_reason: str | None = None) -> JobResult:
    """The job as it stands: ``pending`` while a seed or the timing is missing, then ok or failed."""
    done = [results[s] for s in seeds if s in results]
    ok = [r for r in done if r.status == "ok"]
    primary = ok[0] if ok else (done[0] if done else None)
    failed = [r for r in done if r.status == "failed"]
    declined = [r for r in done if r.status == "skipped"]
    timing_info: dict[str, Any]
    if not timing_needed:
        timing_info = {"status": "off", "reason": timing_off_reason}
    elif timing is None:
        timing_info = {"status": "pending" if ok or len(done) < len(seeds) else "off",
                       **({} if ok or len(done) < len(seeds) else {"reason": "no seed was built"})}
    else:
        timing_info = {"status": timing.status, **dict(timing.info)}
        if timing.error:
            timing_info["error"] = timing.error.to_dict()
    error: JobError | None = None
    if len(done) < len(seeds) or timing_info["status"] == "pending":
        status = "pending"
    elif failed:
        status = "failed"
        e = failed[0].error
        error = JobError(e.phase, e.type, (f"seed {failed[0].seed}: " if len(seeds) > 1 else "") + e.message) if e \
            else JobError("build", "Error", f"seed {failed[0].seed} failed")
    elif declined:
        status = "skipped"
    elif timing is not None and timing.status == "failed":
        status, error = "failed", timing.error
    else:
        status = "ok"
    phase_seconds: dict[str, float] = {}
    for r in done:
        for phase, secs in r.phase_seconds.items():
            phase_seconds[phase] = phase_seconds.get(phase, 0.0) + secs
    memory: dict[str, Any] = {}
    peaks = [r.memory.get("peak_rss_mb") for r in done if r.memory.get("peak_rss_mb") is not None]
    if peaks:
        memory["peak_rss_mb"] = max(peaks)  # the build stage's true peak, of the hungriest seed
    files = dict(primary.files) if primary else {}
    warnings = [f"seed {r.seed}: {w}" if len(seeds) > 1 else w for r in done for w in r.warnings]
    performance: tuple = ()
    if timing is not None:
        if timing.seconds is not None:
            phase_seconds["timing"] = phase_seconds.get("timing", 0.0) + timing.seconds
        memory.update(timing.memory)
        if timing.memory.get("peak_rss_mb_timing_process") is not None:  # the job's true peak: every process of it
            memory["peak_rss_mb_build"] = memory.get("peak_rss_mb")
            memory["peak_rss_mb"] = max(memory.get("peak_rss_mb") or 0.0, timing.memory["peak_rss_mb_timing_process"])
        files.update(timing.files)
        warnings += list(timing.warnings)
        performance = timing.performance
    seconds = sum(r.seconds or 0.0 for r in done) + ((timing.seconds or 0.0) if timing is not None else 0.0)
    reason = declined[0].reason if status == "skipped" else timing_off_reason if not timing_needed and status == "ok" \
        else None
    return JobResult(**head, status=status, error=error, reason=reason,
                     train=primary.train if primary else None, export=primary.export if primary else None,
                     quality=aggregate_quality(done), performance=performance, files=files, seconds=seconds,
                     phase_seconds=phase_seconds, memory=memory, node=primary.node if primary else None,
                     cache=primary.cache if primary else None, warnings=tuple(warnings), seeds=tuple(seeds),
                     seed_results=tuple(done), timing=timing_info)


__all__ = ["aggregate_metric", "aggregate_quality", "assemble", "t_interval"]
