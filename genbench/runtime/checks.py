"""The checks every role's outputs pass, whoever calls them: shapes, finiteness, declared ranges and the task's
own shape and value range (what the metrics and feature extractors take)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BundleError
from ..types import GraphSpec, TensorSpec

RANGE_TOL = 1e-5
CHECK_BATCH_SIZES = (1, 3, 8)  # three sizes: exporters can silently fix a symbolic axis


def shape_text(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def bound_text(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:g}"


def check_outputs(role: str, outputs: list[np.ndarray], specs: tuple[TensorSpec, ...], sizes: dict[str, int]) -> None:
    """Shapes, dtypes, finiteness and declared ranges of one run's outputs."""
    for out, s in zip(outputs, specs):
        want = s.concrete_shape(sizes) if all(not isinstance(d, str) or d in sizes for d in s.shape) else None
        if want is not None and tuple(out.shape) != want:
            raise BundleError(f"Graph '{role}' output '{s.name}' has shape {shape_text(out.shape)} at batch {sizes['batch']}, "
                              f"its spec declares {shape_text(want)}.")
        if np.issubdtype(out.dtype, np.floating):
            bad = ~np.isfinite(out)
            if bad.any():
                raise BundleError(f"Graph '{role}' output '{s.name}' has {int(bad.sum())} non-finite values (NaN/inf) "
                                  f"of {out.size} at batch {sizes['batch']}.")
        if s.low is not None and out.size and float(out.min()) < s.low - RANGE_TOL:
            raise BundleError(f"Graph '{role}' output '{s.name}' reaches {float(out.min()):.4g}, below its declared low {s.low}.")
        if s.high is not None and out.size and float(out.max()) > s.high + RANGE_TOL:
            raise BundleError(f"Graph '{role}' output '{s.name}' reaches {float(out.max()):.4g}, above its declared high {s.high}.")


def check_samples_fit_task(graph: GraphSpec, samples: np.ndarray, dataset: Any) -> None:
    """What a sample graph returned is the task's: its shape (image and points tasks), and on image tasks values
    in the task's range, declared or not (a graph with no declared range is still never scored on values the
    task cannot hold)."""
    if dataset is None or dataset.kind not in ("image", "points"):
        return
    name, want = graph.outputs[0].name, tuple(dataset.shape)
    if tuple(samples.shape[1:]) != want:
        raise BundleError(f"Graph '{graph.role}' output '{name}' has shape {shape_text(samples.shape)}; task "
                          f"'{dataset.name}' takes samples {shape_text(('batch', *want))}.")
    lo, hi = dataset.value_range
    if dataset.kind != "image" or not samples.size:
        return
    bottom, top = float(samples.min()), float(samples.max())
    if bottom < lo - RANGE_TOL or top > hi + RANGE_TOL:
        raise BundleError(f"Graph '{graph.role}' output '{name}' has values in [{bottom:.4g}, {top:.4g}], outside "
                          f"task '{dataset.name}'s value range [{lo:g}, {hi:g}]; rescale it in the graph (and "
                          "declare low/high).")

__all__ = ["CHECK_BATCH_SIZES", "RANGE_TOL", "bound_text", "check_outputs", "check_samples_fit_task", "shape_text"]
