"""Fréchet distance between Gaussians fitted to features (the FID formula, any feature space)."""

from __future__ import annotations

import numpy as np
from scipy import linalg


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
