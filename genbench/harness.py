"""One job's build-and-score stage for one seed: load → train (or restore) → export → validate → sample
(ONNX) → quality. The timing stage is :mod:`genbench.timing`; it runs later, alone.

Plugin code is untrusted: whatever it raises fails its own seed, with the phase it failed in, and never
the run. Samples are drawn from the exported graph through ONNX Runtime, never from plugin Python, and
the metrics get arrays: the harness runs every graph (samples, likelihoods, the feature extractor).
"""

from __future__ import annotations

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

from .comparability import make_key, profile_key
from .config import Profile, RunConfig
from .data import Dataset, TrainingData
from .errors import DataError, GenbenchError, MetricError, PluginError, TaskDeclined, one_line
from .metrics import QualityContext
from .model import GenerativeModel, Progress
from .perf import peak_rss_mb
from .registry import load_object
from .runtime import draw_inputs, make_session, point_values, prepare_data
from .runtime.sampler import ort_logits_fn, sample_autoregressive
from .runtime.validate import check_outputs, check_samples_fit_task, validate_bundle
from .types import (DatasetSpec, GraphSpec, JobError, MetricSpec, MetricValue, ModelSpec, OnnxBundle, SeedResult,
                    TimingResult, TrainConfig, TrainSummary)

SAMPLE_BATCH = 500
#: autoregressive samplers run one graph call per dimension; up to this many calls × samples a task gets
#: the same n as every other model (all of today's tasks but 28×28 images), beyond it n is capped (stated)
AR_SAMPLE_BUDGET = 2_000_000
TEXT_SAMPLES, TEXT_PROMPT, TEXT_CONTINUATION = 4, 32, 200
#: threads of every ONNX Runtime session in the build stage: jobs run side by side, and quality numbers
#: must not depend on how many ran at once
BUILD_THREADS = 1


@dataclass
class TaskState:
    """What jobs on one task share: the data, its extractor and cached real-data features."""

    dataset: Dataset
    extractor: Any  # genbench.features.FeatureExtractor | None
    cache: dict[str, Any]


def build_and_score(spec: ModelSpec, task: TaskState, config: RunConfig, profile: Profile, device: str,
                    unit_dir: Path, run_dir: Path, metrics: list[tuple[MetricSpec, Any]], progress: Progress,
                    on_phase: Callable[[str], None] | None = None, keep_state: bool = False) -> SeedResult:
    """Build and score one seed (``config.seed``); every failure becomes ``status: failed`` with
    ``error: {phase, type, message}``. ``keep_state`` saves the model's state for the timing stage."""
    t0 = time.perf_counter()
    if unit_dir.exists():
        shutil.rmtree(unit_dir)
    unit_dir.mkdir(parents=True)
    state: dict[str, Any] = {"memory": {}, "warnings": []}

    def rel(path: str | Path) -> str:  # results name files relative to the run directory, so runs can move
        return Path(os.path.relpath(path, run_dir)).as_posix()

    phase, mark = "load", time.perf_counter()
    phase_seconds: dict[str, float] = {}

    def enter(name: str) -> None:
        nonlocal phase, mark
        now = time.perf_counter()
        phase_seconds[phase] = phase_seconds.get(phase, 0.0) + now - mark
        phase, mark = name, now
        if on_phase is not None:
            on_phase(name)

    try:
        model = _instantiate(spec)
        cache = _JobCache(spec, task, config, device) if config.cache else None
        restored = cache.restore(model, unit_dir / "bundle", enter) if cache else None
        if restored is not None:
            model, bundle, state["train"], graphs = restored
        else:
            if cache is not None:
                model = _instantiate(spec)  # a failed restore may have left the first instance half-loaded
            enter("train")
            state["train"] = None if _supplied(model) else _train(model, task.dataset, config, device, progress)
            enter("export")
            bundle = model.export_onnx(unit_dir / "bundle")
            enter("validate")
            graphs = _validate(bundle, model, task, config, device)
            if cache is not None:
                cache.store(model, bundle, state["train"])
        if cache is not None:
            state["cache"] = cache.info
        _write_bundle_specs(bundle, unit_dir)
        state["export"] = {"graphs": {role: {**g, "path": rel(g["path"]),
                                             "parameters": _parameter_count(model.torch_module(role))}
                                      for role, g in graphs.items()}}
        if keep_state:
            warning = _save_state(model, unit_dir)
            if warning:
                state["warnings"].append(warning)
        seed_everything(config.seed)  # what follows draws the same numbers whether the model was trained or restored
        _check_text_fits(bundle, task.dataset)
        enter("sample")
        state["files"] = {}
        if task.dataset.kind == "text":
            samples = None
            state["files"]["samples_txt"] = rel(_save_text_samples(bundle, task.dataset, device, config.seed,
                                                                   unit_dir / "samples.txt"))
        else:
            samples = draw_samples(bundle, device, sample_count(task.dataset, profile), config.seed,
                                   task.dataset.test_x, task.dataset)
            state["files"]["samples_png"] = rel(save_sample_picture(samples, unit_dir / "samples.png", task.dataset))
        enter("likelihood")
        from .runtime.likelihood import held_out_likelihood

        likelihood = held_out_likelihood(bundle, task.dataset, device, config.seed, BUILD_THREADS)
        enter("quality")
        state["quality"], errors = score(task, samples, metrics, config.seed, likelihood, config)
        state["warnings"] += [f"metric '{name}' failed: {message}" for name, message in errors.items()]
        nothing = every_metric_failed(state["quality"], errors)
        if nothing:
            raise MetricError(nothing)
        state["memory"]["peak_rss_mb"] = peak_rss_mb()
        enter("done")
    except BaseException as exc:  # noqa: BLE001 - untrusted plugin code; the run must go on
        if isinstance(exc, KeyboardInterrupt):
            raise
        failed_in = phase
        enter("done")
        if isinstance(exc, TaskDeclined):  # the model said why it will not run this task: a skip, not a failure
            return SeedResult(seed=config.seed, status="skipped", reason=str(exc).strip().splitlines()[0],
                              seconds=time.perf_counter() - t0, phase_seconds=phase_seconds, node=platform.node())
        (unit_dir / "error.txt").write_text("".join(traceback.format_exception(exc)))
        message = str(exc).strip().splitlines()[0] if isinstance(exc, GenbenchError) and str(exc).strip() else one_line(exc)
        if config.max_memory and out_of_memory(exc):
            message += f" (over the job's memory limit: --max-memory {config.max_memory:g} GiB)"
        return SeedResult(seed=config.seed, status="failed", error=JobError(failed_in, type(exc).__name__, message),
                          train=state.get("train"), export=state.get("export"), quality=state.get("quality", {}),
                          files={"error": rel(unit_dir / "error.txt"), **state.get("files", {})},
                          seconds=time.perf_counter() - t0, phase_seconds=phase_seconds, cache=state.get("cache"),
                          memory={"peak_rss_mb": peak_rss_mb()}, warnings=tuple(state["warnings"]),
                          node=platform.node())
    return SeedResult(seed=config.seed, status="ok", train=state["train"], export=state["export"],
                      quality=state["quality"], files=state["files"], seconds=time.perf_counter() - t0,
                      phase_seconds=phase_seconds, memory=state["memory"], cache=state.get("cache"),
                      warnings=tuple(state["warnings"]), node=platform.node())


def time_model(spec: ModelSpec, task: TaskState, config: RunConfig, profile: Profile, device: str, unit_dir: Path,
               job_dir: Path, run_dir: Path, progress: Progress,
               on_phase: Callable[[str], None] | None = None) -> TimingResult:
    """The timing stage of one job: the graphs the build stage validated in ``unit_dir``, timed alone."""
    from .timing import rebuild_model, time_bundle, timing_failure

    t0 = time.perf_counter()
    phase = "restore"
    if on_phase is not None:
        on_phase(phase)
    try:
        bundle = load_bundle_specs(unit_dir)
        model, origin = rebuild_model(spec, task.dataset, config, device, unit_dir, _instantiate,
                                      lambda m: _train(m, task.dataset, config, device, progress))
        warnings: list[str] = []
        try:  # the torch module timed must be the one behind the graphs
            _validate(bundle, model, task, config, device)
            modules: Callable[[str], Any] = model.torch_module
            if _supplied(model):
                origin = "not available: the graphs were supplied as ONNX files, without a torch module"
                warnings.append("torch eager not timed: not available for graphs supplied as ONNX files "
                                "(ONNX Runtime only)")
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime is still timed
            warnings.append(f"torch eager not timed: the rebuilt torch module no longer matches the graphs "
                            f"({one_line(exc)})")
            modules = lambda role: None  # noqa: E731
        phase = "timing"
        if on_phase is not None:
            on_phase(phase)
        job_dir.mkdir(parents=True, exist_ok=True)
        result = time_bundle(bundle, modules, device, profile, config.threads, config.seed, task.dataset, job_dir,
                             run_dir)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        return timing_failure(phase, exc, time.perf_counter() - t0)
    from dataclasses import replace

    return replace(result, warnings=(*warnings, *result.warnings), seconds=time.perf_counter() - t0,
                   info={"alone": True, "seed": config.seed, "torch_module": origin,
                         "policy": {"forward": profile.timing.to_dict(), "generate": profile.generate_timing.to_dict(),
                                    "latency_iterations": profile.latency_iterations,
                                    "generate_call_budget_s": profile.generate_call_budget_s,
                                    "forward_call_budget_s": profile.forward_call_budget_s}})


BUNDLE_SPECS = "bundle.json"


def _write_bundle_specs(bundle: OnnxBundle, unit_dir: Path) -> None:
    """The validated bundle's specs beside it, so that the timing stage (another process, perhaps after a
    ``--resume``) times exactly these graphs."""
    import json

    d = bundle.to_dict()
    d["directory"] = os.path.relpath(bundle.directory.resolve(), unit_dir.resolve())
    (unit_dir / BUNDLE_SPECS).write_text(json.dumps(d))


def load_bundle_specs(unit_dir: Path) -> OnnxBundle:
    import json

    from .runtime.validate import graph_path

    d = json.loads((unit_dir / BUNDLE_SPECS).read_text())
    bundle = OnnxBundle.from_dict({**d, "directory": unit_dir / d["directory"]})
    root = unit_dir.resolve()
    if root != bundle.directory.resolve() and root not in bundle.directory.resolve().parents:
        raise PluginError(f"{unit_dir / BUNDLE_SPECS} names a bundle outside its job directory.")
    for graph in bundle.graphs:
        graph_path(bundle, graph)  # inside the bundle directory, and there
    return bundle


def sample_count(dataset: Dataset, profile: Profile) -> int:
    """Samples scored per job: the profile's cap, no more than the training split (so that a model and
    the floor use the same n)."""
    return min(len(dataset.train_x), profile.max_samples)


def _save_state(model: GenerativeModel, unit_dir: Path) -> str | None:
    from .timing import save_state

    return save_state(model, unit_dir)


def _validate(bundle: OnnxBundle, model: GenerativeModel, task: TaskState, config: RunConfig, device: str) -> dict:
    return validate_bundle(bundle, None if _supplied(model) else model.torch_module, device=device, data=task.dataset.test_x, seed=config.seed,
                           dataset=task.dataset)


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed (a MemoryError, or a native library's words for it)."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or any(s in text for s in ("can't allocate memory", "cannot allocate memory",
                                                                     "bad_alloc", "bad allocation", "out of memory",
                                                                     "failed to map segment"))


class _JobCache:
    """The model cache as one job uses it; ``info`` becomes the result's ``cache`` field.

    ``info["status"]``: ``hit`` (restored, not trained), ``stored`` (trained, then cached), ``rebuilt`` (an
    entry was found but refused, with ``reason``; trained again and stored), ``unsupported`` (the model's
    ``state_dict`` returns ``None``), or ``not-stored`` (with ``reason``: the cache could not be written).
    """

    def __init__(self, spec: ModelSpec, task: TaskState, config: RunConfig, device: str) -> None:
        from .cache import ModelCache, cache_key, default_cache_dir

        self.cache = ModelCache(config.cache_dir or default_cache_dir())
        self.data = training_data(task.dataset, config)
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
            with self.cache.restoring(self.key):  # a restore that hangs or kills the process evicts the entry
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


def load_task_state(task: DatasetSpec, config: RunConfig, saved: Path | None = None) -> TaskState:
    """Load a task's data (passing ``--text-file`` to loaders that take it) and its feature extractor; with
    ``saved``, memory-map the copy a data-loading process saved there instead of calling the loader."""
    import inspect

    from .data import load_saved_dataset
    from .features import extractor_for

    if saved is not None:
        dataset = load_saved_dataset(saved)
    else:
        loader = load_object(task.loader, owner=f"task '{task.name}'")
        options = {"text_file": config.text_file} if config.text_file else {}
        accepted = inspect.signature(loader).parameters
        dataset = loader(config.data_dir, config.seed, **{k: v for k, v in options.items() if k in accepted})
        if not isinstance(dataset, Dataset):
            raise DataError(f"The loader of task '{task.name}' returned {type(dataset).__name__}, expected "
                            "genbench.data.Dataset.")
    return TaskState(dataset, extractor_for(task.name, task.kind, config.features, config.inception_weights), {})


def _instantiate(spec: ModelSpec) -> GenerativeModel:
    cls = load_object(spec.cls, owner=f"model '{spec.name}'")
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        raise PluginError(f"Model '{spec.name}': {spec.cls} is not a subclass of genbench.GenerativeModel.")
    from .onnx_model import OnnxFileSpec, SuppliedGraphs

    return SuppliedGraphs(spec) if isinstance(spec, OnnxFileSpec) else cls()


def _supplied(model: GenerativeModel) -> bool:
    """Graphs a user brought as ONNX files (``genbench run --onnx``): no training, no torch module."""
    from .onnx_model import SuppliedGraphs

    return isinstance(model, SuppliedGraphs)


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
        summary = model.train(training_data(dataset, config), tc, progress)
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - t0
    if not isinstance(summary, TrainSummary):
        raise PluginError(f"train() returned {type(summary).__name__}, expected genbench.TrainSummary.")
    for name, values in summary.loss_history.items():
        if len(values) and not np.all(np.isfinite(np.asarray(values, dtype=float))):
            raise PluginError(f"Training diverged: loss '{name}' has non-finite values.")
    variant = config.training_variant()
    recorded = {} if variant.identity else {"data": variant.describe(dataset.training_data(), config.seed)}
    return {**summary.to_dict(), "wall_seconds": wall, "threads": config.train_threads, **recorded}


def training_data(dataset: Dataset, config: RunConfig) -> TrainingData:
    """What the plugin trains on: the training split, or the variant ``genbench limits`` asked for
    (a subset or corrupted examples, drawn from the training seed); the scored data never changes."""
    return config.training_variant().apply(dataset.training_data(), config.seed)


def draw_samples(bundle: OnnxBundle, device: str, n: int, seed: int, data: np.ndarray | None = None,
                 dataset: Dataset | None = None) -> np.ndarray:
    """``n`` images from the bundle's ``sample`` graph through ONNX Runtime, every batch checked; for a bundle
    with only a ``logits`` graph, genbench's autoregressive sampler draws them pixel by pixel."""
    if "sample" not in [g.role for g in bundle.graphs]:
        dims = int(np.prod(dataset.shape)) if dataset is not None else 1
        return _draw_autoregressive_images(bundle, device, min(n, max(1, AR_SAMPLE_BUDGET // dims)), seed, dataset)
    graph = bundle.graph("sample")
    if any(t.source == "data" for t in graph.inputs):  # validation refuses this too; never score test data
        raise PluginError("Graph 'sample' takes an input with source 'data': a sample graph must not see the "
                          "test split; draw its inputs from noise ('normal', 'uniform' or 'tokens').")
    session = make_session(bundle.directory / graph.path, device, BUILD_THREADS)
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
        check_samples_fit_task(graph, chunks[-1], dataset)
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
    session = make_session(bundle.directory / graph.path, device, BUILD_THREADS)
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


def score(task: TaskState, samples: np.ndarray | None, metrics: list[tuple[MetricSpec, Any]], seed: int,
          likelihood: Any, config: RunConfig) -> tuple[dict[str, MetricValue], dict[str, str]]:
    """Every metric of the job on arrays, each with its comparability key; a metric that raises or returns
    something else records its own error (returned apart) and the others stand."""
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
                         extractor_id=task.extractor.id if task.extractor else None, cache=task.cache, seed=seed,
                         likelihood=likelihood)
    data_hash = task.cache.get("data_sha256") or task.cache.setdefault("data_sha256", task.dataset.sha256)
    budget = profile_key(config.profile, config.steps, config.training_variant().label())
    out: dict[str, MetricValue] = {}
    errors: dict[str, str] = {}
    for spec, metric in metrics:
        try:
            value = metric(ctx)
            if value is None:
                continue
            if not isinstance(value, MetricValue):
                raise PluginError(f"returned {type(value).__name__}, expected MetricValue")
        except Exception as exc:  # noqa: BLE001 - one metric's failure is its own, never the job's
            errors[spec.name] = one_line(exc)
            value = MetricValue(value=None, unit=spec.unit, higher_is_better=spec.higher_is_better,
                                target=spec.target, error=one_line(exc))
        if value.value is not None and not (isinstance(value.value, (int, float)) and np.isfinite(value.value)):
            value = _replace(value, value=None, error=value.error or "the metric returned a non-finite value")
            errors.setdefault(spec.name, value.error)
        if value.error and spec.name not in errors:
            errors[spec.name] = value.error
        key = make_key(task=task.dataset.name, data=data_hash, extractor=value.extractor, n=value.n,
                       params=value.params, profile=budget, seeds=1)
        out[spec.name] = _replace(value, key=key)
    return out, errors


def every_metric_failed(quality: Mapping[str, MetricValue], errors: Mapping[str, str]) -> str | None:
    """Why a job's quality stage gave nothing, when metrics ran, some raised, and none has a value: such a job
    fails with the first metric's error rather than standing as ok with an empty row. None otherwise."""
    if not errors or any(v.value is not None for v in quality.values()):
        return None
    name = next(iter(errors))
    return f"every quality metric failed; the first, '{name}': {errors[name]}"


def _replace(metric: MetricValue, **changes: Any) -> MetricValue:
    from dataclasses import replace

    return replace(metric, **changes)


def save_sample_picture(samples: np.ndarray, path: Path, dataset: Dataset) -> str:
    """The report's picture of image or point samples: a grid of the first 64, or a scatter over the data."""
    return (_save_scatter if dataset.kind == "points" else _save_grid)(samples, path, dataset)


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


