"""Tasks ``ring8`` and ``grid25``: 2-D mixtures of Gaussians from the GAN mode-collapse literature.

ring8: 8 modes on a circle of radius 1, σ = 0.01. grid25: 25 modes on {−4, −2, 0, 2, 4}², σ = 0.05.
Both equally weighted; the training and held-out points are drawn with fixed seeds (the task's
definition), so every model sees the same data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..metrics.sample_metrics import GRID25_CENTERS, GRID25_SIGMA, RING8_CENTERS, RING8_SIGMA, grid25, ring8
from . import Dataset

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
