"""Fréchet distance: closed forms, an independent sqrtm reference, edge cases and input checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from genbench.metrics.frechet import frechet_distance, frechet_distance_from_features, gaussian_statistics


def random_spd(rng: np.random.Generator, d: int, jitter: float = 0.1) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + jitter * np.eye(d)


def random_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def reference_fd(mu1, sigma1, mu2, sigma2) -> float:
    """The classic pytorch-fid formula, written independently of genbench (sqrtm of the product)."""
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("d", [1, 5, 40])
def test_diagonal_covariances_match_closed_form(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 5.0, size=d), rng.uniform(0.1, 5.0, size=d)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("d", [3, 16])
def test_commuting_full_covariances_match_closed_form(d):
    rng = np.random.default_rng(100 + d)
    q = random_orthogonal(rng, d)
    l1, l2 = rng.uniform(0.05, 4.0, size=d), rng.uniform(0.05, 4.0, size=d)
    s1, s2 = q @ np.diag(l1) @ q.T, q @ np.diag(l2) @ q.T
    assert not np.allclose(s1, np.diag(np.diag(s1)))  # really a full matrix
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_one_dimensional_case():
    # (mu1 - mu2)^2 + (sigma1 - sigma2)^2 with variances 4 and 9: 2^2 + (2 - 3)^2 = 5
    got = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]]))
    assert got == pytest.approx(5.0, abs=1e-12)


@pytest.mark.parametrize("d", [1, 7, 64])
def test_unit_mean_shift_with_identity_covariance_is_d(d):
    got = frechet_distance(np.zeros(d), np.eye(d), np.ones(d), np.eye(d))
    assert abs(got - d) < 1e-9


def test_singular_diagonal_covariances_match_closed_form():
    a, b = np.array([0.0, 1.0, 4.0]), np.array([1.0, 0.0, 4.0])
    got = frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b))
    assert got == pytest.approx(2.0, abs=1e-12)


# --------------------------------------------------------------------------- properties


def test_symmetric_in_its_arguments():
    rng = np.random.default_rng(7)
    d = 32
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    ab = frechet_distance(mu1, s1, mu2, s2)
    ba = frechet_distance(mu2, s2, mu1, s1)
    assert ab > 0
    assert ab == pytest.approx(ba, rel=1e-8)


def test_identical_inputs_give_zero_as_python_float():
    rng = np.random.default_rng(3)
    d = 32
    mu, s = rng.normal(size=d), random_spd(rng, d)
    got = frechet_distance(mu, s, mu, s)
    assert type(got) is float
    assert abs(got) < 1e-8


def test_rank_deficient_covariances_give_finite_result():
    rng = np.random.default_rng(11)
    d, r = 12, 3
    b1, b2 = rng.normal(size=(d, r)), rng.normal(size=(d, r))
    s1, s2 = b1 @ b1.T, b2 @ b2.T
    assert np.linalg.matrix_rank(s1) == r
    got = frechet_distance(np.zeros(d), s1, np.ones(d), s2)
    assert np.isfinite(got)
    assert got >= -1e-8
    # identical singular inputs: the square roots of round-off-sized eigenvalues leave an error of
    # order sqrt(machine eps) * scale (the sqrtm reference does no better), so compare relatively
    same = frechet_distance(np.zeros(d), s1, np.zeros(d), s1)
    assert np.isfinite(same) and abs(same) < 1e-6 * np.trace(s1)


# --------------------------------------------------------------------------- independent reference


def test_agrees_with_sqrtm_reference_on_random_spd():
    rng = np.random.default_rng(2024)
    d = 16
    for _ in range(3):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = random_spd(rng, d), random_spd(rng, d)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference_fd(mu1, s1, mu2, s2), rel=1e-6)


def test_from_features_agrees_with_sqrtm_reference():
    rng = np.random.default_rng(5)
    d, n = 8, 2000
    a = rng.multivariate_normal(np.zeros(d), random_spd(rng, d), size=n)
    b = rng.multivariate_normal(np.full(d, 0.5), random_spd(rng, d), size=n + 17)
    ref = reference_fd(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    got = frechet_distance_from_features(a, b)
    assert got > 0.5  # the means alone differ by d * 0.25
    assert got == pytest.approx(ref, rel=1e-6)


def test_from_features_accepts_float32_and_matches_float64():
    rng = np.random.default_rng(9)
    a = rng.normal(size=(300, 4)).astype(np.float32)
    b = (rng.normal(size=(300, 4)) * 2 + 1).astype(np.float32)
    got = frechet_distance_from_features(a, b)
    assert got == pytest.approx(frechet_distance_from_features(a.astype(np.float64), b.astype(np.float64)), rel=1e-12)


# --------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "mu1, s1, mu2, s2",
    [
        (np.zeros(3), np.eye(3), np.zeros(4), np.eye(3)),  # means differ
        (np.zeros(3), np.eye(3), np.zeros(3), np.eye(4)),  # covariances differ
        (np.zeros(4), np.eye(3), np.zeros(4), np.eye(3)),  # covariance does not fit the mean
        (np.zeros(3), np.ones((3, 4)), np.zeros(3), np.ones((3, 4))),  # not square
    ],
)
def test_shape_mismatch_raises_value_error(mu1, s1, mu2, s2):
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(mu1, s1, mu2, s2)


def test_gaussian_statistics_float64_unbiased():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(50, 6)).astype(np.float32)
    mu, sigma = gaussian_statistics(f)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    assert mu.shape == (6,) and sigma.shape == (6, 6)
    f64 = f.astype(np.float64)
    np.testing.assert_allclose(mu, f64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(f64, rowvar=False, ddof=1), rtol=1e-12)
    # unbiased: differs from the N-normalised covariance by N / (N - 1)
    np.testing.assert_allclose(sigma, np.cov(f64, rowvar=False, ddof=0) * 50 / 49, rtol=1e-12)


def test_gaussian_statistics_single_feature_gives_1x1_covariance():
    mu, sigma = gaussian_statistics(np.array([[1.0], [2.0], [3.0]]))
    assert mu.shape == (1,) and sigma.shape == (1, 1)
    assert sigma[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "features",
    [np.zeros((1, 4)), np.zeros((0, 4)), np.zeros(10), np.zeros((4, 2, 2)), np.float64(1.0)],
    ids=["one-row", "no-rows", "1d", "3d", "scalar"],
)
def test_gaussian_statistics_rejects_bad_input(features):
    with pytest.raises(ValueError):
        gaussian_statistics(features)
