"""A sample-based measure for text: byte n-gram Jensen–Shannon divergence from the held-out split.

Likelihood metrics (bits per byte) need a model; a file of generated text has none. What it does have is
its bytes, and how often each short byte sequence occurs in them can be set against the held-out text:

* for each order k in ``orders`` (default 1 to 4), P_k is the empirical distribution of the overlapping
  k-byte sequences inside each sample segment (never across two segments), Q_k that of the reference;
* JSD_k = H(M_k) − ½ H(P_k) − ½ H(Q_k), with M_k = ½ (P_k + Q_k) and logarithms base 2, so each
  JSD_k lies in [0, 1] bit; it is symmetric and finite when one side has a k-gram the other lacks;
* the value is the mean of JSD_k over the orders.

Like FD, the estimate is biased upward at small sample sizes, so it is read against its floor: the same
number of bytes of real text (a training-split chunk cut into the samples' segments) scored the same way.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..types import MetricValue
from . import Metric, QualityContext

ORDERS = (1, 2, 3, 4)
FLOOR_SEED = 12345  # the floor's training chunk is fixed: the same for every sample set and run


def _segments(x: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(x, np.ndarray) and x.ndim <= 2:
        rows = [x] if x.ndim == 1 else list(x)
    else:
        rows = list(x)
    return [np.asarray(r, dtype=np.uint8).reshape(-1) for r in rows]


def byte_ngram_counts(segments: np.ndarray | Sequence[np.ndarray], order: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted k-gram codes, their counts) over the overlapping ``order``-byte windows inside each segment.

    A k-gram b₀…b_{k−1} is coded as the big-endian integer Σ bᵢ · 256^(k−1−i) (k ≤ 7 fits in int64).
    """
    if not 1 <= order <= 7:
        raise ValueError(f"order must be 1..7, got {order}")
    codes = []
    for seg in _segments(segments):
        if len(seg) < order:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(seg.astype(np.int64), order)
        codes.append(windows @ (256 ** np.arange(order - 1, -1, -1, dtype=np.int64)))
    if not codes:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.unique(np.concatenate(codes), return_counts=True)


def jensen_shannon_bits(counts_p: tuple[np.ndarray, np.ndarray], counts_q: tuple[np.ndarray, np.ndarray]) -> float:
    """JSD (bits, in [0, 1]) between two count tables ``(codes, counts)`` as :func:`byte_ngram_counts` returns."""
    from scipy.spatial.distance import jensenshannon

    (kp, cp), (kq, cq) = counts_p, counts_q
    if cp.sum() == 0 or cq.sum() == 0:
        raise ValueError("a side has no n-gram of this order: its text is shorter than the order")
    keys = np.union1d(kp, kq)
    p = np.zeros(len(keys))
    q = np.zeros(len(keys))
    p[np.searchsorted(keys, kp)] = cp
    q[np.searchsorted(keys, kq)] = cq
    # scipy returns the Jensen-Shannon *distance*, the square root of the divergence
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2) ** 2)


def byte_ngram_divergence(samples: np.ndarray | Sequence[np.ndarray], reference: np.ndarray | Sequence[np.ndarray],
                          orders: Sequence[int] = ORDERS) -> tuple[float, dict[int, float]]:
    """(mean over ``orders`` of JSD_k in bits, {k: JSD_k}) between the byte k-gram distributions of
    ``samples`` and ``reference`` (each a byte array, a 2-D ``[segments, bytes]`` array or a list of them)."""
    per_order = {k: jensen_shannon_bits(byte_ngram_counts(samples, k), byte_ngram_counts(reference, k))
                 for k in orders}
    return float(np.mean(list(per_order.values()))), per_order


def floor_chunk(train: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A contiguous chunk of the training bytes, as many as ``shape`` holds, reshaped to it; fixed offset."""
    total = int(np.prod(shape))
    if total > len(train):
        raise ValueError(f"{total:,} bytes asked of a training split of {len(train):,}")
    start = int(np.random.default_rng(FLOOR_SEED).integers(0, len(train) - total + 1))
    return np.asarray(train[start:start + total], dtype=np.uint8).reshape(shape)


class ByteNgramDivergence(Metric):
    """``byte-ngram-jsd``: mean JSD (orders 1–4, bits) of the samples' byte n-grams from the test split's;
    the floor is a training chunk of the same size. Only for text given as samples (``genbench score``)."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.dataset.kind != "text" or ctx.samples is None:
            return None
        samples = np.asarray(ctx.samples, dtype=np.uint8)
        samples = samples[None] if samples.ndim == 1 else samples
        key = f"byte-ngram-jsd:floor@{samples.shape}"
        if key not in ctx.cache:
            ctx.cache[key] = byte_ngram_divergence(floor_chunk(ctx.dataset.train_x, samples.shape), ctx.dataset.test_x)
        value, per_order = byte_ngram_divergence(samples, ctx.dataset.test_x)
        floor, floor_per_order = ctx.cache[key]
        return MetricValue(value=value, unit="bits", higher_is_better=False, n=int(samples.size), floor=floor,
                           params={"orders": list(ORDERS), "per_order": {str(k): round(v, 6) for k, v in per_order.items()},
                                   "floor_per_order": {str(k): round(v, 6) for k, v in floor_per_order.items()},
                                   "reference": f"test split ({len(ctx.dataset.test_x):,} bytes)"},
                           note="mean over k = 1..4 of JSD(byte k-grams of the samples, of the test split); "
                                "floor = a training chunk of the same size scored the same way")


__all__ = ["ByteNgramDivergence", "byte_ngram_counts", "byte_ngram_divergence", "floor_chunk",
           "jensen_shannon_bits"]
