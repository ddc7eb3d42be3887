"""Tasks: data sets with a fixed train/test split, each named by the sha256 of what was used."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class TrainingData:
    """What a plugin sees: the training split only.

    * ``kind == "image"``: ``x`` is float32 ``[N, *shape]`` with values in ``value_range``; ``levels`` is the
      number of distinct, evenly spaced values the pixels take (17 for ``digits``, 256 for ``mnist``), so a
      model over discrete pixels uses tokens ``round(x · (levels − 1))``.
    * ``kind == "text"``: ``x`` is the training corpus as one uint8 array of bytes; ``vocab`` is 256.
    """

    task: str
    kind: str
    shape: tuple[int, ...]
    x: np.ndarray
    labels: np.ndarray | None
    value_range: tuple[float, float] = (0.0, 1.0)
    levels: int | None = None
    vocab: int | None = None


@dataclass(frozen=True, eq=False)
class Dataset:
    """A task's data: float32 arrays ``[N, *shape]`` with values in ``value_range``."""

    name: str
    kind: str
    shape: tuple[int, ...]
    train_x: np.ndarray
    test_x: np.ndarray
    train_y: np.ndarray | None = None
    test_y: np.ndarray | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    num_classes: int | None = None
    source: str = ""
    levels: int | None = None
    vocab: int | None = None
    meta: dict[str, Any] | None = None  # task-specific facts for metrics (e.g. mixture centres)

    @property
    def sha256(self) -> str:
        """Hash of both splits in order: names the exact data a number was computed on."""
        h = hashlib.sha256()
        for a in (self.train_x, self.test_x):
            h.update(np.ascontiguousarray(a, dtype=np.uint8 if self.kind == "text" else np.float32).tobytes())
        return h.hexdigest()

    def training_data(self) -> TrainingData:
        x = self.train_x.copy()
        x.setflags(write=False)
        return TrainingData(self.name, self.kind, self.shape, x, self.train_y, self.value_range, self.levels, self.vocab)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape), "n_train": len(self.train_x),
                "n_test": len(self.test_x), "sha256": self.sha256, "source": self.source, "levels": self.levels,
                "vocab": self.vocab}


__all__ = ["Dataset", "TrainingData"]
