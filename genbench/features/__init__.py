"""Fixed, versioned feature extractors shipped as ONNX assets and named by their sha256.

A Fréchet distance is only comparable with another computed in the same feature space, so each image
task has one extractor, trained once by :mod:`genbench.features.build`, shipped inside the package and
checked against the sha256 in ``assets/manifest.json`` every time it is loaded. Results name it as
``<name>@sha256:<hex>``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GenbenchError
from .inception import inception_extractor

ASSETS = Path(__file__).with_name("assets")
MANIFEST = ASSETS / "manifest.json"
#: task name -> extractor name. Tasks without an entry get no feature-space metrics.
TASK_EXTRACTORS = {"digits": "digits-cnn", "mnist": "mnist-cnn", "mnist5k": "mnist-cnn"}


@dataclass(frozen=True)
class ExtractorInfo:
    name: str
    file: str
    sha256: str
    input_shape: tuple[int, ...]
    feature_dim: int
    num_classes: int
    trained_on: str
    test_accuracy: float

    @property
    def id(self) -> str:
        return f"{self.name}@sha256:{self.sha256}"


def manifest() -> dict[str, ExtractorInfo]:
    if not MANIFEST.is_file():
        return {}
    raw = json.loads(MANIFEST.read_text())
    return {k: ExtractorInfo(name=k, **{**v, "input_shape": tuple(v["input_shape"])}) for k, v in raw.items()}


class FeatureExtractor:
    """Runs an extractor graph through ONNX Runtime in batches: ``[N, C, H, W]`` → features, logits."""

    def __init__(self, info: ExtractorInfo, path: Path | None = None):
        import onnxruntime as ort

        self.info = info
        path = path or ASSETS / info.file
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != info.sha256:
            raise GenbenchError(
                f"Feature extractor {path} has sha256 {digest[:12]}…, the manifest says {info.sha256[:12]}…; "
                "reinstall genbench or rebuild it with 'python -m genbench.features.build'."
            )
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])

    @property
    def id(self) -> str:
        return self.info.id

    def __call__(self, x: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.info.input_shape:
            raise GenbenchError(f"Extractor {self.info.name} takes images {self.info.input_shape}, got {x.shape[1:]}.")
        feats, logits = [], []
        for i in range(0, len(x), batch_size):
            f, lg = self.session.run(["features", "logits"], {"x": x[i:i + batch_size]})
            feats.append(f)
            logits.append(lg)
        return np.concatenate(feats).astype(np.float64), np.concatenate(logits).astype(np.float64)


def extractor_for(task: str, kind: str, features: str = "default", weights: Any = None) -> Any:
    """The CNN-space extractor of a job: the shipped one for ``task`` when ``features`` (comma-separated spaces)
    names ``default``; None otherwise (the Inception space is :func:`inception_for`'s)."""
    if "default" not in str(features).split(","):
        return None
    return extractor_for_task(task)


def inception_for(kind: str, features: str = "default", weights: Any = None, cache_dir: Any = None) -> Any:
    """The Inception extractor (:class:`genbench.features.inception.InceptionExtractor`) of an image task when
    ``features`` names ``inception``; None otherwise. A one-line error when it cannot be had."""
    if kind != "image" or "inception" not in str(features).split(","):
        return None
    return inception_extractor(str(weights) if weights else None, str(cache_dir) if cache_dir else None)


@lru_cache(maxsize=None)
def extractor_for_task(task: str) -> FeatureExtractor | None:
    """The shipped extractor for ``task``, or ``None`` when the task has none."""
    name = TASK_EXTRACTORS.get(task)
    infos = manifest()
    if name is None or name not in infos:
        return None
    return FeatureExtractor(infos[name])
