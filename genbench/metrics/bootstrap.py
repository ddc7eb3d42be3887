"""Sampling intervals of one run's sample-based numbers: a bootstrap over the samples and the reference set.

One run draws ``n`` samples and scores them against a finite reference split; both are random, so the same
model scored again gives a different number. The interval of a :class:`~genbench.types.MetricValue`
(``interval``, described in ``interval_of``) says how far: it is the 95% basic bootstrap interval
(Davison & Hinkley 1997, §5.2; :func:`basic_interval`) of the metric's estimate, the samples and the reference rows each drawn
again with replacement, independently, :data:`RESAMPLES` times.

Cheap by default: a resample is a row of multinomial counts (:func:`weights`), never a copy of the feature
rows. Each metric evaluates itself on weighted rows, vectorised over resamples where its formula allows it
(means, histograms, the sparse ball-membership matrices of the k-NN metrics), so scoring a job costs a small
multiple of one evaluation. The generator is fixed (:data:`BOOTSTRAP_SEED` and the job's seed), so a run
prints the same interval every time.

A fraction of ``n`` independent samples (a share of samples that are high quality, or copies) is a binomial
proportion: it gets the exact Clopper–Pearson interval (:func:`binomial_interval`; ``scipy.stats.binomtest``)
instead, which is never ``[0, 0]`` for 0 successes.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

#: resamples per interval (200 gives 95% percentile endpoints to within a few per cent of their width)
RESAMPLES = 200
LEVEL = 0.95
BOOTSTRAP_SEED = 20240607  # mixed with the job's seed: a fixed generator per job
#: an interval is left out (said so in ``interval_of``) when fewer than this many resamples give a value
MIN_RESAMPLES = 20


def generator(seed: int = 0, stream: int = 0) -> np.random.Generator:
    """The fixed generator of one interval: the same job (seed) and stream always draw the same resamples."""
    return np.random.default_rng([BOOTSTRAP_SEED, int(seed) & 0xFFFFFFFF, int(stream)])


def weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``[resamples, n]`` float64 counts: how often each of ``n`` rows is drawn in each bootstrap resample
    (each row of counts sums to ``n``: ``n`` draws with replacement)."""
    if n < 1:
        raise ValueError(f"cannot resample {n} rows")
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def percentile_interval(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> tuple[float, float] | None:
    """The ``level`` percentile interval of bootstrap ``values`` (NaN resamples left out), or None when
    fewer than :data:`MIN_RESAMPLES` are finite."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < MIN_RESAMPLES:
        return None
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def basic_interval(point: float, values: Sequence[float] | np.ndarray,
                   level: float = LEVEL) -> tuple[float, float] | None:
    """The ``level`` *basic* bootstrap interval ``[2θ̂ − q_hi, 2θ̂ − q_lo]`` (Davison & Hinkley 1997, §5.2) of
    the estimate ``point`` from its bootstrap ``values``: the percentile interval reflected about the point, which
    corrects the estimator's bias to first order (FD is biased upward at finite n, and a resample's FD more so;
    the plain percentile interval then misses the true value far more often than 5%). It can reach past the
    metric's range (below 0 for FD): reports clip it there."""
    q = percentile_interval(values, level)
    if q is None or not math.isfinite(point):
        return None
    return 2.0 * point - q[1], 2.0 * point - q[0]


def containing(interval: tuple[float, float] | None, value: float) -> tuple[float, float] | None:
    """``interval`` widened, where it must be, to contain the point ``value`` (a percentile interval of a
    skewed statistic can miss its own point estimate by a hair; a report must never show that)."""
    if interval is None or not math.isfinite(value):
        return interval
    return min(interval[0], value), max(interval[1], value)


def describe(over: str, resamples: int = RESAMPLES, extra: str = "") -> str:
    """``95% basic bootstrap over the samples and the test split, 200 resamples``."""
    return f"{LEVEL:.0%} basic bootstrap over {over}, {resamples} resamples" + (f"; {extra}" if extra else "")


def binomial_interval(successes: int, trials: int, level: float = LEVEL) -> tuple[float, float]:
    """The exact (Clopper–Pearson) ``level`` interval of a proportion ``successes / trials``: for 0 of 500 it is
    [0, 0.0074], not [0, 0]."""
    from scipy.stats import binomtest

    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"a proportion needs 0 <= successes <= trials >= 1, got {successes} of {trials}")
    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def binomial_text(trials: int, rows: str = "samples", held: str = "", level: float = LEVEL) -> str:
    """``95% Clopper–Pearson (exact binomial) interval over 500 samples``, and what was held fixed."""
    return (f"{level:.0%} Clopper–Pearson (exact binomial) interval over {trials:,} {rows}"
            + (f"; {held}" if held else ""))


def weighted_statistics(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of the rows of ``x`` ``[n, d]`` drawn ``w[i]`` times each (``Σ w = n``):
    the :func:`~genbench.metrics.frechet.gaussian_statistics` of the resample, without building it."""
    n = float(w.sum())
    mu = (w @ x) / n
    centred = x - mu
    sigma = (centred * w[:, None]).T @ centred / (n - 1.0)
    return mu, np.atleast_2d(sigma)


def bootstrap_values(statistic: Callable[..., float], sizes: Sequence[int], resamples: int,
                     rng: np.random.Generator) -> np.ndarray:
    """``statistic(w_1, ..., w_k)`` for each of ``resamples`` bootstrap resamples of ``k`` independent sets of
    ``sizes`` rows (each ``w_i`` the counts of set ``i``); a resample whose statistic raises ``ValueError``
    or ``FloatingPointError`` is NaN (left out of the interval)."""
    ws = [weights(n, resamples, rng) for n in sizes]
    out = np.empty(resamples)
    for b in range(resamples):
        try:
            out[b] = statistic(*(w[b] for w in ws))
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            out[b] = np.nan
    return out


__all__ = ["BOOTSTRAP_SEED", "LEVEL", "MIN_RESAMPLES", "RESAMPLES", "basic_interval", "binomial_interval", "binomial_text",
           "bootstrap_values", "containing", "describe", "generator", "percentile_interval", "weighted_statistics",
           "weights"]
