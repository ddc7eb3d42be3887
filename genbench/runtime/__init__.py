"""ONNX Runtime sessions, device selection and input generation for exported graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from ..types import GraphSpec, TensorSpec

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when both torch and ONNX Runtime can use a GPU, else ``cpu``."""
    if device not in DEVICES:
        raise ConfigError(f"Invalid device '{device}': use one of {', '.join(DEVICES)}.")
    if device == "cpu":
        return "cpu"
    import onnxruntime as ort
    import torch

    has_gpu = torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not has_gpu:
        raise ConfigError("Device 'cuda' asked for, but torch sees no CUDA GPU or onnxruntime lacks the "
                          "CUDAExecutionProvider (install onnxruntime-gpu); use --device cpu.")
    return "cuda" if has_gpu else "cpu"


def providers_for(device: str, tensorrt: bool = False) -> list[str]:
    if device != "cuda":
        return ["CPUExecutionProvider"]
    return (["TensorrtExecutionProvider"] if tensorrt else []) + ["CUDAExecutionProvider", "CPUExecutionProvider"]


def tensorrt_available() -> bool:
    import onnxruntime as ort

    return "TensorrtExecutionProvider" in ort.get_available_providers()


def make_session(path: str | Path | bytes, device: str = "cpu", threads: int | None = None,
                 tensorrt: bool = False) -> Any:
    """An ``InferenceSession`` with explicit thread counts (recorded with every timing)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # genbench reports failures itself, as one line
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    source = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(source, opts, providers=providers_for(device, tensorrt))


BINARIZE_SEED = 0  # the binarised evaluation set is fixed: the same for every model and run


def binarize(x: np.ndarray) -> np.ndarray:
    """Stochastic binarisation with a fixed seed: each value x ∈ [0, 1] becomes 1 with probability x."""
    rng = np.random.default_rng(BINARIZE_SEED)
    return (rng.random(x.shape) < x).astype(np.float32)


def quantize(x: np.ndarray, levels: int) -> np.ndarray:
    """Pixel tokens ``round(x · (levels − 1))`` (int64) of values in [0, 1]."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * (levels - 1)), 0, levels - 1).astype(np.int64)


def point_tokens(x: np.ndarray, levels: int, value_range: tuple[float, float]) -> np.ndarray:
    """Continuous points ``[N, D]`` → bin tokens ``[N, D]`` (int64): ``levels`` equal bins per coordinate over
    ``value_range``. The contract for ``logits`` graphs on point tasks: plugins tokenise with this."""
    lo, hi = value_range
    u = (np.asarray(x, dtype=np.float64) - lo) / (hi - lo)
    return np.clip(np.floor(u * levels), 0, levels - 1).astype(np.int64).reshape(len(x), -1)


def point_values(tokens: np.ndarray, levels: int, value_range: tuple[float, float],
                 rng: np.random.Generator) -> np.ndarray:
    """Bin tokens → points drawn uniformly inside each bin (the piecewise-uniform density the model defines)."""
    lo, hi = value_range
    return (lo + (tokens + rng.random(tokens.shape)) * (hi - lo) / levels).astype(np.float32)


def prepare_data(graph: GraphSpec, data: np.ndarray | None) -> np.ndarray | None:
    """Task data as graph ``graph`` expects it (``graph.attrs["data"]``: continuous or binarized)."""
    if data is None or graph.attrs.get("data", "continuous") == "continuous":
        return data
    return binarize(data)


_NP_DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "int64": np.int64,
              "int32": np.int32, "uint8": np.uint8, "bool": np.bool_}


def np_dtype(name: str) -> np.dtype:
    return np.dtype(_NP_DTYPES[name])


def draw_input(spec: TensorSpec, sizes: Mapping[str, int], rng: np.random.Generator,
               data: np.ndarray | None = None) -> np.ndarray:
    """Values for one input, drawn from the source its spec declares."""
    shape = spec.concrete_shape(sizes)
    if spec.source == "normal":
        x = rng.standard_normal(shape)
    elif spec.source == "uniform":
        x = rng.random(shape)
    elif spec.source == "tokens":
        x = rng.integers(0, spec.vocab or 2, size=shape)
    elif spec.source == "data":
        if data is None:
            raise ValueError(f"input {spec.name!r} wants task data, none was given")
        x = data[rng.integers(0, len(data), size=shape[0])]
        if x.shape != shape:
            raise ValueError(f"input {spec.name!r} declares shape {shape}, the task's data has {x.shape}")
    else:  # pragma: no cover - TensorSpec validates source
        raise ValueError(f"unknown source {spec.source!r}")
    return np.ascontiguousarray(x.astype(np_dtype(spec.dtype)))


def draw_inputs(graph: GraphSpec, batch: int, rng: np.random.Generator, data: np.ndarray | None = None,
                extra_sizes: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    sizes = {"batch": batch, **(extra_sizes or {})}
    for t in graph.inputs:  # any other symbolic axis gets a fixed, non-trivial size
        for d in t.shape:
            if isinstance(d, str):
                sizes.setdefault(d, 16)
    return {t.name: draw_input(t, sizes, rng, data) for t in graph.inputs}
