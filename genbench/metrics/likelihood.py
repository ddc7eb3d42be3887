"""Held-out negative log-likelihood, from whatever likelihood graph a bundle exports.

* role ``elbo``: per-example lower bounds on log p(x) (the ELBO, or the IWAE bound with k importance
  samples), so the NLL reported is an **upper bound**;
* role ``logits`` (autoregressive models): exact log-likelihoods.

Reported per example in nats (``nll``) and per dimension in bits (``bpd`` = NLL / (D · ln 2)), each
with its standard error over the held-out examples, and the data preparation they depend on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import BundleError
from ..runtime import BINARIZE_SEED, draw_input, prepare_data
from ..runtime.validate import check_role_values
from ..types import MetricValue
from . import Metric, QualityContext

EVAL_BATCH = 250


def per_example_nll(ctx: QualityContext) -> dict[str, Any] | None:
    """NLL (nats) of every held-out example, computed once per job and shared by ``nll`` and ``bpd``."""
    if "nll" in ctx.job_cache:
        return ctx.job_cache["nll"]
    roles = [g.role for g in ctx.bundle.graphs] if ctx.bundle else []
    if "elbo" not in roles:
        ctx.job_cache["nll"] = None
        return None
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
    nll = np.concatenate(chunks)
    data = graph.attrs.get("data", "continuous")
    k = int(graph.attrs.get("importance_samples", 1))
    result = {
        "nll": nll, "dims": int(math.prod(ctx.dataset.shape)),
        "params": {"graph": "elbo", "bound": "ELBO" if k == 1 else "IWAE", "importance_samples": k,
                   "data": data + (f" (Bernoulli(x), seed {BINARIZE_SEED})" if data == "binarized" else ""),
                   "split": "test"},
        "note": "upper bound on the held-out NLL (-" + ("ELBO" if k == 1 else f"IWAE, k={k}") + ")",
    }
    ctx.job_cache["nll"] = result
    return result


def _stderr(v: np.ndarray) -> float | None:
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None


class NegativeLogLikelihood(Metric):
    """Mean held-out NLL in nats per example (an upper bound when it comes from an ``elbo`` graph)."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        r = per_example_nll(ctx)
        if r is None:
            return None
        return MetricValue(value=float(r["nll"].mean()), unit="nats", higher_is_better=False, n=len(r["nll"]),
                           stderr=_stderr(r["nll"]), params=r["params"], note=r["note"])


class BitsPerDim(Metric):
    """Mean held-out NLL in bits per dimension: NLL / (D · ln 2)."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        r = per_example_nll(ctx)
        if r is None:
            return None
        scale = 1.0 / (r["dims"] * math.log(2.0))
        se = _stderr(r["nll"])
        return MetricValue(value=float(r["nll"].mean() * scale), unit="bits/dim", higher_is_better=False,
                           n=len(r["nll"]), stderr=None if se is None else se * scale,
                           params={**r["params"], "dims": r["dims"]}, note=r["note"])


def make_nll() -> Metric:
    return NegativeLogLikelihood()


def make_bpd() -> Metric:
    return BitsPerDim()
