"""Sample-based quality metrics: pure numpy/scipy functions on feature arrays, float64 inside.

Conventions shared by every function here:

* ``real`` / ``p_samples`` / ``reference`` are the data distribution; ``fake`` / ``samples`` are
  what the model generated. Feature arrays are ``[N, d]`` (any float dtype).
* Results are plain Python ``float``/``int``; the same inputs (and ``seed``) give the same result.
* Invalid input (wrong shapes, too few samples, NaN/inf, out-of-range labels) raises ``ValueError``.

Contents: Kernel Inception Distance (:func:`kernel_inception_distance`), improved precision/recall
(:func:`precision_recall`), density/coverage (:func:`density_coverage`), mode histograms
(:func:`mode_histogram_kl`, :func:`modes_covered`, :func:`class_histogram`), a k-NN KL estimator
(:func:`knn_kl_divergence`), the Inception-Score analogue (:func:`classifier_score`), and mode-collapse
metrics for mixtures of Gaussians (:func:`mixture_mode_metrics`; the mixtures themselves are tasks, in
:mod:`genbench.data.points`).
"""

from __future__ import annotations

import math
from typing import Iterator, TypedDict

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse
from scipy.spatial import cKDTree
from scipy.special import rel_entr

from . import bootstrap as bs

__all__ = [
    "MixtureModeMetrics",
    "class_histogram",
    "classifier_score",
    "classifier_score_weighted",
    "density_coverage",
    "kernel_inception_distance",
    "ball_memberships",
    "kid_bootstrap",
    "knn_bootstrap",
    "knn_kl_divergence",
    "knn_log_ratios",
    "mixture_mode_metrics",
    "mode_histogram_kl",
    "modes_covered",
    "precision_recall",
]

# Pairwise squared distances are computed in blocks of at most this many entries (32 MiB of float64).
_BLOCK_ENTRIES = 1 << 22
# k-NN radii use a k-d tree up to this dimension; above it a k-d tree degrades to a slow brute force
# (10,000 × 64-D points: 8.5 s with cKDTree against 1.3 s for blocked BLAS distances).
_KDTREE_MAX_DIM = 8


# --------------------------------------------------------------------------- input checks


def _features(x: ArrayLike, name: str, min_rows: int = 1) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < min_rows or a.shape[1] < 1:
        raise ValueError(f"{name} must be [N >= {min_rows}, d >= 1], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _feature_pair(real: ArrayLike, fake: ArrayLike, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    r, f = _features(real, "real", min_rows), _features(fake, "fake", min_rows)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {r.shape[1]} vs {f.shape[1]}")
    return r, f


def _mode_counts(modes: ArrayLike, num_modes: int, name: str = "sample_modes") -> np.ndarray:
    m = np.asarray(modes)
    if num_modes < 1:
        raise ValueError(f"num_modes must be >= 1, got {num_modes}")
    if m.ndim != 1 or not (np.issubdtype(m.dtype, np.integer) or m.size == 0):
        raise ValueError(f"{name} must be a 1-D integer array, got shape {m.shape} and dtype {m.dtype}")
    if m.size and (m.min() < 0 or m.max() >= num_modes):
        raise ValueError(f"{name} must lie in [0, {num_modes}), got values in [{m.min()}, {m.max()}]")
    return np.bincount(m.astype(np.int64), minlength=num_modes)


# --------------------------------------------------------------------------- Kernel Inception Distance


def _kernel_sum(gram: np.ndarray, degree: int, gamma: float, coef0: float, *, off_diagonal: bool) -> float:
    """``Σ (γ g + c₀)^degree`` over the entries of ``gram`` (overwritten), the diagonal left out if asked."""
    gram *= gamma
    gram += coef0
    # one pass over the matrix, no temporaries: ∑ k·k·…·k (degree factors)
    total = float(np.einsum(",".join(["ij"] * degree) + "->", *([gram] * degree)))
    return total - float((np.diagonal(gram) ** degree).sum()) if off_diagonal else total


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    m = x.shape[0]
    kxx = _kernel_sum(x @ x.T, degree, gamma, coef0, off_diagonal=True)
    kyy = _kernel_sum(y @ y.T, degree, gamma, coef0, off_diagonal=True)
    kxy = _kernel_sum(x @ y.T, degree, gamma, coef0, off_diagonal=False)
    return (kxx + kyy) / (m * (m - 1)) - 2.0 * kxy / (m * m)


def kernel_inception_distance(
    real: ArrayLike,
    fake: ArrayLike,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD² with a polynomial kernel, averaged over subsets.

    Bińkowski, Sutherland, Arbel & Gretton, "Demystifying MMD GANs", ICLR 2018. The kernel is
    ``k(x, y) = (γ xᵀy + c₀)^degree`` with ``γ = 1/d`` by default, ``c₀ = 1``, ``degree = 3``. For
    subsets ``X, Y`` of ``m`` rows each the unbiased estimate is

        MMD²_u = Σ_{i≠j} k(xᵢ,xⱼ) / (m(m−1)) + Σ_{i≠j} k(yᵢ,yⱼ) / (m(m−1)) − 2 Σ_{i,j} k(xᵢ,yⱼ) / m²

    (as in the authors' code and torch-fidelity). ``num_subsets`` times, ``m = min(subset_size,
    len(real), len(fake))`` rows of each set are drawn without replacement (fresh draws per subset,
    from ``np.random.default_rng(seed)``), so the result is deterministic for a seed but not draw for
    draw the same as torch-fidelity's. Returns ``(mean, std)`` over the subsets; ``std`` is the
    population standard deviation (``ddof = 0``, as torch-fidelity reports), i.e. the spread of one
    subset's estimate, not the standard error of the mean. The estimate is unbiased, so it can be
    slightly negative when the two distributions agree.
    """
    r, f = _feature_pair(real, fake, min_rows=2)
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}")
    if int(degree) != degree or degree < 1:
        raise ValueError(f"degree must be a positive integer, got {degree}")
    gamma = 1.0 / r.shape[1] if gamma is None else float(gamma)
    m = min(subset_size, r.shape[0], f.shape[0])
    rng = np.random.default_rng(seed)
    mmds = np.empty(num_subsets)
    for s in range(num_subsets):
        x = r[rng.choice(r.shape[0], m, replace=False)]
        y = f[rng.choice(f.shape[0], m, replace=False)]
        mmds[s] = _unbiased_mmd2(x, y, int(degree), gamma, float(coef0))
    return float(mmds.mean()), float(mmds.std())


# --------------------------------------------------------------------------- k-NN manifolds


def _centred(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Both sets minus the real mean (smaller norms: less round-off in ‖a‖² + ‖b‖² − 2a·b), and a
    bound on the round-off of squared distances computed that way, ``8 (d+2) ε max‖x‖²`` (twice the
    error bound of a length-(d+2) dot product whose terms add up to at most ``4 max‖x‖²``)."""
    centre = real.mean(axis=0)
    r, f = real - centre, fake - centre
    largest = max(float(np.einsum("ij,ij->i", s, s).max()) for s in (r, f))
    return r, f, 8.0 * (r.shape[1] + 2) * np.finfo(np.float64).eps * largest


def _sq_distance_blocks(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """``(rows, D)`` with ``D[i, j] = ‖a[rows][i] − b[j]‖²`` (to round-off; may dip just below 0),
    in blocks of bounded memory. One matrix product per block and no elementwise passes:
    ``[−2a, 1, ‖a‖²] · [b, ‖b‖², 1]ᵀ = ‖a‖² + ‖b‖² − 2a·b``."""
    ones_a, ones_b = np.ones((a.shape[0], 1)), np.ones((b.shape[0], 1))
    left = np.hstack([-2.0 * a, ones_a, np.einsum("ij,ij->i", a, a)[:, None]])
    right = np.hstack([b, np.einsum("ij,ij->i", b, b)[:, None], ones_b])
    step = max(1, _BLOCK_ENTRIES // b.shape[0])
    for start in range(0, a.shape[0], step):
        rows = slice(start, min(start + step, a.shape[0]))
        yield rows, left[rows] @ right.T


def _knn_sq_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row to its k-th nearest neighbour among the *other* rows
    (duplicates count as neighbours at distance 0)."""
    if x.shape[1] <= _KDTREE_MAX_DIM:
        dist, _ = cKDTree(x).query(x, k=k + 1)  # column 0 is the point itself
        return dist[:, k] ** 2
    out = np.empty(x.shape[0])
    for rows, d2 in _sq_distance_blocks(x, x):
        local = np.arange(rows.stop - rows.start)
        d2[local, local + rows.start] = 0.0  # self-distance exactly 0, not round-off
        out[rows] = np.partition(d2, k, axis=1)[:, k]
    return np.maximum(out, 0.0)


def _check_k(k: int, *sets: np.ndarray) -> None:
    smallest = min(s.shape[0] for s in sets)
    if int(k) != k or not 1 <= k < smallest:
        raise ValueError(f"k must be an integer in [1, {smallest - 1}] (each set needs more than k points), got {k}")


def precision_recall(real: ArrayLike, fake: ArrayLike, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi, Karras, Laine, Lehtinen & Aila, NeurIPS 2019).

    Each set's manifold is the union of closed balls ``B(x, r_k(x))`` around its points, ``r_k(x)``
    the distance from ``x`` to its k-th nearest neighbour in the same set, the point itself excluded
    (a duplicate counts as a neighbour at distance 0). Then

        precision = |{fake f : f ∈ manifold(real)}| / |fake|   (fidelity: are samples realistic?)
        recall    = |{real r : r ∈ manifold(fake)}| / |real|   (diversity: is the data covered?)

    Ball membership uses ``≤`` as the authors' code does (the ``prdc`` package uses ``<``; they
    differ only on exact ties). Radii come from a ``scipy.spatial.cKDTree`` for ``d ≤ 8`` and from
    blocked BLAS distances above that, where a k-d tree is slower than brute force; membership needs
    all ``len(real) × len(fake)`` distances, computed in blocks of bounded memory, in ``O(N M d)``.
    Squared distances are compared with an allowance for round-off of ``8 (d+2) ε max‖x‖²``
    (``x`` centred on the real mean), so exact ties are never lost.
    """
    r, f = _feature_pair(real, fake, min_rows=2)
    _check_k(k, r, f)
    r, f, tol = _centred(r, f)
    real_radii, fake_radii = _knn_sq_radii(r, k) + tol, _knn_sq_radii(f, k) + tol
    fake_in_real = np.zeros(f.shape[0], dtype=bool)
    real_in_fake = np.zeros(r.shape[0], dtype=bool)
    for rows, d2 in _sq_distance_blocks(f, r):
        fake_in_real[rows] = (d2 <= real_radii).any(axis=1)
        real_in_fake |= (d2 <= fake_radii[rows, None]).any(axis=0)
    return float(fake_in_real.mean()), float(real_in_fake.mean())


def density_coverage(real: ArrayLike, fake: ArrayLike, *, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem, Oh, Uh, Choi & Yoo, "Reliable Fidelity and Diversity Metrics for
    Generative Models", ICML 2020).

    With ``B(r, r_k(r))`` the closed ball around each real sample reaching its k-th nearest real
    neighbour (itself excluded; radii and distances as in :func:`precision_recall`),

        density  = 1/(k M) Σ_fake Σ_real 1[f ∈ B(r, r_k(r))]   (fake samples counted per real ball)
        coverage = 1/N Σ_real 1[∃ fake f ∈ B(r, r_k(r))]        (share of real balls that hold a sample)

    for ``N`` real and ``M`` fake samples. Only real-sample balls are used, so a few outlying
    samples move neither. For two samples of one distribution, ``E[density] = 1`` and coverage is
    about ``1 − 2^−k`` when ``M = N``. Density is not capped at 1.
    """
    r, f = _feature_pair(real, fake, min_rows=1)
    _check_k(k, r)
    r, f, tol = _centred(r, f)
    real_radii = _knn_sq_radii(r, k) + tol
    inside = 0
    nearest_fake = np.full(r.shape[0], np.inf)
    for _, d2 in _sq_distance_blocks(f, r):
        inside += int(np.count_nonzero(d2 <= real_radii))
        np.minimum(nearest_fake, d2.min(axis=0), out=nearest_fake)
    return inside / (k * f.shape[0]), float((nearest_fake <= real_radii).mean())


# --------------------------------------------------------------------------- sampling intervals of the k-NN metrics

#: more stored ball memberships than this and the k-NN metrics get no interval (memory), said so
MAX_MEMBERSHIPS = 20_000_000


def ball_memberships(real: ArrayLike, fake: ArrayLike, *, k: int, fake_balls: bool = True):
    """Sparse boolean matrices of ball membership, as :func:`precision_recall` and :func:`density_coverage`
    decide it (same radii, same round-off allowance): ``A[j, i]``: fake ``j`` lies in real ``i``'s k-NN ball;
    ``B[i, j]``: real ``i`` lies in fake ``j``'s ball (None unless ``fake_balls``). ``scipy.sparse`` CSR, or
    ``(None, None)`` when they would hold more than :data:`MAX_MEMBERSHIPS` entries."""
    r, f = _feature_pair(real, fake, min_rows=2 if fake_balls else 1)
    _check_k(k, *((r, f) if fake_balls else (r,)))
    r, f, tol = _centred(r, f)
    real_radii = _knn_sq_radii(r, k) + tol
    fake_radii = _knn_sq_radii(f, k) + tol if fake_balls else None
    a_rows, a_cols, b_rows, b_cols = [], [], [], []
    stored = 0
    for rows, d2 in _sq_distance_blocks(f, r):
        j, i = np.nonzero(d2 <= real_radii)
        a_rows.append(j + rows.start)
        a_cols.append(i)
        stored += j.size
        if fake_radii is not None:
            j2, i2 = np.nonzero(d2 <= fake_radii[rows, None])
            b_rows.append(i2)
            b_cols.append(j2 + rows.start)
            stored += j2.size
        if stored > MAX_MEMBERSHIPS:
            return None, None
    shape_a = (f.shape[0], r.shape[0])

    def matrix(rows_, cols_, shape):
        rr, cc = np.concatenate(rows_), np.concatenate(cols_)
        return sparse.csr_matrix((np.ones(rr.size), (rr, cc)), shape=shape)

    a = matrix(a_rows, a_cols, shape_a)
    b = matrix(b_rows, b_cols, shape_a[::-1]) if fake_radii is not None else None
    return a, b


def knn_bootstrap(real: ArrayLike, fake: ArrayLike, *, k: int, which: str, resamples: int, seed: int = 0):
    """Bootstrap values of (precision, recall) (``which="precision_recall"``) or (density, coverage)
    (``"density_coverage"``): ``([resamples, 2], the point values [2])`` from the same memberships as the metrics,
    or None (too many memberships).

    What is resampled follows each formula. Precision is a mean over the samples of "lies in the real
    manifold", recall and coverage means over the test rows of "lies in the samples' manifold" and "its ball holds
    a sample": each is resampled over the rows it averages, the other set's manifold held fixed (drawing the
    other set with replacement would drop a third of its balls and shrink the manifold, a bias, not a spread).
    Density counts (sample, ball) pairs, linear in both sets: both are resampled. k-NN radii are those of the
    full sets (a resample's duplicates would shrink them to 0)."""
    a, b = ball_memberships(real, fake, k=k, fake_balls=which == "precision_recall")
    if a is None:
        return None
    m, n = a.shape
    rng = bs.generator(seed, 2 if which == "precision_recall" else 3)
    wr, wf = bs.weights(n, resamples, rng), bs.weights(m, resamples, rng)  # [B, n], [B, m]
    if which == "precision_recall":
        fake_in, real_in = a.getnnz(axis=1) > 0, b.getnnz(axis=1) > 0
        first, second = wf @ fake_in / m, wr @ real_in / n
        point = np.array([fake_in.mean(), real_in.mean()])
    else:
        inside = np.asarray((a @ wr.T))  # [m, B]: drawn real balls (with multiplicity) that hold fake j
        first = (wf * inside.T).sum(1) / (k * m)
        covered = a.getnnz(axis=0) > 0
        second = wr @ covered / n
        point = np.array([a.nnz / (k * m), covered.mean()])
    return np.stack([first, second], axis=1), point


def kid_bootstrap(real: ArrayLike, fake: ArrayLike, *, subset_size: int = 1000, resamples: int = 200,
                  degree: int = 3, gamma: float | None = None, coef0: float = 1.0, seed: int = 0):
    """Bootstrap offsets of the KID estimate: ``(values [resamples], point, m)``. On one fixed random subset of
    ``m = min(subset_size, len(real), len(fake))`` rows of each set, the unbiased MMD² is recomputed with the rows
    drawn again with replacement (pairs of one original row left out, as the unbiased estimate does), from the
    kernel matrices computed once: ``Σ_{i≠j} w_i w_j k(x_i, x_j) / Σ_{i≠j} w_i w_j``. ``point`` is the same
    estimate on the subset unweighted; ``values − point`` is the bootstrap's spread, of an estimate from ``m``
    rows (wider than that of more rows: conservative when the sets are larger)."""
    r, f = _feature_pair(real, fake, min_rows=2)
    gamma = 1.0 / r.shape[1] if gamma is None else float(gamma)
    m = min(subset_size, r.shape[0], f.shape[0])
    rng = bs.generator(seed, 4)
    x, y = r[rng.choice(r.shape[0], m, replace=False)], f[rng.choice(f.shape[0], m, replace=False)]
    kxx, kyy, kxy = ((gamma * (u @ v.T) + coef0) ** degree for u, v in ((x, x), (y, y), (x, y)))
    wx, wy = bs.weights(m, resamples, rng), bs.weights(m, resamples, rng)

    def within(w, kmat):
        total = ((w @ kmat) * w).sum(1) - (w * w) @ np.diagonal(kmat)
        return total / (m * m - (w * w).sum(1))

    values = within(wx, kxx) + within(wy, kyy) - 2.0 * ((wx @ kxy) * wy).sum(1) / (m * m)
    ones = np.ones((1, m))
    point = float((within(ones, kxx) + within(ones, kyy) - 2.0 * ((ones @ kxy) * ones).sum(1) / (m * m))[0])
    return values, point, m


# --------------------------------------------------------------------------- mode histograms


def mode_histogram_kl(sample_modes: ArrayLike, reference_probs: ArrayLike, num_modes: int) -> float:
    """``KL(p̂ ‖ q) = Σ_i p̂_i log(p̂_i / q_i)`` in nats, ``p̂`` the histogram of ``sample_modes``.

    ``sample_modes`` are integers in ``[0, num_modes)`` (e.g. the nearest mode or the predicted
    class of each sample); ``reference_probs`` is ``q``, ``[num_modes]``, non-negative and summing
    to 1 (to 1e-6; it is renormalised). Empty bins of ``p̂`` contribute 0 (``0 log 0 = 0``), so a
    sampler that drops modes is not penalised for it here — pair this with :func:`modes_covered`.
    A reference with zero mass on a mode the samples hit makes the KL infinite: ``ValueError``.
    Used as the "reverse KL" of mode-collapse studies (Srivastava et al., "VEEGAN", NeurIPS 2017;
    Lin et al., "PacGAN", NeurIPS 2018).
    """
    counts = _mode_counts(sample_modes, num_modes)
    if counts.sum() == 0:
        raise ValueError("sample_modes is empty: the histogram, and so the KL, is undefined")
    q = np.asarray(reference_probs, dtype=np.float64)
    if q.shape != (num_modes,) or not np.isfinite(q).all() or (q < 0).any():
        raise ValueError(f"reference_probs must be [num_modes = {num_modes}] finite and >= 0, got shape {q.shape}")
    if abs(q.sum() - 1.0) > 1e-6:
        raise ValueError(f"reference_probs must sum to 1, got {q.sum()!r}")
    q = q / q.sum()
    impossible = np.flatnonzero((counts > 0) & (q == 0))
    if impossible.size:
        raise ValueError(f"reference_probs is 0 on mode(s) {impossible.tolist()} that the samples hit: "
                         "KL(samples ‖ reference) is infinite")
    p = counts / counts.sum()
    return float(rel_entr(p, q).sum())


def modes_covered(sample_modes: ArrayLike, num_modes: int, min_count: int = 1) -> int:
    """Number of modes in ``[0, num_modes)`` that at least ``min_count`` of ``sample_modes`` hit."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    return int(np.count_nonzero(_mode_counts(sample_modes, num_modes) >= min_count))


def class_histogram(probs_or_labels: ArrayLike, num_classes: int) -> np.ndarray:
    """Counts ``[num_classes]`` (int64) of each class: of integer labels ``[N]``, or of the arg-max
    class of probabilities (or logits) ``[N, num_classes]``. Divide by the sum for frequencies."""
    a = np.asarray(probs_or_labels)
    if a.ndim == 2:
        if a.shape[1] != num_classes:
            raise ValueError(f"probabilities must be [N, num_classes = {num_classes}], got shape {a.shape}")
        return _mode_counts(a.argmax(axis=1), num_classes, "labels")
    return _mode_counts(a, num_classes, "labels")


# --------------------------------------------------------------------------- k-NN KL divergence


def _kth_positive_distance(tree: cKDTree, points: np.ndarray, k: int, first_query: int) -> np.ndarray:
    """k-th smallest *positive* distance from each point to the tree's points (zeros skipped);
    queries ``first_query`` neighbours, doubling for the rows that meet too many duplicates."""
    out = np.empty(points.shape[0])
    todo = np.arange(points.shape[0])
    n_query = min(first_query, tree.n)
    while todo.size:
        dist, _ = tree.query(points[todo], k=n_query)
        dist = dist.reshape(todo.size, n_query)  # k = 1 gives a 1-D result
        positive = np.count_nonzero(dist > 0, axis=1)
        done = positive >= k
        # sorted ascending, so the zeros come first and the k-th positive sits after them
        out[todo[done]] = dist[done, n_query - positive[done] + k - 1]
        todo = todo[~done]
        if todo.size and n_query == tree.n:
            raise ValueError(f"{todo.size} point(s) have fewer than k = {k} neighbours at a positive distance "
                             "(too many duplicates)")
        n_query = min(2 * n_query, tree.n)
    return out


def knn_kl_divergence(p_samples: ArrayLike, q_samples: ArrayLike, *, k: int = 1) -> float:
    """k-NN estimate of ``KL(P ‖ Q)`` in nats from samples ``x ~ P`` ``[n, d]`` and ``y ~ Q`` ``[m, d]``.

    Wang, Kulkarni & Verdú, "Divergence Estimation for Multidimensional Densities Via
    k-Nearest-Neighbor Distances", IEEE Trans. Inf. Theory 55(5), 2009:

        D̂ = (d/n) Σ_i log(ν_k(i) / ρ_k(i)) + log(m / (n − 1))

    with ``ρ_k(i)`` the distance from ``xᵢ`` to its k-th nearest neighbour among the other ``x`` and
    ``ν_k(i)`` to its k-th nearest ``y`` (Euclidean, ``scipy.spatial.cKDTree``). It is consistent,
    not unbiased: it can come out slightly negative. A 1-D array is read as ``[n, 1]``.

    Duplicates: a zero distance would make a log infinite, so ``ρ_k`` and ``ν_k`` are the k-th
    smallest *positive* distances (exact copies of ``xᵢ`` are skipped in both sets). With distinct
    points this is the estimator above unchanged; passing the same array twice gives
    ``log(n/(n−1)) ≈ 0``. ``ValueError`` if some point has fewer than ``k`` distinct neighbours.
    """
    x, y = (np.asarray(a, dtype=np.float64) for a in (p_samples, q_samples))
    x, y = (a[:, None] if a.ndim == 1 else a for a in (x, y))
    x, y = _features(x, "p_samples", 2), _features(y, "q_samples", 1)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"p_samples and q_samples differ in dimension: {x.shape[1]} vs {y.shape[1]}")
    if k < 1 or k >= x.shape[0] or k > y.shape[0]:
        raise ValueError(f"k must be in [1, min(n - 1, m)], got k = {k} for n = {x.shape[0]}, m = {y.shape[0]}")
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    return float(d * np.mean(knn_log_ratios(x, y, k=k)) + math.log(m / (n - 1)))


def knn_log_ratios(x: np.ndarray, y: np.ndarray, *, k: int = 1) -> np.ndarray:
    """``log(ν_k(i) / ρ_k(i))`` for each row of ``x`` (see :func:`knn_kl_divergence`, whose estimate is
    ``d · mean + log(m / (n − 1))``): the per-sample terms a bootstrap over the samples resamples."""
    rho = _kth_positive_distance(cKDTree(x), x, k, k + 1)  # +1: each point finds itself at 0
    nu = _kth_positive_distance(cKDTree(y), x, k, k)
    return np.log(nu / rho)


# --------------------------------------------------------------------------- classifier score


def classifier_score(probs: ArrayLike) -> float:
    """``exp(E_x KL(p(y|x) ‖ p(y)))`` with ``p(y) = E_x p(y|x)``: the Inception Score formula
    (Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016) for any classifier.

    ``probs`` is ``[N, C]``, rows non-negative and summing to 1 (to 1e-3; renormalised), computed
    in float64 with ``0 log 0 = 0``. It ranges from 1 (every prediction equal to the marginal) to
    ``C`` (confident predictions spread evenly over ``C`` classes). One split over all ``N`` rows:
    the common "mean over 10 splits" is lower for the same samples, so compare like with like.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"probs must be [N >= 1, C >= 1], got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs must be finite and non-negative")
    sums = p.sum(axis=1, keepdims=True)
    if np.abs(sums - 1.0).max() > 1e-3:
        raise ValueError(f"rows of probs must sum to 1, got sums in [{sums.min()}, {sums.max()}]")
    p = p / sums
    marginal = p.mean(axis=0)
    return float(np.exp(rel_entr(p, marginal).sum(axis=1).mean()))


def classifier_score_weighted(probs: ArrayLike, w: np.ndarray) -> np.ndarray:
    """:func:`classifier_score` of bootstrap resamples given by counts ``w`` ``[B, N]`` (each row sums to N), in
    one pass: ``log score = Σ_i w_i Σ_c p_ic log p_ic / N − Σ_c m_c log m_c`` with ``m = w p / N``."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    own = rel_entr(p, 1.0).sum(axis=1)  # rel_entr(p, 1) = p log p, 0 log 0 = 0
    total = w.sum(axis=1)
    marginal = (w @ p) / total[:, None]
    return np.exp((w @ own) / total - rel_entr(marginal, 1.0).sum(axis=1))


# --------------------------------------------------------------------------- 2-D Gaussian mixtures

class MixtureModeMetrics(TypedDict):
    high_quality_fraction: float
    modes_covered: int
    reverse_kl: float
    mode_counts: np.ndarray


def mixture_mode_metrics(
    samples: ArrayLike, centers: ArrayLike, sigma: float, *, threshold_sigmas: float = 3.0, min_count: int = 1
) -> MixtureModeMetrics:
    """Mode-collapse metrics of samples from a mixture of equally weighted isotropic Gaussians.

    As in Metz et al. (Unrolled GANs, ICLR 2017), Srivastava et al. (VEEGAN, NeurIPS 2017) and Lin
    et al. (PacGAN, NeurIPS 2018). Each sample is assigned to its nearest centre; it is *high
    quality* when that Euclidean distance is ``≤ threshold_sigmas · sigma``. Returns

    * ``high_quality_fraction``: high-quality samples / all samples. For exact samples in 2-D the
      squared distance is σ²·χ²₂, so at 3σ the expected fraction is ``1 − e^{−4.5} ≈ 0.9889``;
    * ``mode_counts``: int64 ``[K]``, high-quality samples per mode;
    * ``modes_covered``: modes with at least ``min_count`` high-quality samples;
    * ``reverse_kl``: ``KL(p̂ ‖ uniform over K)`` in nats (:func:`mode_histogram_kl`), ``p̂`` the
      histogram of the high-quality samples' modes: 0 for perfect balance, ``log(K/j)`` when they
      split evenly over ``j`` modes. With no high-quality sample ``p̂`` is undefined and
      ``reverse_kl`` is ``nan`` (``high_quality_fraction`` and ``modes_covered`` are then 0).
    """
    x = _features(samples, "samples")
    c = _features(centers, "centers")
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"samples and centers differ in dimension: {x.shape[1]} vs {c.shape[1]}")
    if not sigma > 0 or not threshold_sigmas > 0:
        raise ValueError(f"sigma and threshold_sigmas must be > 0, got {sigma} and {threshold_sigmas}")
    dist, nearest = cKDTree(c).query(x)
    high = dist <= threshold_sigmas * sigma
    num_modes = c.shape[0]
    counts = np.bincount(nearest[high], minlength=num_modes).astype(np.int64)
    uniform = np.full(num_modes, 1.0 / num_modes)
    reverse_kl = mode_histogram_kl(nearest[high], uniform, num_modes) if high.any() else math.nan
    return MixtureModeMetrics(
        high_quality_fraction=float(high.mean()),
        modes_covered=modes_covered(nearest[high], num_modes, min_count),
        reverse_kl=reverse_kl,
        mode_counts=counts,
    )
