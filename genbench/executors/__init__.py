"""Executors: where the work of a run happens.

A run is two stages. Stage 1, *build and score*, is one :class:`BuildUnit` per job and training seed
(train or restore, export, validate, sample, quality); units run in parallel, up to ``--jobs`` at once
(default: the usable cores). Stage 2, *timing*, is one :class:`TimingUnit` per timed job; it starts when
stage 1 is over and runs one unit at a time, so nothing else of genbench shares the machine while it
measures.

``inline`` runs units in the calling process (fast; for debugging: plugin code runs beside the numbers, so
they say ``computed_by: inline`` and are never ranked). ``process`` (the default) runs each unit's build in
a build process (plugin code; sandboxed with bubblewrap where it can run, ``--sandbox``) and its scoring or
timing in a genbench-only process (:mod:`genbench.stages`), each forked from a pre-warmed server (``multiprocessing`` forkserver, with torch, ONNX
Runtime and genbench already imported), with a time limit, so that a plugin that hangs, crashes the
interpreter, calls ``os._exit`` or leaks threads and memory fails its own job — with the phase it was
in — and the run goes on; each task's data is loaded once, in such a process too, and memory-mapped by
the jobs. Unit processes die with genbench, and a run that is stopping (Ctrl-C, SIGTERM) kills them and
keeps what finished. ``ray`` runs units as Ray tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..types import DatasetSpec, JobError, MetricSpec, ModelSpec, SeedResult, TimingResult

EXECUTORS = ("process", "inline", "ray")


class UnitStopped(Exception):
    """A unit stopped before its end because the run is stopping (Ctrl-C, SIGTERM, a full disk): it has no
    result and stays to do for ``--resume``."""


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
    #: the task's data as a child process saved it (:func:`genbench.data.save_dataset`), memory-mapped by the
    #: job; None: the job loads the task itself
    data: Path | None = None

    @property
    def run_dir(self) -> Path:
        return self.job_dir.parent.parent


@dataclass(frozen=True)
class BuildUnit:
    """Stage 1 of one job for one seed. ``keep_state``: save the model's state for the timing stage."""

    job: JobSpec
    seed: int
    keep_state: bool = False
    kind = "build"

    @property
    def unit_dir(self) -> Path:
        return self.job.job_dir / f"seed-{self.seed}"

    @property
    def label(self) -> str:
        seeds = self.job.config.seeds
        return f"{self.job.model.name} on {self.job.task.name}" + (f" (seed {self.seed})" if len(seeds) > 1 else "")

    def failed(self, error: JobError, seconds: float | None, files: dict[str, str] | None = None) -> SeedResult:
        return SeedResult(seed=self.seed, status="failed", error=error, seconds=seconds, files=files or {})

    @staticmethod
    def result_from_dict(data: dict[str, Any]) -> SeedResult:
        return SeedResult.from_dict(data)


@dataclass(frozen=True)
class TimingUnit:
    """Stage 2 of one job: time the graphs that seed ``seed`` built, alone. ``expected``: (role, sha256) of each
    graph as the score stage recorded it; the timing process refuses a file that differs."""

    job: JobSpec
    seed: int
    expected: tuple[tuple[str, str], ...] = ()
    kind = "timing"

    @property
    def unit_dir(self) -> Path:
        return self.job.job_dir / f"seed-{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.job.model.name} on {self.job.task.name} (timing)"

    def failed(self, error: JobError, seconds: float | None, files: dict[str, str] | None = None) -> TimingResult:
        return TimingResult(status="failed", error=error, seconds=seconds, files=files or {})

    @staticmethod
    def result_from_dict(data: dict[str, Any]) -> TimingResult:
        return TimingResult.from_dict(data)
