"""A static, self-contained HTML leaderboard: one file, no network needed to view it.

Sortable tables per task (a few lines of inline JavaScript), sample grids and matplotlib plots embedded
as base64 PNGs: quality against throughput with the Pareto front marked, latency against batch size,
and training loss curves. Everything a plugin supplies is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from ..types import RunResult
from . import fmt_num, mapping, neutralise_controls, number, read_contained, safe_perf_summary
from .leaderboard import (Board, Row, Table, build, cell_text, column_header, column_note, floor_text, rank_text,
                          shared_text, table_notes)

CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3;cursor:pointer}
td.l,th.l{text-align:left}figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-size:12px}
code{font-size:11px}.plots img{max-width:440px}tbody.references tr{background:#f7f7f2;color:#555}
tr.ref-head td{font-style:italic;border-top:2px solid #888}p.warning{color:#a40}"""

JS = """document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
  var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows),asc=th.dataset.dir!=='asc';
  t.querySelectorAll('th').forEach(function(h){delete h.dataset.dir});th.dataset.dir=asc?'asc':'desc';
  rows.sort(function(a,b){var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v;
   var nx=parseFloat(x),ny=parseFloat(y);var r=(isNaN(nx)||isNaN(ny))?String(x).localeCompare(String(y)):nx-ny;
   return asc?r:-r});
  rows.forEach(function(r){body.appendChild(r)});});});});"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _file_png(run_dir: Path | None, rel: str | None) -> str | None:
    data, _ = read_contained(run_dir, rel)  # never a file outside the run directory, never an oversized one
    if data is None or not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points (throughput ↑, quality value ↓) that no other point beats on both."""
    front = []
    for i, (t, q) in enumerate(points):
        if not any((t2 >= t and q2 <= q) and (t2 > t or q2 < q) for j, (t2, q2) in enumerate(points) if j != i):
            front.append(i)
    return front


def _label(text: object) -> str:
    """Text for a matplotlib label: never read as mathtext, one line."""
    return neutralise_controls(text, limit=80).replace("$", r"\$")


def _plots(table: Table) -> list[tuple[str, str]]:
    """The table's figures; one that cannot be drawn from what the results hold is left out, not fatal."""
    import warnings

    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for draw in (_quality_vs_speed, _latency_vs_batch, _loss_curves):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):  # absurd values: no plot, no noise
                warnings.simplefilter("ignore")
                caption = draw(table, ax)
                out += [(caption, _png(fig))] if caption else []
        except (ValueError, TypeError, KeyError, OverflowError, RuntimeError, ArithmeticError):
            pass
        finally:
            plt.close(fig)
    return out


def _quality_vs_speed(table: Table, ax: Any) -> str | None:
    col = table.rank_by
    if col is None:
        return None
    pts = []
    for r in table.rows:
        cell = r.cells.get(col.label)
        speed = safe_perf_summary(r.job)
        # per generated sample only: a forward pass of one family beside a whole sample of another would
        # compare different units
        t = number(speed["ort_best_throughput"]) if speed["unit"] == "samples/s" else None
        v = number(cell.value.value) if cell else None
        if t and t > 0 and v is not None:
            pts.append((r.model, t, v, not speed["valid"] or bool(speed["noisy"])))
    if not pts:
        return None
    front = set(_pareto([(t, -v if col.higher_is_better else v) for _, t, v, _ in pts]))
    for i, (model, t, v, flagged) in enumerate(pts):
        ax.scatter(t, v, c="C3" if i in front else "C0", marker="x" if flagged else "o", zorder=3)
        ax.annotate(_label(model + (" (timing not valid)" if flagged else "")), (t, v), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    fx = sorted((pts[i][1], pts[i][2]) for i in front)
    ax.plot([p[0] for p in fx], [p[1] for p in fx], "C3--", lw=1, label="Pareto front")
    ax.set(xscale="log", xlabel="generated samples/s, ONNX Runtime at its best batch",
           ylabel=_label(f"{col.label} ({'higher' if col.higher_is_better else 'lower'} is better)"),
           title=_label(f"{table.task}: quality vs speed"))
    ax.legend(fontsize=7)
    return "quality against speed per generated sample (Pareto front in red; x: timing flagged)"


def _latency_vs_batch(table: Table, ax: Any) -> str | None:
    drawn = False
    for r in table.rows:
        j = r.job
        for runtime, style in (("onnxruntime", "-o"), ("torch-eager", "--x")):
            recs = sorted((p.batch_size, number(mapping(p.latency_ms).get("p50"))) for p in j.performance
                          if p.runtime == runtime and p.scenario == "generate")
            recs = [(b, v / b) for b, v in recs if isinstance(b, int) and v is not None and v > 0 and b > 0]
            if recs:
                ax.plot([b for b, _ in recs], [v for _, v in recs], style, label=_label(f"{j.model} {runtime}"), ms=3)
                drawn = True
    if not drawn:
        return None
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="ms per generated sample (p50 / batch)",
           title=_label(f"{table.task}: cost per sample"))
    ax.legend(fontsize=6)
    return "cost per generated sample against batch size"


def _loss_curves(table: Table, ax: Any) -> str | None:
    drawn = False
    for r in table.rows:
        train = mapping(r.job.train)
        every = number(train.get("log_every")) or 1
        for name, values in mapping(train.get("loss_history")).items():
            ys = [number(v) for v in values] if isinstance(values, list) else []
            if len(ys) > 1 and None not in ys:
                ax.plot([every * (i + 1) for i in range(len(ys))], ys, label=_label(f"{r.model} {name}"), lw=1)
                drawn = True
    if not drawn:
        return None
    ax.set(xlabel="step", ylabel="loss", title=_label(f"{table.task}: training losses"))
    ax.legend(fontsize=6)
    return "training loss curves"


def render(runs: list[RunResult], tasks: tuple[str, ...] = (), run_dirs: dict[str, Path] | None = None) -> str:
    """The page for ``runs`` (``run_dirs``: run_id -> directory, for the sample grids it embeds)."""
    run_dirs = run_dirs or {}
    return render_board(build(runs, tasks, [run_dirs.get(r.run_id) for r in runs]))


def render_board(board: Board) -> str:
    """One self-contained page: a sortable table per (task, comparability key), reference rows apart."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>genbench leaderboard</title>"
             f"<style>{CSS}</style></head><body><h1>genbench leaderboard</h1>",
             "<p>Merged from " + ", ".join(f"<code>{_e(s.run.run_id)}</code> ({_e(s.provenance)})" for s in board.sources)
             + ". Click a column to sort. Only numbers with the same comparability key share a table or column; "
             "reference rows (baselines, replayed training data, real data at n) are not ranked. "
             "Every row names the command that reproduces it.</p>"]
    parts += [f"<p class='warning'>{_e(w)}</p>" for w in board.warnings]
    seen: dict[str, int] = {}
    for table in board.tables:
        count = seen[table.task] = seen.get(table.task, 0) + 1
        if count == 1:
            parts.append(f"<h2>{_e(table.task)}</h2>")
        if table.title:
            parts.append(f"<h3>{_e(table.title)}</h3>")
        table_id = f"task-{table.task}" + (f"-{count}" if count > 1 else "")
        parts.append(f"<p>All numbers in this table: {_e(shared_text(table))}.</p>"
                     f"<table class='sortable' id='{_e(table_id)}'><thead><tr>"
                     "<th>#</th><th class='l'>model</th><th class='l'>family</th><th class='l'>plugin</th>")
        for c in table.columns:
            parts.append(f"<th title='{_e(column_note(c))}'>{_e(column_header(c))}</th>")
        parts.append("<th>ORT p50 ms @b1 ↓</th><th>ORT best /s ↑</th><th class='l'>genbench @ commit</th>"
                     "<th class='l'>reproduce</th></tr></thead><tbody>")
        refs = [r for r in table.rows if r.reference is not None]
        for r in table.rows:
            if r.reference is None:
                parts.append(_html_row(table, r, rank_text(r.rank)))
        parts.append("</tbody><tbody class='references'>"
                     f"<tr class='ref-head'><td></td><td class='l' colspan='{3 + len(table.columns) + 4}'>"
                     "references, not ranked</td></tr>")
        for r in refs:
            parts.append(_html_row(table, r, "ref"))
        floors = [floor_text(table, c) for c in table.columns]
        if any(f != "–" for f in floors):
            parts.append("<tr class='floor'><td>ref</td><td class='l model'>real data at n (floor)</td><td></td><td></td>"
                         + "".join(f"<td>{_e(f)}</td>" for f in floors) + "<td></td>" * 4 + "</tr>")
        parts.append("</tbody></table><ul class='notes'>")
        parts += [f"<li>{_e(note)}</li>" for note in table_notes(table)]
        parts.append("</ul><div class='plots'>")
        for caption, src in _plots(table):
            parts.append(f"<figure><img alt='{_e(caption)}' src='{src}'><figcaption>{_e(caption)}</figcaption></figure>")
        parts.append("</div><div class='samples'>")
        for r in table.rows:
            src = _file_png(r.source.directory, r.job.files.get("samples_png"))
            if src:
                parts.append(f"<figure><img alt='samples of {_e(r.model)}' src='{src}' width='200'>"
                             f"<figcaption>{_e(r.model)}</figcaption></figure>")
        parts.append("</div>")
    parts.append(f"<script>{JS}</script></body></html>")
    return "\n".join(parts)


def _html_row(table: Table, r: Row, rank: str) -> str:
    j = r.job
    name = j.model + (f" ({r.reference})" if r.reference else "")
    cells = [f"<td data-v='{_e(r.rank[0] if r.rank else '')}'>{_e(rank)}</td>",
             f"<td class='l model' data-v='{_e(j.model)}'>{_e(name)}</td>",
             f"<td class='l' data-v='{_e(j.family)}'>{_e(j.family)}</td>",
             f"<td class='l' data-v='{_e(j.plugin)}'>{_e(j.plugin)} {_e(j.plugin_version)}</td>"]
    for c in table.columns:
        cell = r.cells.get(c.label)
        v = number(cell.value.value) if cell else None
        cells.append(f"<td data-v='{'' if v is None else json.dumps(v)}'>{_e(cell_text(cell))}</td>")
    p = safe_perf_summary(j)
    for key, fmt in (("ort_p50_ms_b1", "{:.3f}"), ("ort_best_throughput", "{:,.0f}")):
        v = number(p[key])
        cells.append(f"<td data-v='{'' if v is None else json.dumps(v)}'>{fmt_num(v, fmt)}</td>")
    cells.append(f"<td class='l' data-v=''>{_e(r.provenance)}</td>")
    cells.append(f"<td class='l' data-v=''><code>{_e(r.source.run.command)}</code></td>")
    return f"<tr class='{'ref' if r.reference else 'ranked'}'>" + "".join(cells) + "</tr>"
