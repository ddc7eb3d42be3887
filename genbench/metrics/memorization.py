"""Memorisation: does a model copy its training data (or embed the test split)?

Two measures, each beside the value held-out real data gets (``floor``):

* ``copy-ct``: the data-copying test C_T of Meehan, Chaudhuri & Dasgupta, "A Non-Parametric Test to
  Detect Data-Copying in Generative Models" (AISTATS 2020, arXiv:2004.05675), as in the authors'
  reference code (github.com/casey-meehan/data-copying, ``data_copying_tests.py``): the instance space is
  cut into cells by k-means on the training set T; in each cell the distances of held-out points P_n and
  of generated points Q_m to their nearest training point *of that cell* are compared by a Mann-Whitney
  U test, Z-scored under the null (``Z_U``, with the reference code's 0.5 continuity correction); C_T is
  the average of the cells' Z_U weighted by P_n's mass in each cell, over the cells where Q_m has more
  than ``tau = 20/m`` of its mass (the paper's setting). C_T ≪ 0: generated points are closer to the
  training points than held-out points are (data-copying); C_T ≫ 0: farther (under-fitting). A model
  is flagged as copying below :data:`CT_FLAG` (−3, the paper's threshold).
* ``copy-rate`` and ``copy-rate-test``: the fraction of generated samples whose nearest training
  example (test example) is closer than the 5th percentile of the nearest-training (nearest-test)
  distances of held-out examples. Data that does not copy gets about 5%; a model that replays training
  images gets 100% against the training split; a graph with test images embedded as constants gets
  100% against the test split.
* Both splits together (``params`` of ``copy-rate``, and the verdict of all three): the same rate against the
  union of the two splits less the held-out pieces B and D, its threshold set by one half of B ∪ D and its
  held-out value by the other half. A model that replays real data from both splits is closer to the union
  than held-out data is, however it divides its copies between them.

Every copy rate is judged against what **held-out** data gets against the same reference, never against the
other split's rate: a replay of half training and half test examples is close to both splits, as far more
samples than held-out data are, and is flagged for each.

Distances are Euclidean, in the task's fixed feature space for images (projected to 64 dimensions by a
PCA fitted on the training features when wider, as dgm-eval does), on raw coordinates for 2-D points.
The held-out side uses fixed halves of the test split (A: the test's P_n and the train copy threshold,
B: the held-out value) and two fixed disjoint subsets of the training split (C: the test copy threshold,
D: its held-out value), each of size ``|test| / 2``, so every model meets the same references; the union
leaves B and D out and halves each of them (B1 ∪ D1: its threshold, B2 ∪ D2: its held-out value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..types import MetricValue
from . import bootstrap as bs
from . import Metric, QualityContext

CT_FLAG = -3.0
#: C_T is two-sided: 0 is held-out data, below it copying, above it under-fitting (closer to 0 is better)
CT_TARGET, CT_UNIT = 0.0, "z"
COPY_RATE_UNIT = "fraction of samples"
#: generated mass a cell needs to enter C_T: more than TAU_COUNT / m (the paper's tau = 20 / m)
TAU_COUNT = 20
#: held-out and generated examples per k-means cell the rule for k aims at, and the bounds on k
PER_CELL, MIN_CELLS, MAX_CELLS = 50, 2, 50
COPY_QUANTILE = 0.05
PCA_DIMS = 64
SPLIT_SEED = 20200405  # the halves and subsets are part of the measure: fixed for every model and run
#: copy-rate flags: the samples are this many times (and 3 standard errors) more often close to the
#: reference (a split, or both together) than held-out data are
COPY_RATIO, COPY_Z = 2.0, 3.0
#: the words a copying verdict uses for each reference
SPLIT_WORDS = {"train": "training", "test": "test", "both": "training and test"}
OTHER_WORDS = {"train": "the training split", "test": "the test split", "both": "both together"}


# --------------------------------------------------------------------------- pure functions


def nearest_distances(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row of ``x`` to its nearest row of ``reference`` (float64 ``[len(x)]``):
    a k-d tree (exact) in up to 8 dimensions, else all pairs by matrix products in blocks."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    reference = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    if len(x) == 0:
        return np.zeros(0)
    if x.shape[1] <= 8:
        from scipy.spatial import cKDTree

        return cKDTree(reference).query(x, k=1)[0]
    ref_sq = (reference * reference).sum(1)
    rows = max(1, 2**22 // len(reference))
    out = np.empty(len(x))
    with single_threaded():
        for i in range(0, len(x), rows):
            block = x[i:i + rows]
            d2 = (block * block).sum(1)[:, None] - 2.0 * block @ reference.T + ref_sq[None, :]
            out[i:i + rows] = np.sqrt(np.maximum(d2.min(1), 0.0))
    return out


_THREADPOOLS: Any = None


def single_threaded() -> Any:
    """A context in which BLAS and OpenMP use one thread. Jobs run side by side, one per core: more threads
    per job only oversubscribe the machine (a small scikit-learn fit was measured 100x slower on a busy
    2-core machine with 2 threads than with 1). The thread pools are found once per process."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1)


def mann_whitney_z(generated: np.ndarray, held_out: np.ndarray) -> float:
    """Z_U: the Mann-Whitney U of ``generated`` distances against ``held_out`` ones, Z-scored under the
    null with the reference code's continuity correction, ``(U − (n·m/2 − 0.5)) / sqrt(n·m·(n+m+1)/12)``.
    U counts pairs with the generated distance larger (ties ½), so copying (smaller distances) is < 0."""
    from scipy.stats import mannwhitneyu

    m, n = len(generated), len(held_out)
    u = float(mannwhitneyu(generated, held_out, alternative="less").statistic)
    return (u - (n * m / 2 - 0.5)) / math.sqrt(n * m * (n + m + 1) / 12)


def cell_count(held_out: int, generated: int) -> int:
    """k for C_T: about :data:`PER_CELL` held-out and generated examples per cell, within [2, 50]."""
    return int(max(MIN_CELLS, min(MAX_CELLS, held_out // PER_CELL, generated // PER_CELL)))


@dataclass(frozen=True)
class CopyingTest:
    """C_T and its parts: each cell's Z_U (NaN where it was not computed), P_n's and Q_m's mass in each
    cell, and which cells entered the statistic (Q_m mass above tau)."""

    value: float
    z: np.ndarray
    held_out_mass: np.ndarray
    generated_mass: np.ndarray
    used: np.ndarray

    @property
    def cells(self) -> int:
        return len(self.z)


def data_copying_test(train: np.ndarray, held_out: np.ndarray, generated: np.ndarray, cells: int,
                      seed: int = 0, train_cells: np.ndarray | None = None, centers: np.ndarray | None = None,
                      tau: float | None = None) -> CopyingTest:
    """C_T(P_n = ``held_out``, Q_m = ``generated``) with training set T = ``train`` (rows are points).

    The cells come from k-means (``cells`` clusters, ``seed``) on ``train``, or from ``centers`` and the
    training points' ``train_cells`` when given (to share one partition across calls). ``tau`` defaults to
    20 / m. ``value`` is NaN when no cell has enough generated mass.
    """
    train, held_out, generated = (np.asarray(a, dtype=np.float64).reshape(len(a), -1)
                                  for a in (train, held_out, generated))
    if centers is None or train_cells is None:
        centers, train_cells = kmeans_cells(train, cells, seed)
    k = len(centers)
    p_cells, q_cells = assign_cells(held_out, centers), assign_cells(generated, centers)
    n, m = len(held_out), len(generated)
    tau = TAU_COUNT / m if tau is None else tau
    p_mass = np.bincount(p_cells, minlength=k) / n
    q_mass = np.bincount(q_cells, minlength=k) / m
    z = np.full(k, np.nan)
    for c in range(k):
        t_c, p_c, q_c = train[train_cells == c], held_out[p_cells == c], generated[q_cells == c]
        if len(t_c) and len(p_c) and len(q_c):
            z[c] = mann_whitney_z(nearest_distances(q_c, t_c), nearest_distances(p_c, t_c))
    used = (q_mass > tau) & (p_mass > 0) & np.isfinite(z)
    value = float(p_mass[used] @ z[used] / p_mass[used].sum()) if used.any() else float("nan")
    return CopyingTest(value, z, p_mass, q_mass, used)


def kmeans_cells(train: np.ndarray, cells: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(centres, each training point's cell) of k-means on ``train`` (SciPy's ``kmeans2``, k-means++
    initialisation, seeded). Any partition fixed before the samples are seen gives a valid test; k-means
    puts the cells where the training data is, as the paper does."""
    import warnings

    from scipy.cluster.vq import kmeans2

    train = np.asarray(train, dtype=np.float64).reshape(len(train), -1)
    with single_threaded(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty cluster is possible and harmless: it holds no point
        centers, _ = kmeans2(train, min(cells, len(train)), minit="++", seed=seed)
    return centers, assign_cells(train, centers)


def assign_cells(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Each row's nearest centre (its k-means cell)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    centers = np.asarray(centers, dtype=np.float64)
    with single_threaded():
        d = (x * x).sum(1)[:, None] - 2.0 * x @ centers.T + (centers * centers).sum(1)[None, :]
    return d.argmin(1)


def copy_threshold(held_out: np.ndarray, reference: np.ndarray, quantile: float = COPY_QUANTILE) -> float:
    """The ``quantile`` of held-out points' nearest-``reference`` distances: closer than this is a copy."""
    return float(np.quantile(nearest_distances(held_out, reference), quantile))


def copy_rate(generated: np.ndarray, reference: np.ndarray, threshold: float) -> float:
    """Fraction of ``generated`` whose nearest ``reference`` point is closer than ``threshold``."""
    return float(np.mean(nearest_distances(generated, reference) < threshold))


def two_proportion_z(p1: float, n1: int, p2: float, n2: int) -> float:
    """z of p1 − p2 with the pooled standard error (0 when both are 0 or 1)."""
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return 0.0 if se == 0 else (p1 - p2) / se


def copying_flag(rate: float, n: int, held_out_rate: float, reference: int, split: str,
                 others: dict[str, float] | None = None) -> str | None:
    """The flag of a copy rate, or None: the samples are at least :data:`COPY_RATIO` times as often (and
    :data:`COPY_Z` standard errors more often) close to ``split`` (``train``, ``test`` or ``both``) as
    held-out data are to the same reference. Held-out data is the only yardstick: a model that replays both
    splits is as close to one as to the other, so comparing the splits with each other would excuse it.
    ``others``: the samples' rates against the other references, quoted in the flag."""
    if copied(rate, n, held_out_rate, reference):
        word = SPLIT_WORDS.get(split, split)
        example = "an example of either split" if split == "both" else f"a {word} example"
        also = ", ".join(f"{r:.0%} against {OTHER_WORDS.get(k, k)}" for k, r in (others or {}).items())
        return (f"copies {'real' if split == 'both' else word} data ({rate:.0%} of samples closer to {example} "
                f"than 95% of held-out examples are, against {held_out_rate:.0%} of held-out data"
                + (f"; {also})" if also else ")"))
    return None


def copied(rate: float, n: int, held_out_rate: float, reference: int) -> bool:
    """Whether a copy rate of ``n`` samples is significantly (:data:`COPY_RATIO`, :data:`COPY_Z`) above the held-out
    rate of ``reference`` examples against the same reference set."""
    return rate >= COPY_RATIO * held_out_rate and two_proportion_z(rate, n, held_out_rate, reference) > COPY_Z


# --------------------------------------------------------------------------- the metrics


def _space(ctx: QualityContext) -> tuple[Any, str | None] | None:
    """(a function from arrays to points in the test's space, the extractor id) or None (no such space)."""
    kind = ctx.dataset.kind
    if ctx.samples is None or kind == "text":
        return None
    if kind == "points":
        return (lambda name, x: np.asarray(x, dtype=np.float64).reshape(len(x), -1)), None
    if ctx.extractor_id is None:
        return None
    key = "memorization:pca"
    if key not in ctx.cache:
        train = ctx.features("train", ctx.dataset.train_x)
        ctx.cache[key] = _pca(train) if train.shape[1] > PCA_DIMS else None
    pca = ctx.cache[key]

    def embed(name: str, x: np.ndarray) -> np.ndarray:
        f = np.asarray(ctx.features(name, x), dtype=np.float64)
        return f if pca is None else (f - pca[0]) @ pca[1]

    return embed, ctx.extractor_id


def _pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return mean, vt[:PCA_DIMS].T


def _splits(ctx: QualityContext) -> dict[str, np.ndarray]:
    """Fixed index sets: test halves A and B, disjoint training subsets C and D of the same size."""
    if "memorization:splits" not in ctx.cache:
        rng = np.random.default_rng(SPLIT_SEED)
        n_test, n_train = len(ctx.dataset.test_x), len(ctx.dataset.train_x)
        half = min(n_test // 2, n_train // 2)
        t, r = rng.permutation(n_test), rng.permutation(n_train)
        q = half // 2  # B and D halved for the union's threshold (B1, D1) and held-out value (B2, D2)
        ctx.cache["memorization:splits"] = {"A": np.sort(t[:half]), "B": np.sort(t[half:2 * half]),
                                            "C": np.sort(r[:half]), "D": np.sort(r[half:2 * half]),
                                            "B1": np.sort(t[half:half + q]), "B2": np.sort(t[half + q:2 * half]),
                                            "D1": np.sort(r[half:half + q]), "D2": np.sort(r[half + q:2 * half]),
                                            "Ukeep_test": np.sort(np.concatenate([t[:half], t[2 * half:]])),
                                            "Ukeep_train": np.sort(np.concatenate([r[:half], r[2 * half:]]))}
    return ctx.cache["memorization:splits"]


def _points(ctx: QualityContext, embed) -> dict[str, np.ndarray]:
    """Every point set in the test's space; real ones cached per task, the samples per job."""
    if "memorization:real" not in ctx.cache:
        s = _splits(ctx)
        train, test = embed("train", ctx.dataset.train_x), embed("test", ctx.dataset.test_x)
        pieces = {k: (test if k[0] in "AB" else train)[s[k]] for k in ("A", "B", "C", "D", "B1", "B2", "D1", "D2")}
        ctx.cache["memorization:real"] = {
            "T": train, "S": test, **pieces,
            # both splits less the held-out pieces B and D; B1 ∪ D1 and B2 ∪ D2 are held out from it
            "U": np.concatenate([train[s["Ukeep_train"]], test[s["Ukeep_test"]]]),
            "H1": np.concatenate([pieces["B1"], pieces["D1"]]), "H2": np.concatenate([pieces["B2"], pieces["D2"]])}
    return {**ctx.cache["memorization:real"], "Q": embed("samples", ctx.samples)}


class DataCopyingCT(Metric):
    """C_T (Meehan et al. 2020) of the samples; the floor is C_T of held-out test data in their place."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        space = _space(ctx)
        if space is None:
            return None
        embed, extractor = space
        pts = _points(ctx, embed)
        m = len(pts["Q"])
        k = cell_count(len(pts["A"]), m)
        part_key = f"memorization:cells@{k}"
        if part_key not in ctx.cache:
            centers, labels = kmeans_cells(pts["T"], k, SPLIT_SEED)
            reference = data_copying_test(pts["T"], pts["A"], pts["B"], k, train_cells=labels, centers=centers)
            ctx.cache[part_key] = (centers, labels, reference.value)
        centers, labels, reference = ctx.cache[part_key]
        test = data_copying_test(pts["T"], pts["A"], pts["Q"], k, train_cells=labels, centers=centers)
        if not math.isfinite(test.value):
            raise ValueError(f"no k-means cell holds more than {TAU_COUNT} of the {m} samples; C_T needs more samples")
        params: dict[str, Any] = {"cells": int(test.cells), "cells_used": int(test.used.sum()),
                                  "tau": f"{TAU_COUNT}/m", "held_out": len(pts["A"]), "threshold": CT_FLAG,
                                  "space": "features" if extractor else "coordinates",
                                  "floor_n": len(pts["B"])}  # the floor's own size, not m: reports say so
        if test.value < CT_FLAG:
            rates = _copy_rates(ctx, embed)
            params["flag"] = _ct_flag(test.value, rates)
            if not _concentrated(rates):
                params["copies"] = "training"
        return MetricValue(value=test.value, unit=CT_UNIT, higher_is_better=None, target=CT_TARGET, n=m,
                           extractor=extractor,
                           floor=float(reference), params=params,
                           note=f"0 = as far from training data as held-out data; < {CT_FLAG:g} copying, > 0 "
                                f"under-fitting; floor = {len(pts['B'])} held-out test examples in the samples' place")


def _ct_flag(value: float, rates: dict[str, float]) -> str:
    """The C_T flag; it says so when no copy rate is above held-out data's while the samples are as close to the
    test split as to the training split: C_T alone cannot tell that from copying (samples concentrated near dense
    regions also read as < 0), and such samples copy nothing."""
    flag = f"copies training data (C_T = {value:.1f} < {CT_FLAG:g}: samples closer to it than held-out data are)"
    if _concentrated(rates):
        flag += (f"; but no more often within copying distance of real data than held-out data is (copy rate "
                 f"{rates['train']:.0%} against train, {rates['test']:.0%} against test, {rates['both']:.0%} against "
                 f"both; held-out {rates['train_reference']:.0%}, {rates['test_reference']:.0%}, "
                 f"{rates['both_reference']:.0%}), and as close to the test split: concentrated samples rather "
                 "than copies")
    return flag


def _concentrated(rates: dict[str, float]) -> bool:
    """Whether C_T's verdict is waived: no copy rate (against either split or both together) is above held-out
    data's, and the samples are not significantly more often close to the training split than to the test split."""
    n, ref = int(rates["n"]), int(rates["reference_n"])
    if any(copied(rates[k], n, rates[f"{k}_reference"], int(rates.get(f"{k}_reference_n", ref)))
           for k in ("train", "test", "both")):
        return False
    return two_proportion_z(rates["train"], n, rates["test"], n) <= COPY_Z


def _copy_rates(ctx: QualityContext, embed) -> dict[str, float]:
    def compute() -> dict[str, float]:
        pts = _points(ctx, embed)
        key = "memorization:thresholds"
        if key not in ctx.cache:
            train_t, test_t = copy_threshold(pts["A"], pts["T"]), copy_threshold(pts["C"], pts["S"])
            both_t = copy_threshold(pts["H1"], pts["U"])
            ctx.cache[key] = {"train_threshold": train_t, "test_threshold": test_t, "both_threshold": both_t,
                              "train_reference": copy_rate(pts["B"], pts["T"], train_t),
                              "test_reference": copy_rate(pts["D"], pts["S"], test_t),
                              "both_reference": copy_rate(pts["H2"], pts["U"], both_t),
                              "reference_n": len(pts["B"]), "both_reference_n": len(pts["H2"]),
                              "both_threshold_n": len(pts["H1"]), "both_n": len(pts["U"])}
        t = ctx.cache[key]
        return {**t, "train": copy_rate(pts["Q"], pts["T"], t["train_threshold"]),
                "test": copy_rate(pts["Q"], pts["S"], t["test_threshold"]),
                "both": copy_rate(pts["Q"], pts["U"], t["both_threshold"]), "n": len(pts["Q"])}

    if "memorization:rates" not in ctx.job_cache:
        ctx.job_cache["memorization:rates"] = compute()
    return ctx.job_cache["memorization:rates"]


class CopyRate(Metric):
    """Share of samples closer to a training example than 95% of held-out test examples are. Its ``params`` also
    hold the rate against both splits together (``both_splits_rate``), and its flag says so when that rate is
    above held-out data's although the training split's alone is not."""

    split, other = "train", "test"

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        space = _space(ctx)
        if space is None:
            return None
        r = _copy_rates(ctx, space[0])
        rate, n, reference = r[self.split], int(r["n"]), r[f"{self.split}_reference"]
        params: dict[str, Any] = {"quantile": COPY_QUANTILE, "threshold": r[f"{self.split}_threshold"],
                                  "against": f"{self.split} split", "other_split_rate": r[self.other],
                                  "space": "features" if space[1] else "coordinates",
                                  "stderr_of": f"{n} samples (binomial)",
                                  "floor_n": int(r["reference_n"])}  # the floor's own size, not n: reports say so
        others = {self.other: r[self.other], "both": r["both"]}
        flag = copying_flag(rate, n, reference, int(r["reference_n"]), self.split, others)
        if self.split == "train":
            params.update(both_splits_rate=r["both"], both_splits_floor=r["both_reference"],
                          both_splits_threshold=r["both_threshold"], both_splits_floor_n=int(r["both_reference_n"]),
                          both_splits_reference=int(r["both_n"]))
            if flag is None and not copied(r["test"], n, r["test_reference"], int(r["reference_n"])):
                # copies spread over both splits, neither enough on its own: the union's rate says so
                flag = copying_flag(r["both"], n, r["both_reference"], int(r["both_reference_n"]), "both",
                                    {"train": rate, "test": r["test"]})
                if flag:
                    params["copies"] = "training and test"
        held = "test" if self.split == "train" else "training"
        if flag:
            params["flag"] = flag
            params.setdefault("copies", "training" if self.split == "train" else "test")
        return MetricValue(value=rate, unit=COPY_RATE_UNIT, higher_is_better=False, n=n, extractor=space[1], floor=reference,
                           stderr=math.sqrt(rate * (1 - rate) / n), params=params,
                           interval=bs.binomial_interval(int(round(rate * n)), n),
                           interval_of=bs.binomial_text(n, held=f"the {self.split} split and threshold held fixed"),
                           note=f"threshold = 5th percentile of {r['reference_n']} held-out {held} examples' "
                                f"nearest-{self.split} distances; floor = {r['reference_n']} other held-out "
                                f"{held} examples (about 5%)")


class CopyRateAgainstTest(CopyRate):
    """Share of samples closer to a test example than 95% of training examples are: test data in a graph."""

    split, other = "test", "train"


__all__ = ["COPY_RATE_UNIT", "CT_FLAG", "CT_TARGET", "CT_UNIT", "CopyRate", "CopyingTest", "CopyRateAgainstTest", "DataCopyingCT", "assign_cells", "cell_count",
           "copied", "copy_rate", "copy_threshold", "copying_flag", "data_copying_test", "kmeans_cells", "mann_whitney_z",
           "nearest_distances", "single_threaded", "two_proportion_z"]

