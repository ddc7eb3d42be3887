"""What runs inside a job's process (or inline): load the task, build the metrics, run the job.

It imports little itself: the forkserver preloads torch, ONNX Runtime and the rest once
(:mod:`genbench.executors._forkserver_init`), so each job's process starts warm, and a sandboxed build process
(a fresh interpreter) imports only what building needs.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
import traceback
from typing import Any, Callable

from ..errors import GenbenchError
from ..registry import load_object
from ..types import JobError
from . import BuildUnit, JobSpec, TimingUnit


def load_task(job: JobSpec) -> Any:
    from ..harness import load_task_state

    return load_task_state(job.task, job.config, saved=job.data)


def load_dataset(job: JobSpec) -> Any:
    """The task's data without its feature extractor (what a build process and the cache key need)."""
    if job.data is not None:
        from ..data import load_saved_dataset

        return load_saved_dataset(job.data)
    from dataclasses import replace

    from ..harness import load_task_state

    # never the Inception space here: a build process (plugin code, sandboxed) needs the data alone
    return load_task_state(job.task, replace(job.config, features="default", fid_n=None)).dataset


def head(job: JobSpec) -> dict[str, Any]:
    m = job.model
    return dict(model=m.name, family=m.family, plugin=m.plugin, plugin_version=m.plugin_version, task=job.task.name,
                device=job.device)


def metric_instances(job: JobSpec) -> list[tuple[Any, Any]]:
    """The job's metrics: genbench's own built here; a plugin's as a stand-in that computes it in a process of
    its own (its factory is plugin code, never called in a score process)."""
    from ..stages.plugin_metrics import PluginMetric, is_plugin_metric

    return [(s, PluginMetric(s) if is_plugin_metric(s) else load_object(s.factory, owner=f"metric '{s.name}'")())
            for s in job.metrics]


def execute(unit: BuildUnit | TimingUnit, on_phase: Callable[[str], None] | None = None,
            task_state: Any = None, on_progress: Callable[[int, int, dict], None] | None = None) -> Any:
    """Run one unit here, every stage in this process (``--executor inline``: for debugging; its numbers say
    ``computed_by: inline`` and are never ranked), and return its SeedResult or TimingResult; never raises for
    anything a job's code does. ``on_phase`` hears each phase as it starts, ``on_progress`` the training steps."""
    from ..harness import build_and_score
    from ..stages import INLINE
    from ..timing import time_plugin_torch, time_unit
    from ..ui import JobProgress

    job = unit.job
    config = dataclasses.replace(job.config, seed=unit.seed)
    t0 = time.perf_counter()
    if on_phase is not None:
        on_phase("load")
    try:
        state = task_state or load_task(job)
        metrics = metric_instances(job) if unit.kind == "build" else []
    except Exception as exc:  # noqa: BLE001
        return unit.failed(data_error(exc, job.config), time.perf_counter() - t0)
    profile = config.profile_settings()
    with JobProgress(job.label or unit.label, sink=on_progress) as progress:
        if unit.kind == "build":
            from ..perf.cores import single_threaded

            with single_threaded():  # units run side by side, one per core
                return build_and_score(job.model, state, config, profile, job.device, unit.unit_dir, job.run_dir,
                                       metrics, progress, on_phase=on_phase, computed_by=INLINE)
        result = time_unit(job.model, state.dataset, config, profile, job.device, unit.unit_dir, job.job_dir,
                           job.run_dir, dict(unit.expected), on_phase=on_phase, computed_by=INLINE)
        roles = list(result.info.get("plugin_torch") or [])
        if result.status == "done" and roles:
            extra = time_plugin_torch(job.model, state.dataset, config, profile, job.device, unit.unit_dir,
                                      job.job_dir, job.run_dir, roles)
            result = merge_plugin_torch(result, extra, INLINE)
        return result


def merge_plugin_torch(result: Any, extra: Any, computed_by: str) -> Any:
    """The genbench time process's result with the plugin process's torch records of the graphs torch.export
    could not capture (or why they are missing)."""
    if extra.status != "done":
        why = extra.error.message if extra.error else "it failed"
        return dataclasses.replace(result, warnings=(*result.warnings, f"torch not timed in the plugin's own process "
                                                                       f"(torch.export could not capture the module): "
                                                                       f"{why}"))
    records = tuple(dataclasses.replace(r, computed_by=computed_by if computed_by == "inline" else r.computed_by)
                    for r in extra.performance)
    return dataclasses.replace(result, performance=(*result.performance, *records),
                               files={**result.files, **extra.files}, warnings=(*result.warnings, *extra.warnings))


def plugin_modules(job: JobSpec) -> set[str]:
    """Top-level modules of every plugin this process could have imported: each ``genbench`` entry point's, the
    model's class path's, and those of the plugin metrics and task loader the job names."""
    from importlib import metadata

    names: set[str] = set()
    try:
        for ep in metadata.entry_points(group="genbench"):
            names.add(ep.value.split(":", 1)[0].split(".", 1)[0])
    except Exception:  # noqa: BLE001 - a broken distribution's metadata
        pass
    paths = [job.model.cls] + [m.factory for m in job.metrics if m.plugin != "genbench"]
    if job.task.plugin != "genbench":
        paths.append(job.task.loader)
    names |= {p.split(":", 1)[0].split(".", 1)[0] for p in paths if isinstance(p, str)}
    return {n for n in names if n and n != "genbench"}


def imported_plugin_modules(job: JobSpec) -> list[str]:
    """The plugin modules in ``sys.modules`` now: in a score or time process, there must be none."""
    tops = plugin_modules(job)
    return sorted(name for name in list(sys.modules) if name.split(".", 1)[0] in tops)


def _guarded(job: JobSpec, result: Any, kind: str) -> Any:
    """A score or time process's result, failed if plugin code was imported into it (it must never be)."""
    found = imported_plugin_modules(job)
    if not found:
        return result
    message = (f"plugin code was imported into the {kind} process ({', '.join(found[:3])}); its numbers are "
               "withheld")
    error = JobError(kind, "IntegrityError", message)
    if kind == "score":
        return dataclasses.replace(result, status="failed", error=error, quality={})
    return dataclasses.replace(result, status="failed", error=error, performance=())


def _leak_warning(before: set) -> str | None:
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    if not leaked:
        return None
    names = ", ".join(sorted(t.name for t in leaked)[:5])
    return (f"the job left {len(leaked)} Python thread(s) running ({names}); they may have disturbed its timings, "
            "and were stopped with the job's process")


def _with_leaks(result: Any, before: set) -> Any:
    leaked = _leak_warning(before)
    return result if leaked is None else dataclasses.replace(result, warnings=(*result.warnings, leaked))


def build_child_main(unit: BuildUnit, conn: Any) -> None:
    """Entry point of a build process (plugin code): train and export into the unit directory."""
    def work() -> dict:
        from ..stages.build import build
        from ..ui import JobProgress

        limit_memory(unit.job.config.max_memory)
        single_threaded_blas()
        conn.send(("phase", "load"))
        job = unit.job
        config = dataclasses.replace(job.config, seed=unit.seed)
        try:
            dataset = load_dataset(job)
        except Exception as exc:  # noqa: BLE001
            return {"status": "failed", "error": data_error(exc, job.config).to_dict()}
        from ..perf.cores import single_threaded

        before = set(threading.enumerate())
        with JobProgress(job.label or unit.label, sink=lambda d, t, losses: conn.send(("progress", (d, t, losses)))) \
                as progress, single_threaded():
            summary = build(job.model, dataset, config, job.device, unit.unit_dir, progress,
                            on_phase=lambda phase: conn.send(("phase", phase)))
        leaked = _leak_warning(before)
        if leaked:
            summary["warnings"] = [*summary.get("warnings", []), leaked]
        return summary

    _serve(conn, work)


def score_child_main(unit: BuildUnit, built: dict, use: dict | None, conn: Any) -> None:
    """Entry point of a score process (genbench only): verify, validate, sample and score what the build left."""
    def work() -> dict:
        from ..harness import score_built
        from ..perf.cores import single_threaded
        from ..stages.cached import CacheUse

        limit_memory(unit.job.config.max_memory)
        single_threaded_blas()
        before = set(threading.enumerate())
        job = unit.job
        config = dataclasses.replace(job.config, seed=unit.seed)
        conn.send(("phase", "validate"))
        try:
            state = load_task(job)
            metrics = metric_instances(job)
        except Exception as exc:  # noqa: BLE001
            return unit.failed(data_error(exc, job.config), None).to_dict()
        with single_threaded():
            result = score_built(job.model, state, config, config.profile_settings(), job.device, unit.unit_dir,
                                 job.run_dir, metrics, built, CacheUse.from_dict(use) if use else None,
                                 on_phase=lambda phase: conn.send(("phase", phase)))
        return _guarded(job, _with_leaks(result, before), "score").to_dict()

    _serve(conn, work)


def time_child_main(unit: TimingUnit, conn: Any) -> None:
    """Entry point of a time process (genbench only): time the verified graphs and programs, alone."""
    def work() -> dict:
        from ..timing import time_unit

        limit_memory(unit.job.config.max_memory)
        before = set(threading.enumerate())
        job = unit.job
        config = dataclasses.replace(job.config, seed=unit.seed)
        conn.send(("phase", "load"))
        try:
            dataset = load_dataset(job)
        except Exception as exc:  # noqa: BLE001
            return unit.failed(data_error(exc, job.config), None).to_dict()
        result = time_unit(job.model, dataset, config, config.profile_settings(), job.device, unit.unit_dir,
                           job.job_dir, job.run_dir, dict(unit.expected),
                           on_phase=lambda phase: conn.send(("phase", phase)))
        return _guarded(job, _with_leaks(result, before), "time").to_dict()

    _serve(conn, work)


def plugin_torch_child_main(unit: TimingUnit, roles: list[str], conn: Any) -> None:
    """Entry point of a build process that times torch on the plugin's own module (torch.export could not
    capture it): its records say ``computed_by: plugin``."""
    from ..features.reference import plugin_code_runs_here

    plugin_code_runs_here()

    def work() -> dict:
        from ..timing import time_plugin_torch

        limit_memory(unit.job.config.max_memory)
        job = unit.job
        config = dataclasses.replace(job.config, seed=unit.seed)
        conn.send(("phase", "timing"))
        dataset = load_dataset(job)
        return time_plugin_torch(job.model, dataset, config, config.profile_settings(), job.device, unit.unit_dir,
                                 job.job_dir, job.run_dir, roles).to_dict()

    _serve(conn, work)


def _serve(conn: Any, work: Callable[[], Any]) -> None:
    """Send ``("result", work())`` through ``conn``, or ``("crash", traceback)``; then end the process. Every
    process the unit started is killed first (this process is their subreaper: wherever they moved, they are
    its descendants), so none outlives the unit, and none holds its output files open."""
    try:
        message = ("result", work())
    except BaseException:  # noqa: BLE001 - report, then die
        message = ("crash", traceback.format_exc())
    try:
        from .reaping import kill_descendants

        kill_descendants()
        conn.send(message)
    finally:
        conn.close()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os._exit(0)


def data_error(exc: BaseException, config: Any, task: str = "") -> JobError:
    """The one-line error of task data that could not be loaded, with a hint when it ran out of memory."""
    from ..stages.common import out_of_memory

    message = str(exc) if isinstance(exc, GenbenchError) else f"{type(exc).__name__}: {exc}"
    message = (message.strip().splitlines() or [""])[0]
    if config.max_memory and out_of_memory(exc):
        message += (f" (loading {f'task {task!r}' if task else 'the task'} went over the memory limit, --max-memory "
                    f"{config.max_memory:g} GiB: raise it if the data really is that large; a compressed file that "
                    "inflates to far more than it should also does this)")
    return JobError("data", type(exc).__name__, message)


def data_child_main(task: Any, config: Any, directory: Any, conn: Any) -> None:
    """Entry point of a task's data-loading process: load the task under the jobs' memory limit and save its
    arrays for the jobs to memory-map; the result (or the reason it failed) goes through ``conn``."""
    def work() -> dict:
        limit_memory(config.max_memory)
        single_threaded_blas()
        conn.send(("phase", "data"))
        from ..data import save_dataset
        from ..errors import DataUnavailableError
        from ..features.reference import plugin_code_runs_here
        from ..harness import load_task_state, warm_references

        if not str(task.loader).startswith("genbench.") or task.plugin not in ("", "genbench"):
            plugin_code_runs_here()  # a plugin's task loader: this process stores no reference
        try:
            state = load_task_state(task, config)
            saved = save_dataset(state.dataset, directory)
            conn.send(("phase", "references"))
            warm_references(state, config)  # the Inception references, once for all of the task's jobs
            return {"saved": saved}
        except Exception as exc:  # noqa: BLE001 - a loader's failure fails the task's jobs
            return {"error": data_error(exc, config, task.name).to_dict(),
                    "unavailable": isinstance(exc, DataUnavailableError)}

    _serve(conn, work)


def report_child_main(writer: str, name: str, result: Any, run_dir: Any, conn: Any) -> None:
    """Entry point of a plugin's reporter process: its writer (plugin code) called on the finished run; the
    path it wrote (or why it failed) goes through ``conn``."""
    from ..features.reference import plugin_code_runs_here

    plugin_code_runs_here()

    def work() -> dict:
        from ..registry import load_object

        conn.send(("phase", "report"))
        try:
            return {"path": str(load_object(writer, owner=f"reporter '{name}'")(result, run_dir))}
        except Exception as exc:  # noqa: BLE001 - the reporter's own failure, said in one line
            return {"error": f"{type(exc).__name__}: {exc}"}

    _serve(conn, work)


def single_threaded_blas() -> Any:
    """One BLAS thread in this process (until the returned limiter's ``restore_original_limits()``, or the end
    of a ``with`` block): build units run side by side on every core already (as their ONNX Runtime sessions,
    on one thread each), and a multi-threaded BLAS on a busy machine spends most of its time waiting for its
    own threads (the digits metrics took 7 to 13 s of wall time with two OpenBLAS threads under load, 0.9 s
    with one, the same values)."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def limit_memory(gib: float | None) -> None:
    """Cap this process's data memory (``RLIMIT_DATA``: heap and private mappings, which is where numpy and
    torch allocate) at ``gib`` GiB, so that a plugin that allocates too much gets a MemoryError in its own
    job instead of the kernel's out-of-memory killer choosing a victim. (Memory-mapped task data is shared,
    and not counted.)"""
    if gib is None:
        return
    import resource

    limit = int(gib * 2**30)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
