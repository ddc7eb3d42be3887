"""Role ``logits``: tokens [batch, seq] → next-token logits [batch, seq, V] (autoregressive models).

genbench owns the sampling loop (:mod:`genbench.runtime.sampler`) and computes the likelihood from the logits
itself (``log_softmax`` in float64). This module is the one place that sets that loop up for each kind of
task: text continues a prompt, images and points are drawn pixel by pixel (coordinate by coordinate) after BOS.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import BundleError, DataError
from ...metrics import Likelihood
from ...types import GraphSpec, OnnxBundle
from .. import point_tokens, point_values, quantize
from ..checks import shape_text
from ..likelihood import image_nll, text_cross_entropy
from ..sampler import sample_autoregressive
from .base import SAMPLE_BATCH, Generation, GraphFn, Role, session_fn

#: autoregressive samplers run one graph call per dimension; up to this many calls × samples a task gets
#: the same n as every other model (all of today's tasks but 28×28 images), beyond it n is capped (stated)
AR_SAMPLE_BUDGET = 2_000_000
#: one generated text sample, as timed: this many new bytes after a prompt of this many from the test split
GENERATE_TEXT_PROMPT, GENERATE_TEXT_NEW = 32, 256
TEXT_CHUNK = 2048  # bytes the text sampler adds per call of the loop when it draws long segments
#: continuations of held-out prompts a text job saves for its readers (one batch of this many rows)
TEXT_SAMPLE_ROWS = 4


class LogitsRole(Role):
    name = "logits"
    axes = ("batch", "seq")
    sources = ("tokens",)
    generates = True
    one_line = "int64 tokens [batch, seq] -> logits [batch, seq, V]; genbench runs the sampling loop"

    def contract(self, graph: GraphSpec, dataset: Any = None) -> None:
        check_contract(graph, dataset)

    def check_sizes(self, graph: GraphSpec) -> list[tuple[int, dict[str, int]]]:
        seq_axis = graph.inputs[0].shape[1]
        return [(b, {seq_axis: t}) for b, t in check_sizes(graph)]

    def full_sizes(self, graph: GraphSpec) -> dict[str, int]:
        return {graph.inputs[0].shape[1]: int(graph.attrs["context_length"])}

    def sample_count(self, n: int, dataset: Any) -> int:
        dims = int(np.prod(dataset.shape)) if dataset is not None and dataset.kind != "text" else 1
        return min(n, max(1, AR_SAMPLE_BUDGET // dims))

    def draw(self, bundle: OnnxBundle, graph: GraphSpec, device: str, n: int, seed: int, dataset: Any,
             data: np.ndarray | None = None) -> np.ndarray:
        """Images or points, drawn pixel by pixel (coordinate by coordinate) after BOS."""
        if dataset is None or dataset.kind == "text":
            raise ValueError("drawing images or points from a logits graph needs an image or points task")
        fn = session_fn(bundle, graph, device)
        levels, bos = int(graph.attrs["levels"]), int(graph.attrs["bos"])
        dims = int(np.prod(dataset.shape))
        rng = np.random.default_rng(seed)
        chunks = []
        for start in range(0, n, SAMPLE_BATCH):
            b = min(SAMPLE_BATCH, n - start)
            seq = sample_autoregressive(fn, np.full((b, 1), bos, np.int64), dims, rng=rng, vocab=levels,
                                        context_length=int(graph.attrs["context_length"]))
            if dataset.kind == "points":
                chunks.append(point_values(seq[:, 1:], levels, dataset.value_range, rng))
            else:
                chunks.append(seq[:, 1:].astype(np.float32) / (levels - 1))
        return np.concatenate(chunks).reshape(n, *dataset.shape)

    def likelihood(self, bundle: OnnxBundle, graph: GraphSpec, dataset: Any, device: str, seed: int,
                   threads: int | None) -> Likelihood:
        fn = session_fn(bundle, graph, device, threads)
        context = int(graph.attrs["context_length"])
        vocab = int(graph.outputs[0].shape[-1])
        if dataset.kind == "text":
            ce, window = text_cross_entropy(fn, dataset.test_x, context, vocab)
            return Likelihood(nll=ce, groups=window, dims=1, bound="exact", variant="bytes", discrete=True,
                              params={"graph": "logits", "split": "test", "context_length": context,
                                      "windows": f"disjoint windows of {context} bytes; every held-out byte after "
                                                 f"the first predicted exactly once ({len(ce):,} bytes, "
                                                 f"{window[-1] + 1} windows)"},
                              note="cross-entropy per byte, log_softmax in float64")
        levels = int(graph.attrs["levels"])
        if dataset.kind == "points":
            lo, hi = dataset.value_range
            tokens = point_tokens(dataset.test_x, levels, (lo, hi))
            # the model is a piecewise-uniform density: -log p(x) = -log P(bin) + D log(bin width)
            nll = image_nll(fn, tokens, int(graph.attrs["bos"]), levels) + tokens.shape[1] * math.log((hi - lo) / levels)
            return Likelihood(nll=nll, dims=tokens.shape[1], bound="exact", variant="continuous", discrete=False,
                              params={"graph": "logits", "split": "test",
                                      "data": f"continuous; the model's {levels} bins per coordinate read as a "
                                              "piecewise-uniform density"},
                              note="density of an autoregressive model over binned coordinates")
        tokens = quantize(dataset.test_x, levels).reshape(len(dataset.test_x), -1)
        nll = image_nll(fn, tokens, int(graph.attrs["bos"]), levels)
        return Likelihood(nll=nll, dims=tokens.shape[1], bound="exact", variant=f"quantized-{levels}", discrete=True,
                          params={"graph": "logits", "split": "test",
                                  "data": f"quantized to {levels} levels (round(x * {levels - 1}))"},
                          note="pixels quantized to the task's levels")

    def generation(self, bundle: OnnxBundle, graph: GraphSpec, dataset: Any, seed: int, profile: Any) -> Generation:
        context = int(graph.attrs["context_length"])
        if dataset.kind == "text":
            stream = np.asarray(dataset.test_x, dtype=np.int64)
            start = int(np.random.default_rng(seed).integers(0, max(1, len(stream) - GENERATE_TEXT_PROMPT)))
            prompt = stream[start:start + GENERATE_TEXT_PROMPT][None, :]
            steps, vocab = GENERATE_TEXT_NEW, dataset.vocab
            what = (f"genbench's sampling loop: {GENERATE_TEXT_NEW} new bytes after a {prompt.shape[1]}-byte prompt "
                    f"from the test split, one logits-graph call per byte (window of the last {context}), token "
                    "draws included")
        else:
            steps, vocab = int(np.prod(dataset.shape)), graph.attrs.get("levels")
            prompt = np.full((1, 1), int(graph.attrs.get("bos", 0)), np.int64)
            kind = "image" if dataset.kind == "image" else "point"
            what = (f"genbench's sampling loop: one {kind} = {steps} tokens after BOS, one logits-graph call per "
                    "token, token draws included (tokens to values excluded)")

        def run(fn: GraphFn, batch: int, rng: np.random.Generator) -> np.ndarray:
            return sample_autoregressive(fn, np.repeat(prompt, batch, axis=0), steps, context_length=context,
                                         rng=rng, vocab=vocab)

        return Generation("logits", steps, what, run)


def check_contract(graph: GraphSpec, dataset: Any) -> None:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise BundleError("Graph 'logits' must have one input (tokens [batch, seq]) and one output (logits [batch, seq, V]).")
    tok, out = graph.inputs[0], graph.outputs[0]
    if tok.source != "tokens" or tok.dtype != "int64" or len(tok.shape) != 2 or not all(isinstance(d, str) for d in tok.shape):
        raise BundleError(f"Graph 'logits' input '{tok.name}' must be int64 tokens with two symbolic axes "
                          f"[batch, seq] and source 'tokens'; it is {tok.dtype} {shape_text(tok.shape)} from "
                          f"{tok.source!r}.")
    if len(out.shape) != 3 or tuple(out.shape[:2]) != tuple(tok.shape) or not isinstance(out.shape[2], int):
        raise BundleError(f"Graph 'logits' output '{out.name}' is declared {shape_text(out.shape)}; it must be "
                          f"[{tok.shape[0]}, {tok.shape[1]}, V] with a fixed vocabulary size V.")
    context = graph.attrs.get("context_length")
    if not isinstance(context, int) or context < 1:
        raise BundleError("Graph 'logits' needs attrs['context_length']: the longest token sequence it takes (int).")
    if dataset is None:
        return
    vocab = out.shape[2]
    if dataset.kind == "text" and vocab != dataset.vocab:
        raise BundleError(f"Graph 'logits' predicts {vocab} values per position; task '{dataset.name}' has a "
                          f"vocabulary of {dataset.vocab} (bytes).")
    if dataset.kind == "text" and tok.vocab is not None and tok.vocab > dataset.vocab:
        raise BundleError(f"Graph 'logits' takes tokens below {tok.vocab}; task '{dataset.name}' has {dataset.vocab}.")
    if dataset.kind == "points":
        levels, bos = graph.attrs.get("levels"), graph.attrs.get("bos")
        if not isinstance(levels, int) or levels < 2 or vocab != levels or bos != levels or tok.vocab != levels + 1:
            raise BundleError(f"Graph 'logits' for points needs attrs['levels'] (bins per coordinate, = its {vocab} "
                              f"outputs) and attrs['bos'] = levels with input vocab levels + 1; got levels={levels!r}, "
                              f"bos={bos!r}, vocab={tok.vocab!r}.")
        if context < int(np.prod(dataset.shape)):
            raise BundleError(f"Graph 'logits' has context_length {context}, shorter than a point's "
                              f"{int(np.prod(dataset.shape))} coordinates.")
    if dataset.kind == "image":
        levels, bos = graph.attrs.get("levels"), graph.attrs.get("bos")
        dims = int(np.prod(dataset.shape))
        if levels != dataset.levels or vocab != dataset.levels:
            raise BundleError(f"Graph 'logits' models {vocab} values per pixel (attrs levels={levels!r}); task "
                              f"'{dataset.name}' has {dataset.levels} levels.")
        if bos != levels or tok.vocab != levels + 1:
            raise BundleError(f"Graph 'logits' for images needs attrs['bos'] == levels ({levels}) and input vocab "
                              f"levels + 1; got bos={bos!r}, vocab={tok.vocab!r}.")
        if context < dims:
            raise BundleError(f"Graph 'logits' has context_length {context}, shorter than the {dims} pixels of a "
                              f"'{dataset.name}' image.")


def check_sizes(graph: GraphSpec) -> list[tuple[int, int]]:
    """(batch, seq) pairs a logits graph is run at: short, medium and its full declared context."""
    t = int(graph.attrs["context_length"])
    return [(1, min(5, t)), (3, min(16, t)), (8, t)]


def check_text_fits(graph: GraphSpec, dataset: Any) -> None:
    """The held-out text holds at least one context window of the model."""
    context = int(graph.attrs["context_length"])
    if len(dataset.test_x) < context + 1:
        raise DataError(f"The held-out text has {len(dataset.test_x)} bytes, shorter than one context window of "
                        f"this model ({context} + 1 bytes); give a longer --text-file.")


def continuations(fn: GraphFn, graph: GraphSpec, stream: np.ndarray, count: int, prompt_bytes: int, new: int,
                  seed: int, vocab: int) -> tuple[np.ndarray, int]:
    """``count`` continuations (``new`` bytes, temperature 1) of prompts spread over ``stream``; returns the rows
    (prompt + continuation) and the prompt length used."""
    context = int(graph.attrs["context_length"])
    stream = np.asarray(stream, dtype=np.int64)
    plen = min(prompt_bytes, context, max(1, len(stream) // 2))
    starts = np.linspace(0, max(0, len(stream) - plen - 1), count).astype(int)
    prompts = np.stack([stream[s:s + plen] for s in starts])
    return sample_autoregressive(fn, prompts, new, context_length=context, rng=np.random.default_rng(seed),
                                 vocab=vocab), plen


def draw_text(fn: GraphFn, graph: GraphSpec, shape: tuple[int, int], seed: int, first_byte: int,
              vocab: int = 256) -> np.ndarray:
    """``shape = [segments, bytes]`` of text, each segment one continuous draw (temperature 1) after a one-byte
    prompt, grown :data:`TEXT_CHUNK` bytes per call of the loop."""
    context = int(graph.attrs["context_length"])
    rng = np.random.default_rng(seed)
    segments, length = shape
    seq = np.full((segments, 1), int(first_byte), np.int64)
    out: list[np.ndarray] = []
    while sum(c.shape[1] for c in out) < length:
        step = min(TEXT_CHUNK, length - sum(c.shape[1] for c in out))
        grown = sample_autoregressive(fn, seq, step, context_length=context, rng=rng, vocab=vocab)
        out.append(grown[:, seq.shape[1]:])
        seq = grown[:, -context:]
    return np.concatenate(out, axis=1).astype(np.uint8)


ROLE = LogitsRole()

__all__ = ["AR_SAMPLE_BUDGET", "GENERATE_TEXT_NEW", "GENERATE_TEXT_PROMPT", "LogitsRole", "ROLE", "TEXT_CHUNK",
           "TEXT_SAMPLE_ROWS",
           "check_contract", "check_sizes", "check_text_fits", "continuations", "draw_text"]
