"""Executors: where jobs run.

``inline`` runs a job in the calling process (fast; for debugging). ``process`` (the default) runs each job
in a fresh process forked from a pre-warmed server (``multiprocessing`` forkserver, with torch, ONNX
Runtime and genbench already imported), with a time limit, so that a plugin that hangs, crashes the
interpreter, calls ``os._exit`` or leaks threads and memory fails its own job — with the phase it was
in — and the run goes on; one job's allocations and thread pools never leak into the next job's timings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..types import DatasetSpec, MetricSpec, ModelSpec

EXECUTORS = ("process", "inline")


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to run one job; picklable, holds no plugin objects (only lazy paths)."""

    model: ModelSpec
    task: DatasetSpec
    config: RunConfig
    device: str
    job_dir: Path
    metrics: tuple[MetricSpec, ...]
    label: str = ""
