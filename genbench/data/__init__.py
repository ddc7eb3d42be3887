"""Tasks: data sets with a fixed train/test split, each named by the sha256 of what was used."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
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


SAVED = "dataset.json"
_ARRAYS = ("train_x", "test_x", "train_y", "test_y")
_FIELDS = ("name", "kind", "shape", "value_range", "num_classes", "source", "levels", "vocab")


def save_dataset(dataset: Dataset, directory: Path) -> bool:
    """Save ``dataset`` in ``directory`` (``.npy`` arrays, the rest as JSON, ``dataset.json`` written last) for
    :func:`load_saved_dataset` in other processes. Returns False, and writes nothing, when its ``meta`` holds
    something other than arrays and JSON values (then each job loads the task itself)."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"expected genbench.data.Dataset, got {type(dataset).__name__}")
    directory = Path(directory)
    meta_arrays = {k: v for k, v in (dataset.meta or {}).items() if isinstance(v, np.ndarray)}
    arrays = {name: getattr(dataset, name) for name in _ARRAYS if getattr(dataset, name) is not None}
    if any(a.dtype.hasobject for a in (*arrays.values(), *meta_arrays.values())):
        return False
    try:
        plain = None if dataset.meta is None else {k: v for k, v in dataset.meta.items() if k not in meta_arrays}
        fields = {name: getattr(dataset, name) for name in _FIELDS}
        header = json.dumps({"fields": fields, "arrays": sorted(arrays), "meta": plain,
                             "meta_arrays": {k: f"meta-{i}.npy" for i, k in enumerate(meta_arrays)}}, allow_nan=False)
    except (TypeError, ValueError):
        return False
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for name, array in arrays.items():
        np.save(directory / f"{name}.npy", np.asarray(array), allow_pickle=False)
    for i, array in enumerate(meta_arrays.values()):
        np.save(directory / f"meta-{i}.npy", array, allow_pickle=False)
    (directory / SAVED).write_text(header)
    return True


def load_saved_dataset(directory: Path) -> Dataset:
    """The dataset :func:`save_dataset` wrote: the sample arrays memory-mapped read-only (shared by every job on
    the task, and outside each job's ``--max-memory``), labels and ``meta`` read."""
    directory = Path(directory)
    header = json.loads((directory / SAVED).read_text())
    fields = dict(header["fields"])
    fields["shape"], fields["value_range"] = tuple(fields["shape"]), tuple(fields["value_range"])
    arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False,
                            mmap_mode="r" if name.endswith("_x") else None) for name in header["arrays"]}
    meta = None if header["meta"] is None else {**header["meta"], **{
        k: np.load(directory / f, allow_pickle=False) for k, f in header["meta_arrays"].items()}}
    return Dataset(**fields, **arrays, meta=meta)


__all__ = ["Dataset", "TrainingData", "load_saved_dataset", "save_dataset"]
