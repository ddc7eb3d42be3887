"""Run jobs as Ray tasks on a cluster (``--executor ray [--address ADDR]``), plugins unchanged.

Each job is a Ray task asking for what it needs: one CPU (``train_threads``), one GPU for CUDA jobs, and,
for jobs that time, one unit of the custom resource ``genbench_timing``. Start every node with
``--resources='{"genbench_timing": 1}'`` so that one timing job runs per node at a time (a local
instance started by genbench declares it itself); quality-only jobs share a node freely. Results
stream back to the driver, which writes them exactly as the local executor does.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable

from ..errors import ConfigError
from ..types import JobError, JobResult
from . import JobSpec

TIMING_RESOURCE = "genbench_timing"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("The Ray executor needs Ray: pip install 'genbench[ray]' (or pip install ray).") from None
    return ray


def _run_remote(job: JobSpec) -> dict:
    from .worker import execute

    return execute(job).to_dict()


def run_jobs(jobs: Iterable[JobSpec], address: str | None, timeout: float | None,
             on_result: Callable[[JobSpec, JobResult], None]) -> None:
    """Submit every job, then hand each result to ``on_result`` as it arrives."""
    from .worker import head

    ray = _ray()
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # a local instance: this machine's CPUs, one timing slot
            ray.init(num_cpus=os.cpu_count(), resources={TIMING_RESOURCE: 1}, include_dashboard=False,
                     log_to_driver=False)
    has_timing = ray.cluster_resources().get(TIMING_RESOURCE, 0) >= 1
    remote = ray.remote(max_retries=0)(_run_remote)
    pending: dict[Any, tuple[JobSpec, float]] = {}
    for job in jobs:
        resources = {TIMING_RESOURCE: 1} if has_timing and job.config.timing and job.model.family != "baseline" else {}
        ref = remote.options(num_cpus=job.config.train_threads, num_gpus=1 if job.device == "cuda" else 0,
                             resources=resources).remote(job)
        pending[ref] = (job, time.monotonic())
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in done:
            job, _ = pending.pop(ref)
            try:
                result = JobResult.from_dict(ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - a worker that died or raised fails its own job
                result = JobResult(**head(job), status="failed",
                                   error=JobError("ray", type(exc).__name__, str(exc).strip().splitlines()[0][:300]))
            on_result(job, result)
        if timeout is not None:
            now = time.monotonic()
            for ref, (job, started) in list(pending.items()):
                if now - started > timeout + 300:  # queueing time included, generously
                    ray.cancel(ref, force=True)
                    pending.pop(ref)
                    on_result(job, JobResult(**head(job), status="failed", error=JobError(
                        "ray", "Timeout", f"no result after {timeout:g} s on the cluster; the task was cancelled.")))
