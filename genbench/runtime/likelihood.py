"""Run a bundle's likelihood graph on the held-out split and return per-example NLLs as arrays.

The metrics in :mod:`genbench.metrics.likelihood` are pure; this module is where the graphs run:

* role ``elbo``: per-example log-likelihoods (exact, or a lower bound: the ELBO or the IWAE bound);
* role ``logits`` (autoregressive models): exact log-likelihoods, from ``log_softmax`` of the logits
  computed in float64 by genbench, not by the graph.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import BundleError
from ..metrics import Likelihood
from ..metrics.likelihood import cross_entropy, text_windows
from ..types import GraphSpec, OnnxBundle
from . import BINARIZE_SEED, draw_input, make_session, point_tokens, prepare_data, quantize
from .sampler import LogitsFn, ort_logits_fn
from .validate import check_role_values

EVAL_BATCH = 250
TEXT_BATCH = 32


def bound_of(graph: GraphSpec) -> str:
    """What an ``elbo`` graph's output is: ``attrs["bound"]``, else ``elbo`` (k = 1) or ``iwae`` (k > 1)."""
    if "bound" in graph.attrs:
        return str(graph.attrs["bound"])
    return "elbo" if int(graph.attrs.get("importance_samples", 1)) == 1 else "iwae"


def text_cross_entropy(logits_fn: LogitsFn, stream: np.ndarray, context: int, vocab: int,
                       batch: int = TEXT_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Per-byte cross-entropy (nats) over disjoint windows, and the window each byte belongs to."""
    try:
        windows = text_windows(np.asarray(stream, dtype=np.int64), context)
    except ValueError as exc:
        raise BundleError(str(exc)) from None
    ces: list[np.ndarray] = []
    full = [w for w in windows if len(w[0]) == context]
    rest = [w for w in windows if len(w[0]) != context]
    for start in range(0, len(full), batch):
        x = np.stack([w[0] for w in full[start:start + batch]])
        y = np.stack([w[1] for w in full[start:start + batch]])
        ces.extend(_ce_checked(logits_fn, x, y, vocab))
    for x, y in rest:
        ces.extend(_ce_checked(logits_fn, x[None], y[None], vocab))
    window_id = np.concatenate([np.full(len(c), i) for i, c in enumerate(ces)])
    return np.concatenate(ces), window_id


def _ce_checked(logits_fn: LogitsFn, x: np.ndarray, y: np.ndarray, vocab: int) -> list[np.ndarray]:
    logits = logits_fn(np.ascontiguousarray(x))
    if logits.shape != (*x.shape, vocab):
        raise BundleError(f"Graph 'logits' returned shape {list(logits.shape)} for tokens {list(x.shape)}; "
                          f"expected [{x.shape[0]}, {x.shape[1]}, {vocab}].")
    if not np.all(np.isfinite(logits)):
        raise BundleError("Graph 'logits' returned non-finite logits on the held-out data.")
    return list(cross_entropy(logits, y))


def image_nll(logits_fn: LogitsFn, tokens: np.ndarray, bos: int, levels: int, batch: int = EVAL_BATCH) -> np.ndarray:
    """Exact NLL (nats) per image from pixel tokens ``[N, D]``: inputs ``[bos, x_0 .. x_{D-2}]``."""
    out = []
    for start in range(0, len(tokens), batch):
        y = tokens[start:start + batch]
        x = np.concatenate([np.full((len(y), 1), bos, np.int64), y[:, :-1]], axis=1)
        out.append(np.stack(_ce_checked(logits_fn, x, y, levels)).sum(-1))
    return np.concatenate(out)


def held_out_likelihood(bundle: OnnxBundle, dataset, device: str = "cpu", seed: int = 0,
                        threads: int | None = None) -> Likelihood | None:
    """The bundle's per-example held-out NLLs (``None`` when it exports no likelihood graph)."""
    roles = [g.role for g in bundle.graphs]
    if "elbo" in roles:
        return _from_elbo(bundle, dataset, device, seed, threads)
    if "logits" in roles:
        return _from_logits(bundle, dataset, device, threads)
    return None


def _from_elbo(bundle: OnnxBundle, dataset, device: str, seed: int, threads: int | None) -> Likelihood:
    graph = bundle.graph("elbo")
    session = make_session(bundle.directory / graph.path, device, threads)
    x = prepare_data(graph, dataset.test_x)
    rng = np.random.default_rng(seed)
    out_name = graph.outputs[0].name
    chunks = []
    for start in range(0, len(x), EVAL_BATCH):
        xb = x[start:start + EVAL_BATCH]
        sizes = {"batch": len(xb)}
        feeds = {t.name: np.ascontiguousarray(xb.astype(np.float32)) if t.source == "data" else draw_input(t, sizes, rng)
                 for t in graph.inputs}
        (ll,) = session.run([out_name], feeds)
        if ll.shape != (len(xb),):
            raise BundleError(f"Graph 'elbo' returned shape {list(ll.shape)} for {len(xb)} held-out examples; "
                              "expected one value per example.")
        if not np.all(np.isfinite(ll)):
            raise BundleError("Graph 'elbo' returned non-finite log-likelihoods on the held-out split.")
        check_role_values(graph, [ll])
        chunks.append(-ll.astype(np.float64))
    data = graph.attrs.get("data", "continuous")
    k = int(graph.attrs.get("importance_samples", 1))
    bound = bound_of(graph)
    discrete = data == "binarized"
    params = {"graph": "elbo", "split": "test",
              "data": data + (f" (Bernoulli(x), seed {BINARIZE_SEED})" if data == "binarized" else "")}
    if bound != "exact":
        params["importance_samples"] = k
    note = f"k = {k}" if bound == "iwae" else ""
    return Likelihood(nll=np.concatenate(chunks), dims=int(math.prod(dataset.shape)), bound=bound,
                      variant=data, discrete=discrete, params=params, note=note)


def _from_logits(bundle: OnnxBundle, dataset, device: str, threads: int | None) -> Likelihood:
    graph = bundle.graph("logits")
    fn = ort_logits_fn(make_session(bundle.directory / graph.path, device, threads), graph.inputs[0].name,
                       graph.outputs[0].name)
    context = int(graph.attrs["context_length"])
    vocab = int(graph.outputs[0].shape[-1])
    if dataset.kind == "text":
        ce, window = text_cross_entropy(fn, dataset.test_x, context, vocab)
        return Likelihood(nll=ce, groups=window, dims=1, bound="exact", variant="bytes", discrete=True,
                          params={"graph": "logits", "split": "test", "context_length": context,
                                  "windows": f"disjoint windows of {context} bytes; every held-out byte after the "
                                             f"first predicted exactly once ({len(ce):,} bytes, {window[-1] + 1} windows)"},
                          note="cross-entropy per byte, log_softmax in float64")
    levels = int(graph.attrs["levels"])
    if dataset.kind == "points":
        lo, hi = dataset.value_range
        tokens = point_tokens(dataset.test_x, levels, (lo, hi))
        # the model is a piecewise-uniform density: -log p(x) = -log P(bin) + D log(bin width)
        nll = image_nll(fn, tokens, int(graph.attrs["bos"]), levels) + tokens.shape[1] * math.log((hi - lo) / levels)
        return Likelihood(nll=nll, dims=tokens.shape[1], bound="exact", variant="continuous", discrete=False,
                          params={"graph": "logits", "split": "test",
                                  "data": f"continuous; the model's {levels} bins per coordinate read as a "
                                          "piecewise-uniform density"},
                          note="density of an autoregressive model over binned coordinates")
    tokens = quantize(dataset.test_x, levels).reshape(len(dataset.test_x), -1)
    nll = image_nll(fn, tokens, int(graph.attrs["bos"]), levels)
    return Likelihood(nll=nll, dims=tokens.shape[1], bound="exact", variant=f"quantized-{levels}", discrete=True,
                      params={"graph": "logits", "split": "test",
                              "data": f"quantized to {levels} levels (round(x * {levels - 1}))"},
                      note="pixels quantized to the task's levels")


__all__ = ["bound_of", "held_out_likelihood", "image_nll", "text_cross_entropy"]
