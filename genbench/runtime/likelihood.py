"""Exact held-out NLLs from logits, computed by genbench (``log_softmax`` in float64), not by the graph.

The metrics in :mod:`genbench.metrics.likelihood` are pure; the roles (:mod:`genbench.runtime.roles`) run the
graphs. These are the autoregressive helpers they share: per-byte cross-entropy over disjoint windows of
text, and per-image NLL of pixel tokens.
"""

from __future__ import annotations


import numpy as np

from ..errors import BundleError
from ..metrics.likelihood import cross_entropy, text_windows
from .sampler import LogitsFn

EVAL_BATCH = 250
TEXT_BATCH = 32


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


__all__ = ["EVAL_BATCH", "TEXT_BATCH", "image_nll", "text_cross_entropy"]
