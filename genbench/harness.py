"""The score stage of one seed, in a process where no plugin code runs: verify → validate → sample (ONNX)
→ likelihood → quality, on what the build stage (:mod:`genbench.stages.build`) left in the unit directory.
The timing stage is :mod:`genbench.timing`; it runs later, alone.

Whatever the plugin's files hold fails its own seed, with the phase it failed in, and never the run.
Samples are drawn from the exported graph through ONNX Runtime, never from plugin Python, and the metrics
get arrays: the harness runs every graph (samples, likelihoods, the feature extractor). A metric a plugin
registered runs in a process of its own (:mod:`genbench.stages.plugin_metrics`).
"""

from __future__ import annotations

import os
import platform
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .comparability import make_key, profile_key
from .config import Profile, RunConfig
from .data import Dataset
from .errors import BundleError, DataError, GenbenchError, MetricError, PluginError, one_line
from .metrics import QualityContext
from .features.reference import reference_notes
from .metrics.builtin import fid_references
from .model import Progress
from .onnx_model import OnnxFileSpec
from .perf import peak_rss_mb
from .registry import load_object
from .runtime import roles
from .runtime.diffusion import schedule_from_attrs
from .runtime.roles import denoise
from .runtime.roles.logits import TEXT_SAMPLE_ROWS, check_text_fits, continuations
from .runtime.validate import validate_bundle
from .stages import GENBENCH, INLINE
from .stages.common import out_of_memory, seed_everything, training_data
from .types import DatasetSpec, JobError, MetricSpec, MetricValue, ModelSpec, OnnxBundle, SeedResult

__all__ = ["build_and_score", "draw_samples", "load_bundle_specs", "load_task_state", "out_of_memory", "sample_count",
           "save_sample_picture", "score", "score_built", "seed_everything", "training_data"]

TEXT_SAMPLES, TEXT_PROMPT, TEXT_CONTINUATION = TEXT_SAMPLE_ROWS, 32, 200
#: threads of every ONNX Runtime session that draws or scores: jobs run side by side, and quality numbers
#: must not depend on how many ran at once
BUILD_THREADS = roles.base.DRAW_THREADS


@dataclass
class TaskState:
    """What jobs on one task share: the data, its extractor and cached real-data features."""

    dataset: Dataset
    extractor: Any  # genbench.features.FeatureExtractor | None (the CNN space: --features default)
    cache: dict[str, Any]
    #: genbench.features.inception.InceptionExtractor | None (--features inception: fid)
    inception: Any = None



def build_and_score(spec: ModelSpec, task: TaskState, config: RunConfig, profile: Profile, device: str,
                    unit_dir: Path, run_dir: Path, metrics: list[tuple[MetricSpec, Any]], progress: Progress,
                    on_phase: Callable[[str], None] | None = None, keep_state: bool = False,
                    computed_by: str = INLINE) -> SeedResult:
    """Both stages of one seed in this process (``--executor inline``, genbench's own baselines, ``genbench
    score``): the build (plugin code), then the score. Numbers made this way say ``computed_by: inline`` where a
    plugin's code ran beside them (they are never ranked); genbench's own baselines are ``genbench``'s."""
    from .stages.build import build, clear_unit
    from .stages.cached import cache_use, refused_after_validation, restore

    clear_unit(unit_dir)
    use = cache_use(spec, task.dataset, config, device)
    built = restore(use, unit_dir, config)
    if built is not None:
        result = score_built(spec, task, config, profile, device, unit_dir, run_dir, metrics, built, use,
                             on_phase=on_phase, computed_by=computed_by)
        if not refused_after_validation(use, result):
            return result
        clear_unit(unit_dir)
    built = build(spec, task.dataset, config, device, unit_dir, progress, on_phase)
    return score_built(spec, task, config, profile, device, unit_dir, run_dir, metrics, built, use,
                       on_phase=on_phase, computed_by=computed_by)


def score_built(spec: ModelSpec, task: TaskState, config: RunConfig, profile: Profile, device: str, unit_dir: Path,
                run_dir: Path, metrics: list[tuple[MetricSpec, Any]], built: Mapping[str, Any], use: Any = None,
                on_phase: Callable[[str], None] | None = None, computed_by: str = GENBENCH) -> SeedResult:
    """The score stage of one seed, on what the build stage left in ``unit_dir`` (``built``: its summary):
    verify, validate, sample (ONNX), likelihood, quality; store the validated model in the cache. Every
    failure becomes ``status: failed`` with ``error: {phase, type, message}``."""
    from .stages.cached import store

    t0 = time.perf_counter()
    node = platform.node()
    phase_seconds: dict[str, float] = dict(built.get("phase_seconds") or {})
    cache_info = use.info if use is not None else None
    if built.get("status") == "skipped":
        return SeedResult(seed=config.seed, status="skipped", reason=str(built.get("reason") or "declined"),
                          seconds=float(built.get("seconds") or 0.0), phase_seconds=phase_seconds, node=node)
    if built.get("status") == "failed":
        e = built.get("error") or {}
        return SeedResult(seed=config.seed, status="failed", error=JobError(str(e.get("phase", "build")),
                          str(e.get("type", "Error")), str(e.get("message", ""))),
                          train=built.get("train"), files={"error": _rel(unit_dir / "error.txt", run_dir)},
                          seconds=float(built.get("seconds") or 0.0), phase_seconds=phase_seconds, cache=cache_info,
                          warnings=tuple(built.get("warnings") or ()), node=node)
    state: dict[str, Any] = {"memory": {}, "warnings": []}
    phase, mark = "validate", time.perf_counter()

    def enter(name: str) -> None:
        nonlocal phase, mark
        now = time.perf_counter()
        phase_seconds[phase] = phase_seconds.get(phase, 0.0) + now - mark
        phase, mark = name, now
        if on_phase is not None:
            on_phase(name)

    if on_phase is not None:
        on_phase("validate")
    try:
        from .stages.common import read_manifest

        bundle, manifest = read_manifest(unit_dir)
        state["train"] = manifest.get("train") if isinstance(manifest.get("train"), dict) else None
        state["warnings"] += [str(w)[:300] for w in (manifest.get("warnings") or [])][:20]
        state["warnings"] += [str(w)[:300] for w in (built.get("warnings") or [])][:5]  # said of the build process
        with _restoring(use):  # a cached bundle that hangs or kills validation evicts its entry
            graphs = validate_built(spec, bundle, manifest, task, config, device)
        store(use, unit_dir, bundle, state["train"], state_problem=manifest.get("state_problem")
              if isinstance(manifest.get("state_problem"), str) else None)
        _write_bundle_specs(bundle, unit_dir, graphs)
        state["export"] = {"graphs": {role: {**g, "path": _rel(g["path"], run_dir)} for role, g in graphs.items()}}
        seed_everything(config.seed)  # what follows draws the same numbers whether the model was trained or restored
        _check_text_fits(bundle, task.dataset)
        enter("sample")
        state["files"] = {}
        if task.dataset.kind == "text":
            samples = None
            state["files"]["samples_txt"] = _rel(_save_text_samples(bundle, task.dataset, device, config.seed,
                                                                    unit_dir / "samples.txt"), run_dir)
        else:
            samples = draw_samples(bundle, device, sample_count(task.dataset, profile), config.seed,
                                   task.dataset.test_x, task.dataset)
            state["files"]["samples_png"] = _rel(save_sample_picture(samples, unit_dir / "samples.png", task.dataset),
                                                 run_dir)
        enter("likelihood")
        likelihood = roles.held_out_likelihood(bundle, task.dataset, device, config.seed, BUILD_THREADS)
        enter("quality")
        state["quality"], errors = score(task, samples, metrics, config.seed, likelihood, config, computed_by)
        sampling = _diffusion_sampling(bundle, task, metrics, config.seed, config, device, len(samples),
                                       unit_dir, run_dir) if samples is not None else None
        if sampling is not None:
            state["export"]["sampling"] = sampling
        state["warnings"] += [f"metric '{name}' failed: {message}" for name, message in errors.items()]
        state["warnings"] += reference_notes(task.cache)
        nothing = every_metric_failed(state["quality"], errors)
        if nothing:
            raise MetricError(nothing)
        built_peak = built.get("peak_rss_mb")  # the build process's, where it was another process
        peaks = [x for x in (peak_rss_mb(), built_peak) if isinstance(x, (int, float)) and not isinstance(x, bool)]
        state["memory"]["peak_rss_mb"] = max(peaks) if peaks else None
        enter("done")
    except BaseException as exc:  # noqa: BLE001 - the plugin's files are untrusted; the run must go on
        if isinstance(exc, KeyboardInterrupt):
            raise
        failed_in = phase
        enter("done")
        (unit_dir / "error.txt").write_text("".join(traceback.format_exception(exc)))
        message = str(exc).strip().splitlines()[0] if isinstance(exc, GenbenchError) and str(exc).strip() else one_line(exc)
        if config.max_memory and out_of_memory(exc):
            message += f" (over the job's memory limit: --max-memory {config.max_memory:g} GiB)"
        return SeedResult(seed=config.seed, status="failed", error=JobError(failed_in, type(exc).__name__, message),
                          train=state.get("train"), export=state.get("export"), quality=state.get("quality", {}),
                          files={"error": _rel(unit_dir / "error.txt", run_dir), **state.get("files", {})},
                          seconds=float(built.get("seconds") or 0.0) + time.perf_counter() - t0,
                          phase_seconds=phase_seconds, cache=cache_info, memory={"peak_rss_mb": peak_rss_mb()},
                          warnings=tuple(state["warnings"]), node=node, computed_by=computed_by)
    return SeedResult(seed=config.seed, status="ok", train=state["train"], export=state["export"],
                      quality=state["quality"], files=state["files"],
                      seconds=float(built.get("seconds") or 0.0) + time.perf_counter() - t0,
                      phase_seconds=phase_seconds, memory=state["memory"], cache=cache_info,
                      warnings=tuple(state["warnings"]), node=node, computed_by=computed_by)


def _restoring(use: Any) -> Any:
    import contextlib

    if use is None or use.info.get("status") != "hit":
        return contextlib.nullcontext()
    from .cache import ModelCache

    return ModelCache(use.root).restoring(use.key)


def _rel(path: str | Path, run_dir: Path) -> str:
    """Results name files relative to the run directory, so runs can move."""
    return Path(os.path.relpath(path, run_dir)).as_posix()


def validate_built(spec: ModelSpec, bundle: OnnxBundle, manifest: Mapping[str, Any], task: TaskState,
                   config: RunConfig, device: str) -> dict[str, dict[str, Any]]:
    """Validate a built bundle in this (genbench) process: every check of :func:`validate_bundle`, with parity
    between ONNX Runtime, the exported program (loaded without the plugin's code) and the plugin module's saved
    outputs on genbench's parity inputs. Returns the ``export`` graphs section (each graph's and program's sha256
    included: the timing stage times exactly these files)."""
    from .runtime.programs import load_parity, load_program, parameter_count, sha256_file
    from .stages.common import contained, plain

    capture = plain(manifest.get("capture")) or {}
    programs: dict[str, Path] = {}
    loaded: dict[str, Any] = {}
    notes: dict[str, dict[str, Any]] = {}
    is_supplied = isinstance(spec, OnnxFileSpec)
    for graph in bundle.graphs:
        entry = plain(capture.get(graph.role)) or {}
        note: dict[str, Any] = {}
        notes[graph.role] = note
        if is_supplied:
            continue
        program = contained(bundle.directory, entry.get("program"))
        if program is not None:
            try:
                loaded[graph.role] = load_program(program, device)
                programs[graph.role] = program
                note.update(torch_program=Path(os.path.relpath(program, bundle.directory)).as_posix(),
                            torch_program_sha256=sha256_file(program), parameters=parameter_count(loaded[graph.role]))
            except GenbenchError as exc:
                note["torch_program"] = f"not usable: {exc}"
        elif entry.get("skipped"):
            note["torch_program"] = "not captured: this run does not time torch"
        else:
            note["torch_program"] = f"not captured: {str(entry.get('error') or 'no program was saved')[:300]}"
        if contained(bundle.directory, entry.get("parity")) is None:
            raise BundleError(str(entry.get("error") or f"no parity outputs were saved for graph '{graph.role}'"))

    def saved(role: str, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray] | None:
        if is_supplied:
            return None
        path = contained(bundle.directory, (plain(capture.get(role)) or {}).get("parity"))
        return None if path is None else load_parity(path, feeds)

    profile = config.profile_settings()
    graphs = validate_bundle(bundle, None if is_supplied else (lambda role: loaded.get(role)), device=device,
                             data=task.dataset.test_x, seed=config.seed, dataset=task.dataset,
                             parity_data=task.dataset.train_x, saved_outputs=None if is_supplied else saved,
                             timed_batch_sizes=profile.batch_sizes if config.timing else (),
                             sample_counts=(sample_count(task.dataset, profile),))
    for role, note in notes.items():
        graphs[role].update(note)
        if not is_supplied and role not in programs and config.timing:
            graphs[role]["torch_timing"] = "by the plugin's own process (computed_by: plugin; never ranked)"
    return graphs


BUNDLE_SPECS = "bundle.json"


def _write_bundle_specs(bundle: OnnxBundle, unit_dir: Path, graphs: Mapping[str, Mapping[str, Any]]) -> None:
    """The validated bundle's specs and sha256s beside it, written by the score process, so that the timing
    stage (another process, perhaps after a ``--resume``) times exactly these graphs and programs."""
    import json

    d = bundle.to_dict()
    d["directory"] = os.path.relpath(bundle.directory.resolve(), unit_dir.resolve())
    d["verified"] = {role: {k: g.get(k) for k in ("sha256", "torch_program", "torch_program_sha256")}
                     for role, g in graphs.items()}
    (unit_dir / BUNDLE_SPECS).write_text(json.dumps(d))


def load_bundle_specs(unit_dir: Path) -> OnnxBundle:
    return load_verified_bundle(unit_dir)[0]


def load_verified_bundle(unit_dir: Path, expected: Mapping[str, str] | None = None
                         ) -> tuple[OnnxBundle, dict[str, Path]]:
    """The bundle the score stage validated, every file checked against its recorded sha256 (``expected``:
    ``{role: sha256}`` of the graphs as run.json recorded them, checked too); and the verified exported
    programs by role. Raises :class:`BundleError` when a file changed since it was scored."""
    import json

    from .runtime.programs import sha256_file
    from .runtime.validate import graph_path

    d = json.loads((unit_dir / BUNDLE_SPECS).read_text())
    verified = d.pop("verified", None) or {}
    bundle = OnnxBundle.from_dict({**d, "directory": unit_dir / d["directory"]})
    root = unit_dir.resolve()
    if root != bundle.directory.resolve() and root not in bundle.directory.resolve().parents:
        raise PluginError(f"{unit_dir / BUNDLE_SPECS} names a bundle outside its job directory.")
    programs: dict[str, Path] = {}
    for graph in bundle.graphs:
        path = graph_path(bundle, graph)  # inside the bundle directory, and there
        want = {verified.get(graph.role, {}).get("sha256"), (expected or {}).get(graph.role)} - {None}
        if want and {sha256_file(path)} != want:
            raise BundleError(f"Graph '{graph.role}' ({graph.path}) is not the file that was scored: its sha256 "
                              "changed after validation; run the job again.")
        program = verified.get(graph.role, {}).get("torch_program")
        digest = verified.get(graph.role, {}).get("torch_program_sha256")
        if program and digest:
            ppath = (bundle.directory / program).resolve()
            if root in ppath.parents and ppath.is_file() and sha256_file(ppath) == digest:
                programs[graph.role] = ppath
            else:
                raise BundleError(f"The exported program of graph '{graph.role}' is not the one that was scored "
                                  "(missing, or its sha256 changed); run the job again.")
    return bundle, programs


def sample_count(dataset: Dataset, profile: Profile) -> int:
    """Samples scored per job: the profile's cap, no more than the training split (so that a model and
    the floor use the same n)."""
    return min(len(dataset.train_x), profile.max_samples)


def load_task_state(task: DatasetSpec, config: RunConfig, saved: Path | None = None) -> TaskState:
    """Load a task's data (passing ``--text-file`` to loaders that take it) and its feature extractor; with
    ``saved``, memory-map the copy a data-loading process saved there instead of calling the loader."""
    import inspect

    from .data import load_saved_dataset
    from .features import extractor_for, inception_for

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
    return TaskState(dataset, extractor_for(task.name, task.kind, config.features, config.inception_weights), {},
                     inception_for(task.kind, config.features, config.inception_weights, config.cache_dir))


def warm_references(state: TaskState, config: RunConfig) -> None:
    """The task's Inception references (the test split; the floor's training subset at the ``n`` fid will use,
    ``--fid-n`` else the profile's sample count), computed once for the whole run in the task's data-loading
    process, before any job: each job's process then reads them from disk and only runs its own samples through
    the network. Nothing when the run has no Inception space."""
    if getattr(state, "inception", None) is None:
        return
    n = config.fid_n or sample_count(state.dataset, config.profile_settings())
    if n <= len(state.dataset.train_x):
        fid_references(quality_context(state, None, config.seed, None, config, {}), n)


def draw_samples(bundle: OnnxBundle, device: str, n: int, seed: int, data: np.ndarray | None = None,
                 dataset: Dataset | None = None) -> np.ndarray:
    """Samples of the task from the bundle's generating graph through ONNX Runtime, every batch checked: a
    ``sample`` graph's calls, or genbench's own loop over a ``denoise`` or ``logits`` graph
    (:mod:`genbench.runtime.roles`); an autoregressive loop may draw fewer than ``n`` (stated)."""
    return roles.draw_samples(bundle, device, n, seed, data, dataset)


def _check_text_fits(bundle: OnnxBundle, dataset: Dataset) -> None:
    if dataset.kind == "text" and "logits" in [g.role for g in bundle.graphs]:
        check_text_fits(bundle.graph("logits"), dataset)


def _save_text_samples(bundle: OnnxBundle, dataset: Dataset, device: str, seed: int, path: Path) -> str:
    """A few continuations of held-out prompts (temperature 1, no top-k), for readers of the report."""
    graph = bundle.graph("logits")
    out, plen = continuations(roles.session_fn(bundle, graph, device), graph, dataset.test_x, TEXT_SAMPLES,
                              TEXT_PROMPT, TEXT_CONTINUATION, seed, dataset.vocab)
    blocks = [f"--- sample {i + 1}: prompt | continuation (temperature 1.0)\n"
              f"{bytes(row[:plen].astype(np.uint8)).decode('utf-8', 'replace')}|"
              f"{bytes(row[plen:].astype(np.uint8)).decode('utf-8', 'replace')}\n" for i, row in enumerate(out)]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return str(path)


def _diffusion_sampling(bundle: OnnxBundle, task: "TaskState", metrics: list[tuple[MetricSpec, Any]], seed: int,
                        config: RunConfig, device: str, n: int, unit_dir: Path, run_dir: Path) -> dict[str, Any] | None:
    """For a bundle sampled through a ``denoise`` graph: the sampler the metrics used, and quality against the
    number of steps (the family's signature trade-off: FD on images, the k-NN KL on points,
    :data:`denoise.SWEEP_METRICS`), with its plot. None for other bundles."""
    graph = roles.generator(bundle)
    if graph is None or graph.canonical_role != "denoise":
        return None
    schedule = schedule_from_attrs(graph.attrs)
    info: dict[str, Any] = {"sampler": "ddim (eta = 0, Song et al. 2021)", "steps": denoise.score_steps(graph),
                            "T": schedule.steps, "schedule": schedule.description, "prediction": schedule.prediction,
                            "scale": graph.attrs.get("scale", "task")}
    name = denoise.SWEEP_METRICS.get(task.dataset.kind)
    chosen = [(m, f) for m, f in metrics if m.name == name]
    if not chosen:
        return info

    def quality_of(x: np.ndarray) -> float | None:
        values, _ = score(task, x, chosen, seed, None, config)
        value = values.get(name)
        return None if value is None or value.value is None else float(value.value)

    rows = denoise.sweep(roles.session_fn(bundle, graph, device), graph, task.dataset, n, seed, quality_of,
                         time.perf_counter, metric=name)
    info["quality_vs_steps"] = rows
    info["quality_vs_steps_metric"] = name
    info["quality_vs_steps_note"] = (f"{name} of {n} samples drawn with the same seed at each step count; draw time "
                                     "is the score process's wall time on one thread, not a timing record")
    try:
        info["quality_vs_steps_png"] = _rel(_save_steps_plot(rows, unit_dir / "quality_vs_steps.png", name), run_dir)
    except Exception as exc:  # noqa: BLE001 - the table stands without its picture
        info["quality_vs_steps_plot_error"] = one_line(exc)
    return info


def score(task: TaskState, samples: np.ndarray | None, metrics: list[tuple[MetricSpec, Any]], seed: int,
          likelihood: Any, config: RunConfig, computed_by: str = GENBENCH
          ) -> tuple[dict[str, MetricValue], dict[str, str]]:
    """Every metric of the job on arrays, each with its comparability key and the kind of process that made it;
    a metric that raises or returns something else records its own error (returned apart) and the others
    stand. genbench's own metrics run first; a plugin's (:class:`genbench.stages.plugin_metrics.PluginMetric`)
    then each in a process of its own."""
    from .stages.plugin_metrics import is_plugin_metric

    metrics = sorted(metrics, key=lambda m: is_plugin_metric(m[0]))
    job_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    ctx = quality_context(task, samples, seed, likelihood, config, job_cache)
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
        out[spec.name] = _replace(value, key=key, computed_by="plugin" if is_plugin_metric(spec) else computed_by)
    return out, errors


def quality_context(task: TaskState, samples: np.ndarray | None, seed: int, likelihood: Any, config: RunConfig,
                    job_cache: dict[str, Any]) -> QualityContext:
    """What the metrics of one job see: its samples, and the task's feature spaces (features cached per job for
    ``samples*`` keys, per task for the real splits)."""

    def extract(key: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        store = job_cache if key == "samples" else task.cache
        if f"x:{key}" not in store:
            feats, logits = task.extractor(x)
            z = np.exp(logits - logits.max(1, keepdims=True))
            store[f"x:{key}"] = (feats, z / z.sum(1, keepdims=True))
        return store[f"x:{key}"]

    def extract_inception(key: str, x: np.ndarray) -> np.ndarray:
        store = job_cache if key.startswith("samples") else task.cache  # a job's samples are its own
        if f"inception:{key}" not in store:
            lo, hi = task.dataset.value_range
            store[f"inception:{key}"] = task.inception((np.asarray(x, np.float64) - lo) / (hi - lo))[0]
        return store[f"inception:{key}"]

    inception = getattr(task, "inception", None)
    return QualityContext(dataset=task.dataset, samples=samples, rng=np.random.default_rng(seed),
                          features=lambda key, x: extract(key, x)[0], probabilities=lambda key, x: extract(key, x)[1],
                          extractor_id=task.extractor.id if task.extractor else None, cache=task.cache, seed=seed,
                          likelihood=likelihood,
                          inception_features=extract_inception if inception is not None else None,
                          inception_id=inception.id if inception is not None else None,
                          fid_n=getattr(config, "fid_n", None), cache_dir=reference_dir(config))


def reference_dir(config: Any) -> Path | None:
    """Where a job's real-data references are kept: the run's cache folder (``--cache-dir``, else
    ``$GENBENCH_CACHE_DIR``, else ``~/.cache/genbench``); None under ``--no-cache``."""
    if not getattr(config, "cache", True):
        return None
    from .cache import default_cache_dir

    return Path(getattr(config, "cache_dir", None) or default_cache_dir()).expanduser()


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


def _save_steps_plot(rows: list[dict[str, Any]], path: Path, metric: str = "fd") -> str:
    """Quality (``metric``, lower is better) against sampling steps (log axis), one line per sampler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=100)
    for sampler, marker in (("ddim", "o"), ("ddpm", "s")):
        pts = [(r["steps"], r[metric]) for r in rows if r["sampler"] == sampler and r.get(metric) is not None]
        if pts:
            ax.plot(*zip(*pts), marker=marker, label=sampler.upper())
    ax.set(xscale="log", xlabel="sampling steps", ylabel=f"{'FD' if metric == 'fd' else metric} (lower is better)",
           title="quality against steps")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


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


