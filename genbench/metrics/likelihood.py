"""Held-out negative log-likelihood, from whatever likelihood graph a bundle exports.

* role ``elbo``: per-example lower bounds on log p(x) (the ELBO, or the IWAE bound with k importance
  samples), so the NLL reported is an **upper bound**;
* role ``logits`` (autoregressive models): exact log-likelihoods, from ``log_softmax`` of the logits
  (computed in float64 by genbench, not by the graph).

Images: ``nll`` (nats per example) and ``bpd`` (NLL / (D · ln 2)). Text: ``bpb`` (bits per byte) and
``ppl`` (perplexity per byte, exp of the mean cross-entropy in nats). Each carries its standard error and
the settings it depends on (bound, importance samples, data preparation, windowing).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..errors import BundleError
from ..runtime import BINARIZE_SEED, draw_input, point_tokens, prepare_data, quantize
from ..runtime.sampler import LogitsFn, ort_logits_fn
from ..runtime.validate import check_role_values
from ..types import MetricValue
from . import Metric, QualityContext

EVAL_BATCH = 250
TEXT_BATCH = 32


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """−log softmax(logits)[target] in nats, float64, for ``logits [..., V]`` and integer ``targets [...]``."""
    z = np.asarray(logits, dtype=np.float64)
    m = z.max(-1, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(z - m).sum(-1))
    return lse - np.take_along_axis(z, np.asarray(targets)[..., None].astype(np.int64), -1)[..., 0]


def text_windows(stream: np.ndarray, context: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Disjoint windows: inputs ``stream[i : i+T]``, targets ``stream[i+1 : i+T+1]``, i = 0, T, 2T, ...

    Every byte after the first is predicted exactly once; the last window may be shorter.
    """
    n = len(stream)
    if n < 2:
        raise BundleError(f"The held-out text has {n} bytes; at least 2 are needed to predict one.")
    return [(stream[i:min(i + context, n - 1)], stream[i + 1:min(i + context, n - 1) + 1]) for i in range(0, n - 1, context)]


def text_cross_entropy(logits_fn: LogitsFn, stream: np.ndarray, context: int, vocab: int,
                       batch: int = TEXT_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Per-byte cross-entropy (nats) over disjoint windows, and the window each byte belongs to."""
    windows = text_windows(np.asarray(stream, dtype=np.int64), context)
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


def per_example_nll(ctx: QualityContext) -> dict[str, Any] | None:
    """The job's held-out NLLs, computed once and shared by the likelihood metrics."""
    if "nll" not in ctx.job_cache:
        roles = [g.role for g in ctx.bundle.graphs] if ctx.bundle else []
        compute: Callable[[QualityContext], dict[str, Any]] | None = (
            _from_elbo if "elbo" in roles else _from_logits if "logits" in roles else None)
        ctx.job_cache["nll"] = compute(ctx) if compute else None
    return ctx.job_cache["nll"]


def _from_elbo(ctx: QualityContext) -> dict[str, Any]:
    graph = ctx.bundle.graph("elbo")
    session = ctx.session("elbo")
    x = prepare_data(graph, ctx.dataset.test_x)
    rng = np.random.default_rng(ctx.seed)
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
                              "expected one bound per example.")
        if not np.all(np.isfinite(ll)):
            raise BundleError("Graph 'elbo' returned non-finite log-likelihood bounds on the held-out split.")
        check_role_values(graph, [ll])
        chunks.append(-ll.astype(np.float64))
    data = graph.attrs.get("data", "continuous")
    k = int(graph.attrs.get("importance_samples", 1))
    bound = "ELBO" if k == 1 else "IWAE"
    return {"nll": np.concatenate(chunks), "groups": None, "dims": int(math.prod(ctx.dataset.shape)),
            "params": {"graph": "elbo", "bound": bound, "importance_samples": k, "split": "test",
                       "data": data + (f" (Bernoulli(x), seed {BINARIZE_SEED})" if data == "binarized" else "")},
            "note": f"upper bound on the held-out NLL (-{bound}" + (f", k={k})" if k > 1 else ")")}


def _from_logits(ctx: QualityContext) -> dict[str, Any]:
    graph = ctx.bundle.graph("logits")
    fn = ort_logits_fn(ctx.session("logits"), graph.inputs[0].name, graph.outputs[0].name)
    context = int(graph.attrs["context_length"])
    vocab = int(graph.outputs[0].shape[-1])
    if ctx.dataset.kind == "text":
        ce, window = text_cross_entropy(fn, ctx.dataset.test_x, context, vocab)
        return {"nll": ce, "groups": window, "dims": 1,
                "params": {"graph": "logits", "bound": "exact", "split": "test", "context_length": context,
                           "windows": f"disjoint windows of {context} bytes; every held-out byte after the first "
                                      f"predicted exactly once ({len(ce):,} bytes, {window[-1] + 1} windows)"},
                "note": "exact cross-entropy per byte, log_softmax in float64"}
    levels = int(graph.attrs["levels"])
    if ctx.dataset.kind == "points":
        lo, hi = ctx.dataset.value_range
        tokens = point_tokens(ctx.dataset.test_x, levels, (lo, hi))
        # the model is a piecewise-uniform density: -log p(x) = -log P(bin) + D log(bin width)
        nll = image_nll(fn, tokens, int(graph.attrs["bos"]), levels) + tokens.shape[1] * math.log((hi - lo) / levels)
        return {"nll": nll, "groups": None, "dims": tokens.shape[1],
                "params": {"graph": "logits", "bound": "exact", "split": "test",
                           "data": f"continuous; the model's bins ({levels} per coordinate) read as a piecewise-uniform density"},
                "note": "exact NLL (density, nats) of the autoregressive model over binned coordinates"}
    tokens = quantize(ctx.dataset.test_x, levels).reshape(len(ctx.dataset.test_x), -1)
    nll = image_nll(fn, tokens, int(graph.attrs["bos"]), levels)
    return {"nll": nll, "groups": None, "dims": tokens.shape[1],
            "params": {"graph": "logits", "bound": "exact", "split": "test",
                       "data": f"quantized to {levels} levels (round(x * {levels - 1}))"},
            "note": "exact NLL of the quantized pixels (an autoregressive model)"}


def _stderr(v: np.ndarray, groups: np.ndarray | None = None) -> float | None:
    """Standard error of the mean of ``v``; for grouped values (bytes of a window, which are correlated)
    over the group means, weighted by group size."""
    if groups is not None:
        sizes = np.bincount(groups)
        means = np.bincount(groups, weights=v) / np.maximum(sizes, 1)
        if len(sizes) < 2:
            return None
        w = sizes / sizes.sum()
        mean = float((w * means).sum())
        return float(math.sqrt((w**2 * (means - mean) ** 2).sum() * len(sizes) / (len(sizes) - 1)))
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None


class NegativeLogLikelihood(Metric):
    """Images: mean held-out NLL in nats per example (an upper bound when it comes from an ``elbo`` graph)."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        r = per_example_nll(ctx)
        if r is None:
            return None
        return MetricValue(value=float(r["nll"].mean()), unit="nats", higher_is_better=False, n=len(r["nll"]),
                           stderr=_stderr(r["nll"]), params=r["params"], note=r["note"])


class BitsPerDim(Metric):
    """Images: NLL / (D · ln 2). Text: bits per byte (the same formula with D = 1 per byte)."""

    def __init__(self, unit: str = "bits/dim"):
        self.unit = unit

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        r = per_example_nll(ctx)
        if r is None:
            return None
        scale = 1.0 / (r["dims"] * math.log(2.0))
        se = _stderr(r["nll"], r["groups"])
        return MetricValue(value=float(r["nll"].mean() * scale), unit=self.unit, higher_is_better=False,
                           n=len(r["nll"]), stderr=None if se is None else se * scale,
                           params={**r["params"], "dims": r["dims"]}, note=r["note"])


class Perplexity(Metric):
    """Text: exp(mean cross-entropy per byte, nats); a uniform model over V bytes scores exactly V."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        r = per_example_nll(ctx)
        if r is None:
            return None
        ppl = float(np.exp(r["nll"].mean()))
        se = _stderr(r["nll"], r["groups"])
        return MetricValue(value=ppl, unit="", higher_is_better=False, n=len(r["nll"]),
                           stderr=None if se is None else ppl * se, params=r["params"], note=r["note"])


def make_nll() -> Metric:
    return NegativeLogLikelihood()


def make_bpd() -> Metric:
    return BitsPerDim("bits/dim")


def make_bpb() -> Metric:
    return BitsPerDim("bits/byte")


def make_ppl() -> Metric:
    return Perplexity()
