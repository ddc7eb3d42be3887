"""Autoregressive Transformers as genbench ``GenerativeModel``s.

Both models are the same small decoder-only (causal) Transformer, written out by hand: token embedding
plus a learned positional embedding, pre-LayerNorm blocks of multi-head self-attention
(``scaled_dot_product_attention(..., is_causal=True)``) and a GELU MLP, a final LayerNorm and a linear
head. ``nn.TransformerEncoder`` / ``nn.MultiheadAttention`` are avoided on purpose: their ONNX export
can fix the symbolic sequence axis to the example's length.

* ``ar-transformer`` (text): tokens are bytes (vocabulary 256); ``logits[:, t]`` is the distribution
  of byte ``t + 1`` given bytes ``0..t`` (context 128).
* ``ar-pixel`` (image): pixels quantized to ``levels`` values, ``round(x · (levels − 1))``, in raster
  order (C, H, W flattened: D values). The input is ``[BOS, x_0, …, x_{D−2}]`` (``BOS = levels``, so
  the input vocabulary is ``levels + 1``); ``logits[:, t]`` is the distribution of pixel ``x_t``.

Each exports one graph, role ``logits``: int64 ``tokens [batch, seq]`` → float32 ``logits [batch, seq, V]``,
for any ``1 <= seq <= context``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genbench import (GenerativeModel, GraphSpec, OnnxBundle, TaskDeclined, TensorSpec, TrainConfig, TrainSummary,
                      export_torch_module)

LOG_EVERY = 50
EXPORT_SEQ = 17  # example length for the export: >= 2 (a length-1 axis can be specialised) and < context


@dataclass(frozen=True)
class Hyper:
    """Architecture and optimiser settings (see README.md for how they were chosen)."""

    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    mlp_ratio: int = 4
    dropout: float = 0.0  # 0.1 costs ~60% more time per step on CPU and slowed learning in short runs
    batch: int = 32
    lr: float = 3e-3  # peak; 1e-3 was clearly slower in runs of a few hundred steps
    weight_decay: float = 0.01
    warmup: int = 100  # steps of linear warm-up (at most a tenth of the run), then cosine decay
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


# --------------------------------------------------------------------------- the network


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads, self.head_dim, self.dropout = n_heads, d_model // n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        # [B, T, 3, H, hd] -> 3 × [B, H, T, hd]
        q, k, v = self.qkv(x).reshape(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, t, d)))


class Block(nn.Module):
    """Pre-LayerNorm: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, dropout)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(),
                                 nn.Linear(mlp_ratio * d_model, d_model), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CausalTransformer(nn.Module):
    """int64 tokens ``[B, T]`` (``1 <= T <= context``) → float32 logits ``[B, T, vocab_out]``.

    Position ``t`` of the output depends on input positions ``0..t`` only.
    """

    def __init__(self, vocab_in: int, vocab_out: int, context: int, hp: Hyper):
        super().__init__()
        self.vocab_in, self.vocab_out, self.context = vocab_in, vocab_out, context
        self.tok = nn.Embedding(vocab_in, hp.d_model)
        self.pos = nn.Parameter(torch.zeros(context, hp.d_model))
        self.drop = nn.Dropout(hp.dropout)
        self.blocks = nn.ModuleList(Block(hp.d_model, hp.n_heads, hp.mlp_ratio, hp.dropout) for _ in range(hp.n_layers))
        self.ln_f = nn.LayerNorm(hp.d_model)
        self.head = nn.Linear(hp.d_model, vocab_out)
        self.apply(self._init)
        nn.init.normal_(self.pos, std=0.02)
        for name, p in self.named_parameters():  # GPT-2: scale the residual projections by 1/sqrt(2·layers)
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * hp.n_layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # slice with the runtime length so that the exported seq axis stays symbolic
        h = self.drop(self.tok(tokens) + self.pos[: tokens.shape[1]])
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))


def _lr_lambda(steps: int, hp: Hyper):
    warmup = max(1, min(hp.warmup, steps // 10))

    def f(step: int) -> float:  # step = number of optimiser steps taken so far
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return hp.min_lr_ratio + (1.0 - hp.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def _optimizer(net: nn.Module, hp: Hyper) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, LayerNorm gains and embeddings."""
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (decay if p.dim() >= 2 and not name.startswith(("tok.", "pos")) else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": hp.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=hp.lr, betas=(0.9, 0.99))


# --------------------------------------------------------------------------- the models


class _ARModel(GenerativeModel):
    name = "ar"
    hyper = Hyper()
    steps_by_profile: dict[str, int] = {}

    def __init__(self) -> None:
        self.net: CausalTransformer | None = None
        self.attrs: dict = {}

    # subclasses: build the network and a batch sampler from the training data
    def _setup(self, data, device: torch.device, rng: np.random.Generator):  # pragma: no cover - abstract
        raise NotImplementedError

    def train(self, data, config: TrainConfig, progress) -> TrainSummary:
        steps = self.steps_by_profile.get(config.profile, self.steps_by_profile["default"]) \
            if config.steps is None else config.steps
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        device = torch.device(config.device)
        hp = self.hyper
        net, next_batch = self._setup(data, device, rng)
        net = net.to(device).train()
        opt = _optimizer(net, hp)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps, hp))
        history: dict[str, list[float]] = {"loss": []}
        t0 = time.perf_counter()
        for step in range(1, steps + 1):
            inputs, targets = next_batch()
            logits = net(inputs)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), hp.grad_clip)
            opt.step()
            sched.step()
            if step % LOG_EVERY == 0 or step == steps:
                history["loss"].append(loss.detach().item())
                progress(step, steps, {"loss": history["loss"][-1]})
        self.net = net.eval()
        return TrainSummary(steps=steps, seconds=time.perf_counter() - t0, loss_history=history, log_every=LOG_EVERY)

    def state_dict(self) -> dict:
        return {"net": self._require().state_dict()}

    def load_state_dict(self, state, data, config: TrainConfig) -> None:
        device = torch.device(config.device)
        net, _ = self._setup(data, device, np.random.default_rng(config.seed))  # the same network train() builds
        net.load_state_dict(state["net"])
        self.net = net.to(device).eval()

    def export_onnx(self, directory: Path) -> OnnxBundle:
        net = self._require()
        directory = Path(directory)
        seq = min(EXPORT_SEQ, net.context - 1)
        if seq < 2:
            raise RuntimeError(f"{self.name}: context {net.context} is too short to export with a symbolic seq axis")
        example = torch.randint(0, net.vocab_in, (2, seq), generator=torch.Generator().manual_seed(0))
        example = example.to(next(net.parameters()).device)
        export_torch_module(net, (example,), directory / "logits.onnx", input_names=["tokens"],
                            output_names=["logits"], dynamic_axes={"tokens": {0: "batch", 1: "seq"}})
        graph = GraphSpec(
            "logits", "logits.onnx",
            inputs=(TensorSpec("tokens", ("batch", "seq"), dtype="int64", source="tokens", vocab=net.vocab_in),),
            outputs=(TensorSpec("logits", ("batch", "seq", net.vocab_out)),),
            attrs=dict(self.attrs),
        )
        return OnnxBundle(directory, (graph,))

    def torch_module(self, role: str) -> nn.Module:
        if role != "logits":
            raise KeyError(f"{self.name} has no graph with role {role!r} (it exports 'logits')")
        return self._require().eval()

    def _require(self) -> CausalTransformer:
        if self.net is None:
            raise RuntimeError(f"{self.name}: train() must run before export_onnx() or torch_module()")
        return self.net


class ByteTransformer(_ARModel):
    """``ar-transformer``: next-byte prediction over random windows of the training corpus."""

    name = "ar-transformer"
    VOCAB = 256
    CONTEXT = 128
    hyper = Hyper(d_model=128, batch=32)
    steps_by_profile = {"smoke": 30, "default": 800}

    def _setup(self, data, device, rng):
        corpus = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.uint8).reshape(-1).astype(np.int64))
        if len(corpus) < self.CONTEXT + 1:
            raise ValueError(f"{self.name} needs a corpus of at least {self.CONTEXT + 1} bytes, got {len(corpus)}")
        corpus = corpus.to(device)
        offsets = torch.arange(self.CONTEXT + 1, device=device)
        batch, high = self.hyper.batch, len(corpus) - self.CONTEXT  # window starts in [0, high)

        def next_batch():
            starts = torch.from_numpy(rng.integers(0, high, size=batch)).to(device)
            window = corpus[starts[:, None] + offsets]  # [B, CONTEXT + 1]
            return window[:, :-1], window[:, 1:]

        self.attrs = {"context_length": self.CONTEXT}
        return CausalTransformer(self.VOCAB, self.VOCAB, self.CONTEXT, self.hyper), next_batch


def pixel_tokens(x: np.ndarray, levels: int, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Images ``[N, *shape]`` → int64 tokens ``[N, D]``: ``round((x − low) / (high − low) · (levels − 1))``."""
    lo, hi = value_range
    u = (np.asarray(x, dtype=np.float64) - lo) / (hi - lo)
    return np.clip(np.rint(u * (levels - 1)), 0, levels - 1).astype(np.int64).reshape(len(x), -1)


def bos_shift(tokens: torch.Tensor, bos: int) -> torch.Tensor:
    """``[B, D]`` pixel tokens → the model input ``[BOS, x_0, …, x_{D−2}]`` (also ``[B, D]``)."""
    return torch.cat([torch.full_like(tokens[:, :1], bos), tokens[:, :-1]], dim=1)


class PixelTransformer(_ARModel):
    """``ar-pixel``: pixels in raster order, each predicted from the ones before it (and BOS)."""

    name = "ar-pixel"
    hyper = Hyper(d_model=64, batch=64, weight_decay=0.1)
    steps_by_profile = {"smoke": 30, "default": 1000}
    #: on CPU, images of more pixels are declined (TaskDeclined: the job is skipped with the reason): at
    #: 28×28 a training step takes seconds and every sample is 784 sequential graph calls (README.md)
    MAX_CPU_PIXELS = 256

    def _setup(self, data, device, rng):
        levels = data.levels
        if levels is None:
            raise ValueError("ar-pixel needs data.levels")
        pixels = math.prod(data.shape)
        if device.type == "cpu" and pixels > self.MAX_CPU_PIXELS:
            raise TaskDeclined(
                f"ar-pixel declines '{data.task}' on CPU: {pixels} pixels of {levels} levels per image cost seconds "
                f"per training step and {pixels} sequential graph calls per sample, far past a default run's time "
                f"budget (it runs images of up to {self.MAX_CPU_PIXELS} pixels on CPU); use --device cuda")
        tokens = torch.from_numpy(pixel_tokens(data.x, levels, tuple(data.value_range))).to(device)
        d = tokens.shape[1]
        batch, n = self.hyper.batch, len(tokens)

        def next_batch():
            targets = tokens[torch.from_numpy(rng.integers(0, n, size=batch)).to(device)]
            return bos_shift(targets, levels), targets

        self.attrs = {"context_length": d, "bos": levels, "levels": levels}
        return CausalTransformer(levels + 1, levels, d, self.hyper), next_batch


class PointsTransformer(_ARModel):
    """``ar-points``: a 2-D point as two binned coordinates, x then y given x (and BOS).

    Coordinates are tokenised by genbench's own :func:`genbench.runtime.point_tokens` (64 equal bins per
    coordinate over the task's value range), so the harness reads the model as a piecewise-uniform density.
    """

    name = "ar-points"
    BINS = 64
    hyper = Hyper(d_model=64, batch=128, weight_decay=0.0)
    steps_by_profile = {"smoke": 30, "default": 1500}

    def _setup(self, data, device, rng):
        from genbench.runtime import point_tokens

        tokens = torch.from_numpy(point_tokens(data.x, self.BINS, tuple(data.value_range))).to(device)
        d = tokens.shape[1]
        batch, n = self.hyper.batch, len(tokens)

        def next_batch():
            targets = tokens[torch.from_numpy(rng.integers(0, n, size=batch)).to(device)]
            return bos_shift(targets, self.BINS), targets

        self.attrs = {"context_length": d, "bos": self.BINS, "levels": self.BINS}
        # two spare positions: the exporter needs an example shorter than the table to keep 'seq' symbolic
        return CausalTransformer(self.BINS + 1, self.BINS, d + 2, self.hyper), next_batch
