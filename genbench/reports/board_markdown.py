"""The leaderboard in Markdown, laid out for where people publish it (a GitHub README or page).

Per table, a **headline table** of at most 8 columns (rank, model, family, the task's headline metrics
with their ± and the floor row, ms per sample at batch 1 and samples/s at the best batch), about 150
characters a row. What every row shares (environment, command, genbench commit, run) is stated once under
it, never repeated per row. Every metric, with its 95% interval and floor, follows in a ``<details>``
block, in tables grouped by kind (sample quality, likelihood, memorisation) of at most
:data:`DETAIL_COLUMNS` metrics each, then the table's notes.

The headline metrics are the first :data:`HEADLINE_METRICS` of :data:`~genbench.reports.HEADLINE_ORDER`
a table has (then its other ranked metrics in table order); ``genbench leaderboard --columns fd,kid``
chooses them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import ConfigError
from ..types import JobResult, RunResult
from . import HEADLINE_ORDER, arrow, fmt_num, md_code, md_text, metric_group, number, safe_perf_summary, text_of
from .leaderboard import (Board, Cell, Column, Row, Table, build, cell_text, column_header, environment, floor_position, floor_text,
                          is_smoke, machine_text, model_mark, rank_text, row_machine, seed_sd, shared_text, speed_machines,
                          table_notes, SMOKE_CAVEAT)

#: how many metrics a headline table shows by default (rank, model, family, these, two speed figures: 8 columns)
HEADLINE_METRICS = 3
#: the most metric columns one detail table holds, so that its rows stay readable
DETAIL_COLUMNS = 4
#: the headings of the detail groups, in the order they are shown
GROUP_TITLES = {"quality": "Sample quality", "likelihood": "Likelihood", "memorisation": "Memorisation"}

INTRO = ("Only numbers with the same comparability key (task and data, feature extractor, n, likelihood variant "
         "and bound, profile, seeds) share a table or column; headers name what differs. Reference rows "
         "(baselines, replayed training data, real data at n) are not ranked, nor is a model marked "
         "⚠ copies training (or test) data by its memorisation metrics, or ⚠ closer to the test data than real "
         "data is (an FD, KID, precision or recall beyond its floor's interval). Every number is the value in "
         "run.json, never rescaled; each column's unit, scale and ± are given with its table. Speed is the cost "
         "of one generated sample through the exported graphs in ONNX Runtime (the same definition for every "
         "family: an autoregressive model's whole sampling loop included): p50 ms per sample at batch 1, and "
         "samples per second at the best batch with its share of the machine's physical peak (clock × FLOP per cycle × "
         "threads; the machine is named under each table, and figures of different machines are never compared); "
         "a figure marked (noisy) was measured while other processes kept "
         "more than half a core busy, (not valid) lacks the calls or duration it needs.")


def speed_cell(job: JobResult, key: str, fmt: str) -> str:
    """A per-sample speed figure of ``job`` (:func:`safe_perf_summary`'s ``key``) for a Markdown cell, marked
    ``(noisy)`` or ``(not valid)`` as its timing was; "–" when the job has no per-sample figure."""
    p = safe_perf_summary(job)
    if p["unit"] != "samples/s" or number(p[key]) is None:
        return "–"
    marks = (["not valid"] if p["valid"] is False else []) + (["noisy"] if p["noisy"] else [])
    share = number(p["ort_best_share_of_peak"]) if key == "ort_best_throughput" else None
    if share is not None:  # beside samples/s at the best batch: how much of the machine's physical peak it uses
        marks.insert(0, f"{share:.0%} peak" if share >= 0.01 else f"{share:.1%} peak")
    return fmt_num(p[key], fmt) + (f" ({', '.join(marks)})" if marks else "")


SPEED_COLUMNS: tuple[tuple[str, Callable[[Row], str]], ...] = (
    ("ORT ms/sample @b1 ↓", lambda r: speed_cell(r.job, "ort_p50_ms_b1", "{:.3f}")),
    ("ORT samples/s (best batch) ↑", lambda r: speed_cell(r.job, "ort_best_throughput", "{:,.0f}")),
)


def machine_letters(table: Table) -> dict[str | None, str]:
    """A letter per machine when the table's speed figures come from more than one ({} when from one): each
    speed cell is marked with its machine's, and the machines are named under the table."""
    machines = speed_machines(table)
    return {m: chr(ord("A") + i) if i < 26 else f"M{i + 1}" for i, m in enumerate(machines)} if len(machines) > 1 else {}


def speed_lines(table: Table) -> list[str]:
    """The machine behind the table's speed figures and its limits, stated once; when the figures come from
    several machines, each machine with its letter and its models, and that they are not comparable across."""
    machines = speed_machines(table)
    if not machines:
        return []
    if len(machines) == 1:
        (m, rows), = machines.items()
        return ["- " + md_text(f"Speed measured on {machine_text(m, rows)}")]
    letters = machine_letters(table)
    lines = ["- " + md_text(f"Speed figures come from {len(machines)} machines and are not comparable across them "
                            "(each figure is marked with its machine):")]
    for m, rows in machines.items():
        lines.append("  - " + md_text(f"[{letters[m]}] {machine_text(m, rows)}: {', '.join(r.model for r in rows)}"))
    return lines


# --------------------------------------------------------------------------- choosing columns


def metric_names(board: Board) -> list[str]:
    """Every metric some table of ``board`` shows, in first-seen order."""
    return list(dict.fromkeys(c.metric for t in board.tables for c in t.columns))


def check_columns(board: Board, columns: Sequence[str]) -> None:
    """Refuse (one line) a ``--columns`` name that no table of the board shows."""
    known = metric_names(board)
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ConfigError(f"--columns: no table shows {', '.join(map(repr, unknown))}; choose from "
                          f"{', '.join(known) or '(no metrics)'}.")


def headline_columns(table: Table, wanted: Sequence[str] = ()) -> list[Column]:
    """The table's headline columns: those of ``wanted`` (by metric name, in that order) where given, else the
    first :data:`HEADLINE_METRICS` of :data:`HEADLINE_ORDER`, then its other ranked quality metrics."""
    if wanted:
        return [c for m in wanted for c in table.columns if c.metric == m]
    rank = {m: i for i, m in enumerate(HEADLINE_ORDER)}
    eligible = [c for c in table.columns
                if c.higher_is_better is not None and metric_group(c.metric, c.unit) != "memorisation"]
    eligible.sort(key=lambda c: (rank.get(c.metric, len(rank)), table.columns.index(c)))
    return eligible[:HEADLINE_METRICS]  # a metric split over several keys (n, variant) shows each of its columns


def detail_groups(table: Table) -> list[tuple[str, list[Column]]]:
    """The table's columns grouped by kind, each group cut into tables of at most :data:`DETAIL_COLUMNS`."""
    groups: dict[str, list[Column]] = {}
    for c in table.columns:
        groups.setdefault(metric_group(c.metric, c.unit), []).append(c)
    out = []
    for kind in sorted(groups, key=lambda k: list(GROUP_TITLES).index(k) if k in GROUP_TITLES else len(GROUP_TITLES)):
        cols = groups[kind]
        chunks = [cols[i:i + DETAIL_COLUMNS] for i in range(0, len(cols), DETAIL_COLUMNS)]
        for i, chunk in enumerate(chunks):
            title = GROUP_TITLES.get(kind, kind.capitalize())
            out.append((title + (f" ({i + 1} of {len(chunks)})" if len(chunks) > 1 else ""), chunk))
    return out


# --------------------------------------------------------------------------- cells


def headline_cell(cell: Cell | None) -> str:
    """``48.53 ± 5.2``: the value and its one ± (the seeds' sd; else ``(se)``; else ``(spread)``), and ⚠ where it
    lies beyond the floor's interval (better than real data at n). Intervals and floors are in the details."""
    if cell is None:
        return "–"
    mv = cell.value
    v = number(mv.value)
    if v is None:
        return "error" if mv.error else "–"
    text = fmt_num(v, "{:.4g}")
    sd, se, std = seed_sd(mv), number(mv.stderr), number(mv.std)
    if sd is not None:
        text += f" ± {fmt_num(sd, '{:.2g}')}"
    elif se is not None:
        text += f" ± {fmt_num(se, '{:.2g}')} (se)"
    elif std is not None:
        text += f" ± {fmt_num(std, '{:.2g}')} (spread)"
    if floor_position(mv) == "beyond":
        text += " ⚠"
    return text


def _name(r: Row, reference: str = "", short: bool = False) -> str:
    mark = model_mark(r)
    if short and mark:
        mark = "⚠" if r.copies or r.flags else mark
    return md_code(r.model) + (f" ({md_text(reference)})" if reference else "") + (f" **{md_text(mark)}**" if mark else "")


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def headline_table(table: Table, columns: Sequence[Column]) -> list[str]:
    """The headline table: ranked rows, then reference rows and the floor row, each at most ~150 characters."""
    head = ["#", "model", "family"] + [md_text(f"{c.label} {arrow_of(c)}") for c in columns] + [h for h, _ in SPEED_COLUMNS]
    lines = [_row(head), "|" + "---|" * len(head)]
    letters = machine_letters(table)

    def speed(r: Row) -> list[str]:
        cells = [fn(r) for _, fn in SPEED_COLUMNS]
        mark = letters.get(row_machine(r)) if letters else None
        return [c if c == "–" or mark is None else f"{c} [{mark}]" for c in cells]

    for r in table.rows:
        if r.reference is None:
            lines.append(_row([rank_text(r.rank), _name(r, short=True), md_text(r.job.family)]
                              + [md_text(headline_cell(r.cells.get(c.label))) for c in columns]
                              + speed(r)))
    refs = [r for r in table.rows if r.reference is not None]
    floors = [floor_text(table, c) for c in columns]
    if refs or any(f != "–" for f in floors):
        lines.append(_row(["", "**references, not ranked**"] + [""] * (len(head) - 2)))
    for r in refs:
        lines.append(_row(["ref", _name(r, r.reference, short=True), md_text(r.job.family)]
                          + [md_text(headline_cell(r.cells.get(c.label))) for c in columns]
                          + speed(r)))
    if any(f != "–" for f in floors):
        lines.append(_row(["ref", "real data at n (floor)", "–"] + [md_text(f) for f in floors] + [""] * len(SPEED_COLUMNS)))
    return lines


def arrow_of(column: Column) -> str:
    return arrow(column.higher_is_better, column.target)


def markdown_table(table: Table, extra: Sequence[tuple[str, Any]] = (), provenance: bool = True,
                   notes: bool = True) -> list[str]:
    """One table in Markdown: ranked rows, then the reference rows and the floor row set apart, then the notes
    (unless ``notes`` is false). ``extra``: (header, function of a Row returning Markdown) columns appended to
    each row."""
    head = ["#", "model", "family"] + [md_text(column_header(c)) for c in table.columns] + [h for h, _ in extra]
    if provenance:
        head += ["genbench @ commit", "run"]
    lines = [f"**{md_text(SMOKE_CAVEAT)}**", ""] if is_smoke(table) else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row_cells(rank: str, model: str, family: str, values: list[str], r: Row | None) -> str:
        cells = [rank, model, family] + values + [fn(r) if r is not None else "" for _, fn in extra]
        if provenance:
            cells += [md_text(r.provenance) if r else "", ", ".join(md_code(s.run.run_id) for s in r.sources)
                      if r else ""]
        return "| " + " | ".join(cells) + " |"

    def name(r: Row, reference: str = "") -> str:
        mark = model_mark(r)
        return md_code(r.model) + (f" ({md_text(reference)})" if reference else "") + (
            f" **{md_text(mark)}**" if mark else "")

    for r in table.rows:
        if r.reference is None:
            lines.append(row_cells(rank_text(r.rank), name(r), md_text(r.job.family),
                                   [md_text(cell_text(r.cells.get(c.label))) for c in table.columns], r))
    refs = [r for r in table.rows if r.reference is not None]
    floors = [floor_text(table, c) for c in table.columns]
    if refs or any(f != "–" for f in floors):
        lines.append("| " + " | ".join(["", "**references, not ranked**"] + [""] * (len(head) - 2)) + " |")
        for r in refs:
            lines.append(row_cells("ref", name(r, r.reference), md_text(r.job.family),
                                   [md_text(cell_text(r.cells.get(c.label))) for c in table.columns], r))
        if any(f != "–" for f in floors):
            lines.append(row_cells("ref", "real data at n (floor)", "–", [md_text(f) for f in floors], None))
    lines.append("")
    return lines + ([f"- {md_text(note)}" for note in table_notes(table)] + [""] if notes else [])


def detail_table(table: Table, columns: Sequence[Column]) -> list[str]:
    """One detail table: every row with each column's value, ± labelled, 95% interval and floor."""
    return markdown_table(replace(table, columns=list(columns)), provenance=False, notes=False)


# --------------------------------------------------------------------------- what rows share


def _shared(rows: Sequence[Row], label: str, of: Callable[[Row], str], code: bool = False) -> str:
    """``label: value`` once when every row has the same, else each value with the models that have it."""
    values: dict[str, list[str]] = {}
    for r in rows:
        values.setdefault(of(r), []).append(r.model)
    show = (lambda v: md_code(v, False)) if code else md_text
    if len(values) == 1:
        return f"{label}: {show(next(iter(values)))}"
    return f"{label}: " + "; ".join(f"{show(v)} ({md_text(', '.join(ms))})" for v, ms in values.items())


def provenance_lines(table: Table) -> list[str]:
    rows = table.rows
    if not rows:
        return []
    return [
        "- " + _shared(rows, "Environment", lambda r: environment(r.source.run)),
        *speed_lines(table),
        "- " + _shared(rows, "Reproduce", lambda r: text_of(r.source.run.command), code=True),
        "- " + _shared(rows, "genbench @ commit", lambda r: r.provenance),
        "- " + _shared(rows, "Run", lambda r: ", ".join(text_of(s.run.run_id) for s in r.sources), code=True),
    ]


def _legend(table: Table, columns: Sequence[Column]) -> str:
    ns = sorted({text_of(c.n) for c in columns})
    spreads = [c.spread for c in columns if c.spread]
    text = f"n = {', '.join(ns)} scored per model"
    if any(seed_sd(x.value) is not None for r in table.rows for x in r.cells.values()):
        text += "; ± is the standard deviation over training seeds, else marked (se) or (spread)"
    elif spreads:
        text += "; ± is marked (se) or (spread)"
    if table.rank_by is not None:
        text += (f"; # ranks by {table.rank_by.label}, a range (2–3) where the 95% intervals overlap; ⚠: flagged, "
                 "see the notes")
    return md_text(text + ".")


# --------------------------------------------------------------------------- the page


def render_markdown(runs: Sequence[RunResult], tasks: Iterable[str] = (),
                    directories: Sequence[Path | None] | None = None, board: Board | None = None,
                    columns: Sequence[str] = ()) -> str:
    """The merged leaderboard of ``runs`` in Markdown (see the module's docstring); ``columns``: the headline
    metrics to show, by name (refused in one line when no table shows one)."""
    board = board or build(runs, tasks, directories)
    if columns:
        check_columns(board, columns)
    lines = ["# genbench leaderboard", "",
             f"Merged from {len(board.sources)} run(s): "
             + "; ".join(f"{md_code(s.run.run_id, False)} (genbench {md_text(s.provenance)})" for s in board.sources),
             "", INTRO, ""]
    for w in board.warnings:
        lines += [f"> {md_text(w)}", ""]
    task = None
    for table in board.tables:
        if table.task != task:
            task = table.task
            lines += [f"## {md_text(task)}", ""]
        if table.title:
            lines += [f"### {md_text(table.title)}", ""]
        if is_smoke(table):
            lines += [f"**{md_text(SMOKE_CAVEAT)}**", ""]
        lines += [f"All numbers in this table: {md_text(shared_text(table))}.", ""]
        head = headline_columns(table, columns)
        lines += headline_table(table, head) + ["", _legend(table, head), ""]
        lines += provenance_lines(table)
        notes = table_notes(table)
        flags = [n for n in notes if n.startswith("⚠") or "not ranked (–)" in n]
        lines += [f"- {md_text(n)}" for n in flags] + [""]
        lines += ["<details><summary>Every metric with its 95% interval and floor, and the notes</summary>", ""]
        for title, cols in detail_groups(table):
            lines += [f"**{md_text(title)}**", ""] + detail_table(table, cols) + [""]
        lines += [f"- {md_text(note)}" for note in notes] + ["", "</details>", ""]
    return "\n".join(lines)


__all__ = ["DETAIL_COLUMNS", "HEADLINE_METRICS", "check_columns", "detail_groups", "headline_cell",
           "headline_columns", "machine_letters", "markdown_table", "metric_names", "render_markdown", "speed_cell",
           "speed_lines"]
