"""genbench's own autoregressive sampling loop, over any ``logits`` graph (or its torch module).

The plugin exports ``tokens [B, T] → logits [B, T, V]``; genbench owns the loop: temperature, top-k and a
seeded generator, so every autoregressive model is sampled by the same code. There is no KV cache: each
step re-runs the graph on the last ``context_length`` tokens, exactly what the exported graph supports.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

LogitsFn = Callable[[np.ndarray], np.ndarray]


def ort_logits_fn(session, input_name: str = "tokens", output_name: str = "logits") -> LogitsFn:
    return lambda tokens: session.run([output_name], {input_name: tokens})[0]


def torch_logits_fn(module, device: str = "cpu") -> LogitsFn:
    import torch

    def fn(tokens: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(tokens).to(device)).float().cpu().numpy()

    return fn


def sample_next(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
                top_k: int | None = None) -> np.ndarray:
    """One token per row of ``logits [B, V]``: softmax(logits / temperature) restricted to the top k."""
    if temperature <= 0:
        return logits.argmax(-1).astype(np.int64)
    z = logits.astype(np.float64) / temperature
    if top_k is not None and 0 < top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    z -= z.max(-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    u = rng.random((len(p), 1))
    return np.minimum((np.cumsum(p, -1) < u).sum(-1), p.shape[-1] - 1).astype(np.int64)


def sample_autoregressive(logits_fn: LogitsFn, prefix: np.ndarray, steps: int, *, context_length: int,
                          rng: np.random.Generator, temperature: float = 1.0, top_k: int | None = None,
                          vocab: int | None = None) -> np.ndarray:
    """Extend ``prefix [B, P]`` (int64) by ``steps`` tokens; returns ``[B, P + steps]``.

    ``vocab`` (when given) checks that the graph returns that many logits per position.
    """
    seq = np.ascontiguousarray(prefix, dtype=np.int64)
    if seq.ndim != 2 or seq.shape[1] < 1:
        raise ValueError(f"prefix must be [batch, >=1] tokens, got shape {seq.shape}")
    for _ in range(steps):
        ctx = seq[:, -context_length:]
        logits = logits_fn(ctx)
        if logits.shape[:2] != ctx.shape or (vocab is not None and logits.shape[2] != vocab):
            raise ValueError(f"logits graph returned shape {list(logits.shape)} for tokens {list(ctx.shape)}"
                             + (f"; expected [{ctx.shape[0]}, {ctx.shape[1]}, {vocab}]" if vocab else ""))
        seq = np.concatenate([seq, sample_next(logits[:, -1], rng, temperature, top_k)[:, None]], axis=1)
    return seq
