"""What a graph role is: the interface each module of :mod:`genbench.runtime.roles` fills in.

A role says what its graphs promise beyond their own spec (its *contract*), at which sizes validation runs
them, how genbench draws the samples it scores from them (if they generate), how it computes a held-out
likelihood from them (if they have one) and what one generated sample is when it is timed. The harness,
validation, timing, ``run --onnx``, ``score``, ``check-plugin`` and the CLI's ``--role`` all go through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from ...types import GraphSpec, OnnxBundle
from .. import make_session
from ..checks import CHECK_BATCH_SIZES

#: a graph as a function of its inputs, in its declared order, returning its first output
GraphFn = Callable[..., np.ndarray]

SAMPLE_BATCH = 500  # rows per call when genbench draws samples
#: threads of every ONNX Runtime session that draws or scores: jobs run side by side, and quality numbers
#: must not depend on how many ran at once
DRAW_THREADS = 1


@dataclass(frozen=True)
class Generation:
    """What one generated sample of a job is, and how genbench makes it through the role's graph.

    ``run(fn, batch, rng)`` makes ``batch`` samples by calling ``fn`` (the graph on one runtime, a
    :data:`GraphFn`) ``steps`` times; None for a graph whose one call is the whole sample (``sample``: its
    forward records are the generate records)."""

    graph: str  # the role of the graph that generates
    steps: int  # graph calls per sample
    description: str
    run: Callable[[GraphFn, int, np.random.Generator], Any] | None = None


class Role:
    """One graph role. Subclasses set the class attributes and override what applies to them."""

    name: str = ""
    #: the symbolic axes of its tensors, in order (``onnx_model`` names a supplied graph's axes with them)
    axes: tuple[str, ...] = ("batch",)
    #: the input sources a supplied graph's inputs may declare (``--meta inputs.NAME.source=...``)
    sources: tuple[str, ...] = ("normal", "uniform", "tokens")
    #: genbench can draw the samples it scores from it; the first generating role a bundle has is used, in
    #: :data:`genbench.runtime.roles.GENERATORS` order
    generates: bool = False
    one_line: str = ""  # what its graph is, for error messages and ``--help``

    def contract(self, graph: GraphSpec, dataset: Any = None) -> None:
        """What the role promises beyond the graph's own spec, and that it fits the task; BundleError if not."""

    def check_sizes(self, graph: GraphSpec) -> list[tuple[int, dict[str, int]]]:
        """(batch, other axes' sizes) at which validation runs the graph."""
        return [(b, {}) for b in CHECK_BATCH_SIZES]

    def full_sizes(self, graph: GraphSpec) -> dict[str, int]:
        """Sizes of the graph's other symbolic axes for one full call (parity, timing, FLOP counts)."""
        return {}

    def check_values(self, graph: GraphSpec, outputs: list[np.ndarray], dataset: Any = None) -> None:
        """Values the role's outputs can never take (beyond the declared ranges)."""

    def draw(self, bundle: OnnxBundle, graph: GraphSpec, device: str, n: int, seed: int, dataset: Any,
             data: np.ndarray | None = None) -> np.ndarray:
        """``n`` samples of the task from the graph, every batch checked (generating roles only)."""
        raise NotImplementedError(f"role '{self.name}' does not generate")

    def sample_count(self, n: int, dataset: Any) -> int:
        """How many samples the role draws when ``n`` are asked (a loop of many calls may cap it)."""
        return n

    def likelihood(self, bundle: OnnxBundle, graph: GraphSpec, dataset: Any, device: str, seed: int,
                   threads: int | None) -> Any:
        """The held-out per-example NLLs (a :class:`genbench.metrics.Likelihood`), or None."""
        return None

    def generation(self, bundle: OnnxBundle, graph: GraphSpec, dataset: Any, seed: int, profile: Any) -> Generation | None:
        """The generate scenario timed for this graph, or None."""
        return None

    def describe(self, graph_facts: Any, dataset: Any, inputs: list[dict], outputs: list[dict]) -> dict[str, Any]:
        """The attrs of a graph supplied as an ONNX file (``run --onnx``), from its ``genbench.*`` metadata and
        ``--meta`` flags (``graph_facts``: :class:`genbench.onnx_model._Facts`); may fill in inputs' sources."""
        for t in inputs:
            t["source"] = graph_facts.get(f"inputs.{t['name']}.source", f"the distribution of input '{t['name']}'",
                                          "|".join(self.sources))
            if t["source"] == "tokens":
                t["vocab"] = graph_facts.number(f"inputs.{t['name']}.vocab", int,
                                                f"the vocabulary of token input '{t['name']}'", "256")
        return {}


def session_fn(bundle: OnnxBundle, graph: GraphSpec, device: str, threads: int | None = DRAW_THREADS) -> GraphFn:
    """The graph on ONNX Runtime as a :data:`GraphFn`."""
    return ort_graph_fn(make_session(bundle.directory / graph.path, device, threads), graph)


def ort_graph_fn(session: Any, graph: GraphSpec) -> GraphFn:
    names, out = [t.name for t in graph.inputs], graph.outputs[0].name
    return lambda *arrays: session.run([out], dict(zip(names, arrays)))[0]


def torch_graph_fn(module: Any, graph: GraphSpec, device: str = "cpu") -> GraphFn:
    """A torch module (or exported program) of the graph as a :data:`GraphFn`: its first output as float32."""
    import torch

    def fn(*arrays: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = module(*[torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays])
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.float().cpu().numpy()

    return fn


def roles_of(bundle: OnnxBundle) -> list[str]:
    return [g.role for g in bundle.graphs]


def feeds_fn(fn: GraphFn, graph: GraphSpec) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    """A :data:`GraphFn` called with a feeds dict."""
    return lambda feeds: fn(*[feeds[t.name] for t in graph.inputs])


__all__ = ["DRAW_THREADS", "Generation", "GraphFn", "Role", "SAMPLE_BATCH", "feeds_fn", "ort_graph_fn", "roles_of",
           "session_fn", "torch_graph_fn"]
