"""Role ``likelihood`` (older name ``elbo``): examples → one log-likelihood per example (exact, or a bound).

A VAE exports its ELBO (or an IWAE bound with ``attrs["importance_samples"] = k``); a normalising flow its
exact log-density (``attrs["bound"] = "exact"``). What the examples are is ``attrs["data"]``:

* ``continuous``: the task's values as they are (points; a continuous density of image pixels gets no
  bits/dim, it can be made arbitrarily small);
* ``binarized``: each pixel a Bernoulli(x) draw, fixed seed (a discrete likelihood, at most 1);
* ``dequantized``: pixels quantised to the task's L levels, then uniform noise: y = (k + u) / L, u ~ U[0, 1)^D,
  fixed seed (Theis, van den Oord and Bethge 2016, "A note on the evaluation of generative models", §3.1).
  The graph returns log p(y) of a density on [0, 1]^D; by Jensen's inequality −log P(k) ≤ −log p(y) + D log L,
  so genbench reports that upper bound on the discrete NLL, in its own column (``dequantized-L``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import BundleError
from ...metrics import Likelihood
from ...types import GraphSpec, OnnxBundle
from .. import BINARIZE_SEED, DEQUANTIZE_SEED, draw_input, make_session, prepare_data
from ..checks import RANGE_TOL, shape_text
from .base import Role

EVAL_BATCH = 250


def bound_of(graph: GraphSpec) -> str:
    """What a likelihood graph's output is: ``attrs["bound"]``, else ``elbo`` (k = 1) or ``iwae`` (k > 1)."""
    if "bound" in graph.attrs:
        return str(graph.attrs["bound"])
    return "elbo" if int(graph.attrs.get("importance_samples", 1)) == 1 else "iwae"


class LikelihoodRole(Role):
    name = "likelihood"
    sources = ("normal", "uniform", "data")
    one_line = "examples [batch, ...] (source 'data') -> log-likelihood [batch], exact or a lower bound"

    def contract(self, graph: GraphSpec, dataset: Any = None) -> None:
        out = graph.outputs[0]
        if not (len(out.shape) == 1 and isinstance(out.shape[0], str)):
            raise BundleError(f"Graph '{graph.role}' output '{out.name}' is declared {shape_text(out.shape)}; a "
                              "likelihood graph returns one log-likelihood (or bound) per example: shape [batch].")
        if not any(t.source == "data" for t in graph.inputs):
            raise BundleError(f"Graph '{graph.role}' has no input with source 'data': it must take the examples it "
                              "scores.")
        k = graph.attrs.get("importance_samples", 1)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise BundleError(f"Graph '{graph.role}': attrs['importance_samples'] must be a positive int, got {k!r}.")
        if graph.attrs.get("data") == "dequantized":
            levels = graph.attrs.get("levels")
            if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
                raise BundleError("Graph 'likelihood' with attrs['data'] = 'dequantized' needs attrs['levels']: the "
                                  f"number L of pixel values it dequantises (an int >= 2), got {levels!r}.")
            if dataset is not None and dataset.kind != "image":
                raise BundleError(f"Graph 'likelihood': attrs['data'] = 'dequantized' is for image pixels; task "
                                  f"'{dataset.name}' is {dataset.kind} (use 'continuous').")
            if dataset is not None and dataset.levels is not None and levels != dataset.levels:
                raise BundleError(f"Graph 'likelihood' dequantises {levels} levels; task '{dataset.name}' has "
                                  f"{dataset.levels}.")

    def check_values(self, graph: GraphSpec, outputs: list[np.ndarray], dataset: Any = None) -> None:
        """A discrete likelihood (binarized data) is at most 1, its log at most 0."""
        if graph.attrs.get("data") == "binarized":
            top = float(np.max(outputs[0], initial=-np.inf))
            if top > RANGE_TOL:
                raise BundleError(f"Graph '{graph.role}' returns a positive log-likelihood bound ({top:.4g} nats) for "
                                  "binary data, where log p(x) <= 0; check the sign of the reconstruction term.")

    def likelihood(self, bundle: OnnxBundle, graph: GraphSpec, dataset: Any, device: str, seed: int,
                   threads: int | None) -> Likelihood:
        session = make_session(bundle.directory / graph.path, device, threads)
        x = prepare_data(graph, dataset.test_x)
        rng = np.random.default_rng(seed)
        out_name = graph.outputs[0].name
        chunks = []
        for start in range(0, len(x), EVAL_BATCH):
            xb = x[start:start + EVAL_BATCH]
            sizes = {"batch": len(xb)}
            feeds = {t.name: np.ascontiguousarray(xb.astype(np.float32)) if t.source == "data"
                     else draw_input(t, sizes, rng) for t in graph.inputs}
            (ll,) = session.run([out_name], feeds)
            if ll.shape != (len(xb),):
                raise BundleError(f"Graph '{graph.role}' returned shape {list(ll.shape)} for {len(xb)} held-out "
                                  "examples; expected one value per example.")
            if not np.all(np.isfinite(ll)):
                raise BundleError(f"Graph '{graph.role}' returned non-finite log-likelihoods on the held-out split.")
            self.check_values(graph, [ll])
            chunks.append(-ll.astype(np.float64))
        data = graph.attrs.get("data", "continuous")
        k = int(graph.attrs.get("importance_samples", 1))
        bound = bound_of(graph)
        dims = int(math.prod(dataset.shape))
        nll = np.concatenate(chunks)
        params = {"graph": graph.role, "split": "test", "data": data}
        variant, discrete, note = data, data == "binarized", f"k = {k}" if bound == "iwae" else ""
        if data == "binarized":
            params["data"] = f"binarized (Bernoulli(x), seed {BINARIZE_SEED})"
        if data == "dequantized":
            levels = int(graph.attrs["levels"])
            nll = nll + dims * math.log(levels)  # density on [0, 1]^D → an upper bound on the discrete NLL
            variant, discrete = f"dequantized-{levels}", True
            params["data"] = (f"dequantized: (round(x * {levels - 1}) + u) / {levels}, u ~ U[0, 1), seed "
                              f"{DEQUANTIZE_SEED}; NLL = -log p(y) + D log {levels}")
            note = "upper bound on the discrete NLL by uniform dequantization (Theis et al. 2016)" + \
                (f"; {note}" if note else "")
        if bound != "exact":
            params["importance_samples"] = k
        return Likelihood(nll=nll, dims=dims, bound=bound, variant=variant, discrete=discrete, params=params,
                          note=note)

    def describe(self, graph_facts: Any, dataset: Any, inputs: list[dict], outputs: list[dict]) -> dict[str, Any]:
        super().describe(graph_facts, dataset, inputs, outputs)
        attrs: dict[str, Any] = {"data": graph_facts.get("data", "how its data input is prepared",
                                                         "continuous|binarized|dequantized"),
                                 "bound": graph_facts.get("bound", "what its output is", "exact|elbo|iwae")}
        k = graph_facts.number("importance_samples", int)
        if k is not None:
            attrs["importance_samples"] = k
        if attrs["data"] == "dequantized":
            attrs["levels"] = graph_facts.number("levels", int, "the pixel levels it dequantises",
                                                 str(dataset.levels or 256))
        return attrs


ROLE = LikelihoodRole()

__all__ = ["EVAL_BATCH", "LikelihoodRole", "ROLE", "bound_of"]
