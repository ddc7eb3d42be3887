"""What runs inside a job's process (or inline): load the task, build the metrics, run the job.

Importing this module imports torch and ONNX Runtime: the forkserver preloads it once, so each job's
process starts warm.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
import traceback
from typing import Any, Callable

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib.pyplot  # noqa: E402,F401 - preloaded for sample grids
import sklearn.datasets  # noqa: E402,F401 - the digits task
import numpy  # noqa: E402,F401
import onnx  # noqa: E402,F401
import onnxruntime  # noqa: E402,F401
import torch  # noqa: E402,F401

from ..errors import GenbenchError  # noqa: E402
from ..registry import load_object  # noqa: E402
from ..types import JobError  # noqa: E402
from . import BuildUnit, JobSpec, TimingUnit  # noqa: E402


def load_task(job: JobSpec) -> Any:
    from ..harness import load_task_state

    return load_task_state(job.task, job.config, saved=job.data)


def head(job: JobSpec) -> dict[str, Any]:
    m = job.model
    return dict(model=m.name, family=m.family, plugin=m.plugin, plugin_version=m.plugin_version, task=job.task.name,
                device=job.device)


def execute(unit: BuildUnit | TimingUnit, on_phase: Callable[[str], None] | None = None,
            task_state: Any = None, on_progress: Callable[[int, int, dict], None] | None = None) -> Any:
    """Run one unit here and return its SeedResult or TimingResult; never raises for anything a job's code does.
    ``on_phase`` hears each phase as it starts, ``on_progress`` the training steps (for the run's display)."""
    from ..harness import build_and_score, time_model
    from ..ui import JobProgress

    job = unit.job
    config = dataclasses.replace(job.config, seed=unit.seed)
    t0 = time.perf_counter()
    if on_phase is not None:
        on_phase("load")
    try:
        state = task_state or load_task(job)
        metrics = [(s, load_object(s.factory, owner=f"metric '{s.name}'")()) for s in job.metrics] \
            if unit.kind == "build" else []
    except Exception as exc:  # noqa: BLE001
        return unit.failed(data_error(exc, job.config), time.perf_counter() - t0)
    profile = config.profile_settings()
    with JobProgress(job.label or unit.label, sink=on_progress) as progress:
        if unit.kind == "build":
            from ..perf.cores import single_threaded

            with single_threaded():  # units run side by side, one per core
                return build_and_score(job.model, state, config, profile, job.device, unit.unit_dir, job.run_dir,
                                       metrics, progress, on_phase=on_phase, keep_state=unit.keep_state)
        return time_model(job.model, state, config, profile, job.device, unit.unit_dir, job.job_dir, job.run_dir,
                          progress, on_phase=on_phase)


def child_main(unit: BuildUnit | TimingUnit, conn: Any) -> None:
    """Entry point of a unit's process: phase messages, then the result, through ``conn``.

    The process ends with ``os._exit`` once the result is sent: threads a plugin left running (which
    would keep a normal interpreter exit waiting for ever) are named in the result's warnings and end
    with the process.
    """
    def work() -> dict:
        limit_memory(unit.job.config.max_memory)
        if unit.kind == "build":
            single_threaded_blas()
        before = set(threading.enumerate())
        result = execute(unit, on_phase=lambda phase: conn.send(("phase", phase)),
                         on_progress=lambda done, total, losses: conn.send(("progress", (done, total, losses))))
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if leaked:
            names = ", ".join(sorted(t.name for t in leaked)[:5])
            result = dataclasses.replace(result, warnings=(*result.warnings, (
                f"the job left {len(leaked)} Python thread(s) running ({names}); they may have disturbed its timings, "
                "and were stopped with the job's process")))
        return result.to_dict()

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
    from ..harness import out_of_memory

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
        from ..harness import load_task_state

        try:
            return {"saved": save_dataset(load_task_state(task, config).dataset, directory)}
        except Exception as exc:  # noqa: BLE001 - a loader's failure fails the task's jobs
            return {"error": data_error(exc, config, task.name).to_dict(),
                    "unavailable": isinstance(exc, DataUnavailableError)}

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
