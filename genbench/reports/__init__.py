"""Reports built only from results files, so every published number traces back to a run."""

from __future__ import annotations

from typing import Any, Iterable

from ..types import JobResult, PerfRecord


def md_escape(text: object) -> str:
    """Escape what a plugin supplies so it cannot break (or inject into) a Markdown table."""
    s = str(text)
    for ch in "\\|`*_[]<>":
        s = s.replace(ch, "\\" + ch)
    return s.replace("\n", " ")


def arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


#: the order metrics are shown in; the first one a task's jobs all report ranks its table
METRIC_ORDER = ("fd", "bpb", "high-quality", "kid", "precision", "recall", "density", "coverage", "modes", "class-kl",
                "classifier-score", "bpd", "nll", "ppl", "modes-covered", "reverse-kl", "knn-kl")


def order_metrics(jobs: Iterable[JobResult]) -> list[str]:
    """A task's metrics: the most widely reported first, then in METRIC_ORDER, then by name."""
    counts: dict[str, int] = {}
    for j in jobs:
        for k in j.quality:
            counts[k] = counts.get(k, 0) + 1
    rank = {m: i for i, m in enumerate(METRIC_ORDER)}
    return sorted(counts, key=lambda k: (-counts[k], rank.get(k, len(rank)), k))


def perf_summary(job: JobResult, graph: str | None = None, scenario: str = "forward") -> dict[str, Any]:
    """Headline speed figures of one job's graph (default: its ``sample`` graph, else the first timed one):
    ORT and torch latency at batch 1, best throughput, their ratios."""
    if graph is None:
        graphs = [p.graph for p in job.performance]
        graph = "sample" if "sample" in graphs else (graphs[0] if graphs else "sample")
    recs = [p for p in job.performance if p.graph == graph and p.scenario == scenario]

    def pick(runtime: str) -> tuple[PerfRecord | None, PerfRecord | None]:
        mine = [p for p in recs if p.runtime == runtime]
        b1 = next((p for p in mine if p.batch_size == 1), None)
        best = max(mine, key=lambda p: p.throughput_per_s, default=None)
        return b1, best

    ort1, ortbest = pick("onnxruntime")
    pt1, ptbest = pick("torch-eager")
    out: dict[str, Any] = {
        "ort_p50_ms_b1": ort1.latency_ms.get("p50") if ort1 else None,
        "ort_p99_ms_b1": ort1.latency_ms.get("p99") if ort1 else None,
        "torch_p50_ms_b1": pt1.latency_ms.get("p50") if pt1 else None,
        "ort_best_throughput": ortbest.throughput_per_s if ortbest else None,
        "ort_best_batch": ortbest.batch_size if ortbest else None,
        "torch_best_throughput": ptbest.throughput_per_s if ptbest else None,
        "torch_best_batch": ptbest.batch_size if ptbest else None,
        "unit": recs[0].unit if recs else None,
        "valid": all(p.valid for p in recs) if recs else None,
        "noisy": any(p.noisy for p in recs) if recs else None,
    }
    if ort1 and pt1 and ort1.latency_ms.get("p50"):
        out["latency_speedup_b1"] = pt1.latency_ms["p50"] / ort1.latency_ms["p50"]
    if ortbest and ptbest and ptbest.throughput_per_s:
        out["throughput_ratio_best"] = ortbest.throughput_per_s / ptbest.throughput_per_s
    return out
