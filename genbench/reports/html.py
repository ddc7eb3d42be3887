"""A static, self-contained HTML leaderboard: one file, no network needed to view it.

Drawn from the same :class:`~genbench.reports.leaderboard.Board` as every other format, so the same
comparability rules hold: one table per (task, job-wide key), one column per (metric, key), reference rows
(baselines, replayed training data, real data at each column's n) apart and never ranked.

Made to be read at laptop width: each table shows its first :data:`MAIN_COLUMNS` metric columns and the two
per-sample speed columns; the other metric columns are one click away ("Show … more columns"), and each
model's run, commit, machine, timing details and command are in a details row under it. Numbers are
right-aligned in tabular figures; the header sticks while a long table scrolls. Plots are inline SVG drawn by
matplotlib: quality against speed per generated sample with the Pareto front, cost per generated sample
against batch size, and one training-loss plot per family, each model in one hue (ONNX Runtime dark and
solid, torch eager light and dashed) that its row's swatch repeats. A ``genbench limits`` study given with
``limits=`` becomes a section of the page (:mod:`genbench.reports.limits`).

Everything from a results file is untrusted: text is HTML-escaped, a file it names is read only from inside
its run directory (:func:`genbench.reports.read_contained`), and a plot that cannot be drawn from what the
file holds is left out rather than fatal.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..types import RunResult
from . import mapping, neutralise_controls, number, read_contained, safe_perf_summary, text_of
from .leaderboard import (Board, Cell, Column, Row, Table, build, cell_text, column_note, environment, floor_text,
                          machine_text, rank_text, row_machine, seed_sd, speed_machines, shared_text, shown_interval,
                          table_notes, SMOKE_CAVEAT, is_smoke)

#: metric columns shown by default at most (the table's first ones that fit, the ranking column always among
#: them); the rest are behind "Show … more columns", so that the main columns fit a 1366-pixel screen
MAIN_COLUMNS = 6
#: the width (in characters of 14-pixel text, about 7.5 pixels each) the main metric columns may take together
MAIN_WIDTH_CHARS = 92
#: at most this many points of one loss curve are drawn (every k-th logged value, said in the caption)
MAX_CURVE_POINTS = 400
#: what "±" is, per kind of spread, in the words of the page's legend
SPREAD_KINDS = {"seed sd": "standard deviation over training seeds", "se": "standard error over the n examples",
                "spread": "standard deviation over repeats of the estimate (e.g. KID's subsets): a spread"}
REFERENCE_COLOURS = ("#7f7f7f", "#c7c7c7")

CSS = """
:root{--fg:#1f2328;--muted:#59636e;--faint:#818b98;--rule:#d1d9e0;--soft:#eef1f4;--head:#f6f8fa;--ref:#f8f8f5;
--accent:#0969da;--warn:#9a6700;--warnbg:#fff8c5;--flag:#cf222e;--flagbg:#ffebe9}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);
background:#fff}
main{max-width:1360px;margin:0 auto;padding:28px 24px 64px}
h1{font-size:26px;margin:0 0 6px;letter-spacing:-.01em}
h2{font-size:20px;margin:44px 0 4px;padding-top:12px;border-top:1px solid var(--rule)}
h3{font-size:15px;margin:22px 0 2px}
h4{font-size:14px;margin:18px 0 4px}
p{margin:6px 0}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--soft);padding:1px 4px;border-radius:4px;
overflow-wrap:anywhere}
.lead{color:var(--muted);max-width:980px}
nav.toc{margin:14px 0 0;display:flex;flex-wrap:wrap;gap:6px}
nav.toc a{color:var(--accent);text-decoration:none;border:1px solid var(--rule);border-radius:999px;padding:2px 10px;font-size:13px}
nav.toc a:hover{background:var(--soft)}
.legend{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:4px 24px;margin:14px 0 0;padding:10px 14px;
background:var(--head);border:1px solid var(--rule);border-radius:8px;font-size:12.5px;color:var(--muted)}
.legend b{color:var(--fg);font-weight:600}
details.runs{margin:10px 0 0;font-size:12.5px;color:var(--muted)}
details.runs summary{cursor:pointer}
details.runs table{border-collapse:collapse;margin:6px 0}
details.runs td,details.runs th{padding:3px 10px 3px 0;text-align:left;vertical-align:top;border-bottom:1px solid var(--soft)}
.warning{background:var(--warnbg);color:var(--warn);border:1px solid #eac54f;border-radius:6px;padding:6px 10px;font-size:13px}
.key,.machine-key{font-size:12.5px;color:var(--muted);margin:2px 0 8px}
.key b,.machine-key b{color:var(--fg);font-weight:600}
.table-wrap{overflow:auto;max-height:calc(100vh - 24px);border:1px solid var(--rule);border-radius:8px}
table.sortable{border-collapse:separate;border-spacing:0;width:100%;font-variant-numeric:tabular-nums}
table.sortable th,table.sortable td{padding:6px 9px;text-align:right;vertical-align:top;border-bottom:1px solid var(--soft);
white-space:nowrap}
table.sortable thead th{position:sticky;top:0;z-index:2;background:var(--head);border-bottom:1px solid var(--rule);
font-weight:600;font-size:12.5px;vertical-align:bottom}
table.sortable th button{all:unset;cursor:pointer;display:block;text-align:inherit}
table.sortable th button:focus-visible{outline:2px solid var(--accent)}
table.sortable thead th{white-space:normal;min-width:6em;max-width:12em}
table.sortable thead th.rank,table.sortable thead th.model{min-width:0;max-width:none}
table.sortable th .m{display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
table.sortable th .sub{display:block;font-weight:400;color:var(--faint);font-size:11px;line-height:1.3}
table.sortable th[aria-sort=ascending] .m::after{content:" ▲";color:var(--accent);font-size:9px}
table.sortable th[aria-sort=descending] .m::after{content:" ▼";color:var(--accent);font-size:9px}
table.sortable .l{text-align:left}
td.rank{font-weight:600;color:var(--muted);width:3em}
th.rank{width:3em}
tr.ranked td.rank{color:var(--fg)}
table.sortable td.model{white-space:normal;min-width:14em;max-width:20em}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:7px;background:var(--c);
box-shadow:inset 0 0 0 1px rgba(0,0,0,.15);vertical-align:0}
button.name{all:unset;cursor:pointer;font-weight:600;overflow-wrap:anywhere}
button.name:hover{color:var(--accent);text-decoration:underline}
button.name:focus-visible{outline:2px solid var(--accent)}
button.name::after{content:" ▸";color:var(--faint);font-weight:400;font-size:10px}
button.name[aria-expanded=true]::after{content:" ▾"}
.fam,.kind{display:inline-block;font-size:11px;color:var(--muted);border:1px solid var(--rule);border-radius:999px;
padding:0 7px;margin-left:6px;vertical-align:1px;white-space:nowrap}
.flag,.copies{display:inline-block;font-size:11px;color:var(--flag);background:var(--flagbg);border:1px solid #ffcecb;
border-radius:999px;padding:0 7px;margin-left:6px;white-space:nowrap;cursor:help}
td.num .v{font-weight:500}
td.num .pm{color:var(--muted)}
td.num .t{color:var(--faint);font-size:11px;margin-left:3px}
td.num .ci,td.num .fl{display:block;color:var(--faint);font-size:11px;line-height:1.25}
td.num .err{color:var(--flag);font-size:12px}
td.num .note{color:var(--warn);font-size:11px;margin-left:3px;cursor:help}
td.speed,th.speed{background-clip:padding-box}
th.speed{border-left:1px solid var(--rule)}
td.speed{border-left:1px solid var(--soft)}
tr.ranked:hover td{background:#f6f8fa}
tbody.references td{background:var(--ref);color:var(--muted)}
tbody.references td.num .v{font-weight:400}
tbody.references button.name{font-weight:500;color:var(--muted)}
tr.ref-head td{border-top:2px solid var(--rule);font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:var(--faint);
padding-top:8px;padding-bottom:4px;text-align:left}
tr.floor td{border-top:1px dashed var(--rule);font-style:italic}
table.sortable tr.detail td{white-space:normal;text-align:left;background:#fbfcfd;font-size:12.5px;color:var(--muted);padding:8px 14px 12px}
tr.detail dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0;max-width:min(1240px,calc(100vw - 96px));
position:sticky;left:14px}
tr.detail dt{color:var(--faint)}
tr.detail dd{margin:0;color:var(--fg);overflow-wrap:anywhere}
.table-wrap:not(.all) .sec{display:none}
.table-wrap.all table.sortable{width:max-content;min-width:100%}
.tools{display:flex;gap:14px;align-items:center;margin:6px 0 0;font-size:12px;color:var(--faint)}
.tools button{font:inherit;color:var(--accent);background:none;border:1px solid var(--rule);border-radius:6px;padding:2px 10px;
cursor:pointer}
.tools button:hover{background:var(--soft)}
ul.notes{margin:10px 0 0;padding:0 0 0 16px;font-size:12px;color:var(--muted);columns:2 440px;column-gap:36px}
ul.notes li{break-inside:avoid;margin:0 0 2px}
ul.notes li.flagged{color:var(--flag)}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:16px 20px;margin:16px 0 0}
figure{margin:0}
figure svg{display:block;width:100%;height:auto}
figcaption{font-size:12px;color:var(--muted);margin-top:2px}
svg.plot *{stroke-linejoin:round;stroke-linecap:butt}
details.samples{margin:12px 0 0}
details.samples summary{cursor:pointer;font-size:13px;color:var(--muted)}
.gallery{display:flex;flex-wrap:wrap;gap:12px;margin-top:8px}
.gallery img{width:150px;height:auto;border:1px solid var(--rule);border-radius:4px}
.gallery img.px{image-rendering:pixelated}
.gallery figcaption{text-align:center}
section.limits table{border-collapse:collapse;margin:8px 0 12px;font-variant-numeric:tabular-nums;font-size:13px}
section.limits th,section.limits td{padding:4px 12px;border-bottom:1px solid var(--soft);text-align:right;vertical-align:top}
section.limits th{background:var(--head);border-bottom:1px solid var(--rule);font-weight:600}
section.limits th:first-child,section.limits td:first-child{text-align:left}
section.limits td:last-child{white-space:normal;max-width:28em}
section.limits blockquote{margin:8px 0;padding:4px 12px;border-left:3px solid #eac54f;color:var(--warn)}
section.limits ul{padding-left:18px}
section.limits .axis{display:flow-root}
section.limits .axis>figure{float:right;width:min(500px,46%);margin:4px 0 12px 28px}
footer{margin-top:48px;color:var(--faint);font-size:12px}
"""

JS = """(function(){
function each(list,fn){Array.prototype.forEach.call(list,fn)}
each(document.querySelectorAll('table.sortable'),function(t){
 var heads=t.tHead.rows[0].cells;
 each(heads,function(th,i){var b=th.querySelector('button');if(!b)return;
  b.addEventListener('click',function(){
   var body=t.tBodies[0],asc=th.getAttribute('aria-sort')!=='ascending';
   each(heads,function(h){h.removeAttribute('aria-sort')});th.setAttribute('aria-sort',asc?'ascending':'descending');
   var rows=Array.prototype.filter.call(body.rows,function(r){return r.classList.contains('ranked')});
   rows.sort(function(a,c){var x=a.cells[i].dataset.v,y=c.cells[i].dataset.v,ex=!x,ey=!y;
    if(ex||ey)return ex-ey;
    var nx=Number(x),ny=Number(y),r=(isNaN(nx)||isNaN(ny))?String(x).localeCompare(String(y)):nx-ny;
    return asc?r:-r});
   rows.forEach(function(r){var d=r.nextElementSibling;body.appendChild(r);
    if(d&&d.classList.contains('detail'))body.appendChild(d)});});});});
each(document.querySelectorAll('button.name'),function(b){b.addEventListener('click',function(){
 var d=b.closest('tr').nextElementSibling;if(!d||!d.classList.contains('detail'))return;
 d.hidden=!d.hidden;b.setAttribute('aria-expanded',String(!d.hidden));});});
each(document.querySelectorAll('button.show-all'),function(b){b.addEventListener('click',function(){
 var w=document.getElementById(b.getAttribute('aria-controls'));var on=w.classList.toggle('all');
 b.setAttribute('aria-expanded',String(on));b.textContent=on?b.dataset.less:b.dataset.more;});});
})();"""


def _e(text: Any) -> str:
    """HTML text or attribute value: escaped, control characters shown as visible escapes."""
    return html.escape(neutralise_controls(text, limit=None), quote=True)


# --------------------------------------------------------------------------- numbers


def _num(value: Any, sig: int = 4) -> str:
    """``value`` to ``sig`` significant digits in plain notation with thousands separators (``23,050``,
    ``42.59``, ``0.9272``); scientific notation only outside 1e-4 to 1e9; ``–`` when not a finite number."""
    v = number(value)
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if isinstance(v, int) and abs(v) < 10**9:
        return f"{v:,}"
    mag = math.floor(math.log10(abs(v)))
    if not -4 <= mag < 9:
        return f"{v:.{sig - 1}e}"
    return f"{v:,.{max(0, sig - 1 - mag)}f}"


def _compact(value: Any) -> str:
    """A large count in three significant digits: ``177``, ``162k``, ``3.63M``."""
    v = number(value)
    if v is None or abs(v) < 1000:
        return _num(v, 3)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{_num(v / scale, 3)}{suffix}"
    return _num(v, 3)  # pragma: no cover - unreachable


def _spread(cell: Cell) -> tuple[str, float | None]:
    """(what "±" is, its value) for one cell: seed sd, then se, then a spread, as :func:`cell_text` picks."""
    mv = cell.value
    if number(mv.seed_std) is not None:
        return "seed sd", seed_sd(mv)
    if shown_interval(cell) is not None:  # a single run's sampling interval stands in for its ± (cell_text)
        return "", None
    for kind, value in (("se", mv.stderr), ("spread", mv.std)):
        if number(value) is not None:
            return kind, number(value)
    return "", None


def _ci(cell: Cell) -> tuple[float, float] | None:
    ci = cell.value.ci95
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and number(ci[0]) is not None and number(ci[1]) is not None:
        return number(ci[0]), number(ci[1])  # type: ignore[return-value]
    return None


def _column_kind(table: Table, column: Column) -> str | None:
    """The one kind of "±" every cell of ``column`` has, or None when they differ (each cell then says its own)."""
    kinds = {_spread(r.cells[column.label])[0] for r in table.rows if column.label in r.cells
             and number(r.cells[column.label].value.value) is not None}
    kinds.discard("")
    return kinds.pop() if len(kinds) == 1 else None


# --------------------------------------------------------------------------- colours


def model_colours(board: Board) -> dict[str, tuple[str, str]]:
    """(dark, light) colour per model, the same on every task: matplotlib's "tab20" pairs (then "tab20b"),
    in order of family and name; reference rows grey. ONNX Runtime is drawn dark, torch eager light."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    tab20, tab20b = colormaps["tab20"], colormaps["tab20b"]
    pairs = [(to_hex(tab20(2 * i)), to_hex(tab20(2 * i + 1))) for i in range(10) if i != 7]  # 7: grey
    pairs += [(to_hex(tab20b(4 * g)), to_hex(tab20b(4 * g + 2))) for g in range(5)]
    models: dict[str, str] = {}
    out: dict[str, tuple[str, str]] = {}
    for table in board.tables:
        for r in table.rows:
            if r.reference is None:
                models.setdefault(r.model, text_of(r.job.family))
            else:
                out[r.model] = REFERENCE_COLOURS
    for i, m in enumerate(sorted(models, key=lambda m: (models[m], m))):
        out[m] = pairs[i % len(pairs)]
    return out


# --------------------------------------------------------------------------- the page


def render(runs: list[RunResult], tasks: tuple[str, ...] = (), run_dirs: dict[str, Path] | None = None,
           limits: Sequence[Any] = ()) -> str:
    """The page for ``runs`` (``run_dirs``: run_id -> directory, for the sample grids it embeds; ``limits``:
    :class:`~genbench.limits.LimitsResult` studies shown as sections)."""
    run_dirs = run_dirs or {}
    return render_board(build(runs, tasks, [run_dirs.get(r.run_id) for r in runs]), limits=limits)


def render_board(board: Board, limits: Sequence[Any] = ()) -> str:
    """One self-contained page: per task a sortable table per comparability key, references apart, notes,
    plots and samples; then a section per ``genbench limits`` study in ``limits``."""
    colours = model_colours(board)
    ids = _Ids()
    table_ids = [ids.make(f"task-{t.task}") for t in board.tables]
    task_ids: dict[str, str] = {}
    for t, tid in zip(board.tables, table_ids):
        task_ids.setdefault(t.task, tid)
    limit_ids = [ids.make(f"limits-{text_of(getattr(s, 'task', ''))}") for s in limits]
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>genbench leaderboard</title><style>{CSS}</style></head><body><main>",
             "<h1>genbench leaderboard</h1>",
             "<p class='lead'>Only numbers with the same comparability key (task and data, feature extractor, n, "
             "likelihood variant and bound, profile, seeds) share a table or column; each table says which. "
             "Reference rows are shown apart and never ranked. Click a column to sort, a model for the run, commit, "
             "machine and command behind its row.</p>"]
    nav = [f"<a href='#{_e(task_ids[task])}-section'>{_e(task)}</a>" for task in task_ids]
    nav += [f"<a href='#{_e(i)}'>limits: {_e(getattr(s, 'task', ''))}</a>" for s, i in zip(limits, limit_ids)]
    if nav:
        parts.append("<nav class='toc'>" + "".join(nav) + "</nav>")
    parts.append(_legend())
    parts.append(_runs(board))
    parts += [f"<p class='warning'>{_e(w)}</p>" for w in board.warnings]
    task = None
    for table, tid in zip(board.tables, table_ids):
        if table.task != task:
            task = table.task
            parts.append(f"<h2 id='{_e(task_ids[task])}-section'>{_e(task)}</h2>")
        parts.append(_table_section(table, tid, colours))
    for study, sid in zip(limits, limit_ids):
        parts.append(_limits_section(study, sid))
    parts.append("<footer>Made by genbench from run.json files only; every number is the value stored there, "
                 "never rescaled.</footer>")
    parts.append(f"</main><script>{JS}</script></body></html>")
    return "\n".join(parts)


class _Ids:
    """Element ids made from results-file text: letters, digits, ``-`` and ``_`` only, each used once."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, text: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", text_of(text, 60)).strip("-") or "t"
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}-{i}"
        self.used.add(name)
        return name


def _legend() -> str:
    items = [("1, 2–3", "rank by the table's first metric; a range where the models' intervals overlap"),
             ("± … seed sd", SPREAD_KINDS["seed sd"] + "; [a, b] is the 95% t-interval of their mean"),
             ("± … se", SPREAD_KINDS["se"]),
             ("± … spread", SPREAD_KINDS["spread"] + ", not a standard error"),
             ("floor", "real data scored the same way at the column's n (where higher is better, what real data reaches, "
                       "not a bound: a model can score above it)"),
             ("references", "baselines, replayed training data and real data: shown apart, not ranked"),
             ("⚑ metric", "the metric flags the model (e.g. copying its training data, or a value better than real data "
                          "at n: replayed data?); the note under the table says why"),
             ("ms / sample, samples / s", "per generated sample, through ONNX Runtime: p50 at batch 1, and the best "
                                          "batch's throughput")]
    return "<div class='legend'>" + "".join(f"<div><b>{_e(k)}</b> — {_e(v)}</div>" for k, v in items) + "</div>"


def _runs(board: Board) -> str:
    rows = "".join(f"<tr><td><code>{_e(s.run.run_id)}</code></td><td>{_e(s.provenance)}</td>"
                   f"<td>{_e(s.run.started_at)}</td><td>{_e(environment(s.run))}</td>"
                   f"<td><code>{_e(s.run.command)}</code></td></tr>" for s in board.sources)
    return (f"<details class='runs'><summary>Merged from {len(board.sources)} run(s)</summary><table><thead><tr>"
            "<th>run</th><th>genbench @ commit</th><th>started</th><th>machine</th><th>command</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></details>")


def main_columns(table: Table, limit: int = MAIN_COLUMNS, budget: float = MAIN_WIDTH_CHARS) -> list[Column]:
    """The metric columns shown by default: the table's first ones while their estimated widths (in
    characters, :func:`_width`) fit ``budget``, at most ``limit``, the ranking column always among them."""
    shown: list[Column] = []
    used = _width(table, table.rank_by) if table.rank_by is not None else 0.0
    for c in table.columns:
        if len(shown) >= limit:
            break
        if c is table.rank_by:
            shown.append(c)
            continue
        w = _width(table, c)
        if shown and used + w > budget:
            break
        shown.append(c)
        used += w
    if table.rank_by is not None and table.rank_by not in shown:
        shown = shown[:max(0, limit - 1)] + [table.rank_by]
    return [c for c in table.columns if c in shown]


def _width(table: Table, column: Column) -> float:
    """A column's width in characters, estimated from its header and the first line of its cells."""
    cells = [len(_first_line(table, column, r.cells.get(column.label))) for r in table.rows]
    return max([len(column.metric) + 2, 7, *cells]) + 2.5


def _first_line(table: Table, column: Column, cell: Cell | None) -> str:
    """The first line of a cell as text (what :func:`_width` measures)."""
    return "".join(_pieces(table, column, cell))


def _pieces(table: Table, column: Column, cell: Cell | None) -> tuple[str, str, str]:
    """(value, `` ± spread``, the spread's kind where the column's header does not name it) of a cell;
    ``("–", "", "")`` without a value, ``("error", "", "")`` where the metric raised."""
    v = None if cell is None else number(cell.value.value)
    if v is None:
        return ("error" if cell is not None and cell.value.error else "–"), "", ""
    kind, spread = _spread(cell)  # type: ignore[arg-type]
    if spread is None:
        return _num(v), "", ""
    return _num(v), f" ± {_num(spread, 2)}", (kind if kind != _column_kind(table, column) else "")


def _table_section(table: Table, tid: str, colours: dict[str, tuple[str, str]]) -> str:
    main = main_columns(table)
    hidden = [c for c in table.columns if c not in main]
    width = 2 + len(table.columns) + 2
    parts = ["<section class='board-table'>"]
    if table.title:
        parts.append(f"<h3>{_e(table.title)}</h3>")
    if is_smoke(table):
        parts.append(f"<p class='key smoke'><b>{_e(SMOKE_CAVEAT)}</b></p>")
    parts.append(f"<p class='key'><b>All numbers in this table:</b> {_e(shared_text(table))}.</p>")
    parts.append(f"<div class='table-wrap' id='{tid}-wrap'><table class='sortable' id='{tid}'><thead><tr>"
                 "<th class='rank'><button type='button'><span class='m'>#</span></button></th>"
                 "<th class='l model'><button type='button'><span class='m'>model</span></button></th>")
    for c in table.columns:
        parts.append(_header(table, c, c in hidden))
    parts.append("<th class='speed' title='ONNX Runtime, median latency at batch 1, per generated sample'>"
                 "<button type='button'><span class='m'>ms / sample ↓</span><span class='sub'>ORT p50, batch 1</span>"
                 "</button></th><th title='ONNX Runtime, generated samples per second at its best batch size'>"
                 "<button type='button'><span class='m'>samples / s ↑</span><span class='sub'>ORT, best batch</span>"
                 "</button></th></tr></thead><tbody class='ranked'>")
    for i, r in enumerate(table.rows):  # ranked rows come first, in rank order
        if r.reference is None:
            parts.append(_row(table, r, hidden, colours, width, i))
    refs = [r for r in table.rows if r.reference is not None]
    floors = [floor_text(table, c, _num) for c in table.columns]
    parts.append("</tbody><tbody class='references'>"
                 f"<tr class='ref-head'><td></td><td class='l' colspan='{width - 1}'>references, not ranked</td></tr>")
    for r in refs:
        parts.append(_row(table, r, hidden, colours, width, None))
    if any(f != "–" for f in floors):
        parts.append("<tr class='floor'><td class='rank'>ref</td><td class='l model'>real data at n (floor)</td>"
                     + "".join(f"<td class='num{' sec' if c in hidden else ''}'>{_e(f)}</td>"
                               for c, f in zip(table.columns, floors))
                     + "<td class='speed'></td><td></td></tr>")
    parts.append("</tbody></table></div>")
    parts.append(_speed_key(table))
    tools = ["<span>Click a model for its run, commit and command; a header to sort.</span>"]
    if hidden:
        more, less = f"Show {len(hidden)} more column{'s' * (len(hidden) > 1)}", "Show fewer columns"
        tools.insert(0, f"<button type='button' class='show-all' aria-controls='{tid}-wrap' aria-expanded='false' "
                        f"data-more='{_e(more)}' data-less='{_e(less)}'>{_e(more)}</button>")
    parts.append("<div class='tools'>" + "".join(tools) + "</div>")
    parts.append("<ul class='notes'>" + "".join(f"<li>{_e(n)}</li>" for n in table_notes(table))
                 + "".join(f"<li class='flagged'>⚑ {_e(r.model)}: {_e(label)}: {_e(flag)}</li>"
                           for r in table.rows for label, flag in row_flags(r)) + "</ul>")
    figures = list(_plots(table, tid, colours))
    if figures:
        parts.append("<div class='plots'>" + "".join(_figure(svg, caption, name) for name, caption, svg in figures)
                     + "</div>")
    parts.append(_samples(table))
    parts.append("</section>")
    return "\n".join(parts)


def _machine_letters(table: Table) -> dict[str | None, str]:
    machines = speed_machines(table)
    return {m: chr(ord("A") + i) if i < 26 else f"M{i + 1}" for i, m in enumerate(machines)} if len(machines) > 1 else {}


def _speed_key(table: Table) -> str:
    """The machine behind the table's speed figures, with its physical peak and GEMM ceiling; each machine with
    its letter and models when the figures come from several (they are not comparable across them)."""
    machines = speed_machines(table)
    if not machines:
        return ""
    if len(machines) == 1:
        (m, rows), = machines.items()
        return f"<p class='machine-key'><b>Speed measured on</b> {_e(machine_text(m, rows))}.</p>"
    letters = _machine_letters(table)
    items = "".join(f"<li>[{_e(letters[m])}] {_e(machine_text(m, rows))}: {_e(', '.join(r.model for r in rows))}</li>"
                    for m, rows in machines.items())
    return (f"<div class='machine-key'><b>Speed figures come from {len(machines)} machines and are not comparable across "
            f"them</b> (each figure is marked with its machine):<ul>{items}</ul></div>")


def _header(table: Table, c: Column, hidden: bool) -> str:
    arrow = "↑" if c.higher_is_better else "↓"
    label = c.metric if c.split else c.label
    sub = [text_of(c.label[len(c.metric):]).strip(" []")] if c.split else []
    if c.unit and len(text_of(c.unit)) <= 16:  # a longer unit is in the header's title and the notes
        sub.append(text_of(c.unit))
    sub.append(f"n {_num(c.n)}" if number(c.n) is not None else f"n {text_of(c.n)}")
    kind = _column_kind(table, c)
    if kind:
        sub.append(f"± {kind}")
    return (f"<th class='{'sec' if hidden else ''}' title='{_e(c.label + ': ' + column_note(c))}'><button type='button'>"
            f"<span class='m'>{_e(label)} {arrow}</span><span class='sub'>{_e(' · '.join(sub))}</span></button></th>")


def row_flags(r: Row) -> list[tuple[str, str]]:
    """(column label, flag text) for every metric of the row whose results flag the model (``params.flag``,
    e.g. copy-ct's "copies training data …"): only what the results file says."""
    out = []
    for label, cell in r.cells.items():
        flag = mapping(cell.value.params).get("flag")
        if isinstance(flag, str) and flag.strip():
            out.append((label, flag))
    return out


def _row(table: Table, r: Row, hidden: list[Column], colours: dict[str, tuple[str, str]], width: int,
         position: int | None) -> str:
    j = r.job
    dark = colours.get(r.model, REFERENCE_COLOURS)[0]
    flags = row_flags(r)
    name = (f"<span class='sw' style='--c:{dark}'></span><button type='button' class='name' aria-expanded='false'>"
            f"{_e(r.model)}</button>")
    name += f"<span class='kind'>{_e(r.reference)}</span>" if r.reference else f"<span class='fam'>{_e(j.family)}</span>"
    if r.copies:
        name += f"<span class='copies' title='{_e(r.not_ranked or r.copies)}'>⚠ {_e(r.copies)}</span>"
    if r.replayed:  # a number better than real data at its n: not ranked either
        name += f"<span class='copies' title='{_e(r.not_ranked or r.replayed)}'>⚠ {_e(r.replayed)}</span>"
    if r.worse_than_baseline:
        name += f"<span class='flag'>worse than {_e(r.worse_than_baseline)}</span>"
    if flags:
        name += (f"<span class='flag' title='{_e('; '.join(f'{label}: {flag}' for label, flag in flags))}'>⚑ "
                 f"{_e(', '.join(label for label, _ in flags))}</span>")
    rank = "ref" if r.reference else rank_text(r.rank)
    # sorting by rank: ties in rank (a shared range) keep the table's order, which is by value
    order = f"{r.rank[0]}.{position:06d}" if r.rank is not None and position is not None else ""
    cells = [f"<td class='rank' data-v='{order}'>{_e(rank)}</td>",
             f"<td class='l model' data-v='{_e(r.model)}'>{name}</td>"]
    for c in table.columns:
        cells.append(_metric_cell(table, c, r.cells.get(c.label), c in hidden))
    p = safe_perf_summary(j)
    per_sample = p["unit"] == "samples/s"  # the speed columns hold per-sample figures only, never a forward pass
    ms, tput = (number(p["ort_p50_ms_b1"]), number(p["ort_best_throughput"])) if per_sample else (None, None)
    timing_note = ""
    if (ms is not None or tput is not None) and (p["valid"] is False or p["noisy"]):
        why = "the timing is not valid" if p["valid"] is False else "the timing was noisy"
        timing_note = f"<span class='note' title='{_e(why)}'>⚠</span>"
    batch = number(p["ort_best_batch"])
    share = number(p["ort_best_share_of_peak"])
    letters = _machine_letters(table)
    mark = letters.get(row_machine(r)) if letters and (ms is not None or tput is not None) else None
    mark_html = f" <span class='t' title='measured on machine {_e(mark)} (see under the table)'>[{_e(mark)}]</span>" \
        if mark else ""
    cells.append(f"<td class='num speed' data-v='{'' if ms is None else json.dumps(ms)}'>"
                 f"<span class='v'>{_num(ms, 3)}</span>{timing_note}{mark_html if ms is not None else ''}</td>")
    cells.append(f"<td class='num' data-v='{'' if tput is None else json.dumps(tput)}'><span class='v'>"
                 f"{_compact(tput)}</span>"
                 + (f" <span class='ci'>batch {_e(batch)}</span>" if tput is not None and batch else "")
                 + (f" <span class='ci' title='share of the machine&#39;s physical peak (clock × FLOP/cycle × threads)'>"
                    f"{share:.0%} peak</span>" if tput is not None and share is not None else "")
                 + (mark_html if tput is not None else "") + "</td>")
    kind = "ref" if r.reference else "ranked"
    return (f"<tr class='{kind}'>" + "".join(cells) + "</tr>"
            f"<tr class='detail' hidden><td colspan='{width}'>{_details(r, p, flags)}</td></tr>")


def _metric_cell(table: Table, column: Column, cell: Cell | None, hidden: bool) -> str:
    cls = "num sec" if hidden else "num"
    value, pm, tag = _pieces(table, column, cell)
    v = None if cell is None else number(cell.value.value)
    title = "" if cell is None else f" title='{_e(cell_text(cell))}'"
    if v is None:
        inner = "<span class='err'>error</span>" if value == "error" else "<span class='pm'>–</span>"
        return f"<td class='{cls}' data-v=''{title}>{inner}</td>"
    inner = f"<span class='v'>{value}</span>" + (f"<span class='pm'>{pm}</span>" if pm else "")
    inner += f" <span class='t'>{_e(tag)}</span>" if tag else ""
    shown = shown_interval(cell)  # type: ignore[arg-type]
    if shown is not None:  # the seeds' t-interval or the run's sampling interval, clipped to the metric's range
        inner += f" <span class='ci'>[{_num(shown[0])}, {_num(shown[1])}]</span>"
    span = table.floor(column)
    floor = number(cell.value.floor)  # type: ignore[union-attr]
    if floor is not None and span is not None and span[0] != span[1]:  # the floor row shows a range: say this row's
        inner += f" <span class='fl'>floor {_num(floor)}</span>"
    return f"<td class='{cls}' data-v='{json.dumps(v)}'{title}>{inner}</td>"


def _details(r: Row, p: dict[str, Any], flags: list[tuple[str, str]]) -> str:
    j = r.job
    items = [("plugin", f"{text_of(j.plugin)} {text_of(j.plugin_version)} · family {text_of(j.family)} · "
                        f"device {text_of(j.device)}"),
             ("measured with", f"genbench {r.provenance}"),
             ("run", ", ".join(text_of(s.run.run_id) for s in r.sources)),
             ("machine", environment(r.source.run) + (f"; speed measured on {machine_text(row_machine(r), [r])}"
                                                       if row_machine(r) else ""))]
    for runtime, prefix in (("ONNX Runtime", "ort"), ("torch eager", "torch")):
        figures = ([f"p50 at batch 1 {_num(p[f'{prefix}_p50_ms_b1'], 3)} ms"]
                   if number(p[f"{prefix}_p50_ms_b1"]) is not None else [])
        if number(p.get(f"{prefix}_p99_ms_b1")) is not None:
            figures.append(f"p99 {_num(p[f'{prefix}_p99_ms_b1'], 3)} ms")
        if number(p[f"{prefix}_best_throughput"]) is not None:
            figures.append(f"best {_num(round(p[f'{prefix}_best_throughput']))} samples/s at batch "
                           f"{text_of(p[f'{prefix}_best_batch'])}")
        if figures:
            items.append((f"{runtime}, per generated sample", "; ".join(figures)))
    ratios = [f"{p[k]:.2g}× {what}" for k, what in (("latency_speedup_b1", "faster at batch 1"),
                                                    ("throughput_ratio_best", "the best throughput"))
              if number(p.get(k)) is not None]
    if ratios:
        items.append(("ONNX Runtime vs torch", ", ".join(ratios)))
    if p["note"]:
        items.append(("timing", text_of(p["note"])))
    items += [(f"⚑ {label}", flag) for label, flag in flags]
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    body += f"<dt>reproduce</dt><dd><code>{_e(r.source.run.command)}</code></dd>"
    return f"<dl>{body}</dl>"


def _samples(table: Table) -> str:
    figures = []
    for r in table.rows:
        data, _ = read_contained(r.source.directory, r.job.files.get("samples_png"))  # inside the run directory only
        if data is not None and data.startswith(b"\x89PNG\r\n\x1a\n"):
            src = "data:image/png;base64," + base64.b64encode(data).decode()
            small = len(data) > 24 and int.from_bytes(data[16:20], "big") < 150  # IHDR width: keep pixels square
            figures.append(f"<figure><img{' class=px' if small else ''} alt='samples of {_e(r.model)}' src='{src}'>"
                           f"<figcaption>{_e(r.model)}</figcaption></figure>")
    if not figures:
        return ""
    return (f"<details class='samples' open><summary>Samples ({len(figures)} models)</summary>"
            f"<div class='gallery'>{''.join(figures)}</div></details>")


# --------------------------------------------------------------------------- plots


def _figure(svg: str, caption: str, name: str) -> str:
    return f"<figure data-plot='{_e(name)}'>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def svg_of(fig: Any, salt: str, label: str = "") -> str:
    """``fig`` as an inline ``<svg class="plot">`` (closed afterwards): no XML prologue, no fixed size (CSS
    scales it by its viewBox), ids salted with ``salt`` so that several plots on one page never share one,
    and no date, so that the same results give the same page."""
    import matplotlib
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    try:
        with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
            fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    finally:
        plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\A<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)
    text = re.sub(r"<style type=\"text/css\">[^<]*</style>", "", text, count=1)  # the page's CSS has it, scoped
    return text.replace("<svg", f"<svg class='plot' role='img' aria-label='{_e(label)}'", 1)


def _label(text: object) -> str:
    """Text for a matplotlib label: never read as mathtext, one line."""
    return neutralise_controls(text, limit=80).replace("$", r"\$")


def _plots(table: Table, tid: str, colours: dict[str, tuple[str, str]]) -> Iterator[tuple[str, str, str]]:
    """(name, caption, svg) of the table's figures; one that cannot be drawn from what the results hold is
    left out, not fatal."""
    import warnings

    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    draws: list[tuple[str, Callable[[Any], str | None]]] = [
        ("pareto", lambda ax: _quality_vs_speed(table, ax, colours)),
        ("cost-vs-batch", lambda ax: _cost_vs_batch(table, ax, colours))]
    for family in dict.fromkeys(text_of(r.job.family) for r in table.rows):
        draws.append((f"loss-{family}", lambda ax, family=family: _loss_curves(table, family, ax, colours)))
    with plt.style.context("default"):
        for name, draw in draws:
            fig, ax = plt.subplots(figsize=(4.8, 3.2), dpi=100)
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):  # absurd values: no plot, no noise
                    warnings.simplefilter("ignore")
                    caption = draw(ax)
                    if caption:
                        _style(ax)
                        yield name, caption, svg_of(fig, f"genbench-{tid}-{name}", caption)
            except (ValueError, TypeError, KeyError, OverflowError, RuntimeError, ArithmeticError):
                pass
            finally:
                plt.close(fig)


def _style(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#8c959f")
    ax.tick_params(colors="#57606a", labelsize=8.5)
    ax.xaxis.label.set(color="#24292f", fontsize=9)
    ax.yaxis.label.set(color="#24292f", fontsize=9)
    ax.title.set(fontsize=10, color="#24292f", fontweight="bold")
    ax.grid(True, color="#eaeef2", lw=0.8)
    ax.set_axisbelow(True)


def _pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points (throughput ↑, quality value ↓) that no other point beats on both."""
    front = []
    for i, (t, q) in enumerate(points):
        if not any((t2 >= t and q2 <= q) and (t2 > t or q2 < q) for j, (t2, q2) in enumerate(points) if j != i):
            front.append(i)
    return front


def _speeds(row: Row) -> tuple[float | None, float | None, bool]:
    """(ORT, torch eager) generated samples per second at their best batch, and whether the timing is flagged;
    None for a job without per-sample timing (a forward pass is not a sample)."""
    p = safe_perf_summary(row.job)
    if p["unit"] != "samples/s":
        return None, None, False
    ort, pt = number(p["ort_best_throughput"]), number(p["torch_best_throughput"])
    return (ort if ort and ort > 0 else None, pt if pt and pt > 0 else None,
            p["valid"] is False or bool(p["noisy"]))


def _quality_vs_speed(table: Table, ax: Any, colours: dict[str, tuple[str, str]]) -> str | None:
    col = table.rank_by
    if col is None:
        return None
    pts = []
    for r in table.rows:
        cell = r.cells.get(col.label)
        ort, pt, flagged = _speeds(r)
        v = number(cell.value.value) if cell else None
        if ort is not None and v is not None:
            pts.append((r, ort, pt, v, flagged))
    if not pts:
        return None
    from matplotlib.lines import Line2D

    mixed = len({row_machine(r) for r, *_ in pts}) > 1  # speeds of different machines are never ranked together
    front = set() if mixed else set(_pareto([(t, -v if col.higher_is_better else v) for _, t, _, v, _ in pts]))
    for i, (r, t, pt, v, flagged) in enumerate(pts):
        dark, light = colours.get(r.model, REFERENCE_COLOURS)
        if pt is not None:
            ax.plot([pt, t], [v, v], color=light, lw=1.2, ls="--", zorder=2)
            ax.scatter(pt, v, s=30, facecolors="white", edgecolors=dark, linewidths=1.2, zorder=3)
        ax.scatter(t, v, s=44, color=dark, marker="X" if flagged else "o", zorder=4,
                   edgecolors="#24292f" if i in front else "none", linewidths=1.2)
        ax.annotate(_label(r.model + (" (timing flagged)" if flagged else "")), (t, v), fontsize=7.5, color="#24292f",
                    xytext=(5, 4), textcoords="offset points")
    fx = sorted((pts[i][1], pts[i][3]) for i in front)
    if len(fx) > 1:
        ax.plot([p[0] for p in fx], [p[1] for p in fx], color="#24292f", lw=0.9, ls=":", zorder=1)
    ax.set(xscale="log", xlabel="generated samples / s at the best batch (log)",
           ylabel=_label(f"{col.label} ({'higher' if col.higher_is_better else 'lower'} is better)"),
           title=_label(f"{table.task}: quality against speed"))
    ax.legend(handles=[Line2D([], [], marker="o", ls="none", color="#57606a", label="ONNX Runtime"),
                       Line2D([], [], marker="o", ls="none", mfc="white", color="#57606a", label="torch eager"),
                       Line2D([], [], ls=":", color="#24292f", label="Pareto front (ORT)")],
              fontsize=7.5, frameon=False, loc="best")
    if mixed:
        return (f"{col.label} against generated samples per second, one colour per model: ONNX Runtime filled, "
                "torch eager hollow; measured on different machines, so no Pareto front is drawn")
    return (f"{col.label} against generated samples per second, one colour per model: ONNX Runtime filled, "
            "torch eager hollow; outlined points lie on the Pareto front")


def _cost_vs_batch(table: Table, ax: Any, colours: dict[str, tuple[str, str]]) -> str | None:
    from matplotlib.lines import Line2D

    handles = []
    for r in table.rows:
        j = r.job
        dark, light = colours.get(r.model, REFERENCE_COLOURS)
        drawn = False
        for runtime, colour, style in (("onnxruntime", dark, "-"), ("torch-eager", light, "--")):
            recs = sorted((p.batch_size, number(mapping(p.latency_ms).get("p50"))) for p in j.performance
                          if p.runtime == runtime and p.scenario == "generate")
            recs = [(b, v / b) for b, v in recs if isinstance(b, int) and v is not None and v > 0 and b > 0]
            if recs:
                ax.plot([b for b, _ in recs], [v for _, v in recs], ls=style, marker="o", ms=3, color=colour, lw=1.4)
                drawn = True
        if drawn:
            handles.append(Line2D([], [], color=dark, lw=2, label=_label(r.model)))
    if not handles:
        return None
    handles += [Line2D([], [], color="#57606a", ls="-", label="ONNX Runtime"),
                Line2D([], [], color="#57606a", ls="--", label="torch eager")]
    ax.set(xscale="log", yscale="log", xlabel="batch size (log)", ylabel="ms per generated sample (p50 / batch)",
           title=_label(f"{table.task}: cost per generated sample"))
    ax.xaxis.set_major_formatter(_plain_ticks())
    ax.legend(handles=handles, fontsize=7.5, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return "milliseconds per generated sample against batch size: ONNX Runtime solid, torch eager dashed"


def _plain_ticks() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _: f"{x:g}")


LOSS_STYLES = ("-", "--", ":", "-.")


def _loss_curves(table: Table, family: str, ax: Any, colours: dict[str, tuple[str, str]]) -> str | None:
    from matplotlib.lines import Line2D

    names: list[str] = []
    models = []
    thinned = False
    for r in table.rows:
        if text_of(r.job.family) != family:
            continue
        train = mapping(r.job.train)
        every = number(train.get("log_every")) or 1
        drawn = False
        for name, values in mapping(train.get("loss_history")).items():
            ys = [number(v) for v in values] if isinstance(values, list) else []
            if len(ys) < 2 or None in ys:
                continue
            name = text_of(name, 40)
            if name not in names:
                names.append(name)
            stride = max(1, math.ceil(len(ys) / MAX_CURVE_POINTS))
            thinned |= stride > 1
            xs = [every * (i + 1) for i in range(len(ys))][::stride]
            ax.plot(xs, ys[::stride], color=colours.get(r.model, REFERENCE_COLOURS)[0],
                    ls=LOSS_STYLES[names.index(name) % len(LOSS_STYLES)], lw=1.1)
            drawn = True
        if drawn:
            models.append(r.model)
    if not models:
        return None
    handles = [Line2D([], [], color=colours.get(m, REFERENCE_COLOURS)[0], lw=2, label=_label(m)) for m in models]
    if len(names) > 1:
        handles += [Line2D([], [], color="#57606a", ls=LOSS_STYLES[i % len(LOSS_STYLES)], label=_label(n))
                    for i, n in enumerate(names)]
    ax.set(xlabel="training step", ylabel="loss" if len(names) > 1 else _label(names[0]),
           title=_label(f"{table.task}: training losses, family {family}"))
    ax.legend(handles=handles, fontsize=7.5, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return (f"training losses of the {family} family as logged by each plugin"
            + ("; long curves drawn at every k-th logged value" if thinned else ""))


# --------------------------------------------------------------------------- limits studies


def _limits_section(study: Any, sid: str) -> str:
    """A ``genbench limits`` study as a section: the Markdown of :func:`render_limits_markdown` (which escapes
    the study's text) rendered by markdown-it with raw HTML off, each axis's plot inline as SVG."""
    from markdown_it import MarkdownIt

    from .limits import limits_figures, render_limits_markdown

    svgs: dict[str, str] = {}
    for axis, fig in limits_figures(study):
        for ax in fig.axes:
            _style(ax)
        svgs[axis] = svg_of(fig, f"genbench-{sid}-{axis}", f"limits study: quality against {axis}")
    placeholders = {axis: f"genbench-limits-{axis}.svg" for axis in svgs}
    md = render_limits_markdown(study, plots=placeholders, level=2)
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    for axis, src in placeholders.items():
        body = re.sub(rf'(?:<p>)?<img src="{re.escape(src)}" alt="([^"]*)"\s*/?>(?:</p>)?',
                      lambda m, axis=axis: _figure(svgs[axis], html.unescape(m.group(1)), f"limits-{axis}"), body)
    blocks = []
    for block in re.split(r"(?=<h3>)", body):  # one block per axis: its plot floats beside its table
        figure = re.search(r"<figure data-plot='limits-[a-z]+'>.*?</figure>", block, flags=re.S)
        if figure:
            block = figure.group(0) + block[:figure.start()] + block[figure.end():]
        blocks.append(f"<div class='axis'>{block}</div>")
    return f"<section class='limits' id='{sid}'>{''.join(blocks)}</section>"


__all__ = ["MAIN_COLUMNS", "main_columns", "model_colours", "render", "render_board", "row_flags", "svg_of"]
