"""``genbench compare BASE NEW``: every metric of two runs side by side, and a gate for pull requests
(``--fail-on-regression 'fd:5%,latency_p50:10%'``) that cannot pass by mistake.

* Two quality numbers are compared only when their comparability keys are equal; otherwise the row says
  "not comparable" and names the fields that differ, and a gate on it cannot be evaluated. A key field a
  run does not record (every field a ``genbench.run/1`` file predates) equals nothing: "BASE and NEW
  record no comparability key (genbench.run/1)".
* A change is judged against its uncertainty, not as a raw delta: the seeds' spread (Welch t-interval of the
  difference of the means) where both runs have several seeds, else the standard errors, else — for a
  single-seed number without one — the value itself (said so in the row). A gated metric fails when the 95%
  interval of how much worse it got lies wholly beyond the limit.
* Speed: from the raw latencies both runs keep (``files.latency_raw``), a percentile bootstrap of
  p50_new / p50_base (p99 for ``latency_p99``; for ``throughput`` the mean time per item at the best batch
  size, as the throughput itself is computed); flagged when the 95% interval lies wholly above 1 + limit.
* A gate cannot be evaluated — exit 2, one line each, naming the valid choices — for an empty or malformed
  gate or one that names a metric twice, an unknown metric, a metric missing or non-finite in either run, a
  gated model that failed or disappeared in NEW, incomparable keys (unless ``--allow-incomparable``), or a
  gated metric that judged no model (none has it, or every one was skipped). Reference rows (baselines,
  replayed training data) are not competitors: never gated, said in a note. Exit 1: a gated regression.
* The Markdown output escapes every text from a results file for Markdown; ``--format json`` writes one
  ``genbench.compare/1`` document on every exit path.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from ..comparability import FIELD_LABELS, describe, differing, key_of, unknown_fields
from ..errors import GenbenchError
from ..types import JobResult, MetricValue, PerfRecord, RunResult
from . import (arrow, badness, direction, mapping, md_text, number, read_contained, safe_perf_summary, term_safe,
               text_of)
from .leaderboard import Z95, reference_kind, sampling_interval, scale_of

SCHEMA = "genbench.compare/1"
ENV_KEYS = ("cpu", "cpu_count", "gpus", "torch", "onnxruntime", "python", "hostname")
BOOTSTRAP_RESAMPLES = 2000
MAX_BOOTSTRAP_SAMPLES = 5000  # more raw latencies are subsampled (fixed generator): the interval only widens
MIN_RAW_SAMPLES = 5  # fewer: no interval worth the name; the point values are compared, said so


@dataclass(frozen=True)
class PerfMetric:
    """A speed figure: the perf_summary key it reads, its direction and unit, and the bootstrap statistic."""

    summary_key: str
    higher_is_better: bool
    unit: str
    quantile: float | None  # of the raw per-call latencies; None: their mean (as throughput_per_s is computed)
    per_item: bool = False  # divide by the batch size: time per item (throughput)


PERF_METRICS = {
    "latency_p50": PerfMetric("ort_p50_ms_b1", False, "ms", 0.5),
    "latency_p99": PerfMetric("ort_p99_ms_b1", False, "ms", 0.99),
    "throughput": PerfMetric("ort_best_throughput", True, "/s", None, per_item=True),
}


class GateError(GenbenchError):
    """The gate cannot be evaluated (exit status 2)."""


@dataclass(frozen=True)
class Change:
    """How much worse NEW is than BASE (positive: worse), with its 95% interval and where that came from.

    For quality, in the metric's units (``worse``); for speed, the ratio NEW/BASE of time per call or per item
    (``ratio``, 1 = unchanged) — or the difference in ms for an absolute limit."""

    worse: float
    low: float
    high: float
    kind: str  # "seeds", "sampling", "se", "bootstrap", "processes" or "none" (no uncertainty known: the value itself)
    ratio: bool = False


@dataclass(frozen=True)
class Row:
    model: str
    task: str
    device: str
    metric: str
    unit: str
    higher_is_better: bool | None  # None: two-sided, a move away from ``target`` is worse
    base: float | None
    new: float | None
    verdict: str  # improved, regressed, unchanged, within noise, not comparable, missing
    why: str = ""  # not comparable, missing: what differs or is absent; speed on point values: why no bootstrap
    scale: str = ""  # the unit, or for a unitless built-in metric what the number is (leaderboard.scale_of)
    differing: tuple[str, ...] = ()
    change: Change | None = None
    change_abs: Change | None = None  # speed: the difference in ms, for absolute limits
    target: float | None = None  # the best value of a two-sided metric

    @property
    def delta(self) -> float | None:
        """NEW − BASE; None where the numbers are not comparable (no difference of them is shown)."""
        if self.base is None or self.new is None or self.verdict == "not comparable":
            return None
        return self.new - self.base

    @property
    def delta_pct(self) -> float | None:
        d = self.delta
        return None if d is None or not self.base else 100.0 * d / abs(self.base)

    @property
    def regressed(self) -> bool:
        return self.verdict == "regressed"


@dataclass
class Comparison:
    """What :func:`compare` found: rows, warnings about the runs, and the gate's failures and errors."""

    rows: list[Row]
    warnings: list[str]
    gates: dict[str, tuple[float, bool]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    base: RunResult | None = None
    new: RunResult | None = None
    error: str | None = None  # why no comparison was made (a run that will not load, a malformed gate)
    error_code: int = 1  # the exit status of ``error``: 2 where it leaves a gate unevaluated

    @property
    def exit_code(self) -> int:
        if self.error:
            return self.error_code
        return 2 if self.errors else (1 if self.failures else 0)

    @classmethod
    def failed(cls, exc: GenbenchError, gates_spec: str | None) -> "Comparison":
        """No comparison, only the error that stopped it: a :class:`GateError` (a malformed gate, or a run
        that will not load under a gate) exits 2 and is the gate's error; any other error exits 1."""
        try:
            limits = parse_gates(gates_spec)
        except GateError:
            limits = {}
        gated = isinstance(exc, GateError)
        return cls(rows=[], warnings=[], gates=limits, errors=[str(exc)] if gated else [], error=str(exc),
                   error_code=2 if gated else 1)


# --------------------------------------------------------------------------- gates


def parse_gates(spec: str | None) -> dict[str, tuple[float, bool]]:
    """``'fd:5%,latency_p50:0.2'`` → ``{"fd": (5.0, True), "latency_p50": (0.2, False)}`` (limit, is_percent).

    ``None`` is no gate. A gate that names no metric (``''``, ``','``) or one metric twice is malformed
    (:class:`GateError`): it would gate nothing, or gate with a limit the user did not mean."""
    gates: dict[str, tuple[float, bool]] = {}
    if spec is None:
        return gates
    for part in filter(None, (p.strip() for p in spec.split(","))):
        m = re.fullmatch(r"([A-Za-z0-9_\-]+)\s*:\s*([0-9]*\.?[0-9]+)\s*(%?)", part)
        if not m:
            raise GateError(f"Invalid gate {term_safe(part)!r} in --fail-on-regression: write METRIC:LIMIT, e.g. "
                            "'fd:5%' (relative) or 'fd:0.5' (absolute).")
        if m.group(1) in gates:
            raise GateError(f"Invalid gate {term_safe(spec)!r} in --fail-on-regression: {m.group(1)!r} is named "
                            "twice; give each metric one limit.")
        gates[m.group(1)] = (float(m.group(2)), m.group(3) == "%")
    if not gates:
        raise GateError(f"Invalid gate {term_safe(spec)!r} in --fail-on-regression: an empty gate gates nothing; "
                        "name at least one METRIC:LIMIT, e.g. 'fd:5%', or leave the option out.")
    return gates


# --------------------------------------------------------------------------- statistics


def quality_change(base: MetricValue, new: MetricValue, higher_is_better: bool | None) -> Change:
    """How much worse ``new`` is than ``base``, with a 95% interval from the seeds' spread (Welch), else the
    standard errors (normal), else none (the interval is the point). For a two-sided metric
    (``higher_is_better`` None) worse is the growth of the distance to its target, and the interval is
    that of the values' difference placed around it (exact away from the target, conservative near it)."""
    from scipy import stats

    a, b = float(number(base.value)), float(number(new.value))  # type: ignore[arg-type]
    worse = badness(b, higher_is_better, direction(new)[1]) - badness(a, higher_is_better, direction(base)[1])
    ka, kb = _seeds(base), _seeds(new)
    sa, sb = number(base.seed_std), number(new.seed_std)
    # products, not powers: a float product overflows to inf (a wide interval), a power raises
    if sa is not None and sb is not None and ka > 1 and kb > 1:
        va, vb = sa * sa / ka, sb * sb / kb
        se = math.sqrt(va + vb)
        if se == 0:
            return Change(worse, worse, worse, "seeds")
        denominator = va * va / (ka - 1) + vb * vb / (kb - 1)
        df = (va + vb) * (va + vb) / denominator if denominator > 0 else float(ka + kb - 2)
        h = float(stats.t.ppf(0.975, df)) * se
        return Change(worse, worse - h, worse + h, "seeds")
    sampled = [_sampling_se(mv, other) for mv, other in ((base, new), (new, base))]
    if (ka == 1 and kb == 1 and all(v is not None for v in sampled)
            and any(sampling_interval(mv) is not None for mv in (base, new))):
        h = Z95 * math.sqrt(sum(v * v for v in sampled))  # type: ignore[operator]
        return Change(worse, worse - h, worse + h, "sampling")
    ses = [float(s) for s in (number(base.stderr), number(new.stderr)) if s is not None]
    if ses:
        h = 1.959963984540054 * math.sqrt(sum(s * s for s in ses))
        return Change(worse, worse - h, worse + h, "se")
    return Change(worse, worse, worse, "none")


def _sampling_se(mv: MetricValue, other: MetricValue) -> float | None:
    """A single run's sampling uncertainty as a standard error: the half-width of its 95% sampling interval over
    1.96 (``MetricValue.interval``: a bootstrap over samples and reference), else its standard error; widened by
    the other run's seed spread where that is known (a single seed varies by it around the mean). None: neither."""
    iv = sampling_interval(mv)
    se = (iv[1] - iv[0]) / (2 * Z95) if iv is not None else number(mv.stderr)
    if se is None:
        return None
    spread = number(other.seed_std) if _seeds(other) > 1 else None
    return math.sqrt(se * se + spread * spread) if spread is not None else float(se)


def _seeds(mv: MetricValue) -> int:
    return len([v for v in mv.per_seed if number(v) is not None]) if isinstance(mv.per_seed, (list, tuple)) else 1


def bootstrap_ratio(base: Sequence[float], new: Sequence[float], quantile: float | None = 0.5, batch_base: int = 1,
                    batch_new: int = 1, seed: int = 0) -> tuple[Change, Change]:
    """95% percentile-bootstrap intervals of NEW/BASE and of NEW − BASE of the ``quantile`` (None: the mean)
    of per-call latencies divided by the calls' batch sizes (1: per call); above 1 (above 0): NEW is slower.

    Both samples are resampled independently ``BOOTSTRAP_RESAMPLES`` times with a fixed generator, so a
    comparison prints the same interval every time; samples longer than ``MAX_BOOTSTRAP_SAMPLES`` are
    first subsampled (the interval can only widen)."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def prepared(xs: Sequence[float]) -> np.ndarray:
        arr = np.asarray(xs, dtype=float)
        return rng.choice(arr, MAX_BOOTSTRAP_SAMPLES, replace=False) if len(arr) > MAX_BOOTSTRAP_SAMPLES else arr

    def resampled(x: np.ndarray, batch: int) -> np.ndarray:
        out = np.empty(BOOTSTRAP_RESAMPLES)
        for start in range(0, BOOTSTRAP_RESAMPLES, 250):  # bounded memory: 250 resamples at a time
            rows = x[rng.integers(0, len(x), size=(min(250, BOOTSTRAP_RESAMPLES - start), len(x)))]
            out[start:start + len(rows)] = _row_quantile(rows, quantile)
        return out / batch

    a, b = prepared(base), prepared(new)
    with np.errstate(all="ignore"):  # absurd latencies give inf or nan intervals, read as "within noise"
        qa, qb = resampled(a, batch_base), resampled(b, batch_new)
        pa = _row_quantile(a[None, :], quantile)[0] / batch_base
        pb = _row_quantile(b[None, :], quantile)[0] / batch_new
        rlo, rhi = np.percentile(qb / qa, [2.5, 97.5])
        dlo, dhi = np.percentile(qb - qa, [2.5, 97.5])
        ratio = float(np.divide(pb, pa))
    return (Change(ratio, float(rlo), float(rhi), "bootstrap", ratio=True),
            Change(float(pb - pa), float(dlo), float(dhi), "bootstrap"))


#: fewer per-process medians on a side and latency is judged by the one-process bootstrap instead
MIN_PROCESSES = 2


def process_ratio(base: Sequence[float], new: Sequence[float], level: float = 0.95) -> Change:
    """The ``level`` interval of NEW/BASE of latency from the per-process medians of each run (``--timing-repeats
    K``: one median per fresh timing process), as pyperf and MLPerf compare runs: a Welch t-interval of the
    difference of the mean log medians, exponentiated; the point is the ratio of their geometric means. The spread
    between processes is the machine-state variance a CI gate faces, which one process's call-to-call jitter
    misses."""
    from scipy import stats

    la, lb = [math.log(float(x)) for x in base], [math.log(float(x)) for x in new]
    na, nb = len(la), len(lb)
    ma, mb = math.fsum(la) / na, math.fsum(lb) / nb
    va = math.fsum((x - ma) ** 2 for x in la) / (na - 1) / na
    vb = math.fsum((x - mb) ** 2 for x in lb) / (nb - 1) / nb
    d = mb - ma
    se = math.sqrt(va + vb)
    if se == 0:
        return Change(math.exp(d), math.exp(d), math.exp(d), "processes", ratio=True)
    denominator = va * va / (na - 1) + vb * vb / (nb - 1)
    df = (va + vb) ** 2 / denominator if denominator > 0 else float(na + nb - 2)
    h = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return Change(math.exp(d), math.exp(d - h), math.exp(d + h), "processes", ratio=True)


def _process_medians(record: PerfRecord | None) -> list[float] | None:
    """A record's per-process p50s (``process_p50_ms``) when there are enough to judge by, else None."""
    xs = [number(x) for x in (record.process_p50_ms or ())] if record is not None else []
    return [float(x) for x in xs] if len(xs) >= MIN_PROCESSES and all(x is not None and x > 0 for x in xs) else None


def _row_quantile(rows: Any, q: float | None) -> Any:
    """numpy's default (linear) quantile of each row (None: the mean), by partial sorting: several times
    faster than ``np.quantile`` on thousands of resamples."""
    import numpy as np

    if q is None:
        return rows.mean(axis=1)
    n = rows.shape[1]
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    part = np.partition(rows, [lo, hi], axis=1)
    return part[:, lo] + (pos - lo) * (part[:, hi] - part[:, lo])


def _raw_latencies(job: JobResult, run_dir: Path | None) -> tuple[dict[str, list[float]], str]:
    """The job's raw per-call latencies, ``{"<graph>/<scenario>/<runtime>/b<batch>": [ms, ...]}``, read only
    from inside the run directory, and why none were read (absent, outside, oversized or malformed)."""
    rel = job.files.get("latency_raw")
    if rel is None:
        return {}, "records no raw latencies"
    data, why = read_contained(run_dir, rel)
    if data is None:
        return {}, f"raw latencies: {why}"
    try:
        raw = json.loads(data.decode("utf-8"), parse_constant=lambda c: None)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}, "raw latencies are not JSON"
    out = {}
    for k, v in mapping(raw).items():
        if isinstance(v, list):
            xs = [number(x) for x in v]
            if xs and all(x is not None and x > 0 for x in xs):
                out[k] = [float(x) for x in xs]  # type: ignore[arg-type]
    return out, "" if out else "raw latencies hold no positive numbers"


def _timed_record(job: JobResult, metric: PerfMetric) -> PerfRecord | None:
    """The ONNX Runtime record behind a perf_summary figure: the batch-1 record whose p50/p99 it reports, or
    the record with the best throughput."""
    value = number(safe_perf_summary(job)[metric.summary_key])
    if value is None:
        return None
    ort = [p for p in job.performance if p.runtime == "onnxruntime"]
    if metric.per_item:
        return next((p for p in ort if number(p.throughput_per_s) == value), None)
    q = "p50" if metric.quantile == 0.5 else "p99"
    return next((p for p in ort if p.batch_size == 1 and number(mapping(p.latency_ms).get(q)) == value), None)


def _record_key(p: PerfRecord) -> str:
    return f"{p.graph}/{p.scenario}/{p.runtime}/b{p.batch_size}"


# --------------------------------------------------------------------------- comparing


def _verdict(change: Change) -> str:
    one = 1.0 if change.ratio else 0.0
    if change.worse == one and change.low <= one <= change.high:
        return "unchanged"
    if change.low > one:
        return "regressed"
    if change.high < one:
        return "improved"
    return "within noise"


def _quality_rows(a: JobResult, b: JobResult, schemas: tuple[str, str] = ("", "")) -> list[Row]:
    rows = []
    for metric in sorted(set(a.quality) | set(b.quality)):
        ma, mb = a.quality.get(metric), b.quality.get(metric)
        first = mb or ma
        head = dict(model=b.model, task=b.task, device=b.device, metric=metric, unit=text_of(first.unit),
                    higher_is_better=direction(first)[0], target=direction(first)[1],
                    base=number(ma.value) if ma else None, new=number(mb.value) if mb else None,
                    scale=scale_of(metric, first, key_of(first, b.task)))
        undefined = _not_defined(ma, "BASE") or _not_defined(mb, "NEW")
        if undefined:
            rows.append(Row(**head, verdict="not defined", why=undefined))
            continue
        missing = _missing(ma, "BASE") or _missing(mb, "NEW")
        if missing:
            rows.append(Row(**head, verdict="missing", why=missing))
            continue
        ka, kb = key_of(ma, a.task), key_of(mb, b.task)
        diff = differing(ka, kb)
        if ma.unit != mb.unit or direction(ma) != direction(mb):
            diff = diff + ["unit"]
        if diff:
            rows.append(Row(**head, verdict="not comparable", why=_incomparable(ma, mb, ka, kb, diff, schemas),
                            differing=tuple(diff)))
            continue
        change = quality_change(ma, mb, direction(first)[0])
        rows.append(Row(**head, verdict=_verdict(change), change=change))
    return rows


def _incomparable(ma: MetricValue, mb: MetricValue, ka: dict, kb: dict, diff: list[str],
                  schemas: tuple[str, str]) -> str:
    """Why two numbers are not comparable: what a run's key does not record (a field it does not record
    equals nothing), then the fields whose values differ, then the unit."""
    parts = []
    unrecorded = [(which, mv, unknown_fields(k), schema)
                  for which, mv, k, schema in (("BASE", ma, ka, schemas[0]), ("NEW", mb, kb, schemas[1]))]
    keyless = [which for which, mv, fields, _ in unrecorded if fields and not mv.key]
    if keyless:
        kinds = sorted({text_of(schema) for which, _, _, schema in unrecorded if which in keyless and schema})
        parts.append(f"{' and '.join(keyless)} record{'s' if len(keyless) == 1 else ''} no comparability key"
                     + (f" ({', '.join(kinds)})" if kinds else ""))
    parts += [f"{which}'s comparability key does not record {', '.join(FIELD_LABELS.get(f, f) for f in fields)}"
              for which, mv, fields, _ in unrecorded if fields and mv.key]
    unknown = {f for _, _, fields, _ in unrecorded for f in fields}
    known = [f for f in diff if f not in unknown and f != "unit"]
    if known:
        parts.append(f"{describe(ka, known)} vs {describe(kb, known)}")
    if "unit" in diff:
        parts.append(f"unit {ma.unit!r} vs {mb.unit!r}")
    return "; ".join(parts)


def _not_defined(mv: MetricValue | None, which: str) -> str:
    """Why a metric has no value by design in ``which`` (``params["not_defined"]``: e.g. ``reverse-kl`` when no
    sample is high quality), or ""."""
    if mv is None or number(mv.value) is not None:
        return ""
    why = mapping(mv.params).get("not_defined")
    return f"not defined in {which}: {text_of(why, 200)}" if why else ""


def _missing(mv: MetricValue | None, which: str) -> str:
    if mv is None:
        return f"not reported in {which}"
    if number(mv.value) is None:
        return f"no value in {which}" + (f" ({text_of(mv.error, 200)})" if mv.error else "")
    return ""


def _perf_rows(a: JobResult, b: JobResult, dir_a: Path | None, dir_b: Path | None) -> list[Row]:
    rows = []
    pa, pb = safe_perf_summary(a), safe_perf_summary(b)
    raw_a = raw_b = None
    for name, pm in PERF_METRICS.items():
        va, vb = number(pa[pm.summary_key]), number(pb[pm.summary_key])
        if va is None and vb is None:
            continue
        head = dict(model=b.model, task=b.task, device=b.device, metric=name, unit=pm.unit,
                    higher_is_better=pm.higher_is_better, base=va, new=vb, scale=pm.unit)
        if va is None or vb is None:
            rows.append(Row(**head, verdict="missing", why=f"no {name} in {'BASE' if va is None else 'NEW'}"))
            continue
        apart = machines_apart(pa["machines"], pb["machines"])
        if apart:
            rows.append(Row(**head, verdict="not comparable", why=apart))
            continue
        if raw_a is None or raw_b is None:
            raw_a, raw_b = _raw_latencies(a, dir_a), _raw_latencies(b, dir_b)
        ra, rb = _timed_record(a, pm), _timed_record(b, pm)
        xs = raw_a[0].get(_record_key(ra)) if ra else None
        ys = raw_b[0].get(_record_key(rb)) if rb else None
        why = ""
        pa_, pb_ = _process_medians(ra), _process_medians(rb)
        if pm.quantile == 0.5 and not pm.per_item and pa_ and pb_:  # across fresh processes (--timing-repeats)
            ratio = process_ratio(pa_, pb_)
            ga, gb = (math.exp(math.fsum(math.log(x) for x in xs_) / len(xs_)) for xs_ in (pa_, pb_))
            head = {**head, "base": ga, "new": gb}  # what the ratio is of: base, new and Δ agree with it
            d = gb - ga
            diff = Change(d, d, d, "none")
            why = (f"across processes: geometric means of {len(pa_)} vs {len(pb_)} per-process medians "
                   "(--timing-repeats)")
        elif xs and ys and len(xs) >= MIN_RAW_SAMPLES and len(ys) >= MIN_RAW_SAMPLES and va > 0 and vb > 0:
            batches = (ra.batch_size, rb.batch_size) if pm.per_item else (1, 1)  # type: ignore[union-attr]
            ratio, diff = bootstrap_ratio(xs, ys, pm.quantile, *batches)
            if pm.quantile == 0.5 and not pm.per_item:
                why = ("one timing process each: call-to-call jitter, not run-to-run variance (time both with "
                       "--timing-repeats 3 or more)")
        else:  # no raw latencies to resample: the point values, said so
            slow, fast = (va, vb) if pm.higher_is_better else (vb, va)
            slower = slow / fast if fast > 0 else math.inf
            ratio = Change(slower, slower, slower, "none", ratio=True)
            diff = None
            reasons = [f"{which} {read_why or f'has fewer than {MIN_RAW_SAMPLES} raw latencies for this figure'}"
                       for which, found, (_, read_why) in (("BASE", xs, raw_a), ("NEW", ys, raw_b))
                       if read_why or not found or len(found) < MIN_RAW_SAMPLES]
            why = "point values, no bootstrap" + (": " + "; ".join(reasons) if reasons else "")
        if pm.per_item or diff is None:  # an absolute limit is in the figure's own unit
            d = (va - vb) if pm.higher_is_better else (vb - va)
            diff = Change(d, d, d, "none")
        rows.append(Row(**head, verdict=_verdict(ratio), change=ratio, change_abs=diff, why=why))
    return rows


def machines_apart(base: Sequence[str], new: Sequence[str]) -> str | None:
    """Why speed figures of BASE and NEW are not comparable because different machines measured them (their
    identity hashes, :mod:`genbench.perf.machine`), or None. Where neither run records a machine (written before
    identities) they are compared as before; where one does and the other does not, the machines cannot be
    shown to be the same."""
    a, b = sorted(set(base or ())), sorted(set(new or ()))
    if a == b:
        return None
    def name(xs: Sequence[str]) -> str:
        return ", ".join(term_safe(x) for x in xs) or "not recorded"

    return (f"measured on different machines (BASE {name(a)}, NEW {name(b)}): speed figures of different machines "
            "are never compared; time both on one machine")


def environment_warnings(base: RunResult, new: RunResult) -> list[str]:
    notes = []
    if base.genbench_version != new.genbench_version:
        notes.append(f"genbench {base.genbench_version} vs {new.genbench_version}")
    ea, eb = mapping(base.environment), mapping(new.environment)
    for key in ENV_KEYS:
        if ea.get(key) != eb.get(key):
            notes.append(f"{key}: {text_of(ea.get(key), 120)} vs {text_of(eb.get(key), 120)}")
    ia, ib = (mapping(e.get("machine")).get("identity") for e in (ea, eb))
    if ia != ib:
        notes.append(f"machine identity: {text_of(ia or 'not recorded', 40)} vs {text_of(ib or 'not recorded', 40)} "
                     "(speed figures are not compared across machines)")
    pa, pb = mapping(base.config).get("profile"), mapping(new.config).get("profile")
    if pa != pb:
        notes.append(f"profile: {text_of(pa, 120)} vs {text_of(pb, 120)}")
    return notes


def _jobs(run: RunResult) -> dict[tuple[str, str, str], JobResult]:
    return {(j.model, j.task, j.device): j for j in run.jobs}


def compare_runs(base: RunResult, new: RunResult, base_dir: Path | None = None,
                 new_dir: Path | None = None) -> list[Row]:
    """A row per metric of every model that is ok in both runs (quality, then speed)."""
    old, cur = _jobs(base), _jobs(new)
    rows = []
    for k, b in cur.items():
        a = old.get(k)
        if a is not None and a.status == "ok" and b.status == "ok":
            rows += _quality_rows(a, b, (base.schema, new.schema)) + _perf_rows(a, b, base_dir, new_dir)
    return rows


def gate(rows: list[Row], base: RunResult, new: RunResult, gates: dict[str, tuple[float, bool]],
         allow_incomparable: bool = False, allow_noisy: bool = False,
         require_all: bool = False) -> tuple[list[str], list[str], list[str]]:
    """(failures, errors, notes) of ``gates`` over ``rows``: a failure is a gated regression past its limit;
    an error is a gate that cannot be evaluated. A speed figure measured under load (a ``noisy`` or not ``valid``
    timing record in either run) cannot fail a gate: it is an error ("cannot judge: measured under load") unless
    ``allow_noisy``. Models that have the gated metric in neither run are named in a note, an error with
    ``require_all``; a metric not defined by design (``reverse-kl`` with no high-quality sample) is noted."""
    failures: list[str] = []
    errors: list[str] = []
    notes: list[str] = []
    known = sorted({m for run in (base, new) for j in run.jobs for m in j.quality} | set(PERF_METRICS))
    for metric in gates:
        if metric not in known:
            errors.append(f"cannot evaluate the gate on {term_safe(metric)!r}: neither run has that metric; "
                          f"valid: {', '.join(term_safe(m) for m in known)}")
    old, cur = _jobs(base), _jobs(new)
    by_key = {(r.model, r.task, r.device, r.metric): r for r in rows}
    for metric, (limit, pct) in gates.items():
        if metric in known:
            found = _gate_metric(metric, limit, pct, old, cur, by_key, allow_incomparable, allow_noisy)
            if found.lacking:
                named = ", ".join(found.lacking)
                if require_all:
                    found.errors.append(f"cannot evaluate the gate on {metric} for every model (--require-all): "
                                        f"{named} {'has' if len(found.lacking) == 1 else 'have'} no {metric} in "
                                        "either run")
                else:
                    found.notes.append(f"{metric} not gated for {named}: no {metric} in either run (pass "
                                       "--require-all to make that an error)")
            failures += found.failures
            errors += found.errors or ([] if found.judged else [_nothing_gated(metric, found)])
            notes += found.notes
    return failures, errors, notes


@dataclass
class _Gated:
    """What the gate found for one metric: failures, errors, notes, and how many models it judged, skipped
    as not comparable (``--allow-incomparable``) or skipped as references."""

    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    judged: int = 0
    incomparable: int = 0
    references: list[str] = field(default_factory=list)
    lacking: list[str] = field(default_factory=list)  # models with the metric in neither run
    undefined: int = 0  # models whose metric is not defined by design


def _nothing_gated(metric: str, found: _Gated) -> str:
    """The error of a gated metric that judged no model: a gate that evaluated nothing cannot pass."""
    why = []
    if found.incomparable:
        why.append(f"{found.incomparable} model(s) skipped as not comparable under --allow-incomparable")
    if found.references:
        why.append(f"{len(found.references)} reference row(s) skipped, as references are never gated")
    if found.undefined:
        why.append(f"{found.undefined} model(s) where it is not defined")
    because = "; ".join(why) or "no model has it in both runs"
    return f"cannot evaluate the gate on {metric}: no model was judged: {because}"


def _under_load(job: JobResult, metric: str) -> str:
    """Why the timing record behind a gated speed figure of ``job`` cannot be judged ("noisy", "not valid: …"),
    or ""."""
    record = _timed_record(job, PERF_METRICS[metric])
    if record is None:
        return ""
    why = []
    if record.valid is False:
        why.append("not valid" + (f" ({text_of(record.invalid_reason, 120)})" if record.invalid_reason else ""))
    if record.noisy:
        load = number(record.background_cpu_cores)
        why.append("noisy" + (f" ({load:.2g} background cores busy)" if load is not None else ""))
    return ", ".join(why)


def _gate_metric(metric: str, limit: float, pct: bool, old: dict, cur: dict, by_key: dict,
                 allow_incomparable: bool, allow_noisy: bool = False) -> _Gated:
    """What gating one metric over every model ok in BASE found; reference rows (baselines, replayed
    training data) are not competitors and are not gated."""
    out = _Gated()
    for k, a in old.items():
        where = f"{term_safe(a.model)} on {term_safe(a.task)} ({term_safe(a.device)})"
        b = cur.get(k)
        in_new = b is not None and metric in b.quality
        has = metric in a.quality or (metric in PERF_METRICS and number(
            safe_perf_summary(a)[PERF_METRICS[metric].summary_key]) is not None)
        if reference_kind(a) is not None or (b is not None and reference_kind(b) is not None):
            if has or in_new:
                out.references.append(where)
            continue
        if a.status != "ok":
            if in_new and b.status == "ok":
                out.notes.append(f"{metric} of {where} not gated: no result in BASE ({a.status})")
            continue
        if not has and not in_new:
            out.lacking.append(where)
            continue
        cannot = f"cannot evaluate the gate on {metric}: {where}"
        if b is None:
            out.errors.append(f"{cannot} is in BASE but missing from NEW")
            continue
        if b.status != "ok":
            reason = f"{b.error.phase}: {b.error.message}" if b.error else (b.reason or b.status)
            out.errors.append(f"{cannot} {b.status} in NEW ({term_safe(text_of(reason, 200))})")
            continue
        row = by_key.get((a.model, a.task, a.device, metric))
        if row is None or row.verdict == "missing":
            out.errors.append(f"{cannot}: {term_safe(row.why if row is not None else 'not reported in NEW')}")
            continue
        if row.verdict == "not comparable":
            msg = f"{metric} of {where} is not comparable ({term_safe(row.why)})"
            if allow_incomparable:
                out.notes.append(msg + "; not gated (--allow-incomparable)")
                out.incomparable += 1
            else:
                out.errors.append(f"cannot evaluate the gate: {msg}; pass --allow-incomparable to skip it")
            continue
        if row.verdict == "not defined":
            out.notes.append(f"{metric} of {where} not gated: {term_safe(row.why)}")
            out.undefined += 1
            continue
        if metric in PERF_METRICS:
            load = [f"{which}: {why}" for which, job in (("BASE", a), ("NEW", b))
                    for why in [_under_load(job, metric)] if why]
            if load and not allow_noisy:
                out.errors.append(f"cannot judge {metric} of {where}: measured under load ({'; '.join(load)}); "
                                  "rerun on a quiet machine, or pass --allow-noisy to judge it anyway")
                continue
            if load:
                out.notes.append(f"{metric} of {where} judged although measured under load ({'; '.join(load)}; "
                                 "--allow-noisy)")
        out.judged += 1
        failure = _gate_failure(row, limit, pct)
        if failure:
            out.failures.append(failure)
    if out.references:
        out.notes.append(f"{metric} not gated for reference rows (baselines, replayed training data: not "
                         f"competitors): {', '.join(out.references)}")
    return out


def _gate_failure(row: Row, limit: float, pct: bool) -> str | None:
    """The FAIL line when ``row``'s 95% interval of how much worse it got lies wholly beyond the limit."""
    ch = row.change if (pct or row.change_abs is None) else row.change_abs
    if ch is None:
        return None
    if ch.ratio:
        beyond = ch.low > 1 + limit / 100.0 if pct else False
    elif pct:
        base = abs(row.base or 0.0)
        beyond = (ch.low > 0) if base == 0 else (ch.low / base * 100.0 > limit)
    else:
        beyond = ch.low > limit
    if not beyond:
        return None
    if ch.ratio:
        change = f"×{ch.worse:.3f}, 95% interval ×{ch.low:.3f} to ×{ch.high:.3f} ({ch.kind})"
    else:
        change = (f"{'%+.1f%%' % row.delta_pct if row.delta_pct is not None else '%+.4g' % (row.delta or 0)}"
                  + (f", 95% interval of the worsening {ch.low:.4g} to {ch.high:.4g} ({ch.kind})"
                     if ch.kind != "none" else ""))
    return (f"{row.metric} of {term_safe(row.model)} on {term_safe(row.task)} regressed: {row.base:.4g} → "
            f"{row.new:.4g} ({change}; limit {limit:g}{'%' if pct else ''})")


def seed_changes(base: RunResult, new: RunResult) -> list[str]:
    """``vae-mlp on digits (cpu): seed 0 vs seed 1`` for each model (not a reference row) ok in both runs with one
    training seed each, and a different one: such a difference cannot tell a code change from seed variance."""
    old, cur = _jobs(base), _jobs(new)
    out = []
    for k, a in old.items():
        b = cur.get(k)
        if (b is None or a.status != "ok" or b.status != "ok" or reference_kind(a) is not None
                or reference_kind(b) is not None):
            continue
        sa, sb = tuple(a.seeds or ()), tuple(b.seeds or ())
        if len(sa) == 1 and len(sb) == 1 and sa != sb:
            out.append(f"{term_safe(a.model)} on {term_safe(a.task)} ({term_safe(a.device)}): seed "
                       f"{term_safe(sa[0])} vs seed {term_safe(sb[0])}")
    return out


def compare(base_path: Path | str, new_path: Path | str, gates: str | None = None,
            allow_incomparable: bool = False, allow_seed_change: bool = False, allow_noisy: bool = False,
            require_all: bool = False) -> Comparison:
    """Load two runs (schema-checked) and compare them; gate errors and failures are in the result. With a
    gate, a run that cannot be loaded is a gate that cannot be evaluated (:class:`GateError`).

    Two single-seed runs of a model with different seeds are refused (an error: exit 2, naming the seeds)
    unless ``allow_seed_change``: one seed each cannot tell a code change from seed variance. Allowed, they are
    judged on their sampling intervals, said in a note."""
    from ..results import load_run

    limits = parse_gates(gates)
    try:
        a, b = load_run(base_path), load_run(new_path)
    except GenbenchError as exc:
        if limits:
            raise GateError(str(exc)) from exc
        raise
    dirs = [Path(p) if Path(p).is_dir() else Path(p).parent for p in (base_path, new_path)]
    rows = compare_runs(a, b, dirs[0], dirs[1])
    result = Comparison(rows=rows, warnings=environment_warnings(a, b), gates=limits, base=a, new=b,
                        notes=job_changes(a, b))
    changed = seed_changes(a, b)
    refused = bool(changed) and not allow_seed_change
    if refused:  # those models' rows judge nothing, and no gate runs: its verdicts would be seed variance
        who = {(r.split(" on ", 1)[0]) for r in changed}
        result.rows = [replace(r, verdict="not comparable", change=None, change_abs=None,
                               why="trained with a different seed in each run: one seed each cannot tell a code "
                                   "change from seed variance (--allow-seed-change)")
                       if r.metric not in PERF_METRICS and term_safe(r.model) in who else r for r in result.rows]
        result.errors.append(f"cannot compare: BASE and NEW trained with different seeds ({'; '.join(changed)}); "
                             "one seed each cannot tell a code change from seed variance: rerun NEW with BASE's "
                             "seed, or both with --seeds S,S,S, or pass --allow-seed-change")
    elif changed:
        result.notes.append(f"the seeds differ ({'; '.join(changed)}); judged on the runs' sampling intervals "
                            "(--allow-seed-change): seed variance is not in them")
    if limits and not refused:
        failures, errors, notes = gate(rows, a, b, limits, allow_incomparable, allow_noisy, require_all)
        result.failures, result.errors = failures, result.errors + errors
        result.notes += notes
    return result


def job_changes(base: RunResult, new: RunResult) -> list[str]:
    """The models that have rows in one run only: ok in BASE but failed, pending or gone in NEW, and back."""
    old, cur = _jobs(base), _jobs(new)
    notes = []
    for k, a in old.items():
        b = cur.get(k)
        where = f"{term_safe(a.model)} on {term_safe(a.task)} ({term_safe(a.device)})"
        if a.status == "ok" and (b is None or b.status != "ok"):
            notes.append(f"{where}: ok in BASE, {'missing from' if b is None else b.status + ' in'} NEW")
        elif a.status != "ok" and b is not None and b.status == "ok":
            notes.append(f"{where}: {a.status} in BASE, ok in NEW")
    return notes


# --------------------------------------------------------------------------- output


def _fmt(v: Any, f: str = "{:.4g}") -> str:
    x = number(v)
    return "–" if x is None else f.format(x)


def _uncertainty(r: Row) -> str:
    ch = r.change
    if ch is None:
        return ""
    if ch.ratio:
        return f"×{ch.worse:.3f} [{ch.low:.3f}, {ch.high:.3f}] ({ch.kind})"
    if ch.kind == "none":
        return "none known"
    return f"worse by {ch.worse:.3g} [{ch.low:.3g}, {ch.high:.3g}] ({ch.kind})"


def _verdict_text(r: Row) -> str:
    return f"{r.verdict}: {r.why}" if r.why else r.verdict


def units_legend(rows: Sequence[Row]) -> list[str]:
    """One line per (metric, unit or scale) in ``rows``: what each metric's numbers are (KID is raw MMD² in
    its feature space, not ×10³); "no unit given" where a metric records none and genbench knows no scale."""
    seen = dict.fromkeys((r.metric, r.scale or r.unit or "no unit given") for r in rows)
    return [f"{metric}: {scale}" for metric, scale in seen]


def render(rows: list[Row], warnings: list[str], failures: list[str], errors: Sequence[str] = (),
           notes: Sequence[str] = ()) -> str:
    """The comparison as Markdown, for a terminal or a pull request: every text from a results file is
    escaped for Markdown (no HTML, no table rows of its own) and no control character or escape sequence
    reaches the output. ``errors`` (gates that cannot be evaluated) are only counted here: the command
    prints each on stderr."""
    lines = [md_text(f"warning: the runs differ in {w}; deltas may reflect the machine, not the model")
             for w in warnings]
    lines += ["", "| model | task | metric | base | new | Δ | Δ% | change, 95% interval (from) | verdict |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {md_text(r.model)} | {md_text(r.task)} | {md_text(r.metric)} {arrow(r.higher_is_better, r.target)} "
                     f"| {_fmt(r.base)} | {_fmt(r.new)} | {_fmt(r.delta, '{:+.4g}')} | {_fmt(r.delta_pct, '{:+.1f}%')} "
                     f"| {md_text(_uncertainty(r))} | {md_text(_verdict_text(r))} |")
    lines += ["", "Verdicts weigh each change against its uncertainty: seeds (Welch t-interval over training seeds), "
              "sampling (the single runs' 95% sampling intervals: a bootstrap over samples and reference), "
              "se (standard errors), bootstrap (raw latencies of one process resampled), processes (Welch "
              "t-interval over per-process medians, --timing-repeats), none known (a single-seed number without "
              "an interval or a standard error: judged on its value). Speed changes are ratios NEW/BASE of time per "
              "call or item.", ""]
    legend = units_legend(rows)
    if legend:
        lines += ["Units (numbers are as stored in run.json, never rescaled):"]
        lines += [f"- {md_text(line)}" for line in legend] + [""]
    lines += [md_text(f"note: {n}") for n in notes]
    lines += [md_text(f"FAIL: {f}") for f in failures]
    if errors:
        lines.append(f"the gate could not be evaluated ({len(errors)} error(s) on stderr): exit 2")
    elif not failures:
        lines.append("no gated regression")
    return "\n".join(lines)


def to_dict(result: Comparison, gates_spec: str | None = None) -> dict[str, Any]:
    """The ``genbench.compare/1`` JSON document (schema ``compare-1.schema.json``)."""
    def change(ch: Change | None) -> dict[str, Any] | None:
        if ch is None:
            return None
        return {"worse": number(ch.worse), "low": number(ch.low), "high": number(ch.high), "from": ch.kind,
                "ratio": ch.ratio}

    def run(r: RunResult | None) -> dict[str, Any] | None:
        if r is None:
            return None
        return {"run_id": r.run_id, "genbench_version": r.genbench_version,
                "git_commit": text_of(mapping(r.environment).get("git_commit") or "unknown"),
                "command": r.command}

    rows = [{"model": r.model, "task": r.task, "device": r.device, "metric": r.metric, "unit": r.unit,
             "scale": r.scale or r.unit or "no unit given", "higher_is_better": r.higher_is_better, "target": r.target,
             "base": number(r.base), "new": number(r.new),
             "delta": number(r.delta), "delta_pct": number(r.delta_pct), "verdict": r.verdict, "why": r.why,
             "differing": [FIELD_LABELS.get(f, f) for f in r.differing], "change": change(r.change),
             "change_abs": change(r.change_abs)} for r in result.rows]
    outcome = ("error" if result.errors else "fail" if result.failures else "pass" if result.gates else "none")
    return {"schema": SCHEMA, "base": run(result.base), "new": run(result.new), "error": result.error,
            "warnings": result.warnings, "rows": rows,
            "gate": {"spec": gates_spec, "limits": {m: {"limit": v, "relative": pct} for m, (v, pct) in result.gates.items()},
                     "failures": result.failures, "errors": result.errors, "notes": result.notes,
                     "result": outcome},
            "exit_code": result.exit_code}


def render_json(result: Comparison, gates_spec: str | None = None) -> str:
    return json.dumps(to_dict(result, gates_spec), indent=2, allow_nan=False, ensure_ascii=True)


__all__ = ["Change", "Comparison", "GateError", "PERF_METRICS", "Row", "SCHEMA", "bootstrap_ratio", "compare",
           "compare_runs", "environment_warnings", "gate", "job_changes", "parse_gates", "quality_change", "render", "render_json",
           "process_ratio", "seed_changes",
           "to_dict", "units_legend"]
