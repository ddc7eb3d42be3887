"""Role ``denoise``: (x_t, t[, label]) → the predicted noise ε (or v) of a diffusion model; genbench samples.

The graph is the network alone. Its attrs declare what it predicts and its noise schedule; genbench owns the
samplers (:mod:`genbench.runtime.diffusion`: DDPM ancestral over all T steps, DDIM with η = 0 over S steps), so
the number of steps is genbench's choice and every diffusion model is sampled, scored and timed the same way.

Inputs: one ``x`` of source ``normal`` and shape ``[batch, *task shape]`` (x_t, in the graph's space), one of
source ``timestep`` and shape ``[batch]`` (t, int64 or float32, ``vocab`` = T), and optionally class labels of
source ``tokens`` and shape ``[batch]`` (drawn uniformly, once per sample). Output: one, the shape of ``x``.

Attrs: ``prediction`` (``epsilon``, the default, or ``v``); the schedule, ``schedule`` = ``linear`` (with
``beta_start``, ``beta_end``; default 1e-4 and 0.02) or ``cosine``, with ``steps`` = T; or ``betas``, a list of
T values; ``scale``: ``task`` (the graph works on the task's values, the default) or ``symmetric`` (on them
mapped linearly from the task's range to [−1, 1], as DDPM does for images).

Samples are quality-scored with DDIM at :data:`SCORE_STEPS` steps (T when T is smaller); on bounded (image)
tasks x̂_0 is clipped to the range at every step and the final samples to the task's range.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...errors import BundleError
from ...types import GraphSpec, OnnxBundle
from .. import diffusion
from ..checks import check_samples_fit_task, shape_text
from .base import SAMPLE_BATCH, Generation, GraphFn, Role, session_fn
from .sample import fits_task

#: DDIM steps of the samples every metric is computed on (the schedule's T when T is smaller)
SCORE_STEPS = 50
#: the step counts of the quality-against-steps sweep (each at most T; T itself is added, with DDPM too)
SWEEP_STEPS = (10, 25, 50, 100, 250)
#: the metric of the sweep, by task kind: FD on images, the k-NN estimate of KL(samples || data) on points
SWEEP_METRICS = {"image": "fd", "points": "knn-kl"}


class DenoiseRole(Role):
    name = "denoise"
    sources = ("normal", "timestep", "tokens")
    generates = True
    one_line = "(x_t [batch, *task shape], t [batch]) -> predicted noise (or v) [batch, *task shape]; genbench samples"

    def contract(self, graph: GraphSpec, dataset: Any = None) -> None:
        try:
            schedule = diffusion.schedule_from_attrs(graph.attrs)
        except ValueError as exc:
            raise BundleError(f"Graph 'denoise': {exc}.") from None
        scale = graph.attrs.get("scale", "task")
        if scale not in diffusion.SCALES:
            raise BundleError(f"Graph 'denoise': attrs['scale'] must be one of {list(diffusion.SCALES)}, got {scale!r}.")
        x, t, labels = split_inputs(graph)
        if t.vocab != schedule.steps:
            raise BundleError(f"Graph 'denoise' input '{t.name}' takes t in [0, {t.vocab}) (its vocab); its schedule "
                              f"has T = {schedule.steps} steps: make them agree.")
        if len(graph.outputs) != 1 or tuple(graph.outputs[0].shape) != tuple(x.shape):
            raise BundleError(f"Graph 'denoise' must have one output shaped like its input '{x.name}' "
                              f"{shape_text(x.shape)}; it declares "
                              f"{', '.join(shape_text(o.shape) for o in graph.outputs)}.")
        if dataset is not None and dataset.kind in ("image", "points"):
            fits_task(graph, dataset)
            want = tuple(dataset.shape)
            if any(isinstance(d, int) and d != w for d, w in zip(x.shape[1:], want)) or len(x.shape) != len(want) + 1:
                raise BundleError(f"Graph 'denoise' input '{x.name}' is declared {shape_text(x.shape)}; task "
                                  f"'{dataset.name}' takes samples {shape_text(('batch', *want))}.")
        elif dataset is not None:
            raise BundleError(f"Graph 'denoise' draws images or points; task '{dataset.name}' is {dataset.kind}.")

    def draw(self, bundle: OnnxBundle, graph: GraphSpec, device: str, n: int, seed: int, dataset: Any,
             data: np.ndarray | None = None, *, sampler: str = "ddim", steps: int | None = None) -> np.ndarray:
        """``n`` samples of the task, by ``sampler`` at ``steps`` (default: DDIM at :func:`score_steps`)."""
        self.contract(graph, dataset)
        return draw_with(session_fn(bundle, graph, device), graph, dataset, n, seed, sampler=sampler,
                         steps=score_steps(graph) if steps is None and sampler == "ddim" else steps)

    def generation(self, bundle: OnnxBundle, graph: GraphSpec, dataset: Any, seed: int, profile: Any) -> Generation:
        steps = score_steps(graph)
        T = diffusion.schedule_from_attrs(graph.attrs).steps
        what = (f"genbench's DDIM loop (eta = 0): one sample = {steps} denoise-graph calls of the schedule's "
                f"T = {T}, x_T drawn and the update arithmetic included (the steps the samples were scored at)")

        def run(fn: GraphFn, batch: int, rng: np.random.Generator) -> np.ndarray:
            return _sample(fn, graph, dataset, batch, rng, "ddim", steps)

        return Generation("denoise", steps, what, run)

    def describe(self, graph_facts: Any, dataset: Any, inputs: list[dict], outputs: list[dict]) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "prediction": graph_facts.get("prediction", "what it predicts", "epsilon|v"),
            "schedule": graph_facts.get("schedule", "its noise schedule", "linear|cosine"),
            "steps": graph_facts.number("steps", int, "T, its number of diffusion steps", "1000"),
            "scale": graph_facts.get("scale") or "task"}
        for key in ("beta_start", "beta_end"):
            value = graph_facts.number(key, float)
            if value is not None:
                attrs[key] = value
        for t in inputs:
            t["source"] = graph_facts.get(f"inputs.{t['name']}.source", f"the role of input '{t['name']}'",
                                          "normal|timestep|tokens")
            if t["source"] == "timestep":
                t["vocab"] = attrs["steps"]
            if t["source"] == "tokens":
                t["vocab"] = graph_facts.number(f"inputs.{t['name']}.vocab", int,
                                                f"the number of classes of label input '{t['name']}'", "10")
        return attrs


def split_inputs(graph: GraphSpec) -> tuple[Any, Any, list[Any]]:
    """(x_t, t, label inputs) of a denoise graph; BundleError when they are not one noise input, one timestep
    input and any number of class-label inputs, each with a batch axis first."""
    xs = [t for t in graph.inputs if t.source == "normal"]
    ts = [t for t in graph.inputs if t.source == "timestep"]
    labels = [t for t in graph.inputs if t.source == "tokens"]
    other = [t for t in graph.inputs if t.source not in ("normal", "timestep", "tokens")]
    if len(xs) != 1 or len(ts) != 1 or other:
        raise BundleError("Graph 'denoise' takes one input x_t (source 'normal', [batch, *sample shape]), one t "
                          "(source 'timestep', [batch]) and optional class labels (source 'tokens', [batch]); it "
                          f"declares {', '.join(f'{t.name} ({t.source})' for t in graph.inputs)}.")
    t = ts[0]
    if len(t.shape) != 1 or t.dtype not in ("int64", "float32"):
        raise BundleError(f"Graph 'denoise' input '{t.name}' must be t [batch], int64 or float32; it is "
                          f"{t.dtype} {shape_text(t.shape)}.")
    for lab in labels:
        if len(lab.shape) != 1 or lab.dtype not in ("int64", "int32"):
            raise BundleError(f"Graph 'denoise' label input '{lab.name}' must be integers [batch]; it is "
                              f"{lab.dtype} {shape_text(lab.shape)}.")
    if xs[0].dtype != "float32":
        raise BundleError(f"Graph 'denoise' input '{xs[0].name}' must be float32; it is {xs[0].dtype}.")
    return xs[0], t, labels


def score_steps(graph: GraphSpec) -> int:
    """The DDIM steps the metrics are computed at: :data:`SCORE_STEPS`, or T when T is smaller."""
    return min(SCORE_STEPS, diffusion.schedule_from_attrs(graph.attrs).steps)


def sweep_plan(graph: GraphSpec) -> list[tuple[str, int]]:
    """(sampler, steps) of the quality-against-steps sweep: DDIM at each of :data:`SWEEP_STEPS` below T and at T,
    and DDPM at T."""
    T = diffusion.schedule_from_attrs(graph.attrs).steps
    return [("ddim", s) for s in SWEEP_STEPS if s < T] + [("ddim", T), ("ddpm", T)]


def draw_with(fn: GraphFn, graph: GraphSpec, dataset: Any, n: int, seed: int, *, sampler: str = "ddim",
              steps: int | None = None) -> np.ndarray:
    """``n`` samples in the task's space, :data:`SAMPLE_BATCH` per loop, each batch checked against the task."""
    rng = np.random.default_rng(seed)
    chunks = []
    for start in range(0, n, SAMPLE_BATCH):
        b = min(SAMPLE_BATCH, n - start)
        out = _sample(fn, graph, dataset, b, rng, sampler, steps)
        check_samples_fit_task(graph, out, dataset)
        chunks.append(out)
    return np.concatenate(chunks).astype(np.float32)


def _sample(fn: GraphFn, graph: GraphSpec, dataset: Any, batch: int, rng: np.random.Generator, sampler: str,
            steps: int | None) -> np.ndarray:
    schedule = diffusion.schedule_from_attrs(graph.attrs)
    x_spec, t_spec, labels = split_inputs(graph)
    shape = tuple(dataset.shape)
    to_graph, to_task = diffusion.graph_space(graph.attrs.get("scale", "task"), dataset.value_range)
    bounded = dataset.kind == "image"
    clip = tuple(float(v) for v in to_graph(np.asarray(dataset.value_range, np.float64))) if bounded else None
    drawn = {lab.name: rng.integers(0, lab.vocab or 2, size=batch).astype(np.dtype(lab.dtype)) for lab in labels}
    t_dtype = np.dtype(t_spec.dtype)

    def call(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        feeds = {x_spec.name: x, t_spec.name: t.astype(t_dtype), **drawn}
        return fn(*[feeds[s.name] for s in graph.inputs])

    try:
        x = diffusion.sample(call, schedule, shape, batch, rng, sampler=sampler, steps=steps, clip=clip)
    except ValueError as exc:
        raise BundleError(f"Graph 'denoise': {exc}.") from None
    out = to_task(x)
    if bounded:
        out = np.clip(out, *dataset.value_range)
    return out.astype(np.float32)


def sweep(fn: GraphFn, graph: GraphSpec, dataset: Any, n: int, seed: int,
          score: Callable[[np.ndarray], float | None], clock: Callable[[], float],
          metric: str = "fd") -> list[dict[str, Any]]:
    """Quality against steps: for each (sampler, steps) of :func:`sweep_plan`, ``n`` samples drawn with the same
    seed and scored by ``score`` (``metric``: FD, or :data:`SWEEP_METRICS`' choice for the task), each row's value
    under the metric's name, with the drawing's wall time per sample (score process, one thread: a description
    of the trade-off, not a timing record)."""
    rows = []
    for sampler, steps in sweep_plan(graph):
        t0 = clock()
        x = draw_with(fn, graph, dataset, n, seed, sampler=sampler, steps=steps)
        seconds = clock() - t0
        rows.append({"sampler": sampler, "steps": steps, "n": n, "metric": metric, metric: score(x),
                     "draw_ms_per_sample": seconds * 1e3 / n})
    return rows


ROLE = DenoiseRole()

__all__ = ["DenoiseRole", "ROLE", "SCORE_STEPS", "SWEEP_METRICS", "SWEEP_STEPS", "draw_with", "score_steps",
           "split_inputs", "sweep",
           "sweep_plan"]
