"""Reports of a ``genbench limits`` study: plots of quality against each axis and a Markdown section.

Everything here reads a :class:`~genbench.limits.LimitsResult` (``limits.json``) only.
:func:`render_limits_markdown` returns the section ``limits.md`` holds, for ``report.md`` or a leaderboard
page to include (``genbench leaderboard --limits DIR``); :func:`limits_figures` draws one matplotlib figure per
axis, which :func:`plot_limits` saves as PNG and the HTML leaderboard inlines as SVG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping

from ..text import plural, points_text
from . import arrow, md_escape as _esc

PLOTS = {"quantity": "limits-quantity.png", "quality": "limits-quality.png", "compute": "limits-compute.png"}
REPORT = "limits.md"
MEMORIZATION_METRICS = ("copy-ct", "copy-rate", "copy-rate-test", "tstr")


def _mv(point: Any, metric: str) -> Mapping[str, Any]:
    return point.quality.get(metric) or {}


def _half(mv: Mapping[str, Any]) -> float | None:
    ci = mv.get("ci95")
    return None if not ci else (ci[1] - ci[0]) / 2


def _cell(mv: Mapping[str, Any]) -> str:
    if not mv or mv.get("value") is None:
        return "–"
    from ..text import plain

    half = _half(mv)
    return f"{mv['value']:.4g}" + (f" ± {plain(half)}" if half is not None else "")


def _floor(result: Any, metric: str) -> float | None:
    for p in result.points:
        f = _mv(p, metric).get("floor")
        if f is not None:
            return float(f)
    return None


def _x_label(result: Any, axis: str) -> str:
    unit = {"text": "training bytes", "points": "training points"}.get(result.task_kind, "training images")
    return {"quantity": f"{unit} (log scale)", "quality": "training examples replaced by noise (%)",
            "compute": "training FLOPs (estimate, log scale)"}[axis]


def limits_figures(result: Any) -> Iterator[tuple[str, Any]]:
    """(axis, matplotlib figure) for each axis with a point to draw: the headline metric, mean and 95%
    t-interval over seeds, the baseline dashed, the floor dotted. The caller saves and closes each figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = result.headline.get("metric")
    if not metric:
        return
    floor = _floor(result, metric)
    names = list(result.models) + ([result.baseline] if result.baseline else [])
    for axis in PLOTS:
        fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
        drawn = False
        use_flops = axis == "compute" and all(p.flops for m in result.models for p in result.curve(axis, m))
        for i, model in enumerate(names):
            curve = [p for p in result.curve(axis, model) if _mv(p, metric).get("value") is not None]
            if not curve:
                continue
            if axis == "quantity":
                xs = [p.train_examples for p in curve]
            elif axis == "quality":
                xs = [100 * p.x for p in curve]
            else:
                s = (result.axes["compute"].get("reference_steps") or {}).get(model) or 1
                xs = [p.flops if use_flops else p.x * s for p in curve]
            ys = [_mv(p, metric)["value"] for p in curve]
            err = [_half(_mv(p, metric)) or 0.0 for p in curve]
            style = {"linestyle": "--", "color": "0.4"} if model == result.baseline else {"color": f"C{i}"}
            ax.errorbar(xs, ys, yerr=err, marker="o", ms=4, capsize=3, label=model, **style)
            drawn = True
        if axis == "compute" and result.baseline:  # the baseline's budget does not change: its reference value
            ref = next((p for p in result.curve("quantity", result.baseline) if p.x == 1.0), None)
            if ref is not None and _mv(ref, metric).get("value") is not None:
                ax.axhline(_mv(ref, metric)["value"], linestyle="--", color="0.4", label=f"{result.baseline}")
        if floor is not None:
            ax.axhline(floor, linestyle=":", color="0.6", label="floor (real data)")
        if not drawn:
            plt.close(fig)
            continue
        if axis in ("quantity", "compute"):
            ax.set_xscale("log")
        ax.set_xlabel(_x_label(result, axis) if axis != "compute" or use_flops else "training steps (log scale)")
        unit = result.headline.get("unit")
        ax.set_ylabel(f"{metric}{f' ({unit})' if unit else ''} {arrow(bool(result.headline.get('higher_is_better')))}")
        against = {"quantity": "training data", "quality": "corruption", "compute": "compute"}[axis]
        ax.set_title(f"{result.task}: {metric} against {against}", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        yield axis, fig


def plot_limits(result: Any, directory: Path) -> dict[str, str]:
    """One PNG per axis in ``directory`` (:func:`limits_figures`); returns {axis: file name}."""
    import matplotlib.pyplot as plt

    files: dict[str, str] = {}
    for axis, fig in limits_figures(result):
        try:
            fig.savefig(Path(directory) / PLOTS[axis])
        finally:
            plt.close(fig)
        files[axis] = PLOTS[axis]
    return files


def render_limits_markdown(result: Any, plots: Mapping[str, str] | None = None, level: int = 2) -> str:
    """The study as a Markdown section: statements, one table per axis (headline metric, mean ± 95%
    t-interval half-width over seeds, baseline and floor beside it), the augmentation gain, and the
    memorisation and train-on-synthetic figures at the reference point. ``plots``: {axis: image path}."""
    h = "#" * level
    if plots is None:
        plots = {axis: name for axis in PLOTS if (name := (result.files or {}).get(f"plot_{axis}"))}
    metric = result.headline.get("metric")
    lines = [f"{h} Limits of {', '.join(_esc(m) for m in result.models)} on `{_esc(result.task)}`", "",
             f"Profile {_esc(result.profile)}, {plural(len(result.seeds), 'training seed')} per point "
             f"({', '.join(map(str, result.seeds))}); every point is an ordinary genbench run without timing. "
             f"Study `{_esc(result.limits_id)}`, genbench {_esc(result.genbench_version)}, "
             f"{'finished ' + _esc(result.finished_at) if result.finished_at else 'not finished'}.", ""]
    if not metric:
        return "\n".join(lines + ["No quality metric was reported at the reference point.", ""])
    hib = bool(result.headline.get("higher_is_better"))
    if result.statements:
        lines += [f"{h}# What it shows", ""] + [f"- {_esc(s['text'])}" for s in result.statements] + [""]
    for w in result.warnings:
        lines.append(f"> {_esc(w)}")
    if result.warnings:
        lines.append("")
    floor = _floor(result, metric)
    head_metric = f"{_esc(metric)} {arrow(hib)}"
    names = list(result.models) + ([result.baseline] if result.baseline else [])
    axes = {"quantity": "Data quantity", "quality": "Data quality", "compute": "Compute"}
    for axis, title in axes.items():
        rows = _axis_rows(result, axis, names, metric)
        if not rows:
            continue
        lines += [f"{h}# {title}", "", _axis_note(result, axis), ""]
        cols = [_axis_column(result, axis)] + ([] if axis != "compute" else ["steps", "est. FLOPs", "train s"]) \
            + [f"{_esc(m)} {head_metric}" for m in (result.models if axis == "compute" else names)] + ["floor"]
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for label, extra, cells in rows:
            lines.append("| " + " | ".join([label, *extra, *cells, _num(floor)]) + " |")
        lines.append("")
        if axis in plots:
            lines += [f"![{_esc(metric)} against {axis}]({plots[axis]})", ""]
    if result.augmentation:
        lines += [f"{h}# Samples as data: augmentation gain", "",
                  "Accuracy on the real test split of a fixed classifier trained on k real training images "
                  "(class-balanced draws), alone and with the model's samples added (labelled by the task's "
                  "extractor); the gain is the difference of the two accuracies in percentage points (pp), ± its "
                  "standard error over classifier draws × training seeds.", "",
                  "| model | k real | real only | real + samples | gain |", "|---|---|---|---|---|"]
        for row in result.augmentation:
            lines.append(f"| {_esc(row['model'])} | {row['k']} | {row['real_accuracy']:.1%} | "
                         f"{row['augmented_accuracy']:.1%} (+{row['generated']:,}) | "
                         f"{points_text(row['gain'], row.get('gain_stderr'))} |")
        lines.append("")
    memo = [m for m in MEMORIZATION_METRICS if any(m in p.quality for p in result.points)]
    if memo:
        lines += [f"{h}# Memorisation and train-on-synthetic at the reference point", "",
                  "Value (held-out real data's value in brackets); a flag says why a model is marked.", "",
                  "| model | " + " | ".join(f"{_esc(m)} {_arrow_of(result, m)}" for m in memo) + " | flags |",
                  "|---|" + "---|" * (len(memo) + 1)]
        for model in names:
            ref = next((p for p in result.curve("quantity", model) if p.x == 1.0), None)
            if ref is None:
                continue
            cells = [_cell(_mv(ref, m)) + (f" ({_mv(ref, m)['floor']:.3g})" if _mv(ref, m).get("floor") is not None
                                           else "") for m in memo]
            flags = "; ".join(_esc((_mv(ref, m).get("params") or {}).get("flag")) for m in memo
                              if (_mv(ref, m).get("params") or {}).get("flag"))
            lines.append(f"| {_esc(model)} | " + " | ".join(cells) + f" | {flags or '–'} |")
        lines.append("")
    lines += [f"Each cell: mean ± half-width of the 95% Student-t interval over the {plural(len(result.seeds), 'seed')}; the "
              f"scored n, held-out data and floor (real data's value at that n) are the same at every point. "
              f"Runs behind every number: `runs/` in the study's directory `{_esc(result.limits_id)}/`.", ""]
    return "\n".join(lines)


def _arrow_of(result: Any, metric: str) -> str:
    """The metric's direction as its values record it: ↑, ↓, or →0 (copy-ct: two-sided)."""
    mv = next((p.quality[metric] for p in result.points if metric in p.quality), {})
    hib = mv.get("higher_is_better")
    return arrow(hib if isinstance(hib, bool) else None, mv.get("target"))


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.4g}"


def _axis_column(result: Any, axis: str) -> str:
    unit = {"text": "training bytes", "points": "training points"}.get(result.task_kind, "training images")
    return {"quantity": unit, "quality": "corrupted", "compute": "× S"}[axis]


def _axis_note(result: Any, axis: str) -> str:
    a = result.axes.get(axis) or {}
    if axis == "quantity":
        return f"Subsets of the training split: {_esc(a.get('subsets', ''))}."
    if axis == "quality":
        return f"Corruption: {_esc(a.get('noise', ''))}."
    steps = ", ".join(f"{_esc(m)} S = {s:,}" for m, s in (a.get("reference_steps") or {}).items() if s)
    flops = {m: f for m, f in (result.flops or {}).items()}
    method = next((f.get("method") for f in flops.values() if f.get("method")), "")
    errors = "; ".join(f"{_esc(m)}: {_esc(f['error'])}" for m, f in flops.items() if f.get("error"))
    return (f"Training budgets f × S, S the steps the reference job reported ({steps or 'none'}); the baseline "
            f"does not depend on it. FLOPs: {_esc(method)}." + (f" Not estimated: {errors}." if errors else "")
            + " Training seconds as recorded when the model was trained (jobs ran side by side).")


def _axis_rows(result: Any, axis: str, names: list[str], metric: str) -> list[tuple[str, list[str], list[str]]]:
    shown = list(result.models) if axis == "compute" else names
    xs = sorted({p.x for p in result.points if p.axis == axis})
    rows = []
    for x in xs:
        at = {p.model: p for p in result.points if p.axis == axis and p.x == x}
        if not any(m in at for m in shown):
            continue
        cells = [(_cell(_mv(at[m], metric)) if at[m].status == "ok" else f"{at[m].status}") if m in at else "–"
                 for m in shown]
        any_point = next(p for p in at.values())
        extra: list[str] = []
        if axis == "quantity":
            label = f"{any_point.train_examples:,} ({_fraction(x)})" if any_point.train_examples else _fraction(x)
        elif axis == "quality":
            label = f"{x:.0%}"
        else:
            label = f"{x:g}"
            models_here = [at[m] for m in result.models if m in at]
            extra = ["; ".join(_steps(p) for p in models_here),
                     "; ".join(f"{p.flops:.2g}" if p.flops else "–" for p in models_here),
                     "; ".join(f"{p.train_seconds:.1f}" if p.train_seconds is not None else "–" for p in models_here)]
        rows.append((label, extra, cells))
    return rows


def _steps(point: Any) -> str:
    reported = sorted({s for s in point.steps_reported if s is not None})
    return "/".join(f"{s:,}" for s in reported) if reported else (f"{point.steps:,}" if point.steps else "–")


def _fraction(x: float) -> str:
    from fractions import Fraction

    f = Fraction(x).limit_denominator(1000)
    return "all" if f == 1 else str(f)


def write_limits_report(result: Any, directory: Path) -> dict[str, str]:
    """Plots and ``limits.md`` in ``directory``; returns {what: file name} for ``LimitsResult.files``."""
    from ..results import atomic_write_text

    directory = Path(directory)
    plots = plot_limits(result, directory)
    text = render_limits_markdown(result, plots, level=1)
    atomic_write_text(directory / REPORT, text)
    return {**{f"plot_{axis}": name for axis, name in plots.items()}, "report": REPORT}


__all__ = ["PLOTS", "REPORT", "limits_figures", "plot_limits", "render_limits_markdown", "write_limits_report"]
