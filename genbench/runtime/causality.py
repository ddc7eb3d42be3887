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

Cost: for each sequence length L checked, :data:`DRAWS` × (1 + the positions, at most :data:`POSITIONS`) calls
of the graph at batch 1 and length L.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import BundleError
from ..types import GraphSpec
from . import draw_inputs

#: positions t checked per sequence length (0, the last but one, and evenly between)
POSITIONS = 5
#: perturbations of the tokens after each t (each a fresh random row)
DRAWS = 2

Run = Callable[[Mapping[str, np.ndarray]], list]


def positions(length: int, count: int = POSITIONS) -> list[int]:
    """The positions t checked in a sequence of ``length`` tokens: 0, ``length - 2`` and evenly between (none
    when there is no token after any position)."""
    if length < 2:
        return []
    return sorted({int(round(x)) for x in np.linspace(0, length - 2, min(count, length - 1))})


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
    worst, tol_used = 0.0, 0.0
    checked: dict[str, list[int]] = {}
    for length in sorted(set(int(n) for n in lengths)):
        where = positions(length)
        if not where or vocab < 2:
            continue
        checked[str(length)] = where
        for _ in range(DRAWS):
            base = draw_inputs(graph, 1, rng, None, {seq_axis: length})
            ref = np.asarray(run(base)[0], dtype=np.float64)
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
            "positions": checked, "draws": DRAWS, "batch": 1, "max_abs_diff": worst,
            "tolerance": tol_used}


__all__ = ["DRAWS", "POSITIONS", "check_causality", "positions"]
