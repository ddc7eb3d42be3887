"""The timing stage: one job's exported graphs timed in ONNX Runtime and PyTorch eager, alone.

It runs after every job's build-and-score stage has finished, one job at a time, in a process of its own
(``process`` executor), so that nothing else of genbench shares the machine while it measures, and no
plugin code runs in it. The graphs timed are those the score stage validated (the first seed that
succeeded), each file checked against the sha256 recorded when it was scored; torch runs the program
``torch.export`` captured from the plugin's module in its build process (loaded without the plugin's code,
and checked against the graphs when they were scored). Where torch.export could not capture a module, its
torch figures are made in a build process, from the module rebuilt from ``state.pt``
(:func:`time_plugin_torch`): they say ``computed_by: plugin`` and are never ranked.

Two scenarios are timed. ``forward``: one run of one graph per call, at each batch size of the profile
(details, and GFLOP/s). ``generate``: the cost of one generated sample, the same definition for every
family — an image or a 2-D point, or ``GENERATE_TEXT_NEW`` new bytes after a ``GENERATE_TEXT_PROMPT``-byte
prompt — produced through the exported graphs: one call of the ``sample`` graph (a GAN's generator, a
VAE's decoder), genbench's whole autoregressive loop over the ``logits`` graph (one graph call per
generated token, the token draws included), or genbench's whole DDIM loop over the ``denoise`` graph at the
steps the samples were scored at (one graph call per step, x_T and the update arithmetic included). What a
role's generated sample is, is its module's (:mod:`genbench.runtime.roles`). Drawing the inputs (noise, the prompt) is done beforehand
and excluded; turning tokens into pixel values or points is excluded too (a few vector operations).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .config import Profile, RunConfig
from .errors import one_line
from .perf import (MIN_THROUGHPUT_CALLS, NOISY_BACKGROUND_CORES, Measurement, TimingPolicy, latency_stats,
                   measure_interleaved, peak_rss_mb, reset_peak_rss)
from .runtime.flops import graph_flops
from .runtime import (apply_math_mode, dominant_provider, draw_inputs, make_session, math_mode, prepare_data,
                      providers_used, tensorrt_options)
from .runtime import roles
from .runtime.roles import Generation, ort_graph_fn, torch_graph_fn
from .runtime.roles.logits import GENERATE_TEXT_NEW, GENERATE_TEXT_PROMPT
from .stages import GENBENCH, PLUGIN
from .stages.common import STATE_FILE
from .types import GraphSpec, JobError, ModelSpec, OnnxBundle, PerfRecord, TimingResult, TrainConfig

TENSORRT = "onnxruntime-tensorrt"


def time_unit(spec: ModelSpec, dataset: Any, config: RunConfig, profile: Profile, device: str, unit_dir: Path,
              job_dir: Path, run_dir: Path, expected: Mapping[str, str] | None = None,
              on_phase: Callable[[str], None] | None = None, computed_by: str = GENBENCH) -> TimingResult:
    """The timing stage of one job, in a time process (no plugin code): the graphs and exported programs the
    score stage validated in ``unit_dir``, each checked against its sha256 (``expected``: the graphs' as
    run.json recorded them), timed alone. A graph whose torch module torch.export could not capture is left
    to :func:`time_plugin_torch` (``info["plugin_torch"]`` names them)."""
    from .harness import load_verified_bundle
    from .runtime.programs import load_program

    t0 = time.perf_counter()
    phase = "verify"
    if on_phase is not None:
        on_phase(phase)
    try:
        bundle, programs = load_verified_bundle(unit_dir, expected)
        supplied = getattr(spec, "files", None) is not None and spec.family == "onnx"
        loaded: dict[str, Any] = {}
        warnings: list[str] = []
        for role, path in programs.items():
            try:
                loaded[role] = load_program(path, device)
            except Exception as exc:  # noqa: BLE001 - ONNX Runtime is still timed
                warnings.append(f"torch not timed on graph '{role}': its exported program cannot be loaded "
                                f"({one_line(exc)})")
        missing = [g.role for g in bundle.graphs if g.role not in programs]
        plugin_torch = [r for r in missing if not supplied and (unit_dir / STATE_FILE).is_file()]
        if supplied:
            warnings.append("torch eager not timed: not available for graphs supplied as ONNX files "
                            "(ONNX Runtime only)")
        for role in missing:
            if role not in plugin_torch and not supplied:
                warnings.append(f"torch not timed on graph '{role}': torch.export could not capture its module and "
                                "the model saves no state to rebuild it from")
        phase = "timing"
        if on_phase is not None:
            on_phase(phase)
        job_dir.mkdir(parents=True, exist_ok=True)
        result = time_bundle(bundle, loaded.get, device, profile, config.threads, config.seed, dataset, job_dir,
                             run_dir, computed_by=computed_by)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        return timing_failure(phase, exc, time.perf_counter() - t0)
    origin = ("not available: the graphs were supplied as ONNX files, without a torch module" if supplied else
              "the program torch.export captured from the plugin's module in its build process, run by genbench")
    return replace(result, warnings=(*warnings, *result.warnings), seconds=time.perf_counter() - t0,
                   info={"alone": True, "seed": config.seed, "torch_module": origin, "computed_by": computed_by,
                         **({"plugin_torch": plugin_torch} if plugin_torch else {}),
                         "policy": {"forward": profile.timing.to_dict(), "generate": profile.generate_timing.to_dict(),
                                    "latency_iterations": profile.latency_iterations,
                                    "generate_call_budget_s": profile.generate_call_budget_s,
                                    "forward_call_budget_s": profile.forward_call_budget_s}})


def time_plugin_torch(spec: ModelSpec, dataset: Any, config: RunConfig, profile: Profile, device: str,
                      unit_dir: Path, job_dir: Path, run_dir: Path, roles: list[str]) -> TimingResult:
    """In a build process (plugin code): torch timed on the plugin's own module, rebuilt from ``state.pt``, for
    the graphs torch.export could not capture. Every record says ``computed_by: plugin``, and is never ranked."""
    import torch

    from .harness import load_verified_bundle
    from .stages.build import instantiate

    t0 = time.perf_counter()
    try:
        bundle, _ = load_verified_bundle(unit_dir)
        model = instantiate(spec)
        state = torch.load(unit_dir / STATE_FILE, map_location="cpu", weights_only=True)
        tc = TrainConfig(seed=config.seed, device=device, profile=config.profile, steps=config.steps)
        model.load_state_dict(state, dataset.training_data(), tc)
        part = OnnxBundle(bundle.directory, tuple(g for g in bundle.graphs if g.role in roles))
        result = time_bundle(part, model.torch_module, device, profile, config.threads, config.seed, dataset,
                             job_dir, run_dir, ort=False, computed_by=PLUGIN, raw_name="latency_raw_plugin.json")
    except BaseException as exc:  # noqa: BLE001 - plugin code
        if isinstance(exc, KeyboardInterrupt):
            raise
        return timing_failure("timing", exc, time.perf_counter() - t0)
    return replace(result, seconds=time.perf_counter() - t0,
                   warnings=tuple(w for w in result.warnings if not w.startswith("no generate timing")))


def generation_for(bundle: OnnxBundle, dataset: Any, seed: int, profile: Profile | None = None) -> Generation | None:
    """The generate scenario of a bundle on its task (its generating role's, :mod:`genbench.runtime.roles`), or
    None when the bundle has no generating graph."""
    return roles.generation_for(bundle, dataset, seed, profile)


def time_bundle(bundle: OnnxBundle, modules: Callable[[str], Any], device: str, profile: Profile, threads: int,
                seed: int, dataset: Any, job_dir: Path, run_dir: Path, *, ort: bool = True,
                computed_by: str = GENBENCH, raw_name: str = "latency_raw.json") -> TimingResult:
    """Time every graph of ``bundle`` and its generate scenario; ``modules(role)`` is the torch module or
    None (ONNX Runtime only). Memory: the timing process's whole peak RSS, then the timing loops' own
    (the peak is reset first where the platform allows), and on CUDA the GPU's."""
    t0 = time.perf_counter()
    memory: dict[str, Any] = {"peak_rss_mb_timing_process": peak_rss_mb()}
    reset = reset_peak_rss()
    gpu = GpuMemory.start(device)
    records, raw, warnings, ort_device_mb = measure_performance(bundle, modules, device, profile, threads, seed,
                                                                dataset, gpu, ort=ort)
    records = [replace(r, computed_by=computed_by) for r in records]
    path = job_dir / raw_name
    path.write_text(json.dumps(raw))
    memory["peak_rss_mb_timing"] = peak_rss_mb()
    memory["peak_rss_mb_timing_process"] = max(v for v in (memory["peak_rss_mb_timing_process"],
                                                            memory["peak_rss_mb_timing"], 0.0) if v is not None)
    memory["peak_rss_timing_scope"] = "timing loops only (peak reset before them)" if reset else \
        "the timing process since it started (this platform cannot reset the peak)"
    memory.update(gpu.figures(ort_device_mb))
    return TimingResult(status="done", performance=tuple(records), memory=memory,
                        files={raw_name.removesuffix(".json"): Path(os.path.relpath(path, run_dir)).as_posix()},
                        seconds=time.perf_counter() - t0, warnings=tuple(warnings))


def timing_failure(phase: str, exc: BaseException, seconds: float) -> TimingResult:
    return TimingResult(status="failed", error=JobError(phase, type(exc).__name__, one_line(exc)), seconds=seconds)


class _Recorder:
    """Turns measurements into PerfRecords and raw latencies, and keeps the runtimes that failed out."""

    def __init__(self, device: str, threads: int, torch_threads: int) -> None:
        self.device, self.threads, self.torch_threads = device, threads, torch_threads
        self.records: list[PerfRecord] = []
        self.raw: dict[str, list[float]] = {}
        self.warnings: list[str] = []
        self.dead: dict[tuple[str, str], str] = {}  # (graph, runtime) -> why it stopped

    def fail(self, graph: str, runtime: str, where: str, error: str) -> None:
        if (graph, runtime) not in self.dead:
            self.dead[(graph, runtime)] = error
            self.warnings.append(f"{runtime} failed on graph '{graph}' ({where}): {error}; its records of this graph "
                                 "are left out, the other runtimes' stand")

    def add(self, graph: GraphSpec, runtime: str, m: Measurement, batch: int, scenario: str, policy: TimingPolicy,
            *, provider: str, used: Mapping[str, int] | None = None, flops: int | None = None,
            session_ms: float | None = None, steps: int | None = None, note: str | None = None,
            device_ms: list[float] | None = None, first_call_ms: float | None = None) -> None:
        if m.error is not None:
            self.fail(graph.role, runtime, f"{scenario} at batch {batch}", m.error)
            return
        if not m.samples:
            self.warnings.append(f"{runtime} not timed on graph '{graph.role}' ({scenario} at batch {batch}): "
                                 f"{m.stop_reason}")
            return
        stats = latency_stats(np.asarray(m.samples), batch, policy.min_seconds)
        bg = m.background_cores
        gflops = flops * stats["throughput_per_s"] / 1e9 if flops and scenario == "forward" else None
        device_time = None
        if device_ms:
            d = np.asarray(device_ms)
            device_time = {"p50": float(np.median(d)), "mean": float(d.mean()), "clock": "CUDA events"}
        self.records.append(PerfRecord(
            runtime=runtime, provider=provider, device=self.device, batch_size=batch,
            threads=self.threads if runtime.startswith("onnxruntime") else self.torch_threads,
            iterations=len(m.samples), seconds=float(np.sum(m.samples)), latency_ms=stats["latency_ms"],
            throughput_per_s=stats["throughput_per_s"], valid=stats["valid"], invalid_reason=stats["invalid_reason"],
            background_cpu_cores=bg, noisy=bg is not None and bg > NOISY_BACKGROUND_CORES, graph=graph.role,
            scenario=scenario, unit="samples/s" if scenario == "generate" else "items/s", gflops_per_s=gflops,
            first_call_ms=first_call_ms if first_call_ms is not None else
            (None if m.first_call_s is None else m.first_call_s * 1e3),
            session_create_ms=session_ms, alone=True, figure_validity=stats["figure_validity"],
            median_ci_ms=stats["median_ci_ms"], stop_reason=m.stop_reason, math_mode=math_mode(self.device, runtime),
            providers_used=dict(used) if used else None, clock="host (call + synchronisation)",
            device_time_ms=device_time, steps=steps, note=note))
        self.raw[f"{graph.role}/{scenario}/{runtime}/b{batch}"] = [round(s * 1e3, 6) for s in m.samples]


def measure_performance(bundle: OnnxBundle, modules: Callable[[str], Any], device: str, profile: Profile,
                        threads: int, seed: int, dataset: Any, gpu: "GpuMemory | None" = None, ort: bool = True
                        ) -> tuple[list[PerfRecord], dict, list[str], float | None]:
    """ONNX Runtime and torch eager, interleaved: every graph at each batch size of the profile
    (``forward``), then the generate scenario. Returns the records, raw latencies, warnings (a runtime that
    failed, batches left out and why) and the device memory ONNX Runtime's sessions took (CUDA)."""
    import torch

    torch.set_num_threads(threads)
    apply_math_mode(device)
    gpu = gpu or GpuMemory.start("cpu")
    default_tdev = torch.device("cuda" if device == "cuda" else "cpu")
    rec = _Recorder(device, threads, torch.get_num_threads())
    generation = generation_for(bundle, dataset, seed, profile)
    data = getattr(dataset, "test_x", None)
    sessions: dict[str, tuple[_Session | None, _Session | None, Any, Any]] = {}
    ort_device_mb: float | None = None
    with tempfile.TemporaryDirectory(prefix="genbench-timing-") as scratch:
        for graph in bundle.graphs:
            before = gpu.snapshot()
            path = bundle.directory / graph.path
            module = modules(graph.role)
            tdev = (next((p.device for p in module.parameters()), None) if module is not None else None) or default_tdev
            # logits graphs: one forward over the full context
            extra = roles.role_of(graph.role).full_sizes(graph)
            flops = graph_flops(path, {"batch": 1, **extra})
            first = draw_inputs(graph, profile.batch_sizes[0], np.random.default_rng(seed), prepare_data(graph, data),
                                extra)
            session = _open_session(path, device, threads, first, graph, rec, Path(scratch)) if ort else None
            trt = _open_tensorrt(path, device, threads, first, graph, profile, rec, Path(scratch)) if ort else None
            sessions[graph.role] = (session, trt, module, tdev)
            batches = forward_batches(profile, graph)
            if len(batches) < len(profile.batch_sizes):
                rec.warnings.append(f"forward of graph '{graph.role}' timed at batch {', '.join(map(str, batches))} "
                                    f"only: a {graph.canonical_role} graph's forward pass is a detail (the profile "
                                    f"times such graphs up to batch {profile.detail_max_batch})")
            for i, batch in enumerate(batches):
                if i and _over_budget(rec, graph, "forward", batches[i - 1], batch,
                                      call_budget(profile.forward_call_budget_s, profile.timing)):
                    break  # larger batches cost more still
                feeds = first if i == 0 else draw_inputs(graph, batch, np.random.default_rng(seed),
                                                         prepare_data(graph, data), extra)
                calls, sync, after, device_ms = _runtime_calls(session, trt, module, graph, feeds, device, tdev, rec)
                policy = _policy_for(profile, batch)
                for runtime, m in measure_interleaved(calls, policy, sync, after).items():
                    used = {"onnxruntime": session, TENSORRT: trt}.get(runtime)
                    rec.add(graph, runtime, m, batch, "forward", policy,
                            provider=used.provider if used else f"torch-{tdev.type}",
                            used=used.used if used else None, flops=flops,
                            session_ms=used.create_ms if used else None,
                            device_ms=device_ms.get(runtime),
                            first_call_ms=used.cold_call_ms if used and i == 0 else None)
            ort_device_mb = _max(ort_device_mb, gpu.onnxruntime_delta(before, gpu.snapshot()))
            if generation is not None and generation.run is None and graph.role == generation.graph:
                _copy_as_generate(rec, graph, generation)
        if generation is not None and generation.run is not None:
            session, trt, module, tdev = sessions[generation.graph]
            _time_loop(bundle.graph(generation.graph), generation, session, trt, module, tdev, profile, seed, rec)
    if generation is None:
        rec.warnings.append(f"no generate timing: the bundle has no graph genbench generates from "
                            f"({', '.join(roles.GENERATORS)})")
    return rec.records, rec.raw, rec.warnings, ort_device_mb


#: graph roles whose forward pass is a detail beside the generate figure (timed up to ``detail_max_batch``)
DETAIL_ROLES = ("likelihood", "logits")


def forward_batches(profile: Profile, graph: GraphSpec) -> tuple[int, ...]:
    """The batch sizes a graph's forward pass is timed at: the profile's sweep, but for a likelihood (elbo) or
    logits graph only its sizes up to ``profile.detail_max_batch`` (at least the first)."""
    cap = profile.detail_max_batch
    if cap is None or graph.canonical_role not in DETAIL_ROLES:
        return tuple(profile.batch_sizes)
    return tuple(b for b in profile.batch_sizes if b <= cap) or tuple(profile.batch_sizes[:1])


def _over_budget(rec: _Recorder, graph: GraphSpec, scenario: str, prev: int, batch: int, budget: float) -> bool:
    """Whether one call at ``batch`` is estimated (linearly, from the slowest runtime's p50 at ``prev``) to take
    longer than ``budget`` seconds; if so the batch is left out, and a warning says so."""
    last = [r.latency_ms.get("p50") or 0.0 for r in rec.records
            if r.graph == graph.role and r.scenario == scenario and r.batch_size == prev]
    estimate = max(last, default=0.0) * batch / prev / 1e3
    if estimate <= budget:
        return False
    rec.warnings.append(f"{scenario} of graph '{graph.role}' not timed at batch {batch} or larger: one call would "
                        f"take ~{estimate:.2g} s, over the profile's {budget:.3g} s per call")
    return True


def _policy_for(profile: Profile, batch: int) -> TimingPolicy:
    """At batch 1 the latency tail is a headline figure: enough calls for p99 (within the time cap)."""
    if batch == 1:
        return replace(profile.timing, min_iterations=max(profile.timing.min_iterations, profile.latency_iterations))
    return profile.timing


def call_budget(budget: float, policy: TimingPolicy) -> float:
    """The longest call a batch may be estimated to take and still be timed: the profile's budget, but never
    more than ``max_seconds`` holds the fewest calls a figure needs (``MIN_THROUGHPUT_CALLS``), so that a batch
    the budget lets in is never then refused for its first call (a smoke generate call of 0.07 s passed a
    0.1 s budget, and 3 of them did not fit in 0.2 s)."""
    return min(budget, policy.max_seconds / MIN_THROUGHPUT_CALLS)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass
class _Session:
    session: Any
    provider: str  # the provider that really ran most nodes, read back from the session's profile
    used: Mapping[str, int]
    create_ms: float
    cold_call_ms: float


def _open_session(path: Path, device: str, threads: int, feeds: Mapping[str, np.ndarray], graph: GraphSpec,
                  rec: _Recorder, scratch: Path, **kwargs: Any) -> _Session | None:
    """A profiled session, its first (cold) call timed, and the providers that really ran its nodes."""
    runtime = TENSORRT if kwargs.get("tensorrt") else "onnxruntime"
    try:
        t0 = time.perf_counter()
        session = make_session(path, device, threads, profile_dir=scratch, **kwargs)
        t1 = time.perf_counter()
        out_names = [o.name for o in graph.outputs]
        used = providers_used(session, lambda: session.run(out_names, dict(feeds)))
        t2 = time.perf_counter()
    except Exception as exc:  # noqa: BLE001 - this runtime is lost, the others go on
        rec.fail(graph.role, runtime, "creating its session", one_line(exc))
        return None
    provider = dominant_provider(used) or session.get_providers()[0]
    return _Session(session, provider, used, (t1 - t0) * 1e3, (t2 - t1) * 1e3)


def _open_tensorrt(path: Path, device: str, threads: int, feeds: Mapping[str, np.ndarray], graph: GraphSpec,
                   profile: Profile, rec: _Recorder, scratch: Path) -> _Session | None:
    """A TensorRT session beside the CUDA one, where installed and on a GPU: its engine is built (or read from
    the engine cache) with profile shapes spanning the timed sizes, before timing; None otherwise, and None
    (with a warning) when the session did not really run on TensorRT."""
    from .runtime import tensorrt_available

    if device != "cuda" or not tensorrt_available():
        return None
    from .cache import default_cache_dir

    cache = default_cache_dir() / "tensorrt"
    cache.mkdir(parents=True, exist_ok=True)
    options = tensorrt_options(graph, profile.batch_sizes, cache)
    session = _open_session(path, device, threads, feeds, graph, rec, scratch, tensorrt=True, tensorrt_options=options)
    if session is not None and session.provider != "TensorrtExecutionProvider":
        # ONNX Runtime falls back to the next provider when TensorRT cannot load or build: timing that session
        # would time the CUDA provider twice under TensorRT's name
        rec.warnings.append(f"TensorRT not timed on graph '{graph.role}': its session ran "
                            f"{dict(session.used) or session.provider} instead (TensorRT libraries missing, or the "
                            "engine could not be built)")
        return None
    return session


def _runtime_calls(ort: _Session | None, trt: _Session | None, module: Any, graph: GraphSpec,
                   feeds: Mapping[str, np.ndarray], device: str, tdev: Any, rec: _Recorder
                   ) -> tuple[dict[str, Callable[[], Any]], dict[str, Callable[[], None]], dict[str, Callable[[], None]],
                              dict[str, list[float]]]:
    """The callables timed, one per runtime still alive, each on the host clock with its synchronisation;
    on CUDA torch's own CUDA-event times are collected apart (outside the timed region)."""
    calls: dict[str, Callable[[], Any]] = {}
    sync: dict[str, Callable[[], None]] = {}
    after: dict[str, Callable[[], None]] = {}
    device_ms: dict[str, list[float]] = {}
    for runtime, s in (("onnxruntime", ort), (TENSORRT, trt)):
        if s is None or (graph.role, runtime) in rec.dead:
            continue
        try:
            calls[runtime], sync_fn = ort_call(s.session, graph, feeds, device)
        except Exception as exc:  # noqa: BLE001
            rec.fail(graph.role, runtime, "binding its inputs", one_line(exc))
            continue
        if sync_fn is not None:
            sync[runtime] = sync_fn
    if module is not None and (graph.role, "torch-eager") not in rec.dead:
        try:
            calls["torch-eager"], sync_fn, after_fn, times = torch_call(module, graph, feeds, device, tdev)
        except Exception as exc:  # noqa: BLE001
            rec.fail(graph.role, "torch-eager", "moving its inputs", one_line(exc))
        else:
            if sync_fn is not None:
                sync["torch-eager"], after["torch-eager"], device_ms["torch-eager"] = sync_fn, after_fn, times
    return calls, sync, after, device_ms


def ort_call(session: Any, graph: GraphSpec, feeds: Mapping[str, np.ndarray],
             device: str) -> tuple[Callable[[], Any], Callable[[], None] | None]:
    """One ONNX Runtime call of ``graph`` as the harness times it (outputs freed by the caller, inside the
    timed region), and its synchronisation on CUDA (IOBinding, outputs on the device)."""
    out_names = [o.name for o in graph.outputs]
    if device == "cuda":
        import onnxruntime as ort

        binding = session.io_binding()
        for name, arr in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0))
        for name in out_names:
            binding.bind_output(name, "cuda")
        return (lambda: session.run_with_iobinding(binding)), binding.synchronize_outputs
    inputs = dict(feeds)
    return (lambda: session.run(out_names, inputs)), None


def torch_call(module: Any, graph: GraphSpec, feeds: Mapping[str, np.ndarray], device: str, tdev: Any
               ) -> tuple[Callable[[], Any], Callable[[], None] | None, Callable[[], None] | None, list[float]]:
    """One torch eager call as the harness times it; on CUDA its synchronisation (inside the timed region)
    and a reader of its CUDA-event time (outside it), kept in the returned list."""
    import torch

    tensors = [torch.from_numpy(feeds[t.name]).to(tdev) for t in graph.inputs]
    times: list[float] = []
    if device != "cuda":
        def eager() -> Any:
            with torch.inference_mode():
                return module(*tensors)

        return eager, None, None, times
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def eager_cuda() -> Any:
        start.record()
        with torch.inference_mode():
            out = module(*tensors)
        end.record()
        return out

    return eager_cuda, torch.cuda.synchronize, lambda: times.append(start.elapsed_time(end)), times


def _copy_as_generate(rec: _Recorder, graph: GraphSpec, generation: Generation) -> None:
    """For a ``sample`` graph one generate call is exactly one forward call: its forward records, relabelled
    (the same measurement, not a second one)."""
    for r in [r for r in rec.records if r.graph == graph.role and r.scenario == "forward"]:
        rec.records.append(replace(r, scenario="generate", unit="samples/s", steps=1,
                                   note=generation.description))
        rec.raw[f"{graph.role}/generate/{r.runtime}/b{r.batch_size}"] = \
            rec.raw[f"{graph.role}/forward/{r.runtime}/b{r.batch_size}"]


def _time_loop(graph: GraphSpec, generation: Generation, ort: _Session | None, trt: _Session | None,
               module: Any, tdev: Any, profile: Profile, seed: int, rec: _Recorder) -> None:
    """genbench's whole sampling loop (autoregressive, diffusion: ``generation.run``) at each batch size whose
    one call fits the profile's budget (estimated from the forward records, at full size, an upper bound per
    step); batch 1 always."""
    fns: dict[str, Callable[..., np.ndarray]] = {}
    for runtime, s in (("onnxruntime", ort), (TENSORRT, trt)):
        if s is not None and (graph.role, runtime) not in rec.dead:
            fns[runtime] = ort_graph_fn(s.session, graph)
    if module is not None and (graph.role, "torch-eager") not in rec.dead:
        fns["torch-eager"] = torch_graph_fn(module, graph, str(tdev))
    forward: dict[int, float] = {}  # batch -> the slowest runtime's forward p50 in ms
    for r in rec.records:
        if r.graph == graph.role and r.scenario == "forward" and r.runtime in fns and r.latency_ms.get("p50"):
            forward[r.batch_size] = max(forward.get(r.batch_size, 0.0), r.latency_ms["p50"])
    policy = profile.generate_timing
    budget = call_budget(profile.generate_call_budget_s, policy)
    skipped = []
    for batch in profile.batch_sizes:
        known = max((b for b in forward if b <= batch), default=None)  # untimed batches: scaled linearly
        estimate = forward[known] * batch / known * generation.steps / 1e3 if known else 0.0
        if batch != 1 and estimate > budget:
            skipped.append(f"{batch} (~{estimate:.2g} s per call)")
            continue
        rng = np.random.default_rng(seed)
        calls = {rt: (lambda fn=fn, batch=batch: generation.run(fn, batch, rng))
                 for rt, fn in fns.items() if (graph.role, rt) not in rec.dead}
        for runtime, m in measure_interleaved(calls, policy).items():
            session = {"onnxruntime": ort, TENSORRT: trt}.get(runtime)
            rec.add(graph, runtime, m, batch, "generate", policy,
                    provider=session.provider if session else f"torch-{tdev.type}",
                    used=session.used if session else None, steps=generation.steps, note=generation.description)
    if skipped:
        rec.warnings.append(f"generate not timed at batch {', '.join(skipped)}: over the profile's "
                            f"{budget:.3g} s per call; the best batch is the best of those timed")


class GpuMemory:
    """GPU memory figures of the timing stage: torch's peak allocation (reset before timing) and the device
    memory ONNX Runtime's sessions took (its arena), from the device's used memory before and after each
    graph's sessions (NVML for this process where it can see it, else ``torch.cuda.mem_get_info``) less what
    torch reserved meanwhile. On CPU every figure is absent."""

    def __init__(self, used: Callable[[], float | None] | None, reserved: Callable[[], float] | None,
                 peak: Callable[[], float] | None, source: str | None) -> None:
        self.used, self.reserved, self.peak, self.source = used, reserved, peak, source

    @classmethod
    def start(cls, device: str) -> "GpuMemory":
        if device != "cuda":
            return cls(None, None, None, None)
        import torch

        torch.cuda.reset_peak_memory_stats()
        used, source = _device_used_mb()
        return cls(used, lambda: torch.cuda.memory_reserved() / 2**20,
                   lambda: torch.cuda.max_memory_allocated() / 2**20, source)

    def snapshot(self) -> tuple[float, float] | None:
        if self.used is None or self.reserved is None:
            return None
        used = self.used()
        return None if used is None else (used, self.reserved())

    @staticmethod
    def onnxruntime_delta(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
        if before is None or after is None:
            return None
        return max(0.0, (after[0] - before[0]) - (after[1] - before[1]))

    def figures(self, ort_device_mb: float | None) -> dict[str, Any]:
        if self.peak is None:
            return {}
        return {"gpu_peak_allocated_mb": self.peak(), "onnxruntime_device_mb": ort_device_mb,
                "gpu_memory_source": self.source}


def _device_used_mb() -> tuple[Callable[[], float | None], str]:
    """Used device memory in MiB: this process's, from NVML, where NVML lists it; else the device's."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        pid = os.getpid()

        def mine() -> float | None:
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if p.pid == pid and p.usedGpuMemory is not None:
                    return p.usedGpuMemory / 2**20
            return None

        if mine() is not None:
            return mine, "NVML, this process"
    except Exception:  # noqa: BLE001 - no NVML, or it cannot see this process: the device-wide figure
        pass
    import torch

    def device_wide() -> float:
        free, total = torch.cuda.mem_get_info()
        return (total - free) / 2**20

    return device_wide, "torch.cuda.mem_get_info (device-wide: other processes' use would show too)"


__all__ = ["GENERATE_TEXT_NEW", "GENERATE_TEXT_PROMPT", "Generation", "GpuMemory", "generation_for",
           "measure_performance", "ort_call", "time_bundle",
           "timing_failure", "torch_call"]
