"""Trivial reference models, run through exactly the same path as plugins (train → ONNX → score).

Images: ``baseline-gaussian`` draws from a Gaussian fitted to the training pixels (full covariance, clipped to
the data range). ``baseline-train-copy`` replays training images: it is what a model that memorised its
training set would score, and sits near the FD floor. ``baseline-split-replay`` replays training images for
half its samples and test images for the other half: a graph with real data of both splits embedded, which
the copy flags must catch (each split's copy rate is judged against held-out data, not against the other's).

Text: ``baseline-unigram`` and ``baseline-bigram``, byte n-gram models with add-k smoothing.
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
    value_range: tuple[float, float] = (0.0, 1.0)
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
        out = TensorSpec("x", ("batch", *self.shape), low=self.value_range[0], high=self.value_range[1])
        return OnnxBundle(Path(directory), (GraphSpec("sample", "sample.onnx", (self.input_spec,), (out,)),))


class GaussianBaseline(_Baseline):
    def train(self, data: TrainingData, config: TrainConfig, progress: Progress) -> TrainSummary:
        import torch

        t0 = time.perf_counter()
        x = data.x.reshape(len(data.x), -1).astype(np.float64)
        mu, cov = x.mean(0), np.cov(x, rowvar=False)
        chol = np.linalg.cholesky(cov + 1e-6 * np.eye(len(mu)))  # constant pixels make cov singular
        self.shape = tuple(data.shape)
        lo, hi = self.value_range = data.value_range
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


def _stored(x: np.ndarray):
    """``(tensor, scale)``: exactly-quantised data (0..255 or 0..16 levels) as uint8 to keep the graph small."""
    import torch

    for levels in (255.0, 16.0):
        q = np.round(x * levels)
        if np.allclose(q / levels, x, atol=1e-6):
            return torch.from_numpy(q.astype(np.uint8)), 1.0 / levels
    return torch.from_numpy(np.array(x, dtype=np.float32)), 1.0


class TrainCopyBaseline(_Baseline):
    def train(self, data: TrainingData, config: TrainConfig, progress: Progress) -> TrainSummary:
        import torch

        t0 = time.perf_counter()
        stored, scale = _stored(data.x)
        n = len(data.x)

        class Replay(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("images", stored)

            def forward(self, u: torch.Tensor) -> torch.Tensor:
                idx = (u[:, 0] * n).long().clamp(0, n - 1)
                return self.images[idx].to(torch.float32) * scale

        self.shape = tuple(data.shape)
        self.value_range = data.value_range
        self.module = Replay().eval()
        self.input_spec = TensorSpec("u", ("batch", 1), source="uniform")
        progress(1, 1, {})
        return TrainSummary(steps=0, seconds=time.perf_counter() - t0)


class SplitReplayBaseline(_Baseline):
    """Replays real data of both splits: a sample is a training example when its uniform input is below ½, else
    a test example (half of each in expectation). The test split is no plugin's to see: genbench's build stage
    hands it to this built-in reference alone (:attr:`held_out`), as the attack it stands for would embed it."""

    held_out: np.ndarray | None = None

    def train(self, data: TrainingData, config: TrainConfig, progress: Progress) -> TrainSummary:
        import torch

        if self.held_out is None:
            raise RuntimeError("baseline-split-replay needs the task's test split, which only genbench's build "
                               "stage gives it: run it through genbench run.")
        t0 = time.perf_counter()
        train_x, test_x = np.asarray(data.x, dtype=np.float32), np.asarray(self.held_out, dtype=np.float32)
        stored, scale = _stored(np.concatenate([train_x, test_x]))
        n_train, n_test = len(train_x), len(test_x)

        class SplitReplay(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("images", stored)

            def forward(self, u: torch.Tensor) -> torch.Tensor:
                v = u[:, 0]
                train_idx = (v * 2 * n_train).long().clamp(0, n_train - 1)
                test_idx = n_train + ((v - 0.5) * 2 * n_test).long().clamp(0, n_test - 1)
                return self.images[torch.where(v < 0.5, train_idx, test_idx)].to(torch.float32) * scale

        self.shape = tuple(data.shape)
        self.value_range = data.value_range
        self.module = SplitReplay().eval()
        self.input_spec = TensorSpec("u", ("batch", 1), source="uniform")
        progress(1, 1, {})
        return TrainSummary(steps=0, seconds=time.perf_counter() - t0)


class _NGramText(GenerativeModel):
    """Byte n-gram models (n = 1, 2) with add-k smoothing, exported as ``logits`` graphs so that they are
    scored by exactly the code that scores autoregressive models. ``k`` is chosen from ``K_GRID`` on the
    last 10% of the training bytes (never the held-out split), then the counts are refit on all of them."""

    n = 1
    K_GRID = (1.0, 0.1, 0.01, 0.001)
    CONTEXT = 128  # only sets the evaluation windows, which an n-gram with n <= 2 does not notice
    module = None

    def _log_probs(self, x: np.ndarray, k: float, vocab: int) -> np.ndarray:
        if self.n == 1:
            counts = np.bincount(x, minlength=vocab).astype(np.float64)
            return np.log((counts + k) / (counts.sum() + k * vocab))
        counts = np.zeros((vocab, vocab))
        np.add.at(counts, (x[:-1], x[1:]), 1.0)
        return np.log((counts + k) / (counts.sum(1, keepdims=True) + k * vocab))

    def _nll(self, logp: np.ndarray, x: np.ndarray) -> float:
        return float(-logp[x].mean()) if self.n == 1 else float(-logp[x[:-1], x[1:]].mean())

    def train(self, data: TrainingData, config: TrainConfig, progress: Progress) -> TrainSummary:
        import torch

        t0 = time.perf_counter()
        x = np.asarray(data.x, dtype=np.int64)
        vocab = int(data.vocab or 256)
        cut = int(len(x) * 0.9)
        scores = {k: self._nll(self._log_probs(x[:cut], k, vocab), x[cut:]) for k in self.K_GRID}
        self.k = min(scores, key=scores.get)
        logp = torch.tensor(self._log_probs(x, self.k, vocab), dtype=torch.float32)
        self.vocab = vocab

        if self.n == 1:
            class Unigram(torch.nn.Module):
                def __init__(self) -> None:
                    super().__init__()
                    self.register_buffer("logp", logp)

                def forward(self, tokens: torch.Tensor) -> torch.Tensor:
                    return self.logp.expand(tokens.shape[0], tokens.shape[1], -1) + 0.0 * tokens.unsqueeze(-1)

            self.module = Unigram().eval()
        else:
            class Bigram(torch.nn.Module):
                def __init__(self) -> None:
                    super().__init__()
                    self.register_buffer("logp", logp)

                def forward(self, tokens: torch.Tensor) -> torch.Tensor:
                    return self.logp[tokens]

            self.module = Bigram().eval()
        progress(1, 1, {})
        return TrainSummary(steps=0, seconds=time.perf_counter() - t0,
                            loss_history={f"validation_nll_k={k:g}": [v] for k, v in scores.items()})

    def export_onnx(self, directory: Path) -> OnnxBundle:
        import torch

        export_torch_module(self.module, (torch.randint(0, self.vocab, (2, 17)),), Path(directory) / "logits.onnx",
                            input_names=["tokens"], output_names=["logits"],
                            dynamic_axes={"tokens": {0: "batch", 1: "seq"}})
        graph = GraphSpec("logits", "logits.onnx",
                          (TensorSpec("tokens", ("batch", "seq"), dtype="int64", source="tokens", vocab=self.vocab),),
                          (TensorSpec("logits", ("batch", "seq", self.vocab)),),
                          attrs={"context_length": self.CONTEXT, "ngram_n": self.n, "add_k": self.k})
        return OnnxBundle(Path(directory), (graph,))

    def torch_module(self, role: str):
        if role != "logits" or self.module is None:
            raise KeyError(role)
        return self.module


class UnigramText(_NGramText):
    n = 1


class BigramText(_NGramText):
    n = 2
