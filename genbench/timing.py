"""The timing stage: one job's exported graphs timed in ONNX Runtime and PyTorch eager, alone.

It runs after every job's build-and-score stage has finished, one job at a time, in a process of its own
(``process`` executor), so that nothing else of genbench shares the machine while it measures. The graphs
timed are those the build stage validated (the first seed that succeeded); the torch module is rebuilt
from the state that stage saved (``state.pt``, read with ``torch.load(weights_only=True)``), or, for a
model that does not save state, by training it again with the same seed. Either way the module must
match the graphs again before it is timed; if it does not, only ONNX Runtime is timed, and the record
says why.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .config import Profile, RunConfig
from .errors import one_line
from .model import GenerativeModel
from .perf import NOISY_BACKGROUND_CORES, latency_stats, measure_interleaved, peak_rss_mb
from .perf.flops import graph_flops
from .runtime import draw_inputs, make_session, prepare_data
from .runtime.sampler import ort_logits_fn, sample_autoregressive, torch_logits_fn
from .types import GraphSpec, JobError, ModelSpec, OnnxBundle, PerfRecord, TimingResult, TrainConfig

SAMPLING_NEW_TOKENS = 32  # tokens generated per timed sampling loop
SAMPLING_BATCHES = (1, 64)
STATE_FILE = "state.pt"


def save_state(model: GenerativeModel, unit_dir: Path) -> str | None:
    """Write the model's ``state_dict()`` for the timing stage; returns a warning, or None."""
    import torch

    try:
        state = model.state_dict()
    except Exception as exc:  # noqa: BLE001 - plugin code: the timing stage retrains instead
        return f"state_dict() raised ({one_line(exc)}); the timing stage trains the model again"
    if state is None:
        return None
    tmp = unit_dir / (STATE_FILE + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, unit_dir / STATE_FILE)
    except Exception as exc:  # noqa: BLE001
        tmp.unlink(missing_ok=True)
        return f"the model's state could not be saved ({one_line(exc)}); the timing stage trains the model again"
    return None


def rebuild_model(spec: ModelSpec, dataset: Any, config: RunConfig, device: str, unit_dir: Path,
                  instantiate: Callable[[ModelSpec], GenerativeModel],
                  train: Callable[[GenerativeModel], Any]) -> tuple[GenerativeModel, str]:
    """The trained model again, and how it was had: from ``state.pt``, else by training with the same seed."""
    import torch

    model = instantiate(spec)
    path = unit_dir / STATE_FILE
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        tc = TrainConfig(seed=config.seed, device=device, profile=config.profile, steps=config.steps)
        model.load_state_dict(state, dataset.training_data(), tc)
        return model, "restored from the build stage's state_dict"
    train(model)
    return model, "trained again with the same seed (the model saves no state_dict)"


def time_bundle(bundle: OnnxBundle, modules: Callable[[str], Any], device: str, profile: Profile, threads: int,
                seed: int, data: np.ndarray | None, job_dir: Path, run_dir: Path) -> TimingResult:
    """Time every graph of ``bundle``; ``modules(role)`` is the torch module or None (ORT only)."""
    t0 = time.perf_counter()
    records, raw = measure_performance(bundle, modules, device, profile, threads, seed, data)
    path = job_dir / "latency_raw.json"
    path.write_text(json.dumps(raw))
    memory: dict[str, Any] = {"peak_rss_mb_timing": peak_rss_mb()}
    if device == "cuda":
        import torch

        memory["gpu_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return TimingResult(status="done", performance=tuple(records), memory=memory,
                        files={"latency_raw": Path(os.path.relpath(path, run_dir)).as_posix()},
                        seconds=time.perf_counter() - t0)


def timing_failure(phase: str, exc: BaseException, seconds: float) -> TimingResult:
    return TimingResult(status="failed", error=JobError(phase, type(exc).__name__, one_line(exc)), seconds=seconds)


def measure_performance(bundle: OnnxBundle, modules: Callable[[str], Any], device: str, profile: Profile,
                        threads: int, seed: int, data: np.ndarray | None) -> tuple[list[PerfRecord], dict]:
    """ONNX Runtime and torch eager, interleaved, at each batch size of the profile's sweep."""
    import torch

    torch.set_num_threads(threads)
    records: list[PerfRecord] = []
    raw: dict[str, list[float]] = {}
    for graph in bundle.graphs:
        t0 = time.perf_counter()
        session = make_session(bundle.directory / graph.path, device, threads)
        session_ms = (time.perf_counter() - t0) * 1e3
        provider = session.get_providers()[0]
        module = modules(graph.role)
        tdev = (next((p.device for p in module.parameters()), None) if module is not None else None) \
            or torch.device("cuda" if device == "cuda" else "cpu")
        # logits graphs: one forward over the full context
        extra = {graph.inputs[0].shape[1]: int(graph.attrs["context_length"])} if graph.role == "logits" else {}
        flops_per_item = graph_flops(bundle.directory / graph.path, {"batch": 1, **extra})

        def record(runtime: str, m: Any, batch: int, scenario: str, items: int, unit: str, max_q: int) -> None:
            stats = latency_stats(np.asarray(m.samples), items, max_q)
            bg = max(m.background) if m.background else None
            gflops = (flops_per_item * stats["throughput_per_s"] / 1e9
                      if flops_per_item and scenario == "forward" else None)
            records.append(PerfRecord(
                runtime=runtime, provider=(provider if runtime == "onnxruntime" else "TensorrtExecutionProvider"
                                           if runtime == "onnxruntime-tensorrt" else f"torch-{tdev.type}"),
                device=device, batch_size=batch,
                threads=threads if runtime.startswith("onnxruntime") else torch.get_num_threads(),
                iterations=len(m.samples), seconds=float(np.sum(m.samples)), latency_ms=stats["latency_ms"],
                throughput_per_s=stats["throughput_per_s"], valid=stats["valid"], invalid_reason=stats["invalid_reason"],
                background_cpu_cores=bg, noisy=bg is not None and bg > NOISY_BACKGROUND_CORES, graph=graph.role,
                scenario=scenario, unit=unit, gflops_per_s=gflops,
                first_call_ms=None if m.first_call_s is None else m.first_call_s * 1e3,
                session_create_ms=session_ms if runtime == "onnxruntime" else None, alone=True))
            raw[f"{graph.role}/{scenario}/{runtime}/b{batch}"] = [round(s * 1e3, 6) for s in m.samples]

        trt = _tensorrt_session(bundle.directory / graph.path, device, threads)
        for batch in profile.batch_sizes:
            feeds = draw_inputs(graph, batch, np.random.default_rng(seed), prepare_data(graph, data), extra)
            calls, sync = _runtime_calls(session, module, graph, feeds, device, tdev)
            if trt is not None:  # ONNX Runtime with TensorRT, beside the CUDA provider and torch eager
                trt_calls, trt_sync = _runtime_calls(trt, module, graph, feeds, device, tdev)
                calls["onnxruntime-tensorrt"], sync["onnxruntime-tensorrt"] = trt_calls["onnxruntime"], trt_sync["onnxruntime"]
            cuda_events = frozenset({"torch-eager"}) if device == "cuda" else frozenset()
            for runtime, m in measure_interleaved(calls, profile.timing, sync, cuda_events).items():
                record(runtime, m, batch, "forward", batch, "items/s", 99)
        if graph.role == "logits":
            for batch in SAMPLING_BATCHES:
                calls = _sampling_calls(session, module, graph, batch, seed, tdev)
                policy = profile.sampling_timing
                for runtime, m in measure_interleaved(calls, policy).items():
                    record(runtime, m, batch, "sampling", batch * SAMPLING_NEW_TOKENS, "tokens/s", 50)
    return records, raw


def _tensorrt_session(path: Path, device: str, threads: int) -> Any:
    """An extra session with the TensorRT provider, where installed and on a GPU; None otherwise."""
    from .runtime import tensorrt_available

    if device != "cuda" or not tensorrt_available():
        return None
    try:
        return make_session(path, device, threads, tensorrt=True)
    except Exception:  # noqa: BLE001 - TensorRT cannot build every graph; the other runtimes still run
        return None


def _sampling_calls(session: Any, module: Any, graph: GraphSpec, batch: int, seed: int,
                    tdev: Any) -> dict[str, Callable[[], Any]]:
    """The whole sampling loop (SAMPLING_NEW_TOKENS tokens from a short prompt), for each runtime."""
    context = int(graph.attrs["context_length"])
    vocab_in = graph.inputs[0].vocab or 2
    prompt_len = max(1, min(16, context - SAMPLING_NEW_TOKENS))
    prompt = np.random.default_rng(seed).integers(0, min(vocab_in, graph.outputs[0].shape[-1]), size=(batch, prompt_len))
    fns = {"onnxruntime": ort_logits_fn(session, graph.inputs[0].name, graph.outputs[0].name)}
    if module is not None:
        fns["torch-eager"] = torch_logits_fn(module, str(tdev))
    return {name: (lambda fn=fn: sample_autoregressive(fn, prompt, SAMPLING_NEW_TOKENS, context_length=context,
                                                       rng=np.random.default_rng(seed)))
            for name, fn in fns.items()}


def _runtime_calls(session: Any, module: Any, graph: GraphSpec, feeds: Mapping[str, np.ndarray], device: str,
                   tdev: Any) -> tuple[dict[str, Callable[[], Any]], dict[str, Callable[[], None]]]:
    import torch

    out_names = [o.name for o in graph.outputs]
    tensors = [torch.from_numpy(feeds[t.name]).to(tdev) for t in graph.inputs]
    sync: dict[str, Callable[[], None]] = {}

    def eager() -> Any:
        with torch.inference_mode():
            return module(*tensors)

    calls: dict[str, Callable[[], Any]] = {}
    if device == "cuda":
        import onnxruntime as ort

        binding = session.io_binding()
        for name, arr in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0))
        for name in out_names:
            binding.bind_output(name, "cuda")
        calls["onnxruntime"] = lambda: session.run_with_iobinding(binding)
        sync["onnxruntime"] = binding.synchronize_outputs
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def eager_cuda() -> float:  # CUDA events: the device's own clock, read after the work completes
            start.record()
            with torch.inference_mode():
                module(*tensors)
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3

        if module is not None:
            calls["torch-eager"] = eager_cuda
        return calls, sync
    calls["onnxruntime"] = lambda: session.run(out_names, dict(feeds))
    if module is not None:
        calls["torch-eager"] = eager
    return calls, sync


__all__ = ["measure_performance", "rebuild_model", "save_state", "time_bundle", "timing_failure"]
