"""FD against a cached reference: the same value as the uncached formulas, and a disk cache that is written
atomically, validated on read and recomputed when an entry is corrupt or foreign."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from genbench.features.reference import (ReferenceCache, compute_reference, frechet_distance_to_reference,
                                         load_or_compute, reference_for, reference_key)
from genbench.metrics import frechet_distance, gaussian_statistics


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    return rng.normal(size=(n, d)) @ mix + shift


def _sqrtm_fd(mu1, s1, mu2, s2) -> float:
    """The classic formula (pytorch-fid's): tr sqrtm(Σ₁Σ₂), imaginary round-off dropped."""
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("d", [2, 16, 96])
def test_cached_reference_gives_the_uncached_value_to_1e_9(d):
    ref = compute_reference(_features(4 * d + 8, d, 1))  # n >= 2d: well-conditioned statistics
    mu, sigma = gaussian_statistics(_features(3 * d + 5, d, 2, shift=0.3))
    value = frechet_distance_to_reference(mu, sigma, ref)
    assert value == pytest.approx(frechet_distance(mu, sigma, ref.mu, ref.sigma), rel=1e-9)
    assert value == pytest.approx(_sqrtm_fd(mu, sigma, ref.mu, ref.sigma), rel=1e-9)
    assert ref.sqrt_sigma @ ref.sqrt_sigma == pytest.approx(ref.sigma, rel=1e-9, abs=1e-12)


def test_a_singular_sample_covariance_takes_the_two_product_path():
    d = 40
    ref = compute_reference(_features(200, d, 3))
    mu, sigma = gaussian_statistics(_features(10, d, 4))  # rank 9 < d: no Cholesky factor
    with pytest.raises(linalg.LinAlgError):
        linalg.cholesky(sigma)
    assert frechet_distance_to_reference(mu, sigma, ref) == pytest.approx(
        frechet_distance(mu, sigma, ref.mu, ref.sigma), rel=1e-7)


def test_identical_statistics_give_zero_and_shapes_are_checked():
    ref = compute_reference(_features(100, 8, 5))
    assert abs(frechet_distance_to_reference(ref.mu, ref.sigma, ref)) < 1e-9
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance_to_reference(ref.mu[:4], ref.sigma[:4, :4], ref)


def test_the_cache_round_trips_and_recomputes_what_is_corrupt_or_foreign(tmp_path):
    calls = []

    def features():
        calls.append(1)
        return _features(64, 6, 7)

    key = reference_key("d" * 64, "cnn@sha256:1", "test")
    first = load_or_compute(tmp_path, key, features)
    assert first.origin == "computed" and len(calls) == 1
    again = load_or_compute(tmp_path, key, features)
    assert again.origin == "cache" and len(calls) == 1
    for name in ("features", "mu", "sigma", "sqrt_sigma"):
        assert np.array_equal(getattr(again, name), getattr(first, name))
    path = ReferenceCache(tmp_path).path(key)
    assert not list(path.parent.glob(".*.tmp"))  # written through a temporary file, renamed into place

    raw = bytearray(path.read_bytes())  # one flipped byte inside the arrays: the stored sha256 catches it
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    redone = load_or_compute(tmp_path, key, features)
    assert redone.origin.startswith("recomputed") and len(calls) == 2
    assert load_or_compute(tmp_path, key, features).origin == "cache"  # the bad entry was replaced

    path.write_bytes(b"not an npz")  # truncated or garbage
    assert load_or_compute(tmp_path, key, features).origin.startswith("recomputed")
    other = reference_key("e" * 64, "cnn@sha256:1", "test")  # another key's file under this key's name
    ReferenceCache(tmp_path).path(other).write_bytes(path.read_bytes())
    foreign = load_or_compute(tmp_path, other, features)
    assert foreign.origin.startswith("recomputed") and "another key" in foreign.origin
    assert reference_key("d" * 64, "cnn@sha256:2", "test") != key  # the extractor is part of the key


def test_an_unwritable_cache_never_fails_the_metric(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache directory would go")
    ref = load_or_compute(blocked, reference_key("d", "e", "test"), lambda: _features(30, 3, 8))
    assert ref.origin == "computed" and ref.n == 30


def test_the_fd_metric_extracts_the_test_split_once_across_processes(tmp_path, monkeypatch):
    """Two jobs' metric contexts (as two processes have): the second reads the reference from disk (the run's
    cache folder, ``ctx.cache_dir``), checked against a few rows extracted afresh."""
    from types import SimpleNamespace

    from genbench.features.reference import VERIFY_ROWS
    from genbench.metrics.builtin import FrechetDistance

    rng = np.random.default_rng(0)
    data = SimpleNamespace(test_x=rng.random((80, 5)), train_x=rng.random((120, 5)), sha256="f" * 64)
    extracted = []

    def context(samples):
        def features(key, x):
            extracted.append(key)
            return np.asarray(x, dtype=np.float64) * 2.0

        return SimpleNamespace(dataset=data, samples=samples, features=features, extractor_id="x2@sha256:0",
                               cache={}, job_cache={}, seed=0, cache_dir=tmp_path)

    a = FrechetDistance()(context(rng.random((60, 5))))
    assert extracted.count("test") == 1
    samples = rng.random((60, 5))
    b = FrechetDistance()(context(samples))
    assert extracted.count("test") == 1  # the second job read the reference from disk
    assert sum(k.startswith("verify:test:") for k in extracted) == 1  # after checking VERIFY_ROWS rows of it
    assert VERIFY_ROWS < len(data.test_x)
    expected = frechet_distance(*gaussian_statistics(samples * 2.0), *gaussian_statistics(data.test_x * 2.0))
    assert b.value == pytest.approx(expected, rel=1e-9) and a.floor == pytest.approx(b.floor, rel=1e-12)
    assert reference_for(context(samples), "test", data.test_x).origin == "cache"
