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

from ..config import get_profile  # noqa: E402
from ..errors import GenbenchError  # noqa: E402
from ..registry import load_object  # noqa: E402
from ..types import JobError  # noqa: E402
from . import BuildUnit, JobSpec, TimingUnit  # noqa: E402


def load_task(job: JobSpec) -> Any:
    from ..harness import load_task_state

    return load_task_state(job.task, job.config)


def head(job: JobSpec) -> dict[str, Any]:
    m = job.model
    return dict(model=m.name, family=m.family, plugin=m.plugin, plugin_version=m.plugin_version, task=job.task.name,
                device=job.device)


def execute(unit: BuildUnit | TimingUnit, on_phase: Callable[[str], None] | None = None,
            task_state: Any = None) -> Any:
    """Run one unit here and return its SeedResult or TimingResult; never raises for anything a job's code does."""
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
        message = str(exc) if isinstance(exc, GenbenchError) else f"{type(exc).__name__}: {exc}"
        return unit.failed(JobError("data", type(exc).__name__, (message.strip().splitlines() or [""])[0]),
                           time.perf_counter() - t0)
    profile = get_profile(config.profile)
    with JobProgress(job.label or unit.label) as progress:
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
    try:
        limit_memory(unit.job.config.max_memory)
        before = set(threading.enumerate())
        result = execute(unit, on_phase=lambda phase: conn.send(("phase", phase)))
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if leaked:
            names = ", ".join(sorted(t.name for t in leaked)[:5])
            result = dataclasses.replace(result, warnings=(*result.warnings, (
                f"the job left {len(leaked)} Python thread(s) running ({names}); they may have disturbed its timings, "
                "and were stopped with the job's process")))
        conn.send(("result", result.to_dict()))
    except BaseException:  # noqa: BLE001 - report, then die
        conn.send(("crash", traceback.format_exc()))
    finally:
        conn.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def limit_memory(gib: float | None) -> None:
    """Cap this process's data memory (``RLIMIT_DATA``: heap and private mappings, which is where numpy and
    torch allocate) at ``gib`` GiB, so that a plugin that allocates too much gets a MemoryError in its own
    job instead of the kernel's out-of-memory killer choosing a victim."""
    if gib is None:
        return
    import resource

    limit = int(gib * 2**30)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
