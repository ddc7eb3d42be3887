"""Fréchet distance between Gaussians fitted to features (the FID formula, any feature space)."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg, stats

from . import bootstrap as bs


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, ``N - 1``) covariance of ``features`` ``[N, d]``, in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, d], got shape {f.shape}")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½`` in float64.

    The trace term is a sum of square roots of the eigenvalues of the symmetric matrix
    ``Σ₁^½ Σ₂ Σ₁^½`` (``scipy.linalg.eigvalsh``; round-off negatives clipped to 0). Unlike
    ``sqrtm(Σ₁ Σ₂)`` it needs no complex arithmetic and no ``disp`` argument (gone in SciPy 1.18).
    The result can be a tiny negative number for (nearly) identical inputs; it is returned as is.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    w, v = linalg.eigh((s1 + s1.T) / 2)
    sqrt_s1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = sqrt_s1 @ s2 @ sqrt_s1
    eig = linalg.eigvalsh((m + m.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)


def frechet_distance_from_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*gaussian_statistics(a), *gaussian_statistics(b))


class StreamingStatistics:
    """Mean and unbiased (``N - 1``) covariance of features that arrive in batches, in float64.

    Equal to :func:`gaussian_statistics` of all the rows stacked (to round-off), while holding only
    ``O(d²)`` memory, so 50,000 × 2,048 features never need to be in memory at once::

        stats = StreamingStatistics()
        for batch in feature_batches:          # each [b, d], any b >= 0
            stats.update(batch)
        mu, sigma = stats.statistics()

    Each batch is folded in with the pairwise update of Chan, Golub & LeVeque (1979, "Updating
    formulae and a pairwise algorithm for computing sample variances"): with batch count ``m``,
    batch mean ``x̄_B`` and centred scatter ``M_B = Σ (x − x̄_B)(x − x̄_B)ᵀ``,

        δ = x̄_B − x̄,   x̄ ← x̄ + δ·m/(n+m),   M ← M + M_B + δδᵀ·n·m/(n+m),   n ← n + m,

    and ``Σ = M / (n − 1)``. Unlike accumulating ``Σx`` and ``Σxxᵀ``, this never subtracts two large
    nearly equal numbers. All rows are also shifted by the first batch's mean before use: for data
    with a large common offset (``1e6 + noise``) the shifted values are exact and the running mean
    stays small, so its rounding does not leak into the covariance.
    """

    def __init__(self) -> None:
        self.count = 0
        self._shift: np.ndarray | None = None  # subtracted from every row (first batch's mean)
        self._mean: np.ndarray | None = None  # running mean of the shifted rows
        self._m2: np.ndarray | None = None  # Σ (x − x̄)(x − x̄)ᵀ

    @property
    def dim(self) -> int | None:
        """Feature dimension ``d``, or ``None`` before the first non-empty batch."""
        return None if self._shift is None else self._shift.size

    def update(self, batch: ArrayLike) -> "StreamingStatistics":
        """Fold in ``batch [b, d]`` (any float dtype, converted to float64; ``b = 0`` is a no-op)."""
        x = np.asarray(batch, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"batch must be [b, d], got shape {x.shape}")
        if self._shift is not None and x.shape[1] != self._shift.size:
            raise ValueError(f"batch has d = {x.shape[1]}, earlier batches had d = {self._shift.size}")
        if x.shape[0] == 0:
            return self
        if self._shift is None:
            d = x.shape[1]
            self._shift, self._mean, self._m2 = x.mean(axis=0), np.zeros(d), np.zeros((d, d))
        y = x - self._shift
        mean_b = y.mean(axis=0)
        yc = y - mean_b
        self._combine(x.shape[0], mean_b, yc.T @ yc)
        return self

    def merge(self, other: "StreamingStatistics") -> "StreamingStatistics":
        """Fold in the statistics of ``other`` (e.g. from another worker); ``other`` is unchanged."""
        if other._shift is None:
            return self
        if self._shift is None:
            self._shift, self._mean, self._m2 = other._shift.copy(), other._mean.copy(), other._m2.copy()
            self.count = other.count
            return self
        if other._shift.size != self._shift.size:
            raise ValueError(f"cannot merge d = {other._shift.size} into d = {self._shift.size}")
        self._combine(other.count, other._mean + (other._shift - self._shift), other._m2)
        return self

    def _combine(self, m: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        n = self.count
        total = n + m
        delta = mean_b - self._mean
        self._mean += delta * (m / total)
        self._m2 += m2_b
        if n:
            self._m2 += np.outer(delta, delta * (n * m / total))
        self.count = total

    @property
    def mean(self) -> np.ndarray:
        """Mean ``[d]`` of all rows seen (float64)."""
        if self._shift is None:
            raise ValueError("no features seen yet")
        return self._shift + self._mean

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased covariance ``[d, d]`` (``N − 1`` normalisation, as ``np.cov``), float64."""
        if self.count < 2:
            raise ValueError(f"need at least 2 feature rows for a covariance, got {self.count}")
        return (self._m2 + self._m2.T) / (2.0 * (self.count - 1))

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, covariance)``, ready for :func:`frechet_distance`."""
        return self.mean, self.covariance


def feature_statistics(batches: Iterable[ArrayLike]) -> tuple[np.ndarray, np.ndarray, int]:
    """``(mu, sigma, n)`` of the rows of all ``batches`` (each ``[b, d]``) in one streaming pass.

    See :class:`StreamingStatistics`; ``sigma`` is unbiased (``n − 1``), everything float64.
    """
    stats = StreamingStatistics()
    for batch in batches:
        stats.update(batch)
    mu, sigma = stats.statistics()
    return mu, sigma, stats.count


# --------------------------------------------------------------------------- sampling interval and FD∞

#: above this many floating-point operations for all resamples (``B · (n + m) · d²``) fewer resamples are drawn
BOOTSTRAP_FLOP_BUDGET = 4e10


def frechet_bootstrap(samples: np.ndarray, reference: np.ndarray, *, resamples: int | None = None, seed: int = 0,
                      reference_stats: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """The sampling interval of ``FD(samples, reference)``: a basic bootstrap over the sample rows and the
    reference rows, each drawn again with replacement (:mod:`genbench.metrics.bootstrap`, weighted rows, no copies).

    Returns ``{"value", "interval", "interval_of", "resamples"}``. ``resamples`` defaults to
    :data:`~genbench.metrics.bootstrap.RESAMPLES`, fewer (said in ``interval_of``) where ``B · (n + m) · d²``
    passes :data:`BOOTSTRAP_FLOP_BUDGET` (a 2,048-D feature space), and no interval below
    :data:`~genbench.metrics.bootstrap.MIN_RESAMPLES`."""
    x = np.asarray(samples, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    value = frechet_distance(*gaussian_statistics(x), *(reference_stats or gaussian_statistics(y)))
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    wanted = bs.RESAMPLES if resamples is None else int(resamples)
    affordable = int(BOOTSTRAP_FLOP_BUDGET // max(1.0, float(n + m) * d * d + 2.0 * d ** 3))
    b = min(wanted, affordable)
    over = f"the {n:,} samples and the {m:,} reference rows"
    if b < bs.MIN_RESAMPLES:
        return {"value": value, "interval": None, "resamples": 0,
                "interval_of": f"no interval: {bs.MIN_RESAMPLES} resamples of {n:,} + {m:,} rows in {d} dimensions "
                               "pass the bootstrap's compute budget"}
    values = bs.bootstrap_values(
        lambda wx, wy: frechet_distance(*bs.weighted_statistics(x, wx), *bs.weighted_statistics(y, wy)),
        [n, m], b, bs.generator(seed, 1))
    interval = bs.containing(bs.basic_interval(value, values), value)
    extra = "" if b == wanted else f"fewer than {wanted} to keep {d}-D features affordable"
    return {"value": value, "interval": interval, "resamples": b, "interval_of": bs.describe(over, b, extra)}


#: FD∞: FD of this many nested-size subsets of the samples, from ``FD_INF_SMALLEST`` of them to all
FD_INF_POINTS = 15
FD_INF_SMALLEST = 0.2


def frechet_distance_infinity(samples: np.ndarray, reference_stats: tuple[np.ndarray, np.ndarray], *,
                              points: int = FD_INF_POINTS, smallest: float = FD_INF_SMALLEST, seed: int = 0,
                              level: float = 0.95) -> dict:
    """FD∞ (Chong & Forsyth, "Effectively Unbiased FID and Inception Score and where to find them", CVPR 2020):
    FD is biased upward by a term linear in 1/N for N samples, so FD is computed on random subsets of the samples
    at ``points`` sizes N evenly spaced from ``smallest · n`` to ``n``, a line ``FD_N = FD∞ + b/N`` is fitted by
    least squares (``scipy.stats.linregress``) and its intercept at 1/N = 0 is FD∞. The reference keeps all its
    rows (as in the paper). Returns ``{"value", "interval", "interval_of", "slope", "sizes"}``: the interval is
    the fit's ``level`` t-interval of the intercept (``points − 2`` degrees of freedom), the uncertainty of the
    extrapolation — not a bootstrap. ``ValueError`` when the smallest subset has fewer than ``d + 2`` rows."""
    x = np.asarray(samples, dtype=np.float64)
    n, d = x.shape
    lo = int(math.ceil(smallest * n))
    if points < 3:
        raise ValueError(f"FD∞ fits a line through at least 3 subset sizes, not {points}")
    if lo < max(d + 2, 3):
        need = int(math.ceil(max(d + 2, 3) / smallest))
        raise ValueError(f"FD∞ needs at least {need:,} samples in a {d}-dimensional feature space (its smallest "
                         f"subset, {smallest:.0%} of them, must hold {max(d + 2, 3)} rows); {n:,} were drawn")
    sizes = np.unique(np.linspace(lo, n, points).round().astype(int))
    rng = np.random.default_rng([20200, int(seed) & 0xFFFFFFFF])
    fds = np.array([frechet_distance(*gaussian_statistics(x[rng.choice(n, size, replace=False)]), *reference_stats)
                    for size in sizes])
    fit = stats.linregress(1.0 / sizes, fds)
    half = float(stats.t.ppf(0.5 + level / 2, len(sizes) - 2)) * float(fit.intercept_stderr)
    value = float(fit.intercept)
    return {"value": value, "interval": (value - half, value + half), "slope": float(fit.slope),
            "sizes": [int(s) for s in sizes],
            "interval_of": f"{level:.0%} t-interval of the intercept of FD_N = FD∞ + b/N fitted at {len(sizes)} "
                           f"subset sizes N = {sizes[0]:,} to {sizes[-1]:,}"}
