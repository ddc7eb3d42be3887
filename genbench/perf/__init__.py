"""Timing loops and their statistics.

Rules (DESIGN.md §5): warm-up excluded; a measurement stops when both a minimum iteration count and a
minimum duration are met (or at a hard time cap, which can leave it invalid); raw per-call latencies are
kept; the runtimes being compared are interleaved in rounds in one process so that a burst of background
load hits both; the machine's background CPU use is measured during each timing and results taken under
load are flagged ``noisy``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

PERCENTILES = (50, 90, 95, 99)
TAIL_SAMPLES = 10  # a percentile q is trusted with at least this many samples beyond it
NOISY_BACKGROUND_CORES = 0.5


@dataclass(frozen=True)
class TimingPolicy:
    """``warmup`` calls (but no more than ``warmup_seconds`` of them, at least one) are made and discarded
    before timing; then each callable runs until both ``min_iterations`` and ``min_seconds`` are met, or
    ``max_seconds`` pass, split over ``rounds`` interleaved rounds."""

    warmup: int = 10
    warmup_seconds: float = 2.0
    min_iterations: int = 1000
    min_seconds: float = 1.0
    max_seconds: float = 10.0
    rounds: int = 4


def required_samples(q: float) -> int:
    """Samples needed to report percentile ``q`` (in %): ``TAIL_SAMPLES`` must lie beyond it."""
    return math.ceil(TAIL_SAMPLES / (1.0 - q / 100.0) - 1e-9)


def latency_stats(samples_s: np.ndarray, batch_size: int, max_percentile: int = 99) -> dict:
    """p50/p90/p99/mean/std in ms, throughput (``batch_size`` items per call) and validity for per-call
    latencies in seconds. Validity asks for enough samples for ``max_percentile``, the highest one a
    reader is meant to trust (99 for latency; 50 where the throughput is the figure)."""
    s = np.asarray(samples_s, dtype=np.float64)
    n = int(s.size)
    if n == 0:
        return {"latency_ms": {}, "throughput_per_s": 0.0, "valid": False, "invalid_reason": "no samples"}
    ms = s * 1e3
    lat = {f"p{q}": float(np.percentile(ms, q)) for q in PERCENTILES}
    lat.update(mean=float(ms.mean()), std=float(ms.std(ddof=1)) if n > 1 else 0.0)
    need = required_samples(max_percentile)
    valid = n >= need
    return {"latency_ms": lat, "throughput_per_s": float(batch_size * n / s.sum()), "valid": valid,
            "invalid_reason": None if valid else f"{n} samples, p{max_percentile} needs {need}"}


class CpuMonitor:
    """Background CPU use (cores busy outside this process) over an interval, from /proc/stat."""

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as f:
                fields = [float(v) for v in f.readline().split()[1:]]
        except OSError:
            return None
        hz = os.sysconf("SC_CLK_TCK")
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
        t = os.times()
        return (sum(fields) - idle) / hz, t.user + t.system, time.perf_counter()

    def background_cores(self) -> float | None:
        end = self._read()
        if end is None or self._start is None:
            return None
        busy, own, wall = (e - s for e, s in zip(end, self._start))
        return max(0.0, (busy - own) / wall) if wall > 0 else None


@dataclass
class Measurement:
    samples: list[float] = field(default_factory=list)
    background: list[float] = field(default_factory=list)
    first_call_s: float | None = None  # the cold first call, reported apart from the warm samples


def measure_interleaved(calls: Mapping[str, Callable[[], object]], policy: TimingPolicy,
                        sync: Mapping[str, Callable[[], None]] | None = None,
                        self_timed: frozenset[str] = frozenset()) -> dict[str, Measurement]:
    """Time each callable, interleaved in ``policy.rounds`` rounds; per-call latencies in seconds.

    ``sync[name]`` (e.g. ``torch.cuda.synchronize``) runs inside the timed region after every call, so that
    asynchronous devices are measured to completion. Callables named in ``self_timed`` return their own
    elapsed seconds (e.g. from CUDA events), which are recorded instead of the host clock's reading.
    """
    sync = sync or {}
    out = {name: Measurement() for name in calls}
    for name, fn in calls.items():
        begin = time.perf_counter()
        for i in range(max(policy.warmup, 1)):
            fn()
            sync.get(name, _noop)()
            if i == 0:
                out[name].first_call_s = time.perf_counter() - begin
            if time.perf_counter() - begin > policy.warmup_seconds:
                break
    per_round_iters = math.ceil(policy.min_iterations / policy.rounds)
    per_round_secs = policy.min_seconds / policy.rounds
    per_round_cap = policy.max_seconds / policy.rounds
    clock = time.perf_counter
    for r in range(policy.rounds):
        order = list(calls) if r % 2 == 0 else list(reversed(calls))
        for name in order:
            fn, after, m = calls[name], sync.get(name, _noop), out[name]
            monitor = CpuMonitor()
            begin = clock()
            n = 0
            own = name in self_timed
            while True:
                t0 = clock()
                elapsed = fn()
                after()
                t1 = clock()
                m.samples.append(float(elapsed) if own else t1 - t0)
                n += 1
                elapsed = t1 - begin
                if (n >= per_round_iters and elapsed >= per_round_secs) or elapsed >= per_round_cap:
                    break
            bg = monitor.background_cores()
            if bg is not None:
                m.background.append(bg)
    return out


def _noop() -> None:
    return None


def _status_kb(field_name: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux: ``echo 5 > /proc/self/clear_refs``); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process since start (or the last reset), in MiB."""
    kb = _status_kb("VmHWM")
    if kb is None:
        import resource

        kb = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return kb / 1024.0
