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
    needs is returned as None.
    """
    recs, unit, note = _headline_records(job, graph, scenario)

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
    }
    if ort1 and pt1 and ort1.latency_ms.get("p50"):
        out["latency_speedup_b1"] = pt1.latency_ms["p50"] / ort1.latency_ms["p50"]
    if ortbest and ptbest and ptbest.throughput_per_s:
        out["throughput_ratio_best"] = ortbest.throughput_per_s / ptbest.throughput_per_s
    return out


# --------------------------------------------------------------------------- text and files from results files
# Everything below treats a results file as untrusted data: strings are neutralised for the medium they land
# in, numbers of the wrong type read as missing, and files it names are read only from inside its run directory.

import math as _math
import re as _re
import unicodedata as _unicodedata
from pathlib import Path as _Path

#: the largest file a report reads because a results file names it (samples.txt, latency_raw.json)
MAX_NAMED_FILE_BYTES = 16 * 2**20
#: the longest single-line text field shown in a report (longer ones are cut, with an ellipsis)
MAX_FIELD_CHARS = 500
_INVISIBLE = set("\u061c\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e"
                 "\u2060\u2066\u2067\u2068\u2069\ufeff")
_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_RE = _re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def text_of(value: Any, limit: int | None = MAX_FIELD_CHARS) -> str:
    """``str(value)`` that never raises (deeply nested values, hostile ``__str__``), cut to ``limit`` chars."""
    try:
        s = value if isinstance(value, str) else str(value)
    except (RecursionError, ValueError, TypeError):
        s = "…"
    if limit is not None and len(s) > limit:
        s = s[:limit] + "…"
    return s


def neutralise_controls(text: Any, keep: str = "", limit: int | None = MAX_FIELD_CHARS) -> str:
    """``text`` with control characters (C0, DEL, C1), bidirectional overrides and zero-width characters shown
    as visible escapes (``\\x1b``); the characters in ``keep`` (e.g. newline and tab in a code block) stay.
    Tabs, newlines and carriage returns not kept become spaces, so one field stays one line."""
    out = []
    for ch in text_of(text, limit):
        if ch in keep:
            out.append(ch)
        elif ch in "\t\n\r":
            out.append(" ")
        elif _unicodedata.category(ch) == "Cc" or ch in _INVISIBLE:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def term_safe(text: Any) -> str:
    """One line for a terminal: escape sequences and other control characters cannot move the cursor, erase
    lines or change colours; they are shown as visible escapes instead."""
    return neutralise_controls(text)


def md_text(text: Any) -> str:
    """Plain Markdown text (a table cell, a bullet, a heading): one line, every character that Markdown or
    HTML would read as syntax escaped, control characters neutralised."""
    s = neutralise_controls(text)
    s = _re.sub(r"([\\`*_\[\]<>|~&$!#])", r"\\\1", s)
    s = _re.sub(r"^(\s*)([-+=])(?=\s|=|$)", r"\1\\\2", s)  # where a line starts: no list item, no underline
    return _re.sub(r"^(\s*\d+)([.)])(?=\s|$)", r"\1\\\2", s)


def md_code(text: Any, in_table: bool = True) -> str:
    """``text`` as one Markdown code span: a backtick fence longer than any run inside, control characters
    neutralised; inside a table, ``|`` is written ``\\|`` (GitHub's table rule, shown as ``|``), and backslashes
    just before it doubled, so that every table parser keeps the cell whole."""
    s = neutralise_controls(text)
    if in_table:  # backslashes before a pipe doubled, so that no table parser reads it as a cell border
        s = _re.sub(r"(\\*)\|", lambda m: m.group(1) * 2 + "\\|", s)
    runs = [len(r) for r in _re.findall(r"`+", s)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if (s.startswith("`") or s.endswith("`") or not s.strip()) else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def md_link_target(rel: str) -> str:
    """A relative path as a Markdown link target: percent-encoded, so it cannot close the link or add a title."""
    from urllib.parse import quote

    return quote(rel, safe="/._-~")


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula: text starting with ``= + - @``, a tab or a carriage
    return gets a leading ``'`` unless it is a plain number; numbers stay numbers (non-finite ones empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value if _math.isfinite(value) else ""
    s = neutralise_controls(value, keep="\n", limit=None)
    if s.startswith(_FORMULA_LEAD) and not _NUMBER_RE.match(s):
        return "'" + s
    return s


def number(value: Any) -> float | int | None:
    """``value`` if it is a finite number (an int stays an int), else None: strings, booleans, NaN, infinity
    and ints too large for a float all read as missing."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    if not _math.isfinite(f):
        return None
    return value if isinstance(value, int) else f


def fmt_num(value: Any, fmt: str = "{:.4g}", missing: str = "–") -> str:
    """A number formatted with ``fmt``; ``missing`` for anything that is not a finite number."""
    f = number(value)
    if f is None:
        return missing
    try:
        return fmt.format(f)
    except (ValueError, OverflowError):
        return missing


def mapping(value: Any) -> dict:
    """``value`` if it is a dict, else an empty one (a results field of the wrong type reads as absent)."""
    return value if isinstance(value, dict) else {}


def safe_perf_summary(job: JobResult, graph: str | None = None, scenario: str | None = None) -> dict[str, Any]:
    """:func:`perf_summary`, or every figure None when the job's timing records are malformed."""
    try:
        out = perf_summary(job, graph, scenario)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError, OverflowError):
        out = {}
    keys = ("ort_p50_ms_b1", "ort_p99_ms_b1", "torch_p50_ms_b1", "ort_best_throughput", "ort_best_batch",
            "torch_best_throughput", "torch_best_batch", "unit", "valid", "noisy", "scenario", "graph", "note")
    return {k: None for k in keys} | {k: v for k, v in out.items()}


def contained_file(run_dir: _Path | None, rel: Any, max_bytes: int = MAX_NAMED_FILE_BYTES) -> tuple[_Path | None, str]:
    """The file a results file names, only if it resolves (symlinks followed) to a regular file inside
    ``run_dir`` no larger than ``max_bytes``; else ``(None, why it was skipped)``."""
    what = neutralise_controls(rel, limit=120)
    if not isinstance(rel, str) or not rel:
        return None, f"{what!s} is not a file name"
    if run_dir is None:
        return None, f"{what} not read: the run directory is unknown"
    try:
        root = _Path(run_dir).resolve(strict=True)
        path = (root / rel).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None, f"{what} not read: it does not exist"
    if root not in path.parents:
        return None, f"{what} not read: it lies outside the run directory"
    try:
        st = path.stat()
    except OSError:
        return None, f"{what} not read: it cannot be read"
    import stat as _stat

    if not _stat.S_ISREG(st.st_mode):
        return None, f"{what} not read: it is not a regular file"
    if st.st_size > max_bytes:
        return None, f"{what} not read: {st.st_size:,} bytes, over the {max_bytes:,}-byte limit"
    return path, ""


def read_contained(run_dir: _Path | None, rel: Any, max_bytes: int = MAX_NAMED_FILE_BYTES) -> tuple[bytes | None, str]:
    """The bytes of :func:`contained_file` (at most ``max_bytes``), or ``(None, why not)``."""
    path, why = contained_file(run_dir, rel, max_bytes)
    if path is None:
        return None, why
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError:
        return None, f"{neutralise_controls(rel, limit=120)} not read: it cannot be read"
    if len(data) > max_bytes:
        return None, f"{neutralise_controls(rel, limit=120)} not read: over the {max_bytes:,}-byte limit"
    return data, ""


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
