"""Timings of the quality metrics (pytest-benchmark; not part of the default run, testpaths is tests/).

    python -m pytest benchmarks -p no:cacheprovider --benchmark-enable --benchmark-only -q

pyproject's addopts carry ``--benchmark-disable``, hence ``--benchmark-enable``. BLAS runs on one
thread (threadpoolctl) so that the numbers hold up on a shared machine, where multi-threaded BLAS
slows down many times over whenever anything else runs; each result records the threads and the
load average in ``extra_info``. Groups put the alternatives side by side: ``fd-d2048`` compares the
eigenvalue formula of :func:`frechet_distance` with the classic ``sqrtm(Σ₁Σ₂)`` one on the same
inputs, and checks that the two values agree.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import linalg
from threadpoolctl import threadpool_info, threadpool_limits

from genbench.metrics.frechet import frechet_distance
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
