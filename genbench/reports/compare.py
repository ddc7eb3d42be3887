"""``genbench compare BASE NEW``: every metric of two runs side by side, regressions by direction, and a
gate (``--fail-on-regression 'fd:5%,latency_p50:10%'``) that a team can put on a pull request."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..types import JobResult, RunResult
from . import perf_summary

#: speed figures compared besides the quality metrics: name -> (perf_summary key, higher_is_better, unit)
PERF_METRICS = {
    "latency_p50": ("ort_p50_ms_b1", False, "ms"),
    "latency_p99": ("ort_p99_ms_b1", False, "ms"),
    "throughput": ("ort_best_throughput", True, "/s"),
}
ENV_KEYS = ("cpu", "cpu_count", "gpus", "torch", "onnxruntime", "python", "hostname")


@dataclass(frozen=True)
class Row:
    model: str
    task: str
    metric: str
    unit: str
    higher_is_better: bool
    base: float | None
    new: float | None

    @property
    def delta(self) -> float | None:
        return None if self.base is None or self.new is None else self.new - self.base

    @property
    def delta_pct(self) -> float | None:
        d = self.delta
        return None if d is None or self.base in (0, None) else 100.0 * d / abs(self.base)

    @property
    def regressed(self) -> bool:
        d = self.delta
        return d is not None and (d < 0 if self.higher_is_better else d > 0)


def parse_gates(spec: str | None) -> dict[str, tuple[float, bool]]:
    """``'fd:5%,latency_p50:0.2'`` → ``{"fd": (5.0, True), "latency_p50": (0.2, False)}`` (value, is_percent)."""
    gates: dict[str, tuple[float, bool]] = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        m = re.fullmatch(r"([A-Za-z0-9_\-]+)\s*:\s*([0-9]*\.?[0-9]+)\s*(%?)", part)
        if not m:
            raise ConfigError(f"Invalid gate {part!r} in --fail-on-regression: write METRIC:THRESHOLD, e.g. 'fd:5%' "
                              "(relative) or 'fd:0.5' (absolute).")
        gates[m.group(1)] = (float(m.group(2)), m.group(3) == "%")
    return gates


def _values(job: JobResult) -> dict[str, tuple[float | None, bool, str]]:
    out = {k: (v.value, v.higher_is_better, v.unit) for k, v in job.quality.items()}
    p = perf_summary(job)
    for name, (key, higher, unit) in PERF_METRICS.items():
        if p.get(key) is not None:
            out[name] = (p[key], higher, unit)
    return out


def compare_runs(base: RunResult, new: RunResult) -> list[Row]:
    old = {(j.model, j.task): j for j in base.jobs if j.status == "ok"}
    rows = []
    for j in new.jobs:
        if j.status != "ok" or (j.model, j.task) not in old:
            continue
        a, b = _values(old[(j.model, j.task)]), _values(j)
        for metric in sorted(set(a) | set(b)):
            higher, unit = (b.get(metric) or a.get(metric))[1:]
            rows.append(Row(j.model, j.task, metric, unit, higher, (a.get(metric) or (None,))[0],
                            (b.get(metric) or (None,))[0]))
    return rows


def environment_warnings(base: RunResult, new: RunResult) -> list[str]:
    notes = []
    if base.genbench_version != new.genbench_version:
        notes.append(f"genbench {base.genbench_version} vs {new.genbench_version}")
    for key in ENV_KEYS:
        if base.environment.get(key) != new.environment.get(key):
            notes.append(f"{key}: {base.environment.get(key)} vs {new.environment.get(key)}")
    if base.config.get("profile") != new.config.get("profile"):
        notes.append(f"profile: {base.config.get('profile')} vs {new.config.get('profile')}")
    return notes


def gate_failures(rows: list[Row], gates: dict[str, tuple[float, bool]]) -> list[str]:
    failures = []
    for r in rows:
        if r.metric not in gates or not r.regressed:
            continue
        limit, pct = gates[r.metric]
        worse = abs(r.delta_pct) if pct and r.delta_pct is not None else abs(r.delta)
        if pct and r.delta_pct is None:
            worse = math.inf
        if worse > limit:
            failures.append(f"{r.metric} of {r.model} on {r.task} regressed: {r.base:.4g} -> {r.new:.4g} "
                            f"({'%+.1f%%' % r.delta_pct if r.delta_pct is not None else '%+.4g' % r.delta}; "
                            f"limit {limit:g}{'%' if pct else ''})")
    return failures


def render(rows: list[Row], warnings: list[str], failures: list[str]) -> str:
    def fmt(v: Any, f: str = "{:.4g}") -> str:
        return "–" if v is None else f.format(v)

    lines = []
    for w in warnings:
        lines.append(f"warning: the runs differ in {w}; deltas may reflect the machine, not the model")
    lines += ["", "| model | task | metric | base | new | Δ | Δ% | |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = "regressed" if r.regressed and r.delta else ("improved" if r.delta else "")
        lines.append(f"| {r.model} | {r.task} | {r.metric} {'↑' if r.higher_is_better else '↓'} | {fmt(r.base)} | "
                     f"{fmt(r.new)} | {fmt(r.delta, '{:+.4g}')} | {fmt(r.delta_pct, '{:+.1f}%')} | {mark} |")
    lines.append("")
    lines += [f"FAIL: {f}" for f in failures] or ["no gated regression"]
    return "\n".join(lines)
