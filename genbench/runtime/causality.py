"""The causality check of ``logits`` graphs: ``logits[:, t]`` may depend on ``tokens[:, :t + 1]`` only.

genbench scores an autoregressive model by the log-likelihood it computes from the logits (text's bits per
byte, an image's or a point's exact NLL: :mod:`genbench.runtime.likelihood`), feeding the whole held-out
sequence in one call. A graph that lets position t see the token at t + 1 predicts it perfectly: a
parameter-free graph whose ``logits[:, t]`` is a scaled one-hot of ``tokens[:, t + 1]`` scores 0.1 bits per
byte on ``text``. So at validation, at a few positions t spread over each sequence length the graph is run at
(0 and the last but one included), the tokens after t are replaced by other values (:data:`DRAWS` draws, each
one row at batch 1) and ``logits[:, :t + 1]`` must stay what it was, within the parity tolerance.

The pixel models' and point models' exact NLL comes from the same ``logits`` role, so this check covers them
too; no other role returns per-position conditionals (a ``likelihood`` graph returns one value per example).

Every position is checked, not a fixed few a graph could avoid: per draw, one batch holds a row for each
position s > 0 of the sequence, the base row with only its token at s replaced, and that row's logits before s
must equal the base row's (a look-ahead from any t < s to s shows there). Rows are independent of each other
(the batch-independence check, :mod:`genbench.runtime.batching`, holds every graph to it). Besides, the whole
suffix after a few positions (:data:`POSITIONS`, drawn afresh each time from the operating system's entropy, so
no graph can know them) is replaced at batch 1.

Cost: for each sequence length L checked, :data:`DRAWS` × (2 calls at batch 1 and L − 1 rows in batches of at
most :data:`TOKEN_BUDGET` tokens, plus :data:`POSITIONS` calls at batch 1), all at length L.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import BundleError
from ..types import GraphSpec
from . import draw_inputs

#: positions t whose whole suffix is replaced, per sequence length and draw (0, the last but one, and others at
#: random: every position's single-token change is checked besides)
POSITIONS = 5
#: tokens per call of the every-position check (rows × sequence length)
TOKEN_BUDGET = 1 << 18
#: perturbations of the tokens after each t (each a fresh random row)
DRAWS = 2

Run = Callable[[Mapping[str, np.ndarray]], list]


def positions(length: int, count: int = POSITIONS, rng: np.random.Generator | None = None) -> list[int]:
    """The positions t whose suffix is replaced in a sequence of ``length`` tokens: 0, ``length - 2`` and others
    drawn from ``rng`` (fresh entropy when None; none when there is no token after any position)."""
    if length < 2:
        return []
    rng = rng if rng is not None else np.random.default_rng()
    middle = rng.choice(length - 1, size=min(max(count - 2, 0), length - 1), replace=False) if length > 2 else []
    return sorted({0, length - 2, *(int(x) for x in middle)})


def _look_ahead(graph: GraphSpec, t: int, s: int, diff: float, tol: float, length: int) -> BundleError:
    return BundleError(
        f"Graph '{graph.role}' looks ahead: its logits at position {t} change when only the tokens after position "
        f"{s - 1} change (the token at {s}; max abs difference {diff:.3g} over tolerance {tol:.3g}, sequence length "
        f"{length}); logits[:, t] must depend on tokens[:, :t+1] only (mask attention causally, pad convolutions "
        "on the left).")


def _every_position(graph: GraphSpec, run: Run, base: dict, ref: np.ndarray, length: int, vocab: int,
                    rng: np.random.Generator, atol: float, rtol: float) -> tuple[float, float]:
    """One row per position s in 1 … length − 1, the base row with its token at s replaced: its logits before s
    must be the base row's. Returns (the largest difference, the tolerance)."""
    tok = graph.inputs[0]
    tol = atol + rtol * float(np.max(np.abs(ref), initial=0.0))
    worst = 0.0
    chunk = max(1, TOKEN_BUDGET // max(length, 1))
    where = np.arange(1, length)
    for lo in range(0, len(where), chunk):
        at = where[lo:lo + chunk]
        tokens = np.repeat(base[tok.name], len(at), axis=0)
        tokens[np.arange(len(at)), at] = (tokens[np.arange(len(at)), at] + rng.integers(1, vocab, size=len(at))) % vocab
        feeds = {k: (tokens if k == tok.name else np.repeat(v, len(at), axis=0) if v.shape[:1] == (1,) else v)
                 for k, v in base.items()}
        got = np.asarray(run(feeds)[0], dtype=np.float64)
        if got.shape[:2] != (len(at), ref.shape[1]):
            raise BundleError(f"Graph '{graph.role}' returns shape {list(got.shape)} for tokens of shape "
                              f"{list(tokens.shape)}.")
        for row, s in enumerate(at):
            diff = np.abs(got[row, :s] - ref[0, :s]).reshape(int(s), -1).max(axis=1)
            bad = ~(diff <= tol)  # NaN counts as a change
            if bad.any():
                t = int(np.argmax(bad))
                raise _look_ahead(graph, t, int(s), float(diff[t]), tol, length)
            worst = max(worst, float(diff.max(initial=0.0)))
    return worst, tol


def check_causality(graph: GraphSpec, run: Run, lengths: Sequence[int], *, seed: int = 0,
                    atol: float = 1e-4, rtol: float = 1e-4) -> dict[str, Any]:
    """Check that ``graph`` (role ``logits``) does not look ahead, at each sequence length of ``lengths``;
    ``run(feeds)`` returns its outputs (an ONNX Runtime session's ``run``, reused). Returns what was checked
    (``export.graphs.logits.causality``); raises :class:`BundleError` naming the first position that looks
    ahead. The tolerance is the parity check's: ``atol + rtol · max |logits|`` over the positions compared."""
    tok, out = graph.inputs[0], graph.outputs[0]
    seq_axis = tok.shape[1]
    vocab = int(tok.vocab or out.shape[-1])
    rng = np.random.default_rng(seed + 7)
    unseen = np.random.default_rng()  # where the suffixes are replaced: no graph can know it beforehand
    worst, tol_used = 0.0, 0.0
    checked: dict[str, list[int]] = {}
    for length in sorted(set(int(n) for n in lengths)):
        if length < 2 or vocab < 2:
            continue
        checked[str(length)] = []
        for _ in range(DRAWS):
            base = draw_inputs(graph, 1, rng, None, {seq_axis: length})
            ref = np.asarray(run(base)[0], dtype=np.float64)
            diff_all, tol_all = _every_position(graph, run, base, ref, length, vocab, rng, atol, rtol)
            worst, tol_used = max(worst, diff_all), max(tol_used, tol_all)
            where = positions(length, rng=unseen)
            checked[str(length)] = sorted(set(checked[str(length)]) | set(where))
            for t in where:
                tokens = base[tok.name].copy()
                after = tokens[:, t + 1:]
                tokens[:, t + 1:] = (after + rng.integers(1, vocab, size=after.shape)) % vocab  # every one differs
                got = np.asarray(run({**base, tok.name: tokens})[0], dtype=np.float64)
                if got.shape != ref.shape:
                    raise BundleError(f"Graph '{graph.role}' returns shape {list(got.shape)} for tokens of shape "
                                      f"{list(tokens.shape)}, {list(ref.shape)} for the same shape before.")
                diff = np.abs(got[:, :t + 1] - ref[:, :t + 1]).reshape(t + 1, -1).max(axis=1)
                tol = atol + rtol * float(np.max(np.abs(ref[:, :t + 1]), initial=0.0))
                bad = ~(diff <= tol)  # NaN counts as a change
                if bad.any():
                    first = int(np.argmax(bad))
                    raise BundleError(
                        f"Graph '{graph.role}' looks ahead: its logits at position {first} change when only the "
                        f"tokens after position {t} change (max abs difference {float(diff[first]):.3g} over "
                        f"tolerance {tol:.3g}, sequence length {length}); logits[:, t] must depend on tokens[:, :t+1] "
                        "only (mask attention causally, pad convolutions on the left).")
                worst, tol_used = max(worst, float(diff.max(initial=0.0))), max(tol_used, tol)
    return {"status": "passed" if checked else "not checked: no position has a later token",
            "every_position": {length: "each token replaced alone, its row's earlier logits compared"
                               for length in checked},
            "positions": checked, "draws": DRAWS, "batch": 1, "max_abs_diff": worst,
            "tolerance": tol_used}


__all__ = ["DRAWS", "POSITIONS", "TOKEN_BUDGET", "check_causality", "positions"]
