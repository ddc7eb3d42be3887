"""Timing loops, their statistics, and memory figures.

Rules (DESIGN.md §5): warm-up excluded; the runtimes being compared are interleaved in rounds in one
process, in alternating order, so that a burst of background load hits both; every call is read on one
clock, the host's ``perf_counter``, around the call and its synchronisation (a device's own clock, such
as CUDA events, is kept apart and never mixed in); raw per-call latencies are kept; the machine's
background CPU use is measured during each timing and results taken under load are flagged ``noisy``.

A measurement stops once its figures are tight, as pyperf and MLPerf LoadGen's early stopping do: after
its minimum calls, minimum seconds and minimum rounds, it stops as soon as the 95% confidence interval
of the median (distribution-free, from order statistics) lies within ±``target_ci`` of the median, and
otherwise runs on to ``max_seconds``. Each figure is then judged on its own: a percentile q needs
``TAIL_SAMPLES`` samples beyond it (p99: 1,000 calls), a throughput needs ``min_seconds`` of timed calls.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

PERCENTILES = (50, 90, 95, 99)
TAIL_SAMPLES = 10  # a percentile q is trusted with at least this many samples beyond it
NOISY_BACKGROUND_CORES = 0.5
MIN_THROUGHPUT_CALLS = 3  # a throughput is never read off fewer calls, however long they took
CONFIDENCE = 0.95  # of the median's interval used for early stopping
#: a measurement still short of its target after this share of ``max_seconds`` stops when its projected
#: interval at ``max_seconds`` would be short too (:func:`_cannot_reach`)
GIVE_UP_AT = 1 / 3
#: how far past the target a projection must be before a measurement gives up (a projection is rough)
GIVE_UP_MARGIN = 1.25


@dataclass(frozen=True)
class TimingPolicy:
    """How long one measurement runs.

    ``warmup`` calls (but no more than ``warmup_seconds`` of them, at least one) are made and discarded.
    Then the callables run interleaved, in at least ``rounds`` rounds of alternating order, until each has
    made ``min_iterations`` calls and spent ``min_seconds`` in timed calls; from there on a measurement
    stops once the 95% interval of its median is within ±``target_ci`` (a fraction; ``None``: stop at the
    minimums); past a third of ``max_seconds``, once that interval, narrowing as 1/sqrt(calls), is projected to
    be still wider than 1.25 × ``target_ci`` at ``max_seconds`` (it could not reach its target: the time would
    buy nothing); and in any case after ``max_seconds`` of timed calls. ``min_seconds`` is also the duration
    a throughput figure needs to count as valid.
    """

    warmup: int = 10
    warmup_seconds: float = 2.0
    min_iterations: int = 20
    min_seconds: float = 0.5
    max_seconds: float = 5.0
    rounds: int = 2
    target_ci: float | None = 0.01

    def to_dict(self) -> dict:
        return {"warmup": self.warmup, "warmup_seconds": self.warmup_seconds, "min_iterations": self.min_iterations,
                "min_seconds": self.min_seconds, "max_seconds": self.max_seconds, "rounds": self.rounds,
                "target_ci": self.target_ci}


def required_samples(q: float) -> int:
    """Samples needed to report percentile ``q`` (in %): ``TAIL_SAMPLES`` must lie beyond it."""
    return math.ceil(TAIL_SAMPLES / (1.0 - q / 100.0) - 1e-9)


def median_interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The distribution-free ``confidence`` interval of the median of ``samples``: the order statistics
    ``x(j) ≤ median ≤ x(n+1−j)`` with ``j`` from the Binomial(n, ½) quantile; None when n is too small
    for any such interval (n < 6 at 95%)."""
    from scipy.stats import binom

    s = np.sort(np.asarray(samples, dtype=np.float64))
    n = s.size
    if n == 0:
        return None
    # the largest j with P(B <= j - 1) <= (1 - confidence) / 2, B ~ Binomial(n, 1/2) the count below the median
    j = int(binom.ppf((1.0 - confidence) / 2.0, n, 0.5))
    if j < 1:
        return None
    return float(s[j - 1]), float(s[n - j])


def relative_half_width(samples: np.ndarray, confidence: float = CONFIDENCE) -> float | None:
    """The median interval's larger half-width as a fraction of the median (None: no interval yet)."""
    ci = median_interval(samples, confidence)
    if ci is None:
        return None
    med = float(np.median(samples))
    if med <= 0:
        return None
    return max(med - ci[0], ci[1] - med) / med


def latency_stats(samples_s: np.ndarray, items_per_call: int, min_seconds: float = 0.0) -> dict:
    """Statistics of per-call latencies in seconds: p50/p90/p95/p99, mean and std in ms, throughput
    (``items_per_call`` items per call), the median's 95% interval, and each figure judged on its own:
    ``figure_validity[pN]`` needs ``required_samples(N)`` calls, ``figure_validity["throughput"]`` at least
    ``MIN_THROUGHPUT_CALLS`` calls and ``min_seconds`` of them. ``valid`` is the headline pair, p50 and
    throughput; ``invalid_reason`` names every figure that fails and why."""
    s = np.asarray(samples_s, dtype=np.float64)
    n = int(s.size)
    if n == 0:
        return {"latency_ms": {}, "throughput_per_s": 0.0, "valid": False, "invalid_reason": "no samples",
                "figure_validity": {**{f"p{q}": False for q in PERCENTILES}, "throughput": False},
                "median_ci_ms": None}
    ms = s * 1e3
    lat = {f"p{q}": float(np.percentile(ms, q)) for q in PERCENTILES}
    lat.update(mean=float(ms.mean()), std=float(ms.std(ddof=1)) if n > 1 else 0.0)
    total = float(s.sum())
    figures: dict[str, bool] = {}
    reasons = []
    for q in PERCENTILES:
        need = required_samples(q)
        figures[f"p{q}"] = n >= need
        if n < need:
            reasons.append(f"p{q}: {n} samples, needs {need}")
    figures["throughput"] = n >= MIN_THROUGHPUT_CALLS and total >= min_seconds
    if not figures["throughput"]:
        reasons.append(f"throughput: {n} calls over {total:.3g} s, needs {MIN_THROUGHPUT_CALLS} calls and "
                       f"{min_seconds:g} s")
    ci = median_interval(s)
    valid = figures["p50"] and figures["throughput"]
    return {"latency_ms": lat, "throughput_per_s": float(items_per_call * n / total) if total > 0 else 0.0,
            "valid": valid, "invalid_reason": "; ".join(reasons) or None, "figure_validity": figures,
            "median_ci_ms": None if ci is None else (ci[0] * 1e3, ci[1] * 1e3)}


class CpuMonitor:
    """Background CPU use over an interval: the cores this process may run on (its affinity mask) that other
    processes kept busy, from /proc/stat's per-CPU counters less this process's own CPU time.

    The counters tick every 10 ms, so over a short interval one tick is a large share of a core: a reading
    is clamped to [0, the cores counted] (never more cores than the machine lets this process use), and
    :meth:`interval` gives the raw seconds so that readings of several intervals can be added up first
    (:attr:`Measurement.background_cores`)."""

    def __init__(self) -> None:
        self.cores = self._cpus()
        self._start = self._read(self.cores)

    @staticmethod
    def _cpus() -> set[int] | None:
        try:
            return set(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # macOS, Windows: every CPU
            return None

    @staticmethod
    def _read(cpus: set[int] | None) -> tuple[float, float, float] | None:
        busy = 0.0
        try:
            with open("/proc/stat") as f:
                for line in f:
                    name, *values = line.split()
                    if not name.startswith("cpu"):
                        break
                    if name == "cpu" if cpus is None else (name[3:].isdigit() and int(name[3:]) in cpus):
                        fields = [float(v) for v in values]
                        busy += sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0.0)  # less idle, iowait
        except (OSError, ValueError, IndexError):
            return None
        t = os.times()
        return busy / os.sysconf("SC_CLK_TCK"), t.user + t.system, time.perf_counter()

    def interval(self) -> tuple[float, float] | None:
        """(CPU seconds other processes used on the counted cores, wall seconds) since this monitor started."""
        end = self._read(self.cores)
        if end is None or self._start is None:
            return None
        busy, own, wall = (e - s for e, s in zip(end, self._start))
        return (busy - own, wall) if wall > 0 else None

    def background_cores(self) -> float | None:
        """Cores other processes kept busy since this monitor started, on average, within [0, cores counted]."""
        got = self.interval()
        return None if got is None else clamp_cores(got[0] / got[1], self.cores)


def clamp_cores(value: float, cpus: set[int] | None) -> float:
    """A background reading within [0, the cores it counted]: tick-rounding can push a short reading past both."""
    most = len(cpus) if cpus else (os.cpu_count() or 1)
    return min(max(value, 0.0), float(most))


@dataclass
class Measurement:
    """One runtime's timed calls. ``samples``: per-call seconds on the host clock (call + synchronisation).
    ``error``: why this runtime stopped (it raised); its samples are then not used. No samples and no
    error: its first call was so slow that the fewest calls a figure needs would not fit in ``max_seconds``
    (``stop_reason`` says so)."""

    samples: list[float] = field(default_factory=list)
    background: list[float] = field(default_factory=list)  # each round's background cores (clamped)
    #: over every round: CPU seconds other processes used, wall seconds (their ratio: background_cores)
    background_seconds: tuple[float, float] = (0.0, 0.0)
    first_call_s: float | None = None  # the cold first call, reported apart from the warm samples
    stop_reason: str | None = None
    error: str | None = None

    @property
    def timed_seconds(self) -> float:
        return float(sum(self.samples))

    @property
    def background_cores(self) -> float | None:
        """Cores other processes kept busy during the timed rounds, on average: their CPU seconds added up over
        the rounds, then divided by the rounds' wall time (a longer interval than any one round, so the 10 ms
        ticks weigh less), clamped to the cores this process may use."""
        other, wall = self.background_seconds
        return clamp_cores(other / wall, CpuMonitor._cpus()) if wall > 0 else None


def measure_interleaved(calls: Mapping[str, Callable[[], object]], policy: TimingPolicy,
                        sync: Mapping[str, Callable[[], None]] | None = None,
                        after: Mapping[str, Callable[[], None]] | None = None) -> dict[str, Measurement]:
    """Time each callable, interleaved in rounds of alternating order; per-call latencies in seconds.

    ``sync[name]`` (e.g. ``torch.cuda.synchronize``) runs inside the timed region after every call, so that
    asynchronous devices are measured to completion on the host clock. ``after[name]`` runs after the
    clock was read (outside the timed region), e.g. to collect a device clock's reading apart.
    A callable that raises stops there with ``error`` set; the others go on. A callable whose warm calls take
    longer than ``max_seconds / MIN_THROUGHPUT_CALLS`` is not timed further: no figure of it could be valid
    (no samples; ``stop_reason`` says why). That is judged on its fastest warm-up call, and on a second call
    when the cold first one alone was too slow (torch's first sampling loop took 0.86 s, its later ones
    0.03 s).
    """
    from ..errors import one_line

    sync, after = sync or {}, after or {}
    out = {name: Measurement() for name in calls}
    live = dict(calls)
    for name, fn in calls.items():
        begin, warm = time.perf_counter(), []
        try:
            for i in range(max(policy.warmup, 1)):
                t0 = time.perf_counter()
                fn()
                sync.get(name, _noop)()
                warm.append(time.perf_counter() - t0)
                if i == 0:
                    out[name].first_call_s = time.perf_counter() - begin
                after.get(name, _noop)()
                if time.perf_counter() - begin > policy.warmup_seconds:
                    break
            if len(warm) == 1 and warm[0] * MIN_THROUGHPUT_CALLS > policy.max_seconds:  # cold: try it warm
                t0 = time.perf_counter()
                fn()
                sync.get(name, _noop)()
                warm.append(time.perf_counter() - t0)
                after.get(name, _noop)()
        except Exception as exc:  # noqa: BLE001 - one runtime's failure is its own
            out[name].error, out[name].stop_reason = one_line(exc), "error"
            del live[name]
            continue
        fastest = min(warm)
        if fastest * MIN_THROUGHPUT_CALLS > policy.max_seconds:  # no valid figure could be had within the cap
            out[name].stop_reason = (f"not timed: a warm call took {fastest:.3g} s; {MIN_THROUGHPUT_CALLS} calls, "
                                     f"the fewest a figure needs, would be over max_seconds ({policy.max_seconds:g} s)")
            del live[name]
    rounds = max(1, policy.rounds)
    per_round_iters = math.ceil(policy.min_iterations / rounds)
    per_round_secs = policy.min_seconds / rounds
    round_cap = policy.max_seconds / rounds
    clock = time.perf_counter
    r = 0
    while live:
        order = list(live) if r % 2 == 0 else list(reversed(live))
        for name in order:
            fn, sync_fn, after_fn, m = calls[name], sync.get(name, _noop), after.get(name, _noop), out[name]
            budget = min(round_cap, policy.max_seconds - m.timed_seconds)
            monitor = CpuMonitor()
            begin, n = clock(), 0
            try:
                while True:
                    t0 = clock()
                    fn()
                    sync_fn()
                    t1 = clock()
                    after_fn()
                    m.samples.append(t1 - t0)
                    n += 1
                    elapsed = t1 - begin
                    if (n >= per_round_iters and elapsed >= per_round_secs) or elapsed >= budget:
                        break
            except Exception as exc:  # noqa: BLE001
                m.error, m.stop_reason = one_line(exc), "error"
                del live[name]
                continue
            got = monitor.interval()
            if got is not None:
                m.background.append(clamp_cores(got[0] / got[1], monitor.cores))
                m.background_seconds = (m.background_seconds[0] + got[0], m.background_seconds[1] + got[1])
        r += 1
        for name in list(live):
            m = out[name]
            if m.timed_seconds >= policy.max_seconds - 1e-9:
                m.stop_reason = "max_seconds"
            elif r >= rounds and len(m.samples) >= policy.min_iterations and m.timed_seconds >= policy.min_seconds:
                if policy.target_ci is None:
                    m.stop_reason = "minimums"
                else:
                    width = relative_half_width(np.asarray(m.samples))
                    if width is not None and width <= policy.target_ci:
                        m.stop_reason = f"median within ±{width:.2%} (95% interval)"
                    elif m.timed_seconds >= policy.max_seconds * GIVE_UP_AT:
                        m.stop_reason = _cannot_reach(width, m.timed_seconds, policy)
            if m.stop_reason is not None:
                del live[name]
    return out


def _cannot_reach(width: float | None, timed: float, policy: TimingPolicy) -> str | None:
    """Why a measurement stops early, at :data:`GIVE_UP_AT` of its cap: its median's interval, narrowing as
    1/sqrt(calls), would still be wider than ``target_ci`` at ``max_seconds`` (projected with a margin,
    :data:`GIVE_UP_MARGIN`); else None, and it runs on. Time spent on a figure that ends at its cap without
    its precision either way buys nothing."""
    if width is None or policy.target_ci is None or timed <= 0:
        return None
    projected = width * math.sqrt(timed / policy.max_seconds)
    if projected <= policy.target_ci * GIVE_UP_MARGIN:
        return None
    return (f"stopped early: median within ±{width:.2%} after {timed:.2g} s, projected ±{projected:.2%} at "
            f"max_seconds ({policy.max_seconds:g} s), short of ±{policy.target_ci:.0%}")


def _noop() -> None:
    return None


# --------------------------------------------------------------------------- memory


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
    """Reset this process's peak RSS (Linux: ``echo 5 > /proc/self/clear_refs``); False where unsupported,
    and then :func:`peak_rss_mb` keeps counting from the process's start."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process since start (or the last :func:`reset_peak_rss`), in MiB.

    Linux: ``VmHWM``. Elsewhere ``getrusage``'s ``ru_maxrss``, whose unit differs by platform (bytes on
    macOS, KiB on the BSDs and Linux), or psutil's ``peak_wset`` on Windows.
    """
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024.0
    return _peak_rss_fallback_mb(sys.platform)


def _peak_rss_fallback_mb(platform: str) -> float | None:
    if platform.startswith("win"):
        import psutil

        peak = getattr(psutil.Process().memory_info(), "peak_wset", None)
        return None if peak is None else peak / 2**20
    import resource

    maxrss = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return maxrss / 2**20 if platform == "darwin" else maxrss / 1024.0


def rss_mb() -> float:
    """Resident memory of this process now, in MiB (psutil: the same figure on every platform)."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


__all__ = ["CONFIDENCE", "CpuMonitor", "clamp_cores", "MIN_THROUGHPUT_CALLS", "Measurement", "NOISY_BACKGROUND_CORES", "PERCENTILES",
           "TAIL_SAMPLES", "TimingPolicy", "latency_stats", "measure_interleaved", "median_interval",
           "peak_rss_mb", "relative_half_width", "required_samples", "reset_peak_rss", "rss_mb"]
