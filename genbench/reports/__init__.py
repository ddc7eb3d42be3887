"""Reports built only from results files, so every published number traces back to a run."""

from __future__ import annotations

from typing import Any, Iterable

from ..types import JobResult, PerfRecord


def md_escape(text: object) -> str:
    """Escape what a plugin supplies so it cannot break (or inject into) a Markdown table (:func:`md_text`)."""
    return md_text(text)


def arrow(higher_is_better: bool | None, target: float | None = None) -> str:
    """↑, ↓, or →0 for a two-sided metric (``higher_is_better`` None) whose best value is ``target``."""
    if higher_is_better is None:
        return f"→{fmt_num(target, '{:g}')}" if number(target) is not None else "↕"
    return "↑" if higher_is_better else "↓"


def better_text(higher_is_better: bool | None, target: float | None = None) -> str:
    """"higher is better", "lower is better", or "closer to 0 is better" for a two-sided metric."""
    if higher_is_better is None:
        return (f"closer to {fmt_num(target, '{:g}')} is better" if number(target) is not None
                else "no better direction")
    return "higher is better" if higher_is_better else "lower is better"


def direction(mv: Any) -> tuple[bool | None, float | None]:
    """(higher_is_better, target) of a MetricValue read from a file: a bool, or None with the target of a
    two-sided metric (None, None: no better direction known); anything else reads as None."""
    hib = getattr(mv, "higher_is_better", None)
    if isinstance(hib, bool):
        return hib, None
    return None, number(getattr(mv, "target", None))


def badness(value: float, higher_is_better: bool | None, target: float | None = None) -> float:
    """How bad ``value`` is on one scale where lower is better: −value, value, or the distance to the
    target of a two-sided metric. The difference of two badnesses is how much worse one is (compare)."""
    if higher_is_better is None:
        return abs(value - target) if target is not None else float("nan")
    return -value if higher_is_better else value


#: the order metrics are shown in; the first one a task's jobs all report ranks its table
METRIC_ORDER = ("fd", "fid", "fd-inf", "bpb", "high-quality", "kid", "precision", "recall", "density", "coverage", "modes", "class-kl",
                "classifier-score", "bpd", "nll", "ppl", "modes-covered", "reverse-kl", "knn-kl")


#: the order a table's headline metrics are chosen in (genbench leaderboard's Markdown), before its others
HEADLINE_ORDER = ("fid", "fd", "bpb", "high-quality", "precision", "recall", "modes-covered", "reverse-kl", "ppl", "bpd",
                  "nll", "kid", "coverage", "density")
#: metrics that measure a likelihood (shown in their own group of the leaderboard's details)
LIKELIHOOD_METRICS = frozenset({"bpd", "nll", "bpb", "ppl", "elbo", "vlb"})


def metric_group(metric: str, unit: str = "") -> str:
    """The kind of a metric for grouping: ``likelihood`` (bits/dim, nats per example, perplexity), ``memorisation``
    (the copy-* metrics), else ``quality`` (sample quality)."""
    if metric.startswith("copy") or metric.startswith("memori"):
        return "memorisation"
    if metric in LIKELIHOOD_METRICS or any(u in (unit or "") for u in ("bits/dim", "bits/byte", "nats/example")):
        return "likelihood"
    return "quality"


def order_metrics(jobs: Iterable[JobResult]) -> list[str]:
    """A task's metrics: the most widely reported first, then in METRIC_ORDER, then by name."""
    counts: dict[str, int] = {}
    for j in jobs:
        for k in j.quality:
            counts[k] = counts.get(k, 0) + 1
    rank = {m: i for i, m in enumerate(METRIC_ORDER)}
    return sorted(counts, key=lambda k: (-counts[k], rank.get(k, len(rank)), k))


def perf_summary(job: JobResult, graph: str | None = None, scenario: str | None = None) -> dict[str, Any]:
    """Headline speed figures of one job: ONNX Runtime and torch eager latency at batch 1, best throughput
    and their ratios.

    By default the per-sample cost, the same definition for every family (records of scenario
    ``generate``: one image, 2-D point or text sample made through the exported graphs, an autoregressive
    model's whole sampling loop included), so that the figures of a GAN and of an autoregressive model mean
    the same thing. A run without generate records falls back to its ``sample`` graph's forward records
    (the same definition); a job with neither gets no figure rather than a forward pass passed off as a
    sample. ``graph`` and ``scenario`` pick other records (forward passes are details).

    The best batch is chosen among records whose throughput is valid and that were not noisy; when none is,
    among all, and ``valid`` is False. ``valid`` covers every figure returned; a p99 without the samples it
    needs is returned as None. A record above its machine's physical peak (``measurement_error``) is never a
    candidate: it is a measurement error, listed in ``measurement_errors``. ``ort_best_share_of_peak`` is the best
    batch's share of the physical peak; ``machines`` the identities of the machines behind the figures.
    """
    recs, unit, note = _headline_records(job, graph, scenario)
    wrong = [p for p in recs if getattr(p, "measurement_error", None)]
    recs = [p for p in recs if not getattr(p, "measurement_error", None)]  # above the physical peak: never published

    def valid(p: PerfRecord, figure: str) -> bool:
        return bool(p.figure_validity.get(figure)) if p.figure_validity else p.valid

    def pick(runtime: str) -> tuple[PerfRecord | None, PerfRecord | None, bool]:
        mine = [p for p in recs if p.runtime == runtime]
        b1 = next((p for p in mine if p.batch_size == 1), None)
        clean = [p for p in mine if valid(p, "throughput") and not p.noisy]
        best = max(clean or mine, key=lambda p: p.throughput_per_s, default=None)
        return b1, best, bool(clean)

    ort1, ortbest, ort_clean = pick("onnxruntime")
    pt1, ptbest, pt_clean = pick("torch-eager")
    chosen = [p for p in (ort1, ortbest, pt1, ptbest) if p is not None]
    out: dict[str, Any] = {
        "ort_p50_ms_b1": ort1.latency_ms.get("p50") if ort1 else None,
        "ort_p99_ms_b1": ort1.latency_ms.get("p99") if ort1 and valid(ort1, "p99") else None,
        "torch_p50_ms_b1": pt1.latency_ms.get("p50") if pt1 else None,
        "ort_best_throughput": ortbest.throughput_per_s if ortbest else None,
        "ort_best_batch": ortbest.batch_size if ortbest else None,
        "torch_best_throughput": ptbest.throughput_per_s if ptbest else None,
        "torch_best_batch": ptbest.batch_size if ptbest else None,
        "unit": unit,
        "valid": (all(valid(p, "p50") for p in (ort1, pt1) if p) and all(valid(p, "throughput") for p in
                  (ortbest, ptbest) if p) and (ort_clean or not ortbest) and (pt_clean or not ptbest)) if chosen else None,
        "noisy": any(p.noisy for p in chosen) if chosen else None,
        "scenario": recs[0].scenario if recs else scenario,
        "graph": recs[0].graph if recs else graph,
        "note": note,
        "ort_best_share_of_peak": number(ortbest.share_of_peak) if ortbest else None,
        "ort_best_gflops": number(ortbest.gflops_per_s) if ortbest else None,
        "machines": sorted({p.machine for p in chosen if isinstance(p.machine, str)}),
        "measurement_errors": [p.measurement_error for p in wrong],
    }
    if ort1 and pt1 and ort1.latency_ms.get("p50"):
        out["latency_speedup_b1"] = pt1.latency_ms["p50"] / ort1.latency_ms["p50"]
    if ortbest and ptbest and ptbest.throughput_per_s:
        out["throughput_ratio_best"] = ortbest.throughput_per_s / ptbest.throughput_per_s
    return out


# Text and files from results files (untrusted): genbench.text, re-exported for the report modules.
from ..text import (MAX_FIELD_CHARS, MAX_NAMED_FILE_BYTES, contained_file, csv_cell, fmt_num, mapping,  # noqa: E402,F401
                    md_code, md_link_target, md_text, neutralise_controls, number, read_contained, term_safe, text_of)


def safe_perf_summary(job: JobResult, graph: str | None = None, scenario: str | None = None) -> dict[str, Any]:
    """:func:`perf_summary`, or every figure None when the job's timing records are malformed."""
    try:
        out = perf_summary(job, graph, scenario)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError, OverflowError):
        out = {}
    keys = ("ort_p50_ms_b1", "ort_p99_ms_b1", "torch_p50_ms_b1", "ort_best_throughput", "ort_best_batch",
            "torch_best_throughput", "torch_best_batch", "unit", "valid", "noisy", "scenario", "graph", "note",
            "ort_best_share_of_peak", "ort_best_gflops")
    return {k: None for k in keys} | {"machines": [], "measurement_errors": []} | {k: v for k, v in out.items()}


def _headline_records(job: JobResult, graph: str | None, scenario: str | None
                      ) -> tuple[list[PerfRecord], str | None, str | None]:
    """(records, their unit, a note) for :func:`perf_summary`."""
    perf = job.performance
    if graph is None and scenario is None:
        generate = [p for p in perf if p.scenario == "generate"]
        if generate:
            return generate, "samples/s", generate[0].note
        sample = [p for p in perf if p.graph == "sample" and p.scenario == "forward"]
        if sample:
            return sample, "samples/s", "one call of the sample graph on B pre-drawn inputs: B samples"
        return [], None, "no per-sample timing: the records hold no generate scenario" if perf else None
    scenario = scenario or "forward"
    if graph is None:
        graphs = [p.graph for p in perf if p.scenario == scenario]
        graph = "sample" if "sample" in graphs else (graphs[0] if graphs else "sample")
    recs = [p for p in perf if p.graph == graph and p.scenario == scenario]
    return recs, recs[0].unit if recs else None, recs[0].note if recs else None
