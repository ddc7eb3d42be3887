"""ONNX Runtime sessions, device selection and input generation for exported graphs."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ..types import GraphSpec, TensorSpec

DEVICES = ("auto", "cpu", "cuda")
#: one math mode for torch and ONNX Runtime on CUDA, for parity checks and timing alike: full float32, TF32
#: off (torch's cuDNN and ONNX Runtime's CUDA provider would otherwise use it by default, torch's matmul not)
TF32 = False
#: ONNX Runtime providers, most specific first: the one a session reports is the first that ran a node
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when both torch and ONNX Runtime really run on a GPU, else ``cpu``."""
    return choose_device(device)[0]


def choose_device(device: str, problem: Callable[[], str | None] | None = None) -> tuple[str, str | None]:
    """(the device to run on, a note saying why ``auto`` fell back to CPU, or None).

    CUDA is accepted only after a probe really ran on it (:func:`cuda_problem`): a listed provider whose
    libraries cannot load does not count. ``--device cuda`` without a working GPU is an error.
    """
    if device not in DEVICES:
        raise ConfigError(f"Invalid device '{device}': use one of {', '.join(DEVICES)}.")
    if device == "cpu":
        return "cpu", None
    why = (problem or cuda_problem)()
    if why is None:
        return "cuda", None
    if device == "cuda":
        raise ConfigError(f"Device 'cuda' asked for, but {why}; use --device cpu.")
    return "cpu", f"--device auto fell back to CPU: {why}"


def cuda_problem() -> str | None:
    """Why torch and ONNX Runtime cannot both compute on a CUDA GPU here, or None when a probe on each ran."""
    import onnxruntime as ort
    import torch

    from ..errors import one_line

    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime lacks the CUDAExecutionProvider (install onnxruntime-gpu)"
    try:
        session = make_session(_probe_graph(), "cuda", 1, profile_dir=Path(tempfile.gettempdir()))
        used = providers_used(session, lambda: session.run(None, {"a": np.ones((2, 2), np.float32)}))
    except Exception as exc:  # noqa: BLE001 - whatever breaks, CUDA is not usable
        return f"a probe session on ONNX Runtime's CUDAExecutionProvider failed ({one_line(exc)})"
    if not used.get("CUDAExecutionProvider"):
        ran = ", ".join(used) or ", ".join(session.get_providers())
        return (f"a probe session asked for ONNX Runtime's CUDAExecutionProvider ran on {ran} instead (are the "
                "CUDA and cuDNN libraries it needs loadable?)")
    try:
        float((torch.ones(2, device="cuda") * 2).sum().item())
    except Exception as exc:  # noqa: BLE001
        return f"a probe computation of torch on CUDA failed ({one_line(exc)})"
    return None


def _probe_graph() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "a"], ["c"])], "probe",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    return model.SerializeToString()


def math_mode(device: str, runtime: str = "") -> str:
    """The float32 math mode a record was measured in (recorded with every timing)."""
    if device != "cuda":
        return "fp32"
    if runtime == "onnxruntime-tensorrt":
        return "fp32 asked; TensorRT may use TF32 (its default, which ONNX Runtime has no option to turn off)"
    tf32 = "on" if TF32 else "off"
    return f"fp32, TF32 {tf32} (torch matmul and cuDNN; ONNX Runtime CUDA use_tf32={int(TF32)})"


def apply_math_mode(device: str) -> None:
    """Put torch in :data:`TF32`'s math mode on CUDA (ONNX Runtime gets it from :func:`providers_for`)."""
    if device != "cuda":
        return
    import torch

    torch.backends.cuda.matmul.allow_tf32 = TF32
    torch.backends.cudnn.allow_tf32 = TF32


def providers_for(device: str, tensorrt: bool = False,
                  tensorrt_options: Mapping[str, str] | None = None) -> list[Any]:
    """ONNX Runtime providers (with their options) for ``device``: on CUDA the math mode is explicit."""
    if device != "cuda":
        return ["CPUExecutionProvider"]
    cuda = ("CUDAExecutionProvider", {"use_tf32": str(int(TF32))})
    trt = [("TensorrtExecutionProvider", dict(tensorrt_options or {}))] if tensorrt else []
    return trt + [cuda, "CPUExecutionProvider"]


def tensorrt_available() -> bool:
    import onnxruntime as ort

    return "TensorrtExecutionProvider" in ort.get_available_providers()


def tensorrt_options(graph: GraphSpec, batch_sizes: Sequence[int], cache_dir: Path) -> dict[str, str]:
    """TensorRT provider options for timing ``graph``: an engine (and timing) cache on disk, and explicit
    profile shapes spanning every batch size timed (and, for a logits graph, every sequence length the
    sampling loop feeds it), so that one engine is built once, before timing, and never on a first call."""
    context = int(graph.attrs.get("context_length", 16))

    def shapes(batch: int, seq: int) -> str:
        parts = []
        for t in graph.inputs:
            dims = [batch if d == "batch" else seq if isinstance(d, str) else d for d in t.shape]
            parts.append(f"{t.name}:{'x'.join(str(d) for d in dims)}")
        return ",".join(parts)

    seq_min = 1 if graph.role == "logits" else 16
    seq_max = context if graph.role == "logits" else 16
    return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache_dir),
            "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(cache_dir), "trt_fp16_enable": "False",
            "trt_profile_min_shapes": shapes(min(batch_sizes), seq_min),
            "trt_profile_opt_shapes": shapes(max(batch_sizes), seq_max),
            "trt_profile_max_shapes": shapes(max(batch_sizes), seq_max)}


def make_session(path: str | Path | bytes, device: str = "cpu", threads: int | None = None,
                 tensorrt: bool = False, tensorrt_options: Mapping[str, str] | None = None,
                 profile_dir: Path | None = None) -> Any:
    """An ``InferenceSession`` with explicit thread counts (recorded with every timing). On CUDA, torch is put
    in the same math mode as the session. ``profile_dir``: profile the session (until
    :func:`providers_used` ends it) to read back which provider ran each node."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # genbench reports failures itself, as one line
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile_dir is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(profile_dir) / f"ort-profile-{os.getpid()}")
    apply_math_mode(device)
    source = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(source, opts, providers=providers_for(device, tensorrt, tensorrt_options))


def providers_used(session: Any, run: Callable[[], Any]) -> dict[str, int]:
    """Nodes per provider that really ran them, read back from ONNX Runtime's profile of one call of ``run``
    on ``session`` (made with ``profile_dir``). Profiling ends here; the profile file is removed."""
    run()
    path = Path(session.end_profiling())
    try:
        events = json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)
    return count_node_providers(events)


def count_node_providers(events: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Distinct nodes per provider in an ONNX Runtime profile (its list of trace events)."""
    nodes: dict[str, set[str]] = {}
    for e in events:
        if not isinstance(e, Mapping):
            continue
        provider = (e.get("args") or {}).get("provider")
        if e.get("cat") == "Node" and provider:
            nodes.setdefault(provider, set()).add(str(e.get("name", "")).removesuffix("_kernel_time"))
    return {p: len(names) for p, names in sorted(nodes.items(), key=lambda kv: _provider_rank(kv[0]))}


def dominant_provider(used: Mapping[str, int]) -> str | None:
    """The provider that ran most nodes (ties: the most specific), or None when no node was seen."""
    if not used:
        return None
    return max(used, key=lambda p: (used[p], -_provider_rank(p)))


def _provider_rank(name: str) -> int:
    return PROVIDER_ORDER.index(name) if name in PROVIDER_ORDER else len(PROVIDER_ORDER)


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


DEQUANTIZE_SEED = 0  # the dequantised evaluation set is fixed too


def dequantize(x: np.ndarray, levels: int) -> np.ndarray:
    """Uniform dequantisation with a fixed seed: values in [0, 1] → ``(round(x · (L − 1)) + u) / L``, u ~ U[0, 1)
    (Theis et al. 2016), values in [0, 1)."""
    rng = np.random.default_rng(DEQUANTIZE_SEED)
    return ((quantize(x, levels) + rng.random(np.shape(x))) / levels).astype(np.float32)


def prepare_data(graph: GraphSpec, data: np.ndarray | None) -> np.ndarray | None:
    """Task data as graph ``graph`` expects it (``graph.attrs["data"]``: continuous, binarized or dequantized)."""
    transform = graph.attrs.get("data", "continuous")
    if data is None or transform == "continuous":
        return data
    if transform == "dequantized":
        return dequantize(data, int(graph.attrs["levels"]))
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
    elif spec.source in ("tokens", "timestep"):
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
