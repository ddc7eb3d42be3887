"""Profiles (how much work a run does) and the configuration of one run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError
from .perf import TimingPolicy
from .perf.cores import usable_cores

if TYPE_CHECKING:
    from .settings import UserProfile


@dataclass(frozen=True)
class Profile:
    """``max_samples``: samples drawn per job for quality metrics (capped by the training split's size,
    so that a model's FD and the floor use the same ``n``). ``batch_sizes``: the throughput sweep.

    ``timing``: each forward measurement (at batch 1 with at least ``latency_iterations`` calls, so that
    its p99 can stand); ``generate_timing``: each generate measurement (a whole sample per row, which for
    an autoregressive model is one graph call per token); a generate batch is timed only when one call is
    estimated to take at most ``generate_call_budget_s`` (batch 1 always), a forward batch only when one
    call is estimated (from the batch before) to take at most ``forward_call_budget_s``. A budget never
    exceeds a third of its policy's ``max_seconds`` (:func:`genbench.timing.call_budget`): a call it lets in
    always gets the three calls a figure needs; the built-in profiles keep ``max_seconds`` at three budgets.
    """

    name: str
    max_samples: int
    batch_sizes: tuple[int, ...]
    timing: TimingPolicy
    description: str
    generate_timing: TimingPolicy = TimingPolicy(warmup=1, warmup_seconds=2.0, min_iterations=20, min_seconds=0.5,
                                                 max_seconds=3.0, rounds=2, target_ci=0.01)
    latency_iterations: int = 1000
    generate_call_budget_s: float = 1.0
    forward_call_budget_s: float = 0.5  # three calls fit in the default's 1.5 s cap
    #: a likelihood (elbo) or logits graph's forward pass is timed only up to this batch (None: the whole
    #: sweep): a detail beside the generate figure, which took 38 s of a default run at batch 1024
    detail_max_batch: int | None = 64


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", 500, (1, 64),
                     TimingPolicy(warmup=3, warmup_seconds=0.1, min_iterations=20, min_seconds=0.05, max_seconds=0.3,
                                  rounds=2, target_ci=None),
                     "CI check: tiny training budgets, short timings (their p99 and most throughputs are flagged "
                     "not valid)",
                     TimingPolicy(warmup=1, warmup_seconds=0.1, min_iterations=3, min_seconds=0.05, max_seconds=0.3,
                                  rounds=1, target_ci=None),
                     latency_iterations=20, generate_call_budget_s=0.1, forward_call_budget_s=0.1),
    "default": Profile("default", 10_000, (1, 64, 1024),
                       TimingPolicy(warmup=10, warmup_seconds=0.5, min_iterations=20, min_seconds=0.25,
                                    max_seconds=1.5, rounds=2, target_ci=0.01),
                       "published numbers: full training budgets; each timing runs until its median is known "
                       "within ±1% (95% interval), at least 0.25 s, at most 1.5 s (a generated sample: 3 s); "
                       "1,000+ calls at batch 1"),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"Unknown profile '{name}': use one of {', '.join(PROFILES)}.")
    return PROFILES[name]


#: upper bounds of the run options: beyond them a value is a typo, and some would overflow the system calls
#: that use them (poll() takes at most ~24 days in ms; setrlimit a 64-bit byte count)
MAX_SEED = 2**32 - 1
MAX_STEPS = 10**9
MAX_WORKERS = 1024
MAX_TIMEOUT = 7 * 24 * 3600.0
MAX_MEMORY_GIB = 2.0**20
MAX_FID_N = 10**7
#: the image feature spaces --features may name (genbench.features): the digit CNN, the 2015 Inception of FID
FEATURE_SPACES = ("default", "inception")


def parse_features(text: object) -> str:
    """``--features``: one or more of :data:`FEATURE_SPACES`, comma-separated, each once; returned in canonical
    order (``"default,inception"`` however it was written)."""
    names = [t.strip() for t in str(text).split(",")] if isinstance(text, str) else []
    if not names or any(n not in FEATURE_SPACES for n in names) or len(set(names)) != len(names):
        raise ConfigError(f"Invalid --features {str(text)[:40]!r}: use default, inception or default,inception "
                          "(each space once).")
    return ",".join(n for n in FEATURE_SPACES if n in names)


def _whole(flag: str, value: object, low: int, high: int, what: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"Invalid --{flag} {value!r}: use {what or 'a whole number'} from {low} to {high}.")


def _number(flag: str, value: object, high: float, unit: str) -> None:
    import math

    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 < value <= high:  # type: ignore[operator]
        raise ConfigError(f"Invalid --{flag} {value!r}: use a finite number of {unit} above 0 and at most {high:.0f}.")


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
    #: fresh timing processes per job (``--timing-repeats K``), interleaved across jobs: ``compare`` judges a
    #: latency change on the spread of their per-process medians (``PerfRecord.process_p50_ms``)
    timing_repeats: int = 1
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
    #: image feature spaces, comma-separated: "default" (the shipped digit CNN: fd and the other feature-space
    #: metrics), "inception" (the 2015 Inception of FID: fid), or both ("default,inception")
    features: str = "default"
    inception_weights: Path | None = None
    #: generated samples FID scores against the reference split (None: every sample the job draws)
    fid_n: int | None = None
    #: reuse trained models and their validated graphs across runs (see genbench.cache); where they live
    cache: bool = True
    cache_dir: Path | None = None  # None: $GENBENCH_CACHE_DIR, else ~/.cache/genbench
    #: GiB of memory (RLIMIT_DATA) each job's process may allocate; None: no limit
    max_memory: float | None = None
    #: containment of build processes (plugin code): auto (bwrap where it can run), bwrap, or none
    sandbox: str = "auto"
    #: training seeds: every model is built and scored once per seed; quality is their mean ± std
    seeds: tuple[int, ...] = ()
    #: what the plugin trains on (genbench limits): this share of the training split, nested and stratified,
    #: with this share of it replaced by noise (genbench.data.variants); 1.0 and 0.0 are the split itself
    train_fraction: float = 1.0
    train_corruption: float = 0.0
    #: a profile defined in a settings file (genbench.settings), based on ``profile``: plugins train as for
    #: ``profile`` (with its ``steps``, already in ``steps``); samples and timing are the user profile's
    user_profile: "UserProfile | None" = None

    def __post_init__(self) -> None:
        get_profile(self.profile)
        if self.user_profile is not None and self.user_profile.based_on != self.profile:
            raise ConfigError(f"Profile '{self.user_profile.name}' is based on {self.user_profile.based_on}, not "
                              f"{self.profile}.")
        object.__setattr__(self, "seeds", tuple(self.seeds) or (self.seed,))
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"Invalid --seeds {','.join(map(str, self.seeds))}: each seed may appear once.")
        for s in (self.seed, *self.seeds):
            _whole("seed", s, 0, MAX_SEED)
        if self.steps is not None:
            _whole("steps", self.steps, 0, MAX_STEPS, "0 (untrained) or a positive number")
        _whole("threads", self.threads, 1, MAX_WORKERS)
        _whole("train-threads", self.train_threads, 1, MAX_WORKERS)
        _whole("jobs", self.jobs, 1, MAX_WORKERS)
        if self.timeout is not None:
            _number("timeout", self.timeout, MAX_TIMEOUT, "seconds")
        if self.max_memory is not None:
            _number("max-memory", self.max_memory, MAX_MEMORY_GIB, "GiB")
        for flag in ("baselines", "timing", "cache"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"Invalid {flag}={getattr(self, flag)!r}: use True or False.")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"Invalid --device {self.device!r}: use auto, cpu or cuda.")
        if self.executor not in ("process", "inline", "ray"):
            raise ConfigError(f"Invalid executor '{self.executor}': use process, inline or ray.")
        if self.address is not None and self.executor != "ray":
            raise ConfigError(f"--address {self.address!r} needs --executor ray (it names the Ray cluster to join); "
                              f"drop it to run with --executor {self.executor}.")
        if self.sandbox not in ("auto", "bwrap", "none"):
            raise ConfigError(f"Invalid --sandbox {self.sandbox!r}: use auto, bwrap or none.")
        object.__setattr__(self, "features", parse_features(self.features))
        if self.fid_n is not None:
            _whole("fid-n", self.fid_n, 2, MAX_FID_N, "at least 2 (a covariance needs two samples)")
            if "inception" not in self.feature_spaces:
                raise ConfigError(f"--fid-n {self.fid_n} sets the n of fid, which only the inception feature space "
                                  "gives: add --features inception (or default,inception), or drop --fid-n.")
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise ConfigError(f"--data-dir {self.data_dir} is not a directory.")
        if self.cache_dir is not None and Path(self.cache_dir).exists() and not Path(self.cache_dir).is_dir():
            raise ConfigError(f"--cache-dir {self.cache_dir} is a file, not a directory: pass a directory.")
        if self.text_file is not None and not Path(self.text_file).is_file():
            raise ConfigError(f"--text-file {self.text_file} is not a readable file.")
        if self.inception_weights is not None and not Path(self.inception_weights).is_file():
            raise ConfigError(f"--inception-weights {self.inception_weights} is not a file.")
        self.training_variant()  # refuses a fraction or corruption out of range

    def to_dict(self) -> dict:
        return {"profile": self.profile, "seed": self.seed, "device": self.device, "steps": self.steps,
                "data_dir": str(self.data_dir) if self.data_dir else None, "threads": self.threads,
                "baselines": self.baselines, "timing": self.timing, "timing_repeats": self.timing_repeats,
                "text_file": str(self.text_file) if self.text_file else None, "train_threads": self.train_threads,
                "timeout": self.timeout, "executor": self.executor, "jobs": self.jobs, "address": self.address,
                "features": self.features, "inception_weights": str(self.inception_weights) if self.inception_weights else None,
                "fid_n": self.fid_n,
                "cache": self.cache, "cache_dir": str(self.cache_dir) if self.cache_dir else None,
                "max_memory": self.max_memory, "sandbox": self.sandbox, "seeds": list(self.seeds),
                "train_fraction": self.train_fraction, "train_corruption": self.train_corruption,
                "user_profile": self.user_profile.to_dict() if self.user_profile is not None else None}

    @property
    def feature_spaces(self) -> tuple[str, ...]:
        """The image feature spaces of this run, in canonical order (``("default",)``, ``("inception",)`` or both)."""
        return tuple(self.features.split(","))

    def training_variant(self):  # -> genbench.data.variants.TrainingVariant
        """The training-data variant these settings ask for (identity for an ordinary run)."""
        from .data.variants import TrainingVariant

        return TrainingVariant(self.train_fraction, self.train_corruption)

    def profile_settings(self) -> Profile:
        """The profile this run uses: the built-in ``profile``, or the user profile derived from it."""
        base = get_profile(self.profile)
        return base if self.user_profile is None else self.user_profile.derive(base)
