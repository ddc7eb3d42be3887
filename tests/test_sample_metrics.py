"""Sample-based metrics and streaming feature statistics: closed forms, brute-force references written
here independently of genbench, statistical behaviour on known distributions, and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from genbench.metrics import sample_metrics as sm
from genbench.metrics.frechet import (
    StreamingStatistics,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
)
from genbench.data.points import GRID25_CENTERS, GRID25_SIGMA, RING8_CENTERS, RING8_SIGMA, grid25, ring8
from genbench.metrics.sample_metrics import (
    class_histogram,
    classifier_score,
    density_coverage,
    kernel_inception_distance,
    knn_kl_divergence,
    mixture_mode_metrics,
    mode_histogram_kl,
    modes_covered,
    precision_recall,
)


def clusters(rng: np.random.Generator, n: int, d: int, num: int = 8, spread: float = 0.3,
             only: int | None = None) -> np.ndarray:
    """``n`` points around ``num`` fixed cluster centres (seeded apart from ``rng``); ``only`` keeps one."""
    centres = np.random.default_rng(12345).normal(scale=5.0, size=(num, d))
    which = np.full(n, only) if only is not None else rng.integers(0, num, size=n)
    return centres[which] + spread * rng.normal(size=(n, d))


# --------------------------------------------------------------------------- KID


def reference_mmd2(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD² written out pair by pair (O(n²) Python loops)."""
    def k(a, b):
        return (gamma * float(np.dot(a, b)) + coef0) ** degree

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2.0 * xy


@pytest.mark.parametrize("degree, gamma, coef0", [(3, None, 1.0), (2, 0.5, 0.25), (5, 0.1, 2.0)])
def test_kid_matches_pairwise_reference_on_one_full_subset(degree, gamma, coef0):
    rng = np.random.default_rng(1)
    n, d = 30, 4
    x, y = rng.normal(size=(n, d)), rng.normal(loc=0.4, size=(n, d))
    expected = reference_mmd2(x, y, degree, 1.0 / d if gamma is None else gamma, coef0)
    mean, std = kernel_inception_distance(x, y, num_subsets=1, subset_size=n, degree=degree, gamma=gamma, coef0=coef0)
    assert mean == pytest.approx(expected, rel=1e-10)
    assert std == 0.0


def test_kid_subset_size_is_capped_at_the_smaller_set():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(25, 3)), rng.normal(size=(40, 3)) + 1.0
    capped = kernel_inception_distance(x, y, num_subsets=5, subset_size=10_000, seed=3)
    explicit = kernel_inception_distance(x, y, num_subsets=5, subset_size=25, seed=3)
    assert capped == explicit


def test_kid_same_distribution_is_zero_within_three_std():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
    mean, std = kernel_inception_distance(x, y, num_subsets=50, subset_size=500)
    assert std > 0
    assert abs(mean) < 3 * std


def test_kid_shifted_distribution_is_clearly_positive():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(2000, 16)), rng.normal(loc=0.3, size=(2000, 16))
    mean, std = kernel_inception_distance(x, y, num_subsets=50, subset_size=500)
    assert mean > 10 * std
    # larger shift, larger distance
    assert kernel_inception_distance(x, y + 0.3, num_subsets=50, subset_size=500)[0] > 2 * mean


def test_kid_is_deterministic_for_a_seed_and_varies_with_it():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    a = kernel_inception_distance(x, y, num_subsets=10, subset_size=100, seed=7)
    assert kernel_inception_distance(x, y, num_subsets=10, subset_size=100, seed=7) == a
    assert kernel_inception_distance(x, y, num_subsets=10, subset_size=100, seed=8) != a
    assert all(type(v) is float for v in a)


@pytest.mark.parametrize(
    "real, fake, kwargs",
    [
        (np.zeros((10, 3)), np.zeros((10, 4)), {}),
        (np.zeros((1, 3)), np.zeros((10, 3)), {}),
        (np.zeros((10, 3)), np.zeros((10, 3)), {"num_subsets": 0}),
        (np.zeros((10, 3)), np.zeros((10, 3)), {"degree": 0}),
        (np.zeros(10), np.zeros(10), {}),
        (np.full((10, 3), np.nan), np.zeros((10, 3)), {}),
    ],
    ids=["dims", "one-row", "no-subsets", "degree-0", "1d", "nan"],
)
def test_kid_rejects_bad_input(real, fake, kwargs):
    with pytest.raises(ValueError):
        kernel_inception_distance(real, fake, **kwargs)


# --------------------------------------------------------------------------- precision / recall, density / coverage


def brute_force_manifold_metrics(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Kynkäänniemi et al. and Naeem et al. written directly on full cdist matrices."""
    real_radii = np.sort(cdist(real, real), axis=1)[:, k]  # column 0 is the point itself
    fake_radii = np.sort(cdist(fake, fake), axis=1)[:, k]
    d = cdist(fake, real)  # [fake, real]
    return {
        "precision": float((d <= real_radii[None, :]).any(axis=1).mean()),
        "recall": float((d <= fake_radii[:, None]).any(axis=0).mean()),
        "density": float((d <= real_radii[None, :]).sum() / (k * len(fake))),
        "coverage": float((d.min(axis=0) <= real_radii).mean()),
    }


@pytest.mark.parametrize("d", [2, 12], ids=["kdtree-radii", "blas-radii"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_manifold_metrics_match_brute_force(d, k, monkeypatch):
    monkeypatch.setattr(sm, "_BLOCK_ENTRIES", 500)  # many small blocks, uneven last one
    rng = np.random.default_rng(10 * d + k)
    real, fake = rng.normal(size=(80, d)), rng.normal(loc=0.5, scale=0.8, size=(65, d))
    expected = brute_force_manifold_metrics(real, fake, k)
    assert 0 < expected["precision"] < 1 and 0 < expected["recall"] < 1 and 0 < expected["coverage"] < 1
    assert precision_recall(real, fake, k=k) == (expected["precision"], expected["recall"])
    density, coverage = density_coverage(real, fake, k=k)
    assert density == pytest.approx(expected["density"], rel=1e-12)
    assert coverage == expected["coverage"]


@pytest.mark.parametrize("d", [2, 12], ids=["kdtree-radii", "blas-radii"])
def test_identical_sets_have_full_precision_recall_and_coverage(d):
    rng = np.random.default_rng(20 + d)
    x = rng.normal(loc=100.0, size=(300, d))  # the offset tests the round-off allowance
    assert precision_recall(x, x) == (1.0, 1.0)
    assert density_coverage(x, x)[1] == 1.0


@pytest.mark.parametrize("d", [3, 10], ids=["kdtree-radii", "blas-radii"])
def test_identical_sets_with_duplicates_keep_zero_radius_balls(d):
    # exact radii of 0 against distances from ‖a‖² + ‖b‖² − 2a·b: needs the round-off allowance
    rng = np.random.default_rng(21)
    x = np.repeat(rng.normal(scale=1e3, size=(40, d)), 6, axis=0)  # every point 6 times: radii 0 for k <= 5
    assert precision_recall(x, x, k=3) == (1.0, 1.0)
    assert density_coverage(x, x, k=5) == (pytest.approx(6 / 5), 1.0)  # each fake in 6 zero-radius balls


def test_mode_collapsed_generator_has_high_precision_low_recall():
    rng = np.random.default_rng(22)
    real = clusters(rng, 1600, 4)
    collapsed = clusters(rng, 1600, 4, only=0)  # every sample near one of the 8 real clusters
    faithful = clusters(rng, 1600, 4)
    precision, recall = precision_recall(real, collapsed)
    faithful_precision, faithful_recall = precision_recall(real, faithful)
    assert precision > 0.9 and precision == pytest.approx(faithful_precision, abs=0.05)
    assert recall < 0.2 < 0.9 < faithful_recall  # about 1/8 of the data is reached
    coverage, faithful_coverage = density_coverage(real, collapsed)[1], density_coverage(real, faithful)[1]
    assert coverage < 0.2 < 0.9 < faithful_coverage


def test_same_distribution_density_near_one_and_coverage_near_closed_form():
    rng = np.random.default_rng(23)
    real, fake = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    density, coverage = density_coverage(real, fake, k=5)
    assert density == pytest.approx(1.0, abs=0.1)
    # Naeem et al. (2020): E[coverage] = 1 − Π_{i=1..k} (N − i)/(N + M − i) ≈ 1 − 2^−k for M = N
    assert coverage == pytest.approx(1 - 2.0 ** -5, abs=0.03)
    precision, recall = precision_recall(real, fake)
    assert precision > 0.5 and recall > 0.5


def test_far_away_samples_have_zero_density_and_coverage():
    rng = np.random.default_rng(24)
    real = rng.normal(size=(500, 4))
    fake = rng.normal(loc=50.0, size=(500, 4))
    assert density_coverage(real, fake) == (0.0, 0.0)
    assert precision_recall(real, fake) == (0.0, 0.0)


def test_manifold_metrics_reject_bad_k_and_shapes():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="k must"):
        precision_recall(x, x, k=5)
    with pytest.raises(ValueError, match="k must"):
        density_coverage(x, x, k=0)
    with pytest.raises(ValueError, match="dimension"):
        precision_recall(x, np.zeros((5, 2)))


# --------------------------------------------------------------------------- mode histograms


def test_mode_histogram_kl_uniform_against_uniform_is_zero():
    modes = np.tile(np.arange(10), 7)
    assert mode_histogram_kl(modes, np.full(10, 0.1), 10) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("m", [2, 8, 25])
def test_mode_histogram_kl_one_hot_against_uniform_is_log_m(m):
    assert mode_histogram_kl(np.full(50, m - 1), np.full(m, 1.0 / m), m) == pytest.approx(math.log(m), rel=1e-14)


def test_mode_histogram_kl_general_case_and_empty_bins():
    # p̂ = (1/2, 1/4, 1/4, 0) against q = (0.4, 0.1, 0.1, 0.4): the empty last bin adds nothing
    modes = np.array([0, 0, 1, 2])
    q = np.array([0.4, 0.1, 0.1, 0.4])
    expected = 0.5 * math.log(0.5 / 0.4) + 2 * 0.25 * math.log(0.25 / 0.1)
    assert mode_histogram_kl(modes, q, 4) == pytest.approx(expected, rel=1e-14)


def test_mode_histogram_kl_rejects_zero_reference_mass_where_samples_are():
    with pytest.raises(ValueError, match=r"mode\(s\) \[2\]"):
        mode_histogram_kl(np.array([0, 2]), np.array([0.5, 0.5, 0.0]), 3)
    # zero mass where no sample falls is fine
    assert mode_histogram_kl(np.array([0, 1]), np.array([0.5, 0.5, 0.0]), 3) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize(
    "modes, probs, num_modes",
    [
        (np.array([0, 3]), np.full(3, 1 / 3), 3),  # out of range
        (np.array([-1, 0]), np.full(3, 1 / 3), 3),  # negative
        (np.array([0.0, 1.0]), np.full(3, 1 / 3), 3),  # not integers
        (np.array([], dtype=int), np.full(3, 1 / 3), 3),  # empty
        (np.array([0, 1]), np.full(4, 1 / 4), 3),  # reference of the wrong length
        (np.array([0, 1]), np.array([0.5, 0.6, 0.1]), 3),  # does not sum to 1
    ],
    ids=["range", "negative", "float", "empty", "length", "sum"],
)
def test_mode_histogram_kl_rejects_bad_input(modes, probs, num_modes):
    with pytest.raises(ValueError):
        mode_histogram_kl(modes, probs, num_modes)


def test_modes_covered_counts_modes_with_enough_samples():
    modes = np.array([0, 0, 0, 1, 3, 3])
    assert modes_covered(modes, 5) == 3
    assert modes_covered(modes, 5, min_count=2) == 2
    assert modes_covered(modes, 5, min_count=3) == 1
    assert modes_covered(np.array([], dtype=int), 5) == 0
    with pytest.raises(ValueError):
        modes_covered(modes, 3)  # mode 3 out of range


# --------------------------------------------------------------------------- k-NN KL divergence


def brute_force_knn_kl(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Wang–Kulkarni–Verdú with k-th smallest positive distances, from full cdist matrices."""
    n, m, d = len(x), len(y), x.shape[1]
    rho = np.array([np.sort(row[row > 0])[k - 1] for row in cdist(x, x)])
    nu = np.array([np.sort(row[row > 0])[k - 1] for row in cdist(x, y)])
    return float(d / n * np.sum(np.log(nu / rho)) + math.log(m / (n - 1)))


@pytest.mark.parametrize("k", [1, 2, 4])
def test_knn_kl_matches_brute_force_with_and_without_duplicates(k):
    rng = np.random.default_rng(30 + k)
    x, y = rng.normal(size=(60, 3)), rng.normal(loc=0.5, size=(70, 3))
    assert knn_kl_divergence(x, y, k=k) == pytest.approx(brute_force_knn_kl(x, y, k), rel=1e-12)
    # each point 5 times, and y sharing points with x: the neighbour search has to widen repeatedly
    xd = np.repeat(x[:20], 5, axis=0)
    yd = np.vstack([y[:30], np.repeat(x[:10], 3, axis=0)])
    got = knn_kl_divergence(xd, yd, k=k)
    assert np.isfinite(got)
    assert got == pytest.approx(brute_force_knn_kl(xd, yd, k), rel=1e-12)


def test_knn_kl_shifted_unit_gaussians():
    # KL(N(0,1) ‖ N(3,1)) = 3²/2 = 4.5. The estimator is biased low at this size: P's left tail,
    # where no Q sample lies near, caps ν. Measured at n = m = 10,000 over 20 seeds: mean 4.27,
    # std 0.20 per run, min 3.93; at n = m = 50,000: 4.40 ± 0.09.
    runs = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        runs.append(knn_kl_divergence(rng.normal(size=10_000), rng.normal(loc=3.0, size=10_000)))
    assert all(abs(r - 4.5) < 0.8 for r in runs)
    assert abs(np.mean(runs) - 4.5) < 0.4
    rng = np.random.default_rng(100)
    assert knn_kl_divergence(rng.normal(size=50_000), rng.normal(loc=3.0, size=50_000)) == pytest.approx(4.5, abs=0.3)


def test_knn_kl_same_distribution_near_zero():
    rng = np.random.default_rng(31)
    assert abs(knn_kl_divergence(rng.normal(size=10_000), rng.normal(size=10_000))) < 0.1


def test_knn_kl_uses_the_dimension():
    # KL(N(0, I₂) ‖ N(0, 4 I₂)) = (d/2)(1/4 − 1 + ln 4) with d = 2
    rng = np.random.default_rng(32)
    x, y = rng.normal(size=(10_000, 2)), 2.0 * rng.normal(size=(10_000, 2))
    assert knn_kl_divergence(x, y, k=3) == pytest.approx(0.25 - 1 + math.log(4), abs=0.08)


def test_knn_kl_same_array_twice_is_finite_and_near_zero():
    x = np.random.default_rng(33).normal(size=(500, 2))
    assert knn_kl_divergence(x, x) == pytest.approx(math.log(500 / 499), rel=1e-12)
    doubled = np.vstack([x, x])
    assert np.isfinite(knn_kl_divergence(doubled, doubled, k=2))


def test_knn_kl_rejects_degenerate_input():
    with pytest.raises(ValueError, match="duplicates"):
        knn_kl_divergence(np.zeros((10, 2)), np.ones((10, 2)))
    with pytest.raises(ValueError, match="dimension"):
        knn_kl_divergence(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(ValueError, match="k must"):
        knn_kl_divergence(np.arange(5.0), np.arange(5.0), k=5)


# --------------------------------------------------------------------------- classifier score


def test_classifier_score_uniform_predictions_give_one():
    assert classifier_score(np.full((100, 10), 0.1)) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("c", [2, 10, 1000])
def test_classifier_score_confident_evenly_spread_predictions_give_c(c):
    probs = np.eye(c)[np.arange(5 * c) % c]
    assert classifier_score(probs) == pytest.approx(c, rel=1e-12)


def test_classifier_score_confident_collapsed_predictions_give_one():
    assert classifier_score(np.eye(10)[np.zeros(50, dtype=int)]) == pytest.approx(1.0, abs=1e-12)


def test_classifier_score_matches_direct_formula():
    rng = np.random.default_rng(40)
    p = rng.dirichlet(np.full(7, 0.3), size=200).astype(np.float32)
    p64 = p.astype(np.float64) / p.astype(np.float64).sum(1, keepdims=True)
    py = p64.mean(0)
    terms = np.where(p64 > 0, p64 * np.log(np.where(p64 > 0, p64, 1.0) / py), 0.0)
    assert classifier_score(p) == pytest.approx(math.exp(terms.sum(1).mean()), rel=1e-10)


@pytest.mark.parametrize("probs", [np.full((3, 4), 0.3), -np.eye(3), np.ones(4)], ids=["sum", "negative", "1d"])
def test_classifier_score_rejects_bad_input(probs):
    with pytest.raises(ValueError):
        classifier_score(probs)


def test_class_histogram_from_labels_and_from_probabilities():
    labels = np.array([0, 2, 2, 3, 3, 3])
    np.testing.assert_array_equal(class_histogram(labels, 5), [1, 0, 2, 3, 0])
    probs = np.eye(5)[labels] * 0.6 + 0.1
    np.testing.assert_array_equal(class_histogram(probs, 5), [1, 0, 2, 3, 0])
    assert class_histogram(labels, 5).dtype == np.int64
    with pytest.raises(ValueError):
        class_histogram(probs, 4)
    with pytest.raises(ValueError):
        class_histogram(labels, 3)


# --------------------------------------------------------------------------- 2-D mixtures


def test_mixture_constants():
    assert RING8_CENTERS.shape == (8, 2) and GRID25_CENTERS.shape == (25, 2)
    np.testing.assert_allclose(np.linalg.norm(RING8_CENTERS, axis=1), 1.0, rtol=1e-15)
    assert len({tuple(np.round(c, 9)) for c in RING8_CENTERS}) == 8
    assert {tuple(c) for c in GRID25_CENTERS} == {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert (RING8_SIGMA, GRID25_SIGMA) == (0.01, 0.05)


MIXTURES = [(ring8, RING8_CENTERS, RING8_SIGMA), (grid25, GRID25_CENTERS, GRID25_SIGMA)]


@pytest.mark.parametrize("make, centers, sigma", MIXTURES, ids=["ring8", "grid25"])
def test_mixture_samplers(make, centers, sigma):
    points, modes = make(20_000, np.random.default_rng(50))
    assert points.dtype == np.float32 and points.shape == (20_000, 2)
    assert modes.shape == (20_000,) and np.issubdtype(modes.dtype, np.integer)
    nearest = cdist(points, centers).argmin(axis=1)
    np.testing.assert_array_equal(nearest, modes)  # modes are far apart relative to sigma
    offsets = points - centers[modes]
    assert offsets.std() == pytest.approx(sigma, rel=0.02)
    assert np.bincount(modes).min() > 0.8 * 20_000 / len(centers)  # equal weights
    again = make(20_000, np.random.default_rng(50))
    np.testing.assert_array_equal(again[0], points)


@pytest.mark.parametrize("make, centers, sigma", MIXTURES, ids=["ring8", "grid25"])
def test_true_mixture_covers_every_mode_with_chi2_quality(make, centers, sigma):
    points, _ = make(20_000, np.random.default_rng(51))
    metrics = mixture_mode_metrics(points, centers, sigma)
    assert metrics["modes_covered"] == len(centers)
    # |x − μ|²/σ² ~ χ²₂, so P(|x − μ| ≤ 3σ) = 1 − e^{−9/2}
    assert metrics["high_quality_fraction"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert 0 <= metrics["reverse_kl"] < 0.005
    assert metrics["mode_counts"].sum() == round(metrics["high_quality_fraction"] * 20_000)


def test_generator_collapsed_to_two_modes():
    points, modes = ring8(40_000, np.random.default_rng(52))
    keep = np.isin(modes, [1, 5])
    metrics = mixture_mode_metrics(points[keep], RING8_CENTERS, RING8_SIGMA)
    assert metrics["modes_covered"] == 2
    assert metrics["reverse_kl"] == pytest.approx(math.log(8 / 2), abs=0.01)
    assert set(np.flatnonzero(metrics["mode_counts"])) == {1, 5}


def test_blurry_samples_are_low_quality_and_min_count_applies():
    rng = np.random.default_rng(53)
    points, modes = ring8(8_000, rng)
    blurred = RING8_CENTERS[modes] + 10 * RING8_SIGMA * rng.normal(size=(8_000, 2))
    metrics = mixture_mode_metrics(blurred, RING8_CENTERS, RING8_SIGMA)
    assert metrics["high_quality_fraction"] == pytest.approx(1 - math.exp(-0.045), abs=0.01)  # 3σ of a 10σ blur
    assert metrics["modes_covered"] == 8
    assert mixture_mode_metrics(blurred, RING8_CENTERS, RING8_SIGMA, min_count=10_000)["modes_covered"] == 0


def test_high_quality_threshold_is_inclusive_euclidean_distance():
    sigma = 0.5
    centers = np.array([[0.0, 0.0], [100.0, 0.0]])
    unit = np.array([0.6, 0.8])  # a unit vector off the axes: Euclidean, not per-coordinate
    samples = np.vstack([2.999 * sigma * unit, 3.001 * sigma * unit, [100.0, 3.0 * sigma], [100.0, 1.6]])
    metrics = mixture_mode_metrics(samples, centers, sigma)
    assert metrics["high_quality_fraction"] == 0.5
    np.testing.assert_array_equal(metrics["mode_counts"], [1, 1])
    assert metrics["reverse_kl"] == pytest.approx(0.0, abs=1e-15)
    assert mixture_mode_metrics(samples, centers, sigma, threshold_sigmas=3.1)["high_quality_fraction"] == 0.75


def test_no_high_quality_samples_gives_nan_reverse_kl():
    far = np.full((100, 2), 10.0)
    metrics = mixture_mode_metrics(far, GRID25_CENTERS, GRID25_SIGMA)
    assert metrics["high_quality_fraction"] == 0.0
    assert metrics["modes_covered"] == 0
    assert math.isnan(metrics["reverse_kl"])
    np.testing.assert_array_equal(metrics["mode_counts"], np.zeros(25))


# --------------------------------------------------------------------------- streaming statistics


def random_batches(rng: np.random.Generator, x: np.ndarray) -> list[np.ndarray]:
    """``x`` cut at random points into batches of sizes 1, 1, 0, then random sizes up to 97."""
    cuts, start = [], 0
    for size in [1, 1, 0] + list(rng.integers(1, 98, size=len(x))):
        if start >= len(x):
            break
        cuts.append(x[start:start + size])
        start += size
    return cuts


def assert_matches_one_pass(mu, sigma, x):
    ref_mu, ref_sigma = np.mean(x, axis=0), np.cov(x, rowvar=False, ddof=1)
    np.testing.assert_allclose(mu, ref_mu, rtol=1e-12, atol=1e-12 * np.abs(ref_mu).max())
    np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-12, atol=1e-12 * np.abs(ref_sigma).max())


@pytest.mark.parametrize("offset", [0.0, 1e6], ids=["centred", "offset-1e6"])
def test_streaming_statistics_match_one_pass_cov(offset):
    rng = np.random.default_rng(60)
    a = rng.normal(size=(12, 12))
    x = offset + rng.normal(size=(1500, 12)) @ a
    mu, sigma, n = feature_statistics(random_batches(rng, x))
    assert n == 1500
    assert_matches_one_pass(mu, sigma, x)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_array_equal(sigma, sigma.T)


def test_the_offset_case_defeats_naive_running_sums():
    # shows the offset test above can fail: Σx and Σxxᵀ lose the covariance to cancellation
    rng = np.random.default_rng(61)
    x = 1e6 + rng.normal(size=(1500, 4))
    naive = (x.T @ x - np.outer(x.sum(0), x.sum(0)) / len(x)) / (len(x) - 1)
    ref = np.cov(x, rowvar=False)
    assert np.abs(naive - ref).max() > 1e-6 * np.abs(ref).max()
    assert_matches_one_pass(*feature_statistics(random_batches(rng, x))[:2], x)


def test_streaming_statistics_batch_size_one_and_float32():
    rng = np.random.default_rng(62)
    x = rng.normal(loc=3.0, size=(200, 5)).astype(np.float32)
    stats = StreamingStatistics()
    for row in x:
        stats.update(row[None, :])
    assert stats.count == 200 and stats.dim == 5
    assert_matches_one_pass(stats.mean, stats.covariance, x.astype(np.float64))


def test_streaming_statistics_merge_equals_one_stream():
    rng = np.random.default_rng(63)
    x = 50.0 + rng.normal(size=(900, 6))
    left, right, empty = StreamingStatistics(), StreamingStatistics(), StreamingStatistics()
    for b in random_batches(rng, x[:400]):
        left.update(b)
    for b in random_batches(rng, x[400:]):
        right.update(b)
    merged = StreamingStatistics().merge(empty).merge(left).merge(right).merge(empty)
    assert merged.count == 900
    assert_matches_one_pass(merged.mean, merged.covariance, x)
    assert left.count == 400  # merging copies, it does not alias
    left.merge(right)
    assert_matches_one_pass(left.mean, left.covariance, x)


def test_streaming_statistics_feed_frechet_distance():
    rng = np.random.default_rng(64)
    a, b = rng.normal(size=(700, 8)), rng.normal(loc=0.5, size=(900, 8))
    mu1, s1, _ = feature_statistics(np.array_split(a, 7))
    mu2, s2, _ = feature_statistics(np.array_split(b, 4))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance_from_features(a, b), rel=1e-10)


def test_streaming_statistics_reject_bad_input():
    stats = StreamingStatistics()
    with pytest.raises(ValueError, match="no features"):
        stats.mean
    with pytest.raises(ValueError, match=r"\[b, d\]"):
        stats.update(np.zeros(4))
    stats.update(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        stats.covariance
    with pytest.raises(ValueError, match="d = 3"):
        stats.update(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        feature_statistics([])
