"""Role ``sample``: noise → samples in one call (GANs, VAE decoders, flows' inverse, any one-shot generator)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import BundleError
from ...types import GraphSpec, OnnxBundle
from .. import draw_inputs, make_session, prepare_data
from ..checks import bound_text, check_outputs, check_samples_fit_task, shape_text
from .base import DRAW_THREADS, SAMPLE_BATCH, Generation, Role


class SampleRole(Role):
    name = "sample"
    generates = True
    one_line = "noise [batch, ...] -> samples [batch, *task shape], one call per batch"

    def contract(self, graph: GraphSpec, dataset: Any = None) -> None:
        leaked = [t.name for t in graph.inputs if t.source == "data"]
        if leaked:
            raise BundleError(f"Graph 'sample' input {leaked[0]!r} has source 'data': a sample graph must not take "
                              "the test split (its samples would be scored against the data they came from); "
                              "draw its inputs from 'normal', 'uniform' or 'tokens'.")
        if dataset is not None and dataset.kind in ("image", "points"):
            fits_task(graph, dataset)

    def check_values(self, graph: GraphSpec, outputs: list[np.ndarray], dataset: Any = None) -> None:
        check_samples_fit_task(graph, outputs[0], dataset)

    def draw(self, bundle: OnnxBundle, graph: GraphSpec, device: str, n: int, seed: int, dataset: Any,
             data: np.ndarray | None = None) -> np.ndarray:
        self.contract(graph)  # validation refuses a data input too; never score test data
        session = make_session(bundle.directory / graph.path, device, DRAW_THREADS)
        rng = np.random.default_rng(seed)
        names = [o.name for o in graph.outputs]
        chunks = []
        data = prepare_data(graph, data)
        for start in range(0, n, SAMPLE_BATCH):
            b = min(SAMPLE_BATCH, n - start)
            outs = session.run(names, draw_inputs(graph, b, rng, data))
            check_outputs(graph.role, outs, graph.outputs, {"batch": b})
            chunks.append(outs[0])
            check_samples_fit_task(graph, chunks[-1], dataset)
        return np.concatenate(chunks).astype(np.float32)

    def generation(self, bundle: OnnxBundle, graph: GraphSpec, dataset: Any, seed: int, profile: Any) -> Generation:
        return Generation("sample", 1, "one call of the sample graph on B pre-drawn inputs: B samples")


def fits_task(graph: GraphSpec, dataset: Any) -> None:
    """A generating graph draws the task's examples: its first output has the task's shape (an axis left
    symbolic is checked on the real outputs, :func:`check_samples_fit_task`), and on image tasks its declared
    value range lies inside the task's (what the metrics and feature extractors take)."""
    out, want = graph.outputs[0], tuple(dataset.shape)
    if len(out.shape) != len(want) + 1 or any(isinstance(d, int) and d != w for d, w in zip(out.shape[1:], want)):
        raise BundleError(f"Graph '{graph.role}' output '{out.name}' is declared {shape_text(out.shape)}; task "
                          f"'{dataset.name}' takes samples {shape_text(('batch', *want))}.")
    lo, hi = dataset.value_range
    if graph.role == "sample" and dataset.kind == "image" and (
            (out.low is not None and out.low < lo) or (out.high is not None and out.high > hi)):
        declared = f"[{bound_text(out.low)}, {bound_text(out.high)}]"
        hint = " (a tanh output? end the graph with (x + 1) / 2)" if (out.low, out.high) == (-1.0, 1.0) else ""
        raise BundleError(f"Graph 'sample' output '{out.name}' is declared in {declared}, outside task "
                          f"'{dataset.name}'s value range [{lo:g}, {hi:g}]{hint}; rescale it in the graph.")


ROLE = SampleRole()

__all__ = ["ROLE", "SampleRole", "fits_task"]
