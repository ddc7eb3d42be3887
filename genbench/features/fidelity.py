"""Optional Inception-v3 features through torch-fidelity (``pip install 'genbench[fidelity]'``).

With these, genbench's FD on natural images is the FID of the literature: torch-fidelity's
``inception-v3-compat`` network and preprocessing (uint8 images, resized inside the network), pool3
features (2,048) and the unbiased logits for the classifier-based metrics. Nothing is downloaded: the
weights file must already be in torch's hub cache or be given by path; results name it by sha256.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GenbenchError

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_ENV = "GENBENCH_INCEPTION_WEIGHTS"


def find_weights(path: str | Path | None = None) -> Path:
    """The weights file: ``path``, else ``$GENBENCH_INCEPTION_WEIGHTS``, else torch's hub cache."""
    candidates = [Path(p) for p in (path, os.environ.get(WEIGHTS_ENV)) if p]
    hub = _hub_checkpoints()
    candidates.append(hub / WEIGHTS_FILE)
    for c in candidates:
        if c.is_file():
            return c
    raise GenbenchError(f"Inception weights not found (nothing is downloaded): put {WEIGHTS_FILE} in {hub} or pass "
                        f"--inception-weights PATH (or set {WEIGHTS_ENV}).")


def _hub_checkpoints() -> Path:
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(torch_home) / "hub" / "checkpoints"


class InceptionExtractor:
    """Callable like :class:`genbench.features.FeatureExtractor`: images in [0, 1] → (features, logits)."""

    def __init__(self, weights: str | Path | None = None, device: str = "cpu"):
        path = find_weights(weights)
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError:
            raise GenbenchError("Inception features need torch-fidelity: pip install 'genbench[fidelity]'.") from None
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        self.device = device
        self.net: Any = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                                    feature_extractor_weights_path=str(path)).eval().to(device)

    @property
    def id(self) -> str:
        return f"inception-v3-compat@sha256:{self.sha256}"

    def __call__(self, x: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        import torch

        images = np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
        if images.shape[1] == 1:  # grey → RGB, as torch-fidelity expects 3 channels
            images = np.repeat(images, 3, axis=1)
        feats, logits = [], []
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                f, lg = self.net(torch.from_numpy(images[i:i + batch_size]).to(self.device))
                feats.append(f.double().cpu().numpy())
                logits.append(lg.double().cpu().numpy())
        return np.concatenate(feats), np.concatenate(logits)
