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

from ..types import JobResult, RunResult
from . import perf_summary
from .leaderboard import merge, ranked

CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3;cursor:pointer}
td.l,th.l{text-align:left}figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-size:12px}
code{font-size:11px}.plots img{max-width:440px}"""

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
    if not run_dir or not rel:
        return None
    path = (run_dir / rel).resolve()
    if run_dir.resolve() not in path.parents or not path.is_file():
        return None  # never embed a file outside the run directory
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points (throughput ↑, quality value ↓) that no other point beats on both."""
    front = []
    for i, (t, q) in enumerate(points):
        if not any((t2 >= t and q2 <= q) and (t2 > t or q2 < q) for j, (t2, q2) in enumerate(points) if j != i):
            front.append(i)
    return front


def _plots(task: str, rows: list[tuple[JobResult, RunResult]], metric: str | None) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    speed = {id(j): perf_summary(j) for j, _ in rows}
    if metric:
        # per generated sample only: a forward pass of one family beside a whole sample of another would
        # compare different units
        pts = [(j, speed[id(j)]["ort_best_throughput"], j.quality[metric]) for j, _ in rows
               if metric in j.quality and j.quality[metric].value is not None
               and speed[id(j)]["ort_best_throughput"] and speed[id(j)]["unit"] == "samples/s"]
        if pts:
            higher = pts[0][2].higher_is_better
            xy = [(t, -mv.value if higher else mv.value) for _, t, mv in pts]
            front = set(_pareto(xy))
            fig, ax = plt.subplots(figsize=(5, 3.5))
            for i, (j, t, mv) in enumerate(pts):
                flagged = not speed[id(j)]["valid"] or speed[id(j)]["noisy"]
                ax.scatter(t, mv.value, c="C3" if i in front else "C0", marker="x" if flagged else "o", zorder=3)
                ax.annotate(j.model + (" (timing not valid)" if flagged else ""), (t, mv.value), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
            fx = sorted((pts[i][1], pts[i][2].value) for i in front)
            ax.plot([p[0] for p in fx], [p[1] for p in fx], "C3--", lw=1, label="Pareto front")
            ax.set(xscale="log", xlabel="generated samples/s, ONNX Runtime at its best batch",
                   ylabel=f"{metric} ({'higher' if higher else 'lower'} is better)", title=f"{task}: quality vs speed")
            ax.legend(fontsize=7)
            out.append(("quality against speed per generated sample (Pareto front in red; x: timing flagged)",
                        _png(fig)))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    drawn = False
    for j, _ in rows:
        for runtime, style in (("onnxruntime", "-o"), ("torch-eager", "--x")):
            recs = sorted((p.batch_size, p.latency_ms.get("p50") / p.batch_size) for p in j.performance
                          if p.runtime == runtime and p.scenario == "generate" and p.latency_ms.get("p50"))
            if recs:
                ax.plot([r[0] for r in recs], [r[1] for r in recs], style, label=f"{j.model} {runtime}", ms=3)
                drawn = True
    if drawn:
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="ms per generated sample (p50 / batch)",
               title=f"{task}: cost per sample")
        ax.legend(fontsize=6)
        out.append(("cost per generated sample against batch size", _png(fig)))
    else:
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    drawn = False
    for j, _ in rows:
        for name, values in ((j.train or {}).get("loss_history") or {}).items():
            if len(values) > 1:
                every = (j.train or {}).get("log_every", 1)
                ax.plot([every * (i + 1) for i in range(len(values))], values, label=f"{j.model} {name}", lw=1)
                drawn = True
    if drawn:
        ax.set(xlabel="step", ylabel="loss", title=f"{task}: training losses")
        ax.legend(fontsize=6)
        out.append(("training loss curves", _png(fig)))
    else:
        plt.close(fig)
    return out


def render(runs: list[RunResult], tasks: tuple[str, ...] = (), run_dirs: dict[str, Path] | None = None) -> str:
    run_dirs = run_dirs or {}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>genbench leaderboard</title>"
             f"<style>{CSS}</style></head><body><h1>genbench leaderboard</h1>",
             "<p>Merged from " + ", ".join(f"<code>{_e(r.run_id)}</code>" for r in runs)
             + ". Click a column to sort. Every row links to the command that reproduces it.</p>"]
    for task, rows in merge(runs, tasks).items():
        metrics, rows = ranked(rows)
        parts.append(f"<h2>{_e(task)}</h2><table class='sortable' id='task-{_e(task)}'><thead><tr>"
                     "<th>#</th><th class='l'>model</th><th class='l'>family</th><th class='l'>plugin</th>")
        for m in metrics:
            mv = next(j.quality[m] for j, _ in rows if m in j.quality)
            parts.append(f"<th>{_e(m)}{f' ({_e(mv.unit)})' if mv.unit else ''} {'↑' if mv.higher_is_better else '↓'}</th>")
        parts.append("<th>ORT p50 ms @b1 ↓</th><th>ORT best /s ↑</th><th class='l'>reproduce</th></tr></thead><tbody>")
        for rank, (j, run) in enumerate(rows, 1):
            cells = [f"<td data-v='{rank}'>{rank}</td>", f"<td class='l model' data-v='{_e(j.model)}'>{_e(j.model)}</td>",
                     f"<td class='l' data-v='{_e(j.family)}'>{_e(j.family)}</td>",
                     f"<td class='l' data-v='{_e(j.plugin)}'>{_e(j.plugin)} {_e(j.plugin_version)}</td>"]
            for m in metrics:
                mv = j.quality.get(m)
                v = None if mv is None else mv.value
                err = None if mv is None else (mv.stderr if mv.stderr is not None else mv.std)
                text = "–" if v is None else f"{v:.4g}" + (f" ± {err:.2g}" if err else "")
                cells.append(f"<td data-v='{'' if v is None else json.dumps(v)}'>{_e(text)}</td>")
            p = perf_summary(j)
            for key, fmt in (("ort_p50_ms_b1", "{:.3f}"), ("ort_best_throughput", "{:,.0f}")):
                v = p[key]
                cells.append(f"<td data-v='{'' if v is None else json.dumps(v)}'>{'–' if v is None else fmt.format(v)}</td>")
            cells.append(f"<td class='l' data-v=''><code>{_e(run.command)}</code></td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table><div class='plots'>")
        for caption, src in _plots(task, rows, metrics[0] if metrics else None):
            parts.append(f"<figure><img alt='{_e(caption)}' src='{src}'><figcaption>{_e(caption)}</figcaption></figure>")
        parts.append("</div><div class='samples'>")
        for j, run in rows:
            src = _file_png(run_dirs.get(run.run_id), j.files.get("samples_png"))
            if src:
                parts.append(f"<figure><img alt='samples of {_e(j.model)}' src='{src}' width='200'>"
                             f"<figcaption>{_e(j.model)}</figcaption></figure>")
        parts.append("</div>")
    parts.append(f"<script>{JS}</script></body></html>")
    return "\n".join(parts)
