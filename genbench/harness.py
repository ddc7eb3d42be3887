"""One job end to end: load → train → export → validate → sample (ONNX) → quality → performance.

Plugin code is untrusted: whatever it raises fails its own job, with the phase it failed in, and never
the run. Samples are drawn from the exported graph through ONNX Runtime, never from plugin Python.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .config import Profile, RunConfig
from .data import Dataset
from .errors import DataError, GenbenchError, PluginError, one_line
from .metrics import QualityContext
from .model import GenerativeModel, Progress
from .perf import NOISY_BACKGROUND_CORES, latency_stats, measure_interleaved, peak_rss_mb, reset_peak_rss
from .perf.flops import graph_flops
from .registry import load_object
from .runtime import draw_inputs, make_session, point_values, prepare_data
from .runtime.sampler import ort_logits_fn, sample_autoregressive, torch_logits_fn
from .runtime.validate import check_outputs, validate_bundle
from .types import (DatasetSpec, GraphSpec, JobError, JobResult, MetricSpec, MetricValue, ModelSpec, OnnxBundle, PerfRecord,
                    TrainConfig, TrainSummary)

SAMPLE_BATCH = 500
AR_MAX_SAMPLES = 2000  # pixel-by-pixel sampling costs D graph runs per batch: FD's n is capped (and stated)
TEXT_SAMPLES, TEXT_PROMPT, TEXT_CONTINUATION = 4, 32, 200
SAMPLING_NEW_TOKENS = 32  # tokens generated per timed sampling loop
SAMPLING_BATCHES = (1, 64)


@dataclass
class TaskState:
    """What jobs on one task share: the data, its extractor and cached real-data features."""

    dataset: Dataset
    extractor: Any  # genbench.features.FeatureExtractor | None
    cache: dict[str, Any]


def run_job(spec: ModelSpec, task: TaskState, config: RunConfig, profile: Profile, device: str, job_dir: Path,
            metrics: list[tuple[MetricSpec, Any]], progress: Progress,
            on_phase: Callable[[str], None] | None = None, timing_lock: Any = None) -> JobResult:
    """Run one job; every failure becomes ``status: failed`` with ``error: {phase, type, message}``."""
    head = dict(model=spec.name, family=spec.family, plugin=spec.plugin, plugin_version=spec.plugin_version,
                task=task.dataset.name, device=device, node=platform.node())
    t0 = time.perf_counter()
    if job_dir.exists():
        shutil.rmtree(job_dir)
    job_dir.mkdir(parents=True)
    state: dict[str, Any] = {"memory": {}}
    run_dir = job_dir.parent.parent

    def rel(path: str | Path) -> str:  # results name files relative to the run directory, so runs can move
        return Path(os.path.relpath(path, run_dir)).as_posix()

    phase, mark = "load", time.perf_counter()
    phase_seconds: dict[str, float] = {}

    def enter(name: str) -> None:
        nonlocal phase, mark
        now = time.perf_counter()
        phase_seconds[phase] = now - mark
        phase, mark = name, now
        if on_phase is not None:
            on_phase(name)

    try:
        model = _instantiate(spec)
        cache = _JobCache(spec, task, config, device) if config.cache else None
        restored = cache.restore(model, job_dir / "bundle", enter) if cache else None
        if restored is not None:
            model, bundle, state["train"], graphs = restored
        else:
            if cache is not None:
                model = _instantiate(spec)  # a failed restore may have left the first instance half-loaded
            enter("train")
            state["train"] = _train(model, task.dataset, config, device, progress)
            enter("export")
            bundle = model.export_onnx(job_dir / "bundle")
            enter("validate")
            graphs = _validate(bundle, model, task, config, device)
            if cache is not None:
                cache.store(model, bundle, state["train"])
        if cache is not None:
            state["cache"] = cache.info
        seed_everything(config.seed)  # what follows draws the same numbers whether the model was trained or restored
        state["export"] = {"graphs": {role: {**g, "path": rel(g["path"]),
                                             "parameters": _parameter_count(model.torch_module(role))}
                                      for role, g in graphs.items()}}
        _check_text_fits(bundle, task.dataset)
        enter("sample")
        state["files"] = {}
        if task.dataset.kind == "text":
            samples = None
            state["files"]["samples_txt"] = rel(_save_text_samples(bundle, task.dataset, device, config.seed,
                                                                   job_dir / "samples.txt"))
        else:
            samples = draw_samples(bundle, device, min(len(task.dataset.train_x), profile.max_samples), config.seed,
                                   task.dataset.test_x, task.dataset)
            save = _save_scatter if task.dataset.kind == "points" else _save_grid
            state["files"]["samples_png"] = rel(save(samples, job_dir / "samples.png", task.dataset))
        enter("quality")
        state["quality"] = _quality(task, samples, metrics, config.seed, bundle, device)
        enter("performance")
        if spec.family == "baseline":
            state["perf_note"] = "baselines are quality references; not timed"
        elif not config.timing:
            state["perf_note"] = "timing switched off (--no-timing)"
        else:
            state["memory"]["peak_rss_mb_before_timing"] = peak_rss_mb()
            reset_peak_rss()
            with timing_lock or contextlib.nullcontext():  # timings on one device never overlap
                records, raw = measure_performance(bundle, model, device, profile, config.threads, config.seed,
                                                   task.dataset.test_x)
            state["memory"]["peak_rss_mb_timing"] = peak_rss_mb()
            state["performance"] = tuple(records)
            (job_dir / "latency_raw.json").write_text(json.dumps(raw))
            state["files"]["latency_raw"] = rel(job_dir / "latency_raw.json")
        state["memory"]["peak_rss_mb"] = peak_rss_mb()
        if device == "cuda":
            import torch

            state["memory"]["gpu_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        enter("done")
    except BaseException as exc:  # noqa: BLE001 - untrusted plugin code; the run must go on
        if isinstance(exc, KeyboardInterrupt):
            raise
        failed_in = phase
        enter("done")
        (job_dir / "error.txt").write_text("".join(traceback.format_exception(exc)))
        message = str(exc).strip().splitlines()[0] if isinstance(exc, GenbenchError) and str(exc).strip() else one_line(exc)
        if config.max_memory and _out_of_memory(exc):
            message += f" (over the job's memory limit: --max-memory {config.max_memory:g} GiB)"
        return JobResult(**head, status="failed", error=JobError(failed_in, type(exc).__name__, message),
                         train=state.get("train"), export=state.get("export"), quality=state.get("quality", {}),
                         files={"error": rel(job_dir / "error.txt"), **state.get("files", {})},
                         seconds=time.perf_counter() - t0, phase_seconds=phase_seconds, cache=state.get("cache"))
    return JobResult(**head, status="ok", train=state["train"], export=state["export"], quality=state["quality"],
                     performance=state.get("performance", ()), files=state["files"],
                     reason=state.get("perf_note"), seconds=time.perf_counter() - t0, phase_seconds=phase_seconds,
                     memory=state["memory"], cache=state.get("cache"))


def _validate(bundle: OnnxBundle, model: GenerativeModel, task: TaskState, config: RunConfig, device: str) -> dict:
    return validate_bundle(bundle, model.torch_module, device=device, data=task.dataset.test_x, seed=config.seed,
                           dataset=task.dataset)


def _out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or any(s in text for s in ("can't allocate memory", "cannot allocate memory",
                                                                     "bad_alloc", "bad allocation", "out of memory"))


class _JobCache:
    """The model cache as one job uses it; ``info`` becomes the result's ``cache`` field.

    ``info["status"]``: ``hit`` (restored, not trained), ``stored`` (trained, then cached), ``rebuilt`` (an
    entry was found but refused, with ``reason``; trained again and stored), ``unsupported`` (the model's
    ``state_dict`` returns ``None``), or ``not-stored`` (with ``reason``: the cache could not be written).
    """

    def __init__(self, spec: ModelSpec, task: TaskState, config: RunConfig, device: str) -> None:
        from .cache import ModelCache, cache_key, default_cache_dir

        self.cache = ModelCache(config.cache_dir or default_cache_dir())
        self.data = task.dataset.training_data()
        self.train_config = TrainConfig(seed=config.seed, device=device, profile=config.profile, steps=config.steps)
        self.key, self.fields = cache_key(spec, self.data, config, device)
        self.config, self.device, self.task = config, device, task
        self.info: dict[str, Any] = {"key": self.key[:16]}

    def restore(self, model: GenerativeModel, directory: Path, enter: Callable[[str], None]) -> tuple | None:
        """(model, bundle, train, validated graphs) from a sound entry; None to train (a bad entry is discarded)."""
        from .cache import CacheCorrupt

        try:
            entry = self.cache.load(self.key)
        except CacheCorrupt as exc:
            return self._refuse(str(exc))
        except OSError as exc:  # an unreadable cache is a miss, not a failed job
            self.info.update(status="unreadable", reason=one_line(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - a malformed entry, in a way load() did not foresee
            return self._refuse(one_line(exc))
        if entry is None:
            return None
        enter("restore")
        try:
            if directory.exists():
                shutil.rmtree(directory)
            shutil.copytree(entry.bundle.directory, directory)
            bundle = OnnxBundle(directory, entry.bundle.graphs)
            seed_everything(self.config.seed)
            model.load_state_dict(entry.state, self.data, self.train_config)
            enter("validate")  # the restored model must still match its graphs, as on the day they were stored
            graphs = _validate(bundle, model, self.task, self.config, self.device)
        except Exception as exc:  # noqa: BLE001 - plugin code and cached files: a failure means retrain
            shutil.rmtree(directory, ignore_errors=True)
            return self._refuse(f"restoring it failed: {one_line(exc)}")
        self.info.update(status="hit", created_at=entry.created_at)
        return model, bundle, {**entry.train, "cached": True}, graphs

    def _refuse(self, reason: str) -> None:
        self.cache.discard(self.key)
        self.info.update(status="rebuilt", reason=f"cache entry {self.key[:16]} refused: {reason}")
        return None

    def store(self, model: GenerativeModel, bundle: OnnxBundle, train: Mapping[str, Any]) -> None:
        try:
            state = model.state_dict()
            if state is None:
                self.info.setdefault("status", "unsupported")
                return
            self.cache.store(self.key, self.fields, state, bundle, train)
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be written never fails the job
            self.info.update(status="not-stored", reason=one_line(exc))
            return
        self.info.setdefault("status", "stored")


def _parameter_count(module: Any) -> int | None:
    try:
        return int(sum(p.numel() for p in module.parameters()))
    except Exception:  # noqa: BLE001 - a module without parameters() has no count
        return None


def load_task_state(task: DatasetSpec, config: RunConfig) -> TaskState:
    """Load a task's data (passing ``--text-file`` to loaders that take it) and its feature extractor."""
    import inspect

    from .features import extractor_for

    loader = load_object(task.loader, owner=f"task '{task.name}'")
    options = {"text_file": config.text_file} if config.text_file else {}
    accepted = inspect.signature(loader).parameters
    dataset = loader(config.data_dir, config.seed, **{k: v for k, v in options.items() if k in accepted})
    return TaskState(dataset, extractor_for(task.name, task.kind, config.features, config.inception_weights), {})


def _instantiate(spec: ModelSpec) -> GenerativeModel:
    cls = load_object(spec.cls, owner=f"model '{spec.name}'")
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        raise PluginError(f"Model '{spec.name}': {spec.cls} is not a subclass of genbench.GenerativeModel.")
    return cls()


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _train(model: GenerativeModel, dataset: Dataset, config: RunConfig, device: str, progress: Progress) -> dict:
    import torch

    seed_everything(config.seed)
    tc = TrainConfig(seed=config.seed, device=device, profile=config.profile, steps=config.steps)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.train_threads)
    t0 = time.perf_counter()
    try:
        summary = model.train(dataset.training_data(), tc, progress)
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - t0
    if not isinstance(summary, TrainSummary):
        raise PluginError(f"train() returned {type(summary).__name__}, expected genbench.TrainSummary.")
    for name, values in summary.loss_history.items():
        if len(values) and not np.all(np.isfinite(np.asarray(values, dtype=float))):
            raise PluginError(f"Training diverged: loss '{name}' has non-finite values.")
    return {**summary.to_dict(), "wall_seconds": wall, "threads": config.train_threads}


def draw_samples(bundle: OnnxBundle, device: str, n: int, seed: int, data: np.ndarray | None = None,
                 dataset: Dataset | None = None) -> np.ndarray:
    """``n`` images from the bundle's ``sample`` graph through ONNX Runtime, every batch checked; for a bundle
    with only a ``logits`` graph, genbench's autoregressive sampler draws them pixel by pixel."""
    if "sample" not in [g.role for g in bundle.graphs]:
        return _draw_autoregressive_images(bundle, device, min(n, AR_MAX_SAMPLES), seed, dataset)
    graph = bundle.graph("sample")
    session = make_session(bundle.directory / graph.path, device)
    rng = np.random.default_rng(seed)
    out_name = graph.outputs[0].name
    chunks = []
    data = prepare_data(graph, data)
    for start in range(0, n, SAMPLE_BATCH):
        b = min(SAMPLE_BATCH, n - start)
        feeds = draw_inputs(graph, b, rng, data)
        outs = session.run([o.name for o in graph.outputs], feeds)
        check_outputs(graph.role, outs, graph.outputs, {"batch": b})
        chunks.append(outs[[o.name for o in graph.outputs].index(out_name)])
    return np.concatenate(chunks).astype(np.float32)


def _check_text_fits(bundle: OnnxBundle, dataset: Dataset) -> None:
    if dataset.kind != "text" or "logits" not in [g.role for g in bundle.graphs]:
        return
    context = int(bundle.graph("logits").attrs["context_length"])
    if len(dataset.test_x) < context + 1:
        raise DataError(f"The held-out text has {len(dataset.test_x)} bytes, shorter than one context window of "
                        f"this model ({context} + 1 bytes); give a longer --text-file.")


def _logits_fn(bundle: OnnxBundle, device: str) -> tuple[GraphSpec, Callable[[np.ndarray], np.ndarray]]:
    graph = bundle.graph("logits")
    session = make_session(bundle.directory / graph.path, device)
    return graph, ort_logits_fn(session, graph.inputs[0].name, graph.outputs[0].name)


def _draw_autoregressive_images(bundle: OnnxBundle, device: str, n: int, seed: int, dataset: Dataset | None) -> np.ndarray:
    if dataset is None:
        raise ValueError("sampling images from a logits graph needs the task's dataset")
    graph, fn = _logits_fn(bundle, device)
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


def _save_text_samples(bundle: OnnxBundle, dataset: Dataset, device: str, seed: int, path: Path) -> str:
    """A few continuations of held-out prompts (temperature 1, no top-k), for readers of the report."""
    graph, fn = _logits_fn(bundle, device)
    context = int(graph.attrs["context_length"])
    stream = np.asarray(dataset.test_x, dtype=np.int64)
    plen = min(TEXT_PROMPT, context, max(1, len(stream) // 2))
    starts = np.linspace(0, max(0, len(stream) - plen - 1), TEXT_SAMPLES).astype(int)
    prompts = np.stack([stream[s:s + plen] for s in starts])
    out = sample_autoregressive(fn, prompts, TEXT_CONTINUATION, context_length=context,
                                rng=np.random.default_rng(seed), vocab=dataset.vocab)
    blocks = [f"--- sample {i + 1}: prompt | continuation (temperature 1.0)\n"
              f"{bytes(row[:plen].astype(np.uint8)).decode('utf-8', 'replace')}|"
              f"{bytes(row[plen:].astype(np.uint8)).decode('utf-8', 'replace')}\n" for i, row in enumerate(out)]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return str(path)


def _quality(task: TaskState, samples: np.ndarray, metrics: list[tuple[MetricSpec, Any]],
             seed: int, bundle: OnnxBundle, device: str) -> dict[str, MetricValue]:
    job_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def extract(key: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        store = job_cache if key == "samples" else task.cache
        if f"x:{key}" not in store:
            feats, logits = task.extractor(x)
            z = np.exp(logits - logits.max(1, keepdims=True))
            store[f"x:{key}"] = (feats, z / z.sum(1, keepdims=True))
        return store[f"x:{key}"]

    ctx = QualityContext(dataset=task.dataset, samples=samples, rng=np.random.default_rng(seed),
                         features=lambda key, x: extract(key, x)[0], probabilities=lambda key, x: extract(key, x)[1],
                         extractor_id=task.extractor.id if task.extractor else None, cache=task.cache,
                         bundle=bundle, device=device, seed=seed)
    out: dict[str, MetricValue] = {}
    for spec, metric in metrics:
        value = metric(ctx)
        if value is None:
            continue
        if not isinstance(value, MetricValue):
            raise PluginError(f"Metric '{spec.name}' returned {type(value).__name__}, expected MetricValue.")
        out[spec.name] = value
    return out


def _save_scatter(samples: np.ndarray, path: Path, dataset: Dataset) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.scatter(dataset.test_x[:2000, 0], dataset.test_x[:2000, 1], s=2, c="0.75", label="data")
    ax.scatter(samples[:2000, 0], samples[:2000, 1], s=2, c="C3", label="samples")
    lo, hi = dataset.value_range
    ax.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal")
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def _save_grid(samples: np.ndarray, path: Path, dataset: Dataset | None = None, n: int = 64) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = samples[:n]
    side = int(np.ceil(np.sqrt(len(x))))
    c, h, w = x.shape[1:]
    grid = np.full((side * (h + 1) + 1, side * (w + 1) + 1, c), 0.25, dtype=np.float32)  # grey frame
    for i, img in enumerate(x):
        r, col = divmod(i, side)
        grid[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + col * (w + 1): 1 + col * (w + 1) + w] = img.transpose(1, 2, 0)
    fig = plt.figure(figsize=(4, 4), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(grid.squeeze(-1) if c == 1 else grid, cmap="gray_r" if c == 1 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.axis("off")
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def measure_performance(bundle: OnnxBundle, model: GenerativeModel, device: str, profile: Profile, threads: int,
                        seed: int, data: np.ndarray | None) -> tuple[list[PerfRecord], dict]:
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
        module = model.torch_module(graph.role)
        tdev = next((p.device for p in module.parameters()), torch.device("cuda" if device == "cuda" else "cpu"))
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
                device=device, batch_size=batch, threads=threads if runtime.startswith("onnxruntime") else torch.get_num_threads(),
                iterations=len(m.samples), seconds=float(np.sum(m.samples)), latency_ms=stats["latency_ms"],
                throughput_per_s=stats["throughput_per_s"], valid=stats["valid"], invalid_reason=stats["invalid_reason"],
                background_cpu_cores=bg, noisy=bg is not None and bg > NOISY_BACKGROUND_CORES, graph=graph.role,
                scenario=scenario, unit=unit, gflops_per_s=gflops,
                first_call_ms=None if m.first_call_s is None else m.first_call_s * 1e3,
                session_create_ms=session_ms if runtime == "onnxruntime" else None))
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
    fns = {"onnxruntime": ort_logits_fn(session, graph.inputs[0].name, graph.outputs[0].name),
           "torch-eager": torch_logits_fn(module, str(tdev))}
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

    if device == "cuda":
        import onnxruntime as ort

        binding = session.io_binding()
        for name, arr in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0))
        for name in out_names:
            binding.bind_output(name, "cuda")
        ort_call: Callable[[], Any] = lambda: session.run_with_iobinding(binding)  # noqa: E731
        sync["onnxruntime"] = binding.synchronize_outputs
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def eager_cuda() -> float:  # CUDA events: the device's own clock, read after the work completes
            start.record()
            with torch.inference_mode():
                module(*tensors)
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3

        return {"onnxruntime": ort_call, "torch-eager": eager_cuda}, sync
    else:
        ort_call = lambda: session.run(out_names, dict(feeds))  # noqa: E731
    return {"onnxruntime": ort_call, "torch-eager": eager}, sync


