"""Held-out negative log-likelihood metrics: pure functions on the per-example NLLs the harness hands over.

The harness runs a model's likelihood graph on the test split (:mod:`genbench.runtime.likelihood`) and
passes the result as a :class:`~genbench.metrics.Likelihood`: nats per example, what the data were
(binarized, quantized to L levels, continuous, bytes) and whether the value is exact or a bound.

* ``nll``: mean NLL in nats per example (an image or a point); an upper bound when it comes from a bound.
* ``bpd``: NLL / (D · ln 2), bits per dimension. Only for discrete data: a continuous density on image
  pixels has no bits/dim (it can be made arbitrarily small by squeezing the density) and is refused with
  its reason. On the 2-D point tasks the data are continuous by definition: there ``bpd`` is the
  differential entropy rate in bits per coordinate, with that unit stated.
* ``bpb`` / ``ppl``: text, bits per byte and perplexity per byte (a uniform model over 256 bytes scores
  exactly 256).
"""

from __future__ import annotations

import math

import numpy as np

from ..types import MetricValue
from . import Likelihood, Metric, QualityContext


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
        raise ValueError(f"The held-out text has {n} bytes; at least 2 are needed to predict one.")
    return [(stream[i:min(i + context, n - 1)], stream[i + 1:min(i + context, n - 1) + 1]) for i in range(0, n - 1, context)]


def standard_error(v: np.ndarray, groups: np.ndarray | None = None) -> float | None:
    """Standard error of the mean of ``v``; for grouped values (bytes of a window, which are correlated)
    over the group means, weighted by group size."""
    v = np.asarray(v, dtype=np.float64)
    if groups is not None:
        sizes = np.bincount(groups)
        means = np.bincount(groups, weights=v) / np.maximum(sizes, 1)
        if len(sizes) < 2:
            return None
        w = sizes / sizes.sum()
        mean = float((w * means).sum())
        return float(math.sqrt((w**2 * (means - mean) ** 2).sum() * len(sizes) / (len(sizes) - 1)))
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None


def _params(lk: Likelihood) -> dict:
    return {**lk.params, "bound": lk.bound, "variant": lk.variant, "dims": lk.dims}


def _kind_note(lk: Likelihood) -> str:
    return ("exact" if lk.bound == "exact" else f"upper bound on the NLL (-{lk.bound.upper()})") + \
        (f"; {lk.note}" if lk.note else "")


def _refusal(ctx: QualityContext, lk: Likelihood) -> str | None:
    """Why a likelihood cannot be reported per dimension on this task, or None."""
    if ctx.dataset.kind == "image" and not lk.discrete:
        return (f"a continuous likelihood ({lk.variant}) of image pixels has no bits/dim or comparable NLL: "
                "declare attrs['data'] = 'binarized', or export a discrete (quantized) likelihood")
    return None


class NegativeLogLikelihood(Metric):
    """Mean held-out NLL in nats per example (an upper bound when it comes from an ELBO or IWAE bound)."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        lk = ctx.likelihood
        if lk is None or ctx.dataset.kind == "text":
            return None
        unit = "nats/point" if ctx.dataset.kind == "points" else "nats/example"
        refused = _refusal(ctx, lk)
        if refused:
            return MetricValue(value=None, unit=unit, higher_is_better=False, n=len(lk.nll), params=_params(lk),
                               error=refused)
        return MetricValue(value=float(lk.nll.mean()), unit=unit, higher_is_better=False, n=len(lk.nll),
                           stderr=standard_error(lk.nll), params=_params(lk), note=_kind_note(lk))


class BitsPerDim(Metric):
    """Images (discrete data): NLL / (D · ln 2) in bits/dim. Points: the same in bits per coordinate of a
    continuous density. Text: bits per byte (D = 1 per byte)."""

    def __init__(self, unit: str = "bits/dim"):
        self.unit = unit

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        lk = ctx.likelihood
        if lk is None or (self.unit == "bits/byte") != (ctx.dataset.kind == "text"):
            return None
        unit = "bits/dim (continuous density)" if ctx.dataset.kind == "points" else self.unit
        refused = _refusal(ctx, lk)
        if refused:
            return MetricValue(value=None, unit=unit, higher_is_better=False, n=len(lk.nll), params=_params(lk),
                               error=refused)
        scale = 1.0 / (lk.dims * math.log(2.0))
        se = standard_error(lk.nll, lk.groups)
        return MetricValue(value=float(lk.nll.mean() * scale), unit=unit, higher_is_better=False, n=len(lk.nll),
                           stderr=None if se is None else se * scale, params=_params(lk), note=_kind_note(lk))


class Perplexity(Metric):
    """Text: exp(mean cross-entropy per byte, nats); a uniform model over V bytes scores exactly V."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        lk = ctx.likelihood
        if lk is None or ctx.dataset.kind != "text":
            return None
        ppl = float(np.exp(lk.nll.mean()))
        se = standard_error(lk.nll, lk.groups)
        return MetricValue(value=ppl, unit="per byte", higher_is_better=False, n=len(lk.nll),
                           stderr=None if se is None else ppl * se, params=_params(lk), note=_kind_note(lk))


def make_nll() -> Metric:
    return NegativeLogLikelihood()


def make_bpd() -> Metric:
    return BitsPerDim("bits/dim")


def make_bpb() -> Metric:
    return BitsPerDim("bits/byte")


def make_ppl() -> Metric:
    return Perplexity()
