"""Task ``mnist``: the real MNIST IDX files, read from ``--data-dir`` or ``$GENBENCH_DATA``.

Nothing is downloaded: place ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``) in one directory
(or its ``mnist/`` subdirectory).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError, DataUnavailableError
from . import Dataset

DATA_ENV = "GENBENCH_DATA"
FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
# IDX type codes (third magic byte) -> big-endian numpy dtype
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


#: the most one IDX file may declare (2 GiB, some 40 times MNIST's training images): a header beyond it is refused
#: before anything is read, and a compressed file is never inflated past what its header declares
MAX_IDX_BYTES = 2 * 2**30


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a numpy array.

    Raises :class:`DataError` with the file name for a wrong magic number, an unknown type code, a header
    that declares more than ``MAX_IDX_BYTES``, or a file shorter or longer than its header says. The file
    is streamed: a compressed file that inflates to more than its header declares is refused after one
    byte too many, never inflated whole.
    """
    path = Path(path)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise DataError(f"{path} is not an IDX file (bad magic number {head.hex() or 'empty'}); "
                                "expected MNIST files such as train-images-idx3-ubyte.")
            code, ndim = head[2], head[3]
            if code not in _IDX_DTYPES or ndim == 0:
                raise DataError(f"{path}: unsupported IDX type code 0x{code:02x} or rank {ndim}.")
            header = 4 + 4 * ndim
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{path} is truncated: its header needs {header} bytes, the file has {4 + len(dims)}.")
            shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(ndim))
            dtype = np.dtype(_IDX_DTYPES[code])
            size = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
            if size > MAX_IDX_BYTES:
                raise DataError(f"{path}: its header declares shape {shape}, {size} bytes, more than the "
                                f"{MAX_IDX_BYTES // 2**30} GiB genbench reads from one IDX file; it was not read.")
            body = f.read(size + 1)  # one byte more than declared tells a file that goes on
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"Cannot read IDX file {path}: {exc}.") from exc
    if len(body) != size:
        state = "truncated" if len(body) < size else "longer than its header says"
        have = f"{header + len(body)}" if len(body) < size else "more"
        raise DataError(f"{path} is {state}: shape {shape} needs {header + size} bytes, the file has {have}.")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def find_mnist_files(data_dir: Path | None) -> dict[str, Path]:
    roots = [Path(data_dir)] if data_dir else []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]))
    found: dict[str, Path] = {}
    for root in roots:
        for base in (root, root / "mnist", root / "MNIST" / "raw"):
            for key, stem in FILES.items():
                for name in (stem, stem + ".gz"):
                    if key not in found and (base / name).is_file():
                        found[key] = base / name
        if len(found) == len(FILES):
            return found
        found = {}
    where = f"in {', '.join(str(r) for r in roots)}" if roots else "(no --data-dir given and $GENBENCH_DATA unset)"
    raise DataUnavailableError(
        f"MNIST files not found {where}: expected {', '.join(s + '[.gz]' for s in FILES.values())}; "
        f"pass --data-dir DIR or set {DATA_ENV}=DIR."
    )


def load_mnist(data_dir: Path | None = None, seed: int = 0) -> Dataset:
    """The official 60,000/10,000 split, pixels scaled from 0–255 to [0, 1]."""
    files = find_mnist_files(data_dir)
    arrays = {k: read_idx(p) for k, p in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"MNIST {split} files disagree: images {x.shape}, labels {y.shape}; "
                            "expected [N, H, W] images and N labels.")
    if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:]:
        raise DataError("MNIST train and test images have different sizes.")
    h, w = arrays["train_x"].shape[1:]
    scale = lambda a: (a.astype(np.float32) / 255.0)[:, None, :, :]  # noqa: E731
    return Dataset(
        name="mnist", kind="image", shape=(1, h, w), train_x=scale(arrays["train_x"]), test_x=scale(arrays["test_x"]),
        train_y=arrays["train_y"].astype(np.int64), test_y=arrays["test_y"].astype(np.int64), num_classes=10,
        source=f"MNIST IDX files in {files['train_x'].parent}", levels=256,
    )
