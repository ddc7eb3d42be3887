"""Tasks ``ring8`` and ``grid25``: 2-D mixtures of Gaussians from the GAN mode-collapse literature.

ring8: 8 modes on a circle of radius 1, σ = 0.01. grid25: 25 modes on {−4, −2, 0, 2, 4}², σ = 0.05.
Both equally weighted; the training and held-out points are drawn with fixed seeds (the task's
definition), so every model sees the same data.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np

from . import Dataset

RING8_CENTERS: np.ndarray = np.array(
    [(math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)) for i in range(8)], dtype=np.float64
)
"""8 modes evenly spaced on the unit circle, mode ``i`` at angle ``2πi/8`` (Lin et al., PacGAN 2018)."""
RING8_SIGMA = 0.01
GRID25_CENTERS: np.ndarray = np.array(list(itertools.product((-4.0, -2.0, 0.0, 2.0, 4.0), repeat=2)))
"""25 modes at ``{−4, −2, 0, 2, 4}²``; mode ``5i + j`` is at ``(x_i, x_j)`` (Lin et al., PacGAN 2018)."""
GRID25_SIGMA = 0.05


def mixture(centers: np.ndarray, sigma: float, n: int,
            rng: np.random.Generator | int | None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (float32 ``[n, d]``) of equally weighted isotropic Gaussians with standard deviation
    ``sigma`` at ``centers``, and each point's mode index (int64 ``[n]``)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(rng)
    modes = rng.integers(0, centers.shape[0], size=n)
    points = centers[modes] + sigma * rng.standard_normal((n, centers.shape[1]))
    return points.astype(np.float32), modes


def ring8(n: int, rng: np.random.Generator | int | None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (float32 ``[n, 2]``) of 8 equally weighted isotropic Gaussians, σ = 0.01, centred
    at :data:`RING8_CENTERS`, and each point's mode index (int64 ``[n]``)."""
    return mixture(RING8_CENTERS, RING8_SIGMA, n, rng)


def grid25(n: int, rng: np.random.Generator | int | None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (float32 ``[n, 2]``) of 25 equally weighted isotropic Gaussians, σ = 0.05, centred
    at :data:`GRID25_CENTERS`, and each point's mode index (int64 ``[n]``)."""
    return mixture(GRID25_CENTERS, GRID25_SIGMA, n, rng)

N_TRAIN, N_TEST = 10_000, 10_000
TRAIN_SEED, TEST_SEED = 1, 2


def _points(name: str, draw, centers: np.ndarray, sigma: float, bound: float) -> Dataset:
    train_x, train_y = draw(N_TRAIN, np.random.default_rng(TRAIN_SEED))
    test_x, test_y = draw(N_TEST, np.random.default_rng(TEST_SEED))
    return Dataset(name=name, kind="points", shape=(2,), train_x=train_x, test_x=test_x, train_y=train_y, test_y=test_y,
                   value_range=(-bound, bound), num_classes=len(centers),
                   source=f"{len(centers)} Gaussians, sigma {sigma}; {N_TRAIN} train / {N_TEST} held-out points",
                   meta={"centers": np.asarray(centers, dtype=np.float64), "sigma": float(sigma)})


def load_ring8(data_dir: Path | None = None, seed: int = 0) -> Dataset:
    return _points("ring8", ring8, RING8_CENTERS, RING8_SIGMA, 1.5)


def load_grid25(data_dir: Path | None = None, seed: int = 0) -> Dataset:
    return _points("grid25", grid25, GRID25_CENTERS, GRID25_SIGMA, 5.0)
