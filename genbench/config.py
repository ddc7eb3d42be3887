"""Profiles (how much work a run does) and the configuration of one run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .perf import TimingPolicy
from .perf.cores import usable_cores


@dataclass(frozen=True)
class Profile:
    """``max_samples``: samples drawn per job for quality metrics (capped by the training split's size,
    so that a model's FD and the floor use the same ``n``). ``batch_sizes``: the throughput sweep.

    ``timing``: each forward measurement (at batch 1 with at least ``latency_iterations`` calls, so that
    its p99 can stand); ``generate_timing``: each generate measurement (a whole sample per row, which for
    an autoregressive model is one graph call per token); a generate batch is timed only when one call is
    estimated to take at most ``generate_call_budget_s`` (batch 1 always), a forward batch only when one
    call is estimated (from the batch before) to take at most ``forward_call_budget_s``.
    """

    name: str
    max_samples: int
    batch_sizes: tuple[int, ...]
    timing: TimingPolicy
    description: str
    generate_timing: TimingPolicy = TimingPolicy(warmup=1, warmup_seconds=2.0, min_iterations=20, min_seconds=0.5,
                                                 max_seconds=5.0, rounds=2, target_ci=0.01)
    latency_iterations: int = 1000
    generate_call_budget_s: float = 1.0
    forward_call_budget_s: float = 1.0


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", 500, (1, 64),
                     TimingPolicy(warmup=3, warmup_seconds=0.1, min_iterations=20, min_seconds=0.05, max_seconds=0.3,
                                  rounds=2, target_ci=None),
                     "CI check: tiny training budgets, short timings (their p99 and most throughputs are flagged "
                     "not valid)",
                     TimingPolicy(warmup=1, warmup_seconds=0.1, min_iterations=2, min_seconds=0.05, max_seconds=0.2,
                                  rounds=1, target_ci=None),
                     latency_iterations=20, generate_call_budget_s=0.1, forward_call_budget_s=0.1),
    "default": Profile("default", 10_000, (1, 64, 1024),
                       TimingPolicy(warmup=10, warmup_seconds=1.0, min_iterations=20, min_seconds=0.25,
                                    max_seconds=3.0, rounds=2, target_ci=0.01),
                       "published numbers: full training budgets; each timing runs until its median is known "
                       "within ±1% (95% interval), at least 0.25 s, at most 3 s (a generated sample: 5 s); "
                       "1,000+ calls at batch 1"),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"Unknown profile '{name}': use one of {', '.join(PROFILES)}.")
    return PROFILES[name]


@dataclass(frozen=True)
class RunConfig:
    profile: str = "default"
    #: the seed of the work at hand; a run's seeds are ``seeds`` (each job is built once per seed)
    seed: int = 0
    device: str = "auto"
    steps: int | None = None
    data_dir: Path | None = None
    #: threads for timing: the cores this process may use (affinity mask and cgroup quota)
    threads: int = field(default_factory=usable_cores)
    baselines: bool = True
    timing: bool = True
    text_file: Path | None = None
    #: torch threads while a plugin trains. 1 by default: small models train as fast on one thread, and
    #: multi-threaded torch slows down many-fold when anything else shares a small machine.
    train_threads: int = 1
    #: seconds a job may take before its process is killed (None: no limit); ``executor`` is process or inline
    timeout: float | None = 3600.0
    executor: str = "process"  # process | inline | ray
    #: build-and-score work at once (process executor); timing always runs alone, one job at a time
    jobs: int = field(default_factory=usable_cores)
    address: str | None = None  # ray executor: the cluster to join (None: start a local instance)
    features: str = "default"  # image feature space: the shipped digit CNN, or "inception" (torch-fidelity)
    inception_weights: Path | None = None
    #: reuse trained models and their validated graphs across runs (see genbench.cache); where they live
    cache: bool = True
    cache_dir: Path | None = None  # None: $GENBENCH_CACHE_DIR, else ~/.cache/genbench
    #: GiB of memory (RLIMIT_DATA) each job's process may allocate; None: no limit
    max_memory: float | None = None
    #: training seeds: every model is built and scored once per seed; quality is their mean ± std
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        get_profile(self.profile)
        object.__setattr__(self, "seeds", tuple(self.seeds) or (self.seed,))
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"Invalid --seeds {','.join(map(str, self.seeds))}: each seed may appear once.")
        for s in self.seeds:
            if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < 2**32:
                raise ConfigError(f"Invalid seed {s!r}: use whole numbers from 0 to {2**32 - 1}.")
        if self.steps is not None and self.steps < 0:
            raise ConfigError(f"Invalid --steps {self.steps}: use 0 (untrained) or a positive number.")
        if self.threads < 1:
            raise ConfigError(f"Invalid --threads {self.threads}: use 1 or more.")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"Invalid --timeout {self.timeout}: use a positive number of seconds.")
        if self.executor not in ("process", "inline", "ray"):
            raise ConfigError(f"Invalid executor '{self.executor}': use process, inline or ray.")
        if self.features not in ("default", "inception"):
            raise ConfigError(f"Invalid --features '{self.features}': use default or inception.")
        if self.jobs < 1:
            raise ConfigError(f"Invalid --jobs {self.jobs}: use 1 or more.")
        if self.train_threads < 1:
            raise ConfigError(f"Invalid --train-threads {self.train_threads}: use 1 or more.")
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise ConfigError(f"--data-dir {self.data_dir} is not a directory.")
        if self.max_memory is not None and not self.max_memory > 0:
            raise ConfigError(f"Invalid --max-memory {self.max_memory}: use a positive number of GiB.")
        if self.cache_dir is not None and Path(self.cache_dir).exists() and not Path(self.cache_dir).is_dir():
            raise ConfigError(f"--cache-dir {self.cache_dir} is a file, not a directory: pass a directory.")
        if self.text_file is not None and not Path(self.text_file).is_file():
            raise ConfigError(f"--text-file {self.text_file} is not a readable file.")

    def to_dict(self) -> dict:
        return {"profile": self.profile, "seed": self.seed, "device": self.device, "steps": self.steps,
                "data_dir": str(self.data_dir) if self.data_dir else None, "threads": self.threads,
                "baselines": self.baselines, "timing": self.timing,
                "text_file": str(self.text_file) if self.text_file else None, "train_threads": self.train_threads,
                "timeout": self.timeout, "executor": self.executor, "jobs": self.jobs, "address": self.address,
                "features": self.features, "inception_weights": str(self.inception_weights) if self.inception_weights else None,
                "cache": self.cache, "cache_dir": str(self.cache_dir) if self.cache_dir else None,
                "max_memory": self.max_memory, "seeds": list(self.seeds)}
