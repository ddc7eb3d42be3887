"""Timings of the quality metrics (pytest-benchmark; not part of the default run, testpaths is tests/).

    python -m pytest benchmarks -p no:cacheprovider --benchmark-enable --benchmark-only -q

pyproject's addopts carry ``--benchmark-disable``, hence ``--benchmark-enable``. BLAS runs on one
thread (threadpoolctl) so that the numbers hold up on a shared machine, where multi-threaded BLAS
slows down many times over whenever anything else runs; each result records the threads and the
load average in ``extra_info``. Groups put the alternatives side by side: ``fd-d2048`` compares the
eigenvalue formula of :func:`frechet_distance` with the classic ``sqrtm(Σ₁Σ₂)`` one on the same
inputs, and checks that the two values agree. ``fd-reference-d2048`` times FD of new samples against a
cached reference (:mod:`genbench.features.reference`) beside pytorch-fid's ``calculate_frechet_distance``
(re-implemented below; pytorch-fid itself does not import here) on the same well-conditioned statistics
(n = 2d), asserts the same value to 1e-9 and a speed-up of at least 10×.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import linalg
from threadpoolctl import threadpool_info, threadpool_limits

from genbench.features.reference import compute_reference, frechet_distance_to_reference
from genbench.metrics.frechet import frechet_distance, gaussian_statistics
from genbench.metrics.sample_metrics import density_coverage, kernel_inception_distance, precision_recall

BLAS_THREADS = 1
N, D = 10_000, 64  # sample-metric workload: two sets of 10,000 64-d features


@pytest.fixture(scope="module", autouse=True)
def single_threaded_blas():
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        yield


def record(benchmark, **info) -> None:
    threads = sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
    benchmark.extra_info.update(blas_threads=threads, load_average_1min=os.getloadavg()[0], **info)


def gaussian_stats(d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    return rng.normal(scale=0.1, size=d), a @ a.T / d + 0.1 * np.eye(d)


def sqrtm_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """The classic pytorch-fid formula: ``tr sqrtm(Σ₁Σ₂)`` (complex Schur), imaginary part dropped."""
    diff = mu1 - mu2
    covmean = np.real(linalg.sqrtm(sigma1 @ sigma2))
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


@pytest.fixture(scope="module")
def fd_inputs() -> dict[int, tuple[np.ndarray, ...]]:
    return {d: (*gaussian_stats(d, 1), *gaussian_stats(d, 2)) for d in (64, 512, 2048)}


@pytest.fixture(scope="module")
def features() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, D)), rng.normal(loc=0.05, size=(N, D))


# --------------------------------------------------------------------------- Fréchet distance


@pytest.mark.parametrize("d", [64, 512])
def test_frechet_distance_eig(benchmark, fd_inputs, d):
    benchmark.group = f"fd-d{d}"
    record(benchmark, d=d)
    value = benchmark(frechet_distance, *fd_inputs[d])
    assert np.isfinite(value) and value > 0


def test_frechet_distance_eig_d2048(benchmark, fd_inputs):
    benchmark.group = "fd-d2048"
    record(benchmark, d=2048, method="eigvalsh of sqrt(S1) S2 sqrt(S1)")
    value = benchmark.pedantic(frechet_distance, args=fd_inputs[2048], rounds=3, iterations=1)
    benchmark.extra_info["value"] = value
    assert value > 0


def test_frechet_distance_sqrtm_d2048(benchmark, fd_inputs):
    benchmark.group = "fd-d2048"
    record(benchmark, d=2048, method="scipy.linalg.sqrtm(S1 @ S2)")
    value = benchmark.pedantic(sqrtm_frechet_distance, args=fd_inputs[2048], rounds=3, iterations=1)
    eig = frechet_distance(*fd_inputs[2048])
    benchmark.extra_info.update(value=value, eig_value=eig, relative_difference=abs(value - eig) / abs(eig))
    assert value == pytest.approx(eig, rel=1e-9)


# --------------------------------------------------------------------------- FD against a cached reference


def pytorch_fid_calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's ``calculate_frechet_distance`` (src/pytorch_fid/fid_score.py), step for step:
    ``sqrtm(σ₁·σ₂)``, retried with ``eps`` on the diagonals if not finite, imaginary round-off dropped."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    assert mu1.shape == mu2.shape and sigma1.shape == sigma2.shape
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def _sqrtm(a):
    try:  # pytorch-fid passes disp=False, which SciPy 1.18 removes
        return linalg.sqrtm(a, disp=False)[0]
    except TypeError:
        return linalg.sqrtm(a)


@pytest.fixture(scope="module")
def fd_reference_inputs():
    """Statistics of 4,096 new samples and a cached reference of 4,096, d = 2,048 (n = 2d)."""
    d, n = 2048, 4096
    rng = np.random.default_rng(3)
    mix = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    ref = compute_reference(rng.normal(size=(n, d)) @ mix)
    mu, sigma = gaussian_statistics(rng.normal(size=(n, d)) @ mix + 0.05)
    return mu, sigma, ref


def test_fd_against_cached_reference_d2048(benchmark, fd_reference_inputs):
    benchmark.group = "fd-reference-d2048"
    mu, sigma, ref = fd_reference_inputs
    record(benchmark, d=2048, n=4096, method="cached sqrt(Sigma_ref); chol + trmm + syrk + eigvalsh")
    value = benchmark.pedantic(frechet_distance_to_reference, args=(mu, sigma, ref), rounds=5, iterations=1)
    benchmark.extra_info["value"] = value
    assert value > 0


def test_fd_pytorch_fid_formula_d2048(benchmark, fd_reference_inputs):
    """pytorch-fid's formula on the same statistics, timed right after the cached one: their ratio must be
    at least 10 and their values equal to 1e-9."""
    import time

    benchmark.group = "fd-reference-d2048"
    mu, sigma, ref = fd_reference_inputs
    record(benchmark, d=2048, n=4096, method="pytorch-fid calculate_frechet_distance (sqrtm)")
    value = benchmark.pedantic(pytorch_fid_calculate_frechet_distance, args=(mu, sigma, ref.mu, ref.sigma),
                               rounds=3, iterations=1)
    cached = []
    for _ in range(5):  # side by side with the sqrtm rounds just run
        t0 = time.perf_counter()
        ours = frechet_distance_to_reference(mu, sigma, ref)
        cached.append(time.perf_counter() - t0)
    ratio = benchmark.stats.stats.median / float(np.median(cached))
    benchmark.extra_info.update(value=value, cached_value=ours, relative_difference=abs(value - ours) / abs(ours),
                                cached_median_s=float(np.median(cached)), speedup=ratio)
    print(f"FD at d=2048: pytorch-fid {benchmark.stats.stats.median:.2f} s, cached reference "
          f"{np.median(cached):.3f} s: {ratio:.1f}x")
    assert ours == pytest.approx(value, rel=1e-9)
    assert ratio >= 10, f"FD against the cached reference is only {ratio:.1f}x faster than pytorch-fid's formula"


# --------------------------------------------------------------------------- sample metrics, N = 10,000


def test_kernel_inception_distance(benchmark, features):
    benchmark.group = "sample-metrics-n10000-d64"
    record(benchmark, n=N, d=D, num_subsets=100, subset_size=1000)
    mean, std = benchmark.pedantic(kernel_inception_distance, args=features, rounds=3, iterations=1)
    benchmark.extra_info.update(kid=mean, kid_std=std)
    assert mean > 0


def test_precision_recall(benchmark, features):
    benchmark.group = "sample-metrics-n10000-d64"
    record(benchmark, n=N, d=D, k=3)
    precision, recall = benchmark.pedantic(precision_recall, args=features, rounds=3, iterations=1)
    benchmark.extra_info.update(precision=precision, recall=recall)
    assert 0 < precision < 1 and 0 < recall < 1


def test_density_coverage(benchmark, features):
    benchmark.group = "sample-metrics-n10000-d64"
    record(benchmark, n=N, d=D, k=5)
    density, coverage = benchmark.pedantic(density_coverage, args=features, rounds=3, iterations=1)
    benchmark.extra_info.update(density=density, coverage=coverage)
    assert density > 0 and 0 < coverage < 1
