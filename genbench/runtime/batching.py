"""The batch-independence check: a row's outputs must not depend on the batch it comes in.

genbench runs a graph at many batch sizes: validation at 1, 3 and 8, sampling at :data:`SAMPLE_BATCH` rows (and
the remainder), likelihoods at their own batch (:data:`EVAL_BATCH` examples, :data:`TEXT_BATCH` text windows),
timing at each batch size of the profile. A graph that branches on its batch size (an ONNX ``If`` on
``Shape(x)[0]``) can give a constant grey image where it is validated and timed (batch 1, 3, 8, 64) and good
samples where it is scored (hundreds of rows); a graph that mixes rows can let one text window see the next.
So at validation the same few rows (:data:`PROBES`: the first, middle and last row of each batch) are embedded
among other random rows in a batch of every size genbench uses for that graph (:func:`batch_sizes_used`), and
each row's outputs must match that row run alone (batch 1), within the parity tolerance, wherever it sits.
And every row of that batch, not only those, must come out the same when the batch's rows are shuffled and run
again in smaller batches of random sizes (the shuffle and the cuts drawn afresh from the operating system's
entropy, so no graph can know them): a graph that alters the rows at some places of a batch (every 7th) or at
some sizes shows there.

Cost: for each batch size B, one call of the graph at B rows and B rows more in two or three calls (B at most the largest of those sizes: the
profile's largest timed batch, :data:`SAMPLE_BATCH` or :data:`EVAL_BATCH`), plus :data:`PROBES` calls at batch 1
per sequence length; the ORT session is validation's own. A ``logits`` graph is run at the sequence length
genbench scores it at for the likelihood's and validation's batch sizes, and at other sizes at up to
:data:`TOKEN_BUDGET` tokens per call (never longer than its context).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import BundleError
from ..types import GraphSpec
from . import draw_inputs
from .likelihood import EVAL_BATCH as NLL_BATCH, TEXT_BATCH
from .roles import role_of
from .roles.base import SAMPLE_BATCH
from .roles.likelihood import EVAL_BATCH
from .roles.logits import TEXT_SAMPLE_ROWS

#: rows whose outputs are compared in every batch: the first, the middle and the last
PROBES = 3
#: tokens per call (batch × sequence length) of a logits graph at sizes other than the likelihood's
TOKEN_BUDGET = 1 << 18
BATCH_AXIS = "batch"

Run = Callable[[Mapping[str, np.ndarray]], list]


def _split(n: int, batch: int) -> set[int]:
    """The batch sizes of ``n`` rows taken ``batch`` at a time: the full batch and the remainder."""
    if n <= 0:
        return set()
    return {min(n, batch)} | ({n % batch} if n > batch and n % batch else set())


def batch_sizes_used(graph: GraphSpec, dataset: Any = None, *, validation: Sequence[int] = (),
                     samples: int | None = None, timed: Sequence[int] = ()) -> dict[int, list[str]]:
    """Every batch size genbench runs ``graph`` at, with what for: ``validation`` (the sizes validation checks
    it at), ``sampling`` (a generating graph: ``samples`` rows, :data:`SAMPLE_BATCH` per call; text:
    :data:`TEXT_SAMPLE_ROWS` continuations), ``likelihood`` (the held-out split, at the role's batch) and
    ``timing`` (``timed``: the profile's batch sizes)."""
    role = role_of(graph.role)
    used: dict[int, list[str]] = {}

    def add(sizes: Any, what: str) -> None:
        for b in sorted(set(int(s) for s in sizes if int(s) >= 1)):
            used.setdefault(b, []).append(what)

    add(validation, "validation")
    kind = getattr(dataset, "kind", None)
    test = getattr(dataset, "test_x", None)
    if role.generates:
        if kind == "text":
            add([TEXT_SAMPLE_ROWS], "sampling")
        else:
            add(_split(role.sample_count(samples or SAMPLE_BATCH, dataset), SAMPLE_BATCH), "sampling")
    if graph.canonical_role == "likelihood":
        add(_split(len(test) if test is not None else EVAL_BATCH, EVAL_BATCH), "likelihood")
    elif graph.canonical_role == "logits":
        if kind == "text" and test is not None:
            full = (len(test) - 1) // int(graph.attrs["context_length"])
            add(_split(full, TEXT_BATCH) | ({1} if (len(test) - 1) % int(graph.attrs["context_length"]) else set()),
                "likelihood")
        else:
            add(_split(len(test) if test is not None else NLL_BATCH, NLL_BATCH), "likelihood")
    add(timed, "timing")
    return dict(sorted(used.items()))


def logits_length(graph: GraphSpec, dataset: Any, batch: int, used_for: Sequence[str]) -> int:
    """The sequence length a logits graph is checked at, at ``batch``: the length genbench scores at (the
    context for text, a whole image or point otherwise) for the likelihood's and validation's sizes, else as
    much of the context as :data:`TOKEN_BUDGET` allows."""
    context = int(graph.attrs["context_length"])
    kind = getattr(dataset, "kind", None)
    scored = context if kind in (None, "text") else min(context, int(np.prod(dataset.shape)))
    if "likelihood" in used_for or "validation" in used_for:
        return scored
    return max(1, min(scored, TOKEN_BUDGET // batch))


def check_batch_independence(graph: GraphSpec, run: Run, sizes: Mapping[int, Sequence[str]], *,
                             data: np.ndarray | None = None, dataset: Any = None, seed: int = 0,
                             atol: float = 1e-4, rtol: float = 1e-4) -> dict[str, Any]:
    """Embed :data:`PROBES` rows in a batch of every size of ``sizes`` (:func:`batch_sizes_used`) and require
    each row's outputs to match that row alone at batch 1 (tolerance ``atol + rtol · max |output|``, the
    parity check's); ``run(feeds)`` returns the graph's outputs (validation's ORT session, reused). Returns
    what was checked (``export.graphs.<role>.batch_independence``); raises :class:`BundleError` naming the
    output, the batch size and what genbench runs that size for."""
    rng = np.random.default_rng(seed + 11)
    unseen = np.random.default_rng()  # the shuffles and cuts: no graph can know them beforehand
    batched_in = [t.name for t in graph.inputs if t.shape and t.shape[0] == BATCH_AXIS]
    batched_out = [i for i, t in enumerate(graph.outputs) if t.shape and t.shape[0] == BATCH_AXIS]
    if not batched_in or not batched_out:
        return {"status": "not checked: the graph has no input and output with a batch axis first",
                "batch_sizes": sorted(sizes)}
    groups: dict[tuple, list[int]] = {}
    for b in sorted(sizes):
        extra = {}
        if graph.canonical_role == "logits":
            extra = {graph.inputs[0].shape[1]: logits_length(graph, dataset, b, sizes[b])}
        groups.setdefault(tuple(sorted(extra.items())), []).append(b)
    worst, tol_used = 0.0, 0.0
    lengths: dict[str, int] = {}
    for key, batch_sizes in groups.items():
        extra = dict(key)
        probes = draw_inputs(graph, PROBES, rng, data, extra)
        alone = [run({k: (v[i:i + 1] if k in batched_in else v) for k, v in probes.items()}) for i in range(PROBES)]
        tols = [atol + rtol * max(float(np.max(np.abs(np.asarray(a[j], np.float64)), initial=0.0)) for a in alone)
                for j in range(len(graph.outputs))]
        for b in batch_sizes:
            if extra:
                lengths[str(b)] = int(next(iter(extra.values())))
            if b == 1:
                continue  # the reference itself
            feeds = draw_inputs(graph, b, rng, data, extra)
            rows = _rows(b)
            for k in batched_in:
                for i, r in enumerate(rows):
                    feeds[k][r] = probes[k][i]
            for k, v in probes.items():
                if k not in batched_in:
                    feeds[k] = v
            try:
                outs = run(feeds)
            except Exception as exc:  # noqa: BLE001 - the graph's fault: say where, in one line
                text = " ".join(str(exc).split()).split("Status Message:", 1)[-1].strip()[:300]
                raise BundleError(f"Graph '{graph.role}' fails in ONNX Runtime at batch {b} (a size genbench runs it "
                                  f"at for {' and '.join(sizes[b])}): {text}") from exc
            for j in batched_out:
                name = graph.outputs[j].name
                for i, r in enumerate(rows):
                    got = np.asarray(outs[j][r], np.float64)
                    ref = np.asarray(alone[i][j][0], np.float64)
                    diff = float(np.max(np.abs(got - ref), initial=0.0)) if got.shape == ref.shape else np.inf
                    if not diff <= tols[j]:
                        raise BundleError(
                            f"Graph '{graph.role}' output '{name}' changes with the batch size: row {r} of a batch of "
                            f"{b} (a size genbench runs it at for {' and '.join(sizes[b])}) differs from the same "
                            f"inputs alone at batch 1 by {diff:.3g}, over tolerance {tols[j]:.3g}; a row's outputs "
                            "must not depend on the batch it comes in (no branching on the batch size, no batch "
                            "statistics: export in eval mode).")
                    worst = max(worst, diff)
            worst = max(worst, _shuffled_rows_agree(graph, run, feeds, outs, b, sizes[b], batched_in, batched_out,
                                                    unseen, atol, rtol))
            tol_used = max(tol_used, *tols)
    report: dict[str, Any] = {"status": "passed", "batch_sizes": sorted(sizes),
                              "used_for": {str(b): list(w) for b, w in sizes.items()}, "rows": PROBES,
                              "max_abs_diff": worst, "tolerance": tol_used}
    if lengths:
        report["sequence_lengths"] = lengths
    return report


def _shuffled_rows_agree(graph: GraphSpec, run: Run, feeds: Mapping[str, np.ndarray], outs: list, batch: int,
                         used_for: Sequence[str], batched_in: list[str], batched_out: list[int],
                         rng: np.random.Generator, atol: float, rtol: float) -> float:
    """Every row of ``feeds`` (a batch of ``batch`` rows whose outputs are ``outs``), shuffled and run again in
    two or three smaller batches of random sizes, must give the same outputs. Returns the largest difference."""
    if batch < 2:
        return 0.0
    order = rng.permutation(batch)
    cuts = sorted(set(int(c) for c in rng.integers(1, batch, size=min(2, batch - 1))))
    again: list[list[np.ndarray]] = [[] for _ in graph.outputs]
    for part in np.split(order, cuts):
        sub = {k: (v[part] if k in batched_in else v) for k, v in feeds.items()}
        got = run(sub)
        for j in batched_out:
            again[j].append(np.asarray(got[j]))
    worst = 0.0
    inverse = np.argsort(order)
    for j in batched_out:
        first = np.asarray(outs[j], np.float64)
        second = np.concatenate(again[j])[inverse].astype(np.float64)
        finite = np.abs(first[np.isfinite(first)])
        tol = atol + rtol * float(finite.max(initial=0.0))
        if first.shape == second.shape:  # a NaN or inf where both runs have the same is no batch dependence
            same = (first == second) | (np.isnan(first) & np.isnan(second))
            diff = np.where(same, 0.0, np.abs(first - second)).reshape(batch, -1).max(axis=1)
        else:
            diff = np.full(batch, np.inf)
        bad = ~(diff <= tol)
        if bad.any():
            r = int(np.argmax(bad))
            raise BundleError(
                f"Graph '{graph.role}' output '{graph.outputs[j].name}' changes with where a row sits in its batch: row "
                f"{r} of a batch of {batch} (a size genbench runs it at for {' and '.join(used_for)}) differs by "
                f"{float(diff[r]):.3g} (over tolerance {tol:.3g}) when the same rows are shuffled and run in "
                f"batches of {', '.join(str(len(p)) for p in np.split(order, cuts))}; a row's outputs must not "
                "depend on the batch it comes in or its place in it.")
        worst = max(worst, float(diff.max(initial=0.0)))
    return worst


def _rows(batch: int) -> list[int]:
    """Where the probe rows sit in a batch: first, middle, last (as many as fit)."""
    return sorted({0, batch // 2, batch - 1})[:PROBES] if batch >= PROBES else list(range(batch))


__all__ = ["PROBES", "TOKEN_BUDGET", "batch_sizes_used", "check_batch_independence", "logits_length"]
