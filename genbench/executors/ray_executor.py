"""Run units as Ray tasks on a cluster (``--executor ray [--address ADDR]``), plugins unchanged.

Stage 1 (build and score) submits every unit at once; each asks for one CPU (``train_threads``) and one
GPU for CUDA jobs, and the cluster runs them side by side. Stage 2 (timing) starts when stage 1 is over
and submits one unit at a time, each also asking for the custom resource ``genbench_timing`` (start
every node with ``--resources='{"genbench_timing": 1}'``; a local instance started by genbench declares
it itself), so no two timings and no build work of this run overlap. Results stream back to the
driver, which writes them exactly as the local executor does.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable

from ..errors import ConfigError
from ..types import JobError
from . import BuildUnit, TimingUnit

TIMING_RESOURCE = "genbench_timing"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("The Ray executor needs Ray: pip install 'genbench[ray]' (or pip install ray).") from None
    return ray


def _run_remote(unit: BuildUnit | TimingUnit) -> dict:
    """On a Ray worker: the unit in processes of its own, exactly as the process executor runs it (a build
    process for plugin code, sandboxed where bwrap can run; genbench-only score and time processes)."""
    from .local import run_in_process, start_server

    start_server()
    return run_in_process(unit, unit.job.config.timeout).to_dict()


def run_units(units: Iterable[BuildUnit | TimingUnit], address: str | None, timeout: float | None,
              on_result: Callable[[BuildUnit | TimingUnit, Any], None], one_at_a_time: bool = False,
              stop: threading.Event | None = None) -> None:
    """Submit the units (all at once, or ``one_at_a_time``), then hand each result to ``on_result``. Once
    ``stop`` is set, nothing more is submitted and the tasks still running are cancelled (they stay to do)."""
    ray = _ray()
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # a local instance: this machine's usable cores, one timing slot
            from ..perf.cores import usable_cores

            ray.init(num_cpus=usable_cores(), resources={TIMING_RESOURCE: 1}, include_dashboard=False,
                     log_to_driver=False)
    has_timing = ray.cluster_resources().get(TIMING_RESOURCE, 0) >= 1
    remote = ray.remote(max_retries=0)(_run_remote)
    queue = list(units)
    pending: dict[Any, tuple[Any, float]] = {}

    def submit(unit: BuildUnit | TimingUnit) -> None:
        resources = {TIMING_RESOURCE: 1} if has_timing and unit.kind == "timing" else {}
        ref = remote.options(num_cpus=unit.job.config.train_threads, num_gpus=1 if unit.job.device == "cuda" else 0,
                             resources=resources).remote(unit)
        pending[ref] = (unit, time.monotonic())

    try:
        while queue or pending:
            if stop is not None and stop.is_set():
                return  # what still runs is cancelled below
            while queue and (not one_at_a_time or not pending):
                submit(queue.pop(0))
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in done:
                unit, started = pending.pop(ref)
                try:
                    result = unit.result_from_dict(ray.get(ref))
                except Exception as exc:  # noqa: BLE001 - a worker that died or raised fails its own unit
                    result = unit.failed(JobError("ray", type(exc).__name__, str(exc).strip().splitlines()[0][:300]),
                                         time.monotonic() - started)
                on_result(unit, result)
            if timeout is not None:
                now = time.monotonic()
                for ref, (unit, started) in list(pending.items()):
                    if now - started > timeout + 300:  # queueing time included, generously
                        ray.cancel(ref, force=True)
                        pending.pop(ref)
                        on_result(unit, unit.failed(JobError(
                            "ray", "Timeout", f"no result after {timeout:g} s on the cluster; the task was cancelled."),
                            now - started))
    finally:  # stopping, or a full disk on the driver: nothing of this run goes on running
        for ref in pending:
            ray.cancel(ref, force=True)
