"""Task ``digits``: the 1,797 8×8 handwritten digits shipped inside scikit-learn's wheel (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import Dataset

TEST_FRACTION = 0.25
SPLIT_SEED = 0  # the split is part of the task definition: fixed, whatever --seed says


def load_digits(data_dir: Path | None = None, seed: int = 0) -> Dataset:
    """Values 0–16 scaled to [0, 1]; a stratified split fixed by ``SPLIT_SEED`` (1,347 train, 450 test)."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    return Dataset(
        name="digits", kind="image", shape=(1, 8, 8), train_x=np.ascontiguousarray(train_x),
        test_x=np.ascontiguousarray(test_x), train_y=train_y, test_y=test_y, num_classes=10,
        source="sklearn.datasets.load_digits (UCI optdigits test set, 8x8, values 0-16)", levels=17,
    )
