"""Trivial reference models, run through exactly the same path as plugins (train → ONNX → score).

``baseline-gaussian`` draws from a Gaussian fitted to the training pixels (full covariance, clipped to
the data range). ``baseline-train-copy`` replays training images: it is what a model that memorised its
training set would score, and sits near the FD floor.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .data import TrainingData
from .export import export_torch_module
from .model import GenerativeModel, Progress
from .types import GraphSpec, OnnxBundle, TensorSpec, TrainConfig, TrainSummary


class _Baseline(GenerativeModel):
    module = None
    shape: tuple[int, ...] = ()
    input_spec: TensorSpec

    def torch_module(self, role: str):
        if role != "sample" or self.module is None:
            raise KeyError(role)
        return self.module

    def export_onnx(self, directory: Path) -> OnnxBundle:
        import torch

        batch = 4
        example = torch.rand(batch, *self.input_spec.shape[1:]) if self.input_spec.source == "uniform" \
            else torch.randn(batch, *self.input_spec.shape[1:])
        export_torch_module(self.module, (example,), Path(directory) / "sample.onnx", input_names=[self.input_spec.name],
                            output_names=["x"], dynamic_axes={self.input_spec.name: {0: "batch"}})
        out = TensorSpec("x", ("batch", *self.shape), low=0.0, high=1.0)
        return OnnxBundle(Path(directory), (GraphSpec("sample", "sample.onnx", (self.input_spec,), (out,)),))


class GaussianBaseline(_Baseline):
    def train(self, data: TrainingData, config: TrainConfig, progress: Progress) -> TrainSummary:
        import torch

        t0 = time.perf_counter()
        x = data.x.reshape(len(data.x), -1).astype(np.float64)
        mu, cov = x.mean(0), np.cov(x, rowvar=False)
        chol = np.linalg.cholesky(cov + 1e-6 * np.eye(len(mu)))  # constant pixels make cov singular
        self.shape = tuple(data.shape)
        lo, hi = data.value_range
        shape = self.shape

        class Gaussian(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("mu", torch.tensor(mu, dtype=torch.float32))
                self.register_buffer("chol_t", torch.tensor(chol.T, dtype=torch.float32))

            def forward(self, z: torch.Tensor) -> torch.Tensor:
                return (self.mu + z @ self.chol_t).clamp(lo, hi).reshape(-1, *shape)

        self.module = Gaussian().eval()
        self.input_spec = TensorSpec("z", ("batch", len(mu)), source="normal")
        progress(1, 1, {})
        return TrainSummary(steps=1, seconds=time.perf_counter() - t0)


class TrainCopyBaseline(_Baseline):
    def train(self, data: TrainingData, config: TrainConfig, progress: Progress) -> TrainSummary:
        import torch

        t0 = time.perf_counter()
        x = data.x
        # Store exactly-quantised data (0..255 or 0..16 levels) as uint8 to keep the graph small.
        for levels in (255.0, 16.0):
            q = np.round(x * levels)
            if np.allclose(q / levels, x, atol=1e-6):
                stored, scale = torch.from_numpy(q.astype(np.uint8)), 1.0 / levels
                break
        else:
            stored, scale = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), 1.0
        n = len(x)

        class Replay(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("images", stored)

            def forward(self, u: torch.Tensor) -> torch.Tensor:
                idx = (u[:, 0] * n).long().clamp(0, n - 1)
                return self.images[idx].to(torch.float32) * scale

        self.shape = tuple(data.shape)
        self.module = Replay().eval()
        self.input_spec = TensorSpec("u", ("batch", 1), source="uniform")
        progress(1, 1, {})
        return TrainSummary(steps=0, seconds=time.perf_counter() - t0)
