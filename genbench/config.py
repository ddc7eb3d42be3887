"""Profiles (how much work a run does) and the configuration of one run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .perf import TimingPolicy


@dataclass(frozen=True)
class Profile:
    """``max_samples``: samples drawn per job for quality metrics (capped by the training split's size,
    so that a model's FD and the floor use the same ``n``). ``batch_sizes``: the throughput sweep."""

    name: str
    max_samples: int
    batch_sizes: tuple[int, ...]
    timing: TimingPolicy
    description: str


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", 500, (1, 64, 1024),
                     TimingPolicy(warmup=3, min_iterations=20, min_seconds=0.05, max_seconds=0.5, rounds=2),
                     "CI check: tiny training budgets, short timings (timings are flagged not valid)"),
    "default": Profile("default", 10_000, (1, 64, 1024),
                       TimingPolicy(warmup=20, min_iterations=1000, min_seconds=1.0, max_seconds=10.0, rounds=4),
                       "published numbers: full training budgets, 1,000+ timed calls per measurement"),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"Unknown profile '{name}': use one of {', '.join(PROFILES)}.")
    return PROFILES[name]


@dataclass(frozen=True)
class RunConfig:
    profile: str = "default"
    seed: int = 0
    device: str = "auto"
    steps: int | None = None
    data_dir: Path | None = None
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    baselines: bool = True
    timing: bool = True

    def __post_init__(self) -> None:
        get_profile(self.profile)
        if self.steps is not None and self.steps < 0:
            raise ConfigError(f"Invalid --steps {self.steps}: use 0 (untrained) or a positive number.")
        if self.threads < 1:
            raise ConfigError(f"Invalid --threads {self.threads}: use 1 or more.")
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise ConfigError(f"--data-dir {self.data_dir} is not a directory.")

    def to_dict(self) -> dict:
        return {"profile": self.profile, "seed": self.seed, "device": self.device, "steps": self.steps,
                "data_dir": str(self.data_dir) if self.data_dir else None, "threads": self.threads,
                "baselines": self.baselines, "timing": self.timing}
