"""``genbench limits``: how much data a model needs, how clean, and what more compute buys, as numbers.

One study runs each model over three axes; every point is an ordinary run (the same harness, metrics,
floors and model cache as ``genbench run``; no timing), built once per training seed (3 by default):

* **quantity**: nested, stratified subsets of 1/16, 1/8, 1/4, 1/2 and all of the training split;
* **quality**: 0%, 10%, 30%, 50% of the training examples replaced by noise (:mod:`genbench.data.variants`);
* **compute**: training budgets of 1/4, 1/2, 1 and 2 × S, where S is the steps the 1× job reported
  (``TrainSummary.steps``), passed as ``steps = round(f · S)``, with wall seconds and an estimate of the
  training FLOPs (:func:`training_flops`).

The reference point (all data, clean, S steps) is one run shared by the three axes: its numbers are the
0% corruption point, the full-data point and the 1× point alike, and they are the numbers an ordinary
``genbench run`` with the same seeds gives. Every point of the quantity and quality axes also fits the
task's trivial baseline (``baseline-gaussian``; ``baseline-bigram`` for text) on the same data, so each
curve has its reference beside it; the scored ``n``, the held-out data and the floors never change.

Results: ``<out>/<limits-id>/limits.json`` (schema ``genbench.limits/1``, shipped in
:mod:`genbench.schemas`), the point runs under ``runs/``, plots and ``limits.md``
(:mod:`genbench.reports.limits`). ``genbench limits`` on the command line calls :func:`limits`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import __version__
from .config import RunConfig, get_profile
from .errors import ConfigError, OutputError, ResultsError, RunInterrupted
from .text import plain, plural, points_text  # noqa: F401 - genbench.limits.plural etc. stay importable

SCHEMA = "genbench.limits/1"
DEFAULT_OUT = Path("results") / "limits"
DEFAULT_SEEDS = (0, 1, 2)
QUANTITY = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
CORRUPTION = (0.0, 0.1, 0.3, 0.5)
COMPUTE = (0.25, 0.5, 1.0, 2.0)
#: the largest training budget a study may ask for, as a multiple of S (a typo such as 1e6 is refused)
MAX_COMPUTE = 16.0
#: the fewest training examples (images, points, blocks of text) a quantity point may keep: a fitted Gaussian
#: (the baseline) needs two for a covariance, and a stratified subset needs one per class
MIN_TRAIN_EXAMPLES = 2
#: each task kind's trivial baseline, fitted at every point on the same data as the models
BASELINES = {"image": "baseline-gaussian", "points": "baseline-gaussian", "text": "baseline-bigram"}
#: training steps the FLOP counter runs (their difference gives the cost of one step, setup excluded)
FLOP_PROBE_STEPS = (2, 4)
FLOPS_METHOD = ("estimate: torch.utils.flop_counter.FlopCounterMode over train() with steps=2 and steps=4 "
                "(matmuls, convolutions and attention, forward and backward); (F4 - F2) / 2 per step x steps")
#: the augmentation-gain experiment: real images per class-balanced draw, and classifier seeds, per profile
AUGMENTATION = {"smoke": ((10, 50), 3), "default": ((10, 20, 50, 100), 5)}
LIMITS_FILE = "limits.json"


class _Record:
    """``to_dict``/``from_dict`` for the frozen dataclasses of ``limits.json``; the fields named in
    ``TUPLES`` read back as tuples (JSON has lists)."""

    TUPLES: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        d = {k: v for k, v in data.items() if k in names}
        d.update({k: tuple(d.get(k) or ()) for k in cls.TUPLES})
        return cls(**d)


@dataclass(frozen=True)
class LimitsPoint(_Record):
    """One model (or the baseline) at one point of one axis: the mean quality over seeds with everything
    a reader needs to place it. ``x`` is the axis value (share of the training split kept, share
    corrupted, or steps factor); ``run`` the point's run directory relative to the study's."""

    axis: str
    x: float
    model: str
    role: str  # model | baseline
    status: str  # ok | failed | skipped
    run: str | None = None
    shared: str | None = None  # "reference": the study's reference run, shared by the three axes
    train_examples: int | None = None
    corruption: float = 0.0
    steps: int | None = None  # requested (None: the profile's own budget)
    steps_reported: tuple[int | None, ...] = ()
    train_seconds: float | None = None
    flops: float | None = None
    quality: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    TUPLES = ("steps_reported",)


@dataclass(frozen=True)
class LimitsResult(_Record):
    """A whole study, exactly as stored in ``limits.json``."""

    schema: str
    limits_id: str
    genbench_version: str
    started_at: str
    finished_at: str | None
    command: str
    task: str
    task_kind: str
    profile: str
    seeds: tuple[int, ...]
    device: str
    models: tuple[str, ...]
    baseline: str | None
    n_train: int
    headline: Mapping[str, Any]
    axes: Mapping[str, Any]
    settings: Mapping[str, Any]
    environment: Mapping[str, Any]
    runs: Mapping[str, str] = field(default_factory=dict)
    points: tuple[LimitsPoint, ...] = ()
    flops: Mapping[str, Any] = field(default_factory=dict)
    statements: tuple[Mapping[str, Any], ...] = ()
    augmentation: tuple[Mapping[str, Any], ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    TUPLES = ("seeds", "models", "statements", "augmentation", "warnings")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LimitsResult":
        result = super().from_dict(data)
        return replace(result, points=tuple(LimitsPoint.from_dict(p) for p in result.points))

    def curve(self, axis: str, model: str) -> list[LimitsPoint]:
        """The points of one model (or the baseline) on one axis, in order of ``x``."""
        return sorted((p for p in self.points if p.axis == axis and p.model == model), key=lambda p: p.x)

    @property
    def failed(self) -> list[LimitsPoint]:
        return [p for p in self.points if p.status == "failed"]


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------- reading and writing


def write_limits(result: LimitsResult, directory: Path) -> Path:
    """``limits.json``, checked against its shipped schema first, written atomically."""
    from .results import atomic_write_text
    from .schemas import validate

    data = result.to_dict()
    validate(data, SCHEMA, "the limits result")
    path = Path(directory) / LIMITS_FILE
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    return path


def load_limits(path: str | Path) -> LimitsResult:
    """A study from its directory or ``limits.json``; one-line errors for missing, corrupt or foreign files."""
    from .results import read_json
    from .schemas import validate

    path = Path(path)
    if path.is_dir():
        path = path / LIMITS_FILE
    if not path.is_file():
        raise ResultsError(f"No limits file at {path}; pass a directory made by 'genbench limits'.")
    data = read_json(path, "limits file")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ResultsError(f"{path} has schema {str(found)[:80]!r}, expected '{SCHEMA}'.")
    validate(data, SCHEMA, str(path))
    try:
        return LimitsResult.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultsError(f"{path} does not match schema {SCHEMA}: {' '.join(str(exc).split())[:160]}.") from exc


# --------------------------------------------------------------------------- the study


def limits(models: Sequence[str], *, task: str | None = None, profile: str = "default",
           out: str | Path = DEFAULT_OUT, seeds: Sequence[int] = DEFAULT_SEEDS, device: str = "auto",
           jobs: int | None = None, executor: str = "process", timeout: float | None = 3600.0, cache: bool = True,
           cache_dir: str | Path | None = None, data_dir: str | Path | None = None,
           text_file: str | Path | None = None, train_threads: int = 1,
           quantity: Sequence[float] = QUANTITY, corruption: Sequence[float] = CORRUPTION,
           compute: Sequence[float] = COMPUTE, host: Any = None, command: str | None = None,
           echo: Callable[[str], None] | None = None, resume: str | Path | None = None,
           options: Mapping[str, Any] | None = None) -> LimitsResult:
    """Run the study and return the :class:`LimitsResult` also written to ``<out>/<limits-id>/limits.json``.

    ``quantity``, ``corruption`` and ``compute`` are the axes' values (1.0, 0.0 and 1.0, the reference,
    are always included; a value given twice runs once). Everything is checked before anything is written:
    a bad option, task data that cannot be loaded, or models that all decline the task is a
    :class:`~genbench.errors.ConfigError` (or the data's own error) and leaves no study directory.

    ``resume=DIR`` finishes an interrupted study with its stored settings: finished points are kept, a
    point whose run was stopped is resumed, missing ones run; a finished study is left as it is. ``options``
    are the arguments given with ``resume`` (default: those that differ from their defaults): one that
    contradicts the stored study is refused, except ``jobs``.

    Ctrl-C or SIGTERM stops the study: every finished point is kept, and
    :class:`~genbench.errors.RunInterrupted` says to run ``genbench limits --resume DIR``.
    """
    echo = echo or (lambda s: None)
    host = host or make_host()
    if resume is not None:
        given = dict(options) if options is not None else _non_default(locals())
        return _resume(resume, given, host, echo)
    if not models:
        raise ConfigError("Name at least one model to study (see 'genbench list').")
    if not task:
        raise ConfigError("Name the task to study with --task (see 'genbench list').")
    from .cache import default_cache_dir
    from .runner import output_dir, environment, new_run_id
    from .runtime import resolve_device

    get_profile(profile)
    reg = host.registry
    spec = reg.dataset(task)
    _note_duplicates(models, "MODEL arguments", echo)
    chosen = [reg.model(m) for m in dict.fromkeys(models)]
    unfit = [m.name for m in chosen if spec.kind not in m.tasks]
    if unfit:
        raise ConfigError(f"{', '.join(unfit)} cannot run on '{task}' (a {spec.kind} task); pick a task they support.")
    baseline = BASELINES.get(spec.kind)
    if baseline not in reg.models.names() or baseline in [m.name for m in chosen]:
        baseline = None  # not installed, or itself the model studied
    axes = {"quantity": _axis(quantity, 1.0, lambda v: 0 < v <= 1, "--fractions", "in (0, 1]", echo),
            "quality": _axis(corruption, 0.0, lambda v: 0 <= v < 1, "--corruption", "in [0, 1)", echo),
            "compute": _axis(compute, 1.0, lambda v: 0 < v <= MAX_COMPUTE, "--compute",
                             f"above 0 and at most {MAX_COMPUTE:g} (× S, the reference steps)", echo)}
    seeds = tuple(seeds) or DEFAULT_SEEDS
    config = RunConfig(profile=profile, seed=seeds[0], seeds=seeds, device=device, timing=False, baselines=False,
                       data_dir=Path(data_dir) if data_dir else None, text_file=Path(text_file) if text_file else None,
                       train_threads=train_threads, timeout=timeout, executor=executor, cache=cache,
                       cache_dir=Path(cache_dir).resolve() if cache_dir else default_cache_dir() if cache else None,
                       **({"jobs": jobs} if jobs is not None else {}))
    if executor == "process":
        from .executors.local import check_can_start

        check_can_start()
    dev = resolve_device(device)
    from .harness import load_task_state

    dataset = load_task_state(spec, config).dataset
    n_train = len(dataset.train_x)  # examples; bytes for text
    _check_fractions(axes["quantity"], dataset, spec.kind)
    _check_out(out)
    flops = _probe_models(chosen, spec, config, dev, echo)
    out_dir = output_dir(out)  # nothing is made before this point
    limits_id = new_run_id()
    directory = out_dir / limits_id
    try:
        directory.mkdir(exist_ok=False)
    except OSError as exc:
        raise OutputError(f"Cannot create the study directory {directory}: {exc.strerror or exc}.") from exc
    result = LimitsResult(
        schema=SCHEMA, limits_id=limits_id, genbench_version=__version__, started_at=_now(), finished_at=None,
        command=command or "genbench.limits(...)", task=task, task_kind=spec.kind, profile=profile, seeds=seeds,
        device=dev, models=tuple(m.name for m in chosen), baseline=baseline, n_train=n_train, headline={},
        axes={"quantity": {"values": axes["quantity"], "subsets": _SUBSETS},
              "quality": {"values": axes["quality"], "noise": _noise_text(dataset)},
              "compute": {"values": axes["compute"], "reference_steps": {}}},
        settings={**config.to_dict(), "device": dev, "requested_device": device, "task": task,
                  "models": [m.name for m in chosen]},
        environment={**environment(dev, config.threads), "executor": config.executor, "jobs": config.jobs},
        flops=flops, warnings=tuple(f"{m}: {f['declined']}" for m, f in flops.items() if f.get("declined")))
    write_limits(result, directory)
    echo(f"limits {limits_id}: {', '.join(result.models)} on {task}, profile {profile}, "
         f"{plural(len(seeds), 'seed')} per point")
    return _interruptible(result, directory, config, host, echo)


def make_host() -> Any:
    from .plugins import make_plugin_manager

    return make_plugin_manager()


def _note_duplicates(values: Sequence[Any], option: str, echo: Callable[[str], None]) -> None:
    twice = [v for v in dict.fromkeys(values) if list(values).count(v) > 1]
    if twice:
        echo(f"note: {option}: {', '.join(map(_show, twice))} given more than once; each runs once")


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _check_out(out: str | Path) -> None:
    """A one-line error when ``--out`` cannot become a writable directory, checked without making anything."""
    import os

    path = Path(out).absolute()
    for existing in (p for p in (path, *path.parents) if p.exists()):
        if not existing.is_dir():
            raise ConfigError(f"Cannot use --out {out}: {existing} is not a directory; give a directory you can "
                              "write to.")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"Cannot use --out {out}: {existing} is not writable; give a directory you can write to.")
        return


def _check_fractions(fractions: Sequence[float], dataset: Any, kind: str) -> None:
    """Refuse a quantity point that keeps fewer examples than :data:`MIN_TRAIN_EXAMPLES` or than the classes."""
    from .data.variants import TEXT_BLOCK

    classes = len(np.unique(dataset.train_y)) if dataset.train_y is not None and kind != "text" else 0
    need = max(MIN_TRAIN_EXAMPLES, classes)
    n = -(-len(dataset.train_x) // TEXT_BLOCK) if kind == "text" else len(dataset.train_x)
    what = f"blocks of {TEXT_BLOCK} bytes" if kind == "text" else "training examples"
    for f in fractions:
        kept = train_examples(n, "image", f)  # examples (blocks for text), round(f · N)
        if kept < need:
            why = (f"one per class ({classes} classes) for a stratified subset to hold every class, and two for "
                   "the baseline's covariance") if classes >= MIN_TRAIN_EXAMPLES else "two for the baseline's covariance"
            raise ConfigError(f"Invalid --fractions value {f:g}: it keeps {kept:,} of the {n:,} {what}, and a point "
                              f"needs at least {need}: {why}. Use fractions of at least {need / n:.2g}.")


def _probe_models(chosen: Sequence[Any], spec: Any, config: RunConfig, device: str,
                  echo: Callable[[str], None]) -> dict[str, Any]:
    """Each model's training-FLOP estimate (:func:`training_flops`), made before the study starts: its probe
    trains for a few steps, which is also where a model declines a task. When every model declines, the
    study is refused with their reasons (nothing to study); a model that declines among others is noted."""
    flops = {}
    for m in chosen:
        echo(f"estimating training FLOPs of {m.name}")
        flops[m.name] = training_flops(m, spec, config, device)
    declined = {m: f["declined"] for m, f in flops.items() if f.get("declined")}
    if declined and len(declined) == len(flops):
        raise ConfigError(f"Nothing to study: {'; '.join(declined.values())}.")
    for m, why in declined.items():
        echo(f"note: {why}; its points are skipped")
    return flops


def _non_default(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """limits()'s arguments that were given a value other than their default (what a resume must agree with)."""
    import inspect

    params = inspect.signature(limits).parameters
    return {name: arguments[name] for name in _RESUME_FLAGS
            if arguments[name] != params[name].default and not (name in ("models", "task") and not arguments[name])}


#: limits()'s arguments a resume takes from the stored study (``jobs`` alone may change), and their options
_RESUME_FLAGS = {"models": "MODEL arguments", "task": "--task", "profile": "--profile", "out": "--out",
                 "seeds": "--seeds", "device": "--device", "executor": "--isolation", "timeout": "--timeout",
                 "cache": "--no-cache", "cache_dir": "--cache-dir", "data_dir": "--data-dir",
                 "text_file": "--text-file", "train_threads": "--train-threads", "quantity": "--fractions",
                 "corruption": "--corruption", "compute": "--compute", "jobs": "--jobs"}


def _resume(resume: str | Path, given: Mapping[str, Any], host: Any, echo: Callable[[str], None]) -> LimitsResult:
    previous = load_limits(resume)
    directory = Path(resume) if Path(resume).is_dir() else Path(resume).parent
    _check_resume_options(previous, directory, given)
    if previous.finished_at is not None:
        echo(f"limits {previous.limits_id} finished at {previous.finished_at}: nothing to resume "
             f"({directory / LIMITS_FILE})")
        return previous
    config = _config_from(previous.settings)
    if given.get("jobs") is not None:
        config = replace(config, jobs=given["jobs"])
    echo(f"resuming limits {previous.limits_id}: {len(previous.runs)} point runs started")
    return _interruptible(previous, directory, config, host, echo, resume=True)


def _check_resume_options(previous: LimitsResult, directory: Path, given: Mapping[str, Any]) -> None:
    """Refuse options that contradict the stored study, all of them in one line (only --jobs may change)."""
    s = previous.settings

    def same_path(a: Any, b: Any) -> bool:
        return (not a and not b) or (bool(a) and bool(b) and Path(a).resolve() == Path(b).resolve())

    def axis(name: str, reference: float) -> tuple[float, ...]:
        return tuple(sorted({float(v) for v in given[name]} | {reference}))

    stored: dict[str, Any] = {
        "models": tuple(previous.models), "task": previous.task, "profile": previous.profile,
        "out": directory.resolve().parent, "seeds": tuple(previous.seeds), "device": s.get("requested_device"),
        "executor": s.get("executor"), "timeout": s.get("timeout"), "cache": s.get("cache"),
        "cache_dir": s.get("cache_dir"), "data_dir": s.get("data_dir"), "text_file": s.get("text_file"),
        "train_threads": s.get("train_threads"),
        **{name: tuple(previous.axes.get(a, {}).get("values") or ()) for name, a in
           (("quantity", "quantity"), ("corruption", "quality"), ("compute", "compute"))}}
    wrong = []
    for name, value in given.items():
        if name == "jobs" or name not in stored:
            continue
        kept = stored[name]
        if name in ("models", "seeds"):
            agrees = tuple(dict.fromkeys(value)) == kept
        elif name in ("quantity", "corruption", "compute"):
            agrees = axis(name, 0.0 if name == "corruption" else 1.0) == tuple(float(v) for v in kept)
        elif name in ("out", "cache_dir", "data_dir", "text_file"):
            agrees = same_path(value, kept)
        else:
            agrees = value == kept
        if not agrees:
            shown = ",".join(map(_show, kept)) if isinstance(kept, (list, tuple)) else kept
            given_text = ",".join(map(_show, value)) if isinstance(value, (list, tuple)) else value
            wrong.append(f"{_RESUME_FLAGS[name]} {given_text} contradicts its stored "
                         f"{_RESUME_FLAGS[name].lstrip('-').replace('MODEL arguments', 'models')} {shown}")
    if wrong:
        raise ConfigError(f"--resume finishes the study in {directory} with the settings it was started with: "
                          f"{'; '.join(wrong)}. Drop them (only --jobs may change), or start a new study.")


def _interruptible(result: LimitsResult, directory: Path, config: RunConfig, host: Any,
                   echo: Callable[[str], None], resume: bool = False) -> LimitsResult:
    """:func:`_study`, turning Ctrl-C, SIGTERM or a full disk at any stage into one line that says how to
    finish the study (``genbench limits --resume DIR``), every finished point kept."""
    import signal
    import threading

    where: dict[str, str] = {}

    def handler(signum: int, frame: Any) -> None:
        where.setdefault("reason", signal.Signals(signum).name)
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        return _study(result, directory, config, host, echo, resume=resume, where=where)
    except (RunInterrupted, KeyboardInterrupt) as exc:
        reason = getattr(exc, "reason", None) or where.get("reason") or "SIGINT"
        point = f" during {where['stage']}" if where.get("stage") else ""
        finish = f"finish the study with: genbench limits --resume {directory}"
        kept = f"every finished point is kept in {directory / LIMITS_FILE}"
        message = (f"Interrupted ({reason}){point}: {kept}; {finish}" if reason in ("SIGINT", "SIGTERM") else
                   f"{reason} The study stopped{point}: {kept}; make room, then {finish}")
        raise RunInterrupted(message, None, directory) from None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


_SUBSETS = ("nested (each inside the next larger) and stratified by label; drawn per training seed from the "
            "training split; scored n, held-out data and floors unchanged")


def train_examples(n_train: int, kind: str, fraction: float) -> int:
    """Examples a quantity point trains on: ``round(f · N)``; for text, bytes in kept blocks of 256."""
    from .data.variants import TEXT_BLOCK, kept_count

    if kind != "text":
        return kept_count(n_train, fraction)
    return min(n_train, kept_count(-(-n_train // TEXT_BLOCK), fraction) * TEXT_BLOCK)


def _noise_text(dataset: Any) -> str:
    from .data.variants import noise_description

    return ("a share of the training examples replaced by " + noise_description(dataset.training_data())
            + "; labels kept; drawn per training seed")


def parse_values(text: str | None, option: str, default: Sequence[float]) -> tuple[float, ...]:
    """An axis' values from the command line: ``"0.0625,0.5"`` or ``"1/16,1/2"``; ``default`` for None."""
    from fractions import Fraction

    if text is None:
        return tuple(default)
    try:
        return tuple(float(Fraction(p.strip())) for p in text.split(","))
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"Invalid {option} {text!r}: give numbers or fractions separated by commas, "
                          "e.g. 1/16,1/2.") from None


def _axis(values: Sequence[float], reference: float, ok: Callable[[float], bool], option: str,
          allowed: str, echo: Callable[[str], None] = lambda s: None) -> list[float]:
    _note_duplicates([float(v) for v in values], option, echo)
    vals = sorted({float(v) for v in values} | {reference})
    bad = [v for v in vals if not ok(v)]
    if bad:
        raise ConfigError(f"Invalid {option} value {bad[0]:g}: use values {allowed}.")
    return vals


def _config_from(settings: Mapping[str, Any]) -> RunConfig:
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    kwargs = {k: v for k, v in settings.items() if k in fields}
    kwargs["device"] = settings.get("requested_device", settings.get("device", "auto"))
    kwargs["seeds"] = tuple(kwargs.get("seeds") or (0,))
    for key in ("data_dir", "text_file", "inception_weights", "cache_dir"):
        kwargs[key] = Path(kwargs[key]) if kwargs.get(key) else None
    return RunConfig(**kwargs)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _study(result: LimitsResult, directory: Path, config: RunConfig, host: Any, echo: Callable[[str], None],
           resume: bool = False, where: dict[str, str] | None = None) -> LimitsResult:
    """Run every point not done yet, then the FLOP estimates (studies that have none), the augmentation gain,
    statements, plots. ``where["stage"]`` says what is running (for the message of an interrupted study)."""
    from .results import load_run

    runs = dict(result.runs)
    state = {"result": result}

    def save(**changes: Any) -> None:
        state["result"] = replace(state["result"], **changes)
        write_limits(state["result"], directory)

    task, models, baseline = result.task, list(result.models), result.baseline
    with_baseline = models + ([baseline] if baseline else [])

    where = where if where is not None else {}

    def point(key: str, names: list[str], **variant: Any) -> Any:
        where["stage"] = f"point {key}"
        if key in runs:
            run = load_run(directory / runs[key])
            if run.finished_at is not None and not any(j.status == "pending" for j in run.jobs):
                return run
            echo(f"point {key}: resuming {runs[key]}")
            from .runner import run as run_benchmark

            return run_benchmark(resume=directory / runs[key], reporters=[], host=host, echo=_indent(echo),
                                 jobs=config.jobs)
        echo(f"point {key}")

        def started(run_id: str) -> None:  # the point's run is the study's from its first file on: resumable
            runs[key] = Path("runs", run_id).as_posix()
            save(runs=dict(runs))

        return _run_point(replace(config, **variant), names, task, directory / "runs", host, _indent(echo),
                          f"{result.command}  # point {key}", started)

    reference = point("reference", with_baseline)
    axes = result.axes
    quantity = {f: (reference if f == 1.0 else point(f"quantity-{f:g}", with_baseline, train_fraction=f))
                for f in axes["quantity"]["values"]}
    quality = {p: (reference if p == 0.0 else point(f"quality-{p:g}", with_baseline, train_corruption=p))
               for p in axes["quality"]["values"]}
    steps_of = {m: _reference_steps(reference, m) for m in models}
    warnings = [w for m, (s, w) in steps_of.items() if w]
    compute: dict[str, dict[float, Any]] = {}
    for m in models:
        s = steps_of[m][0]
        compute[m] = {1.0: reference}
        if not s:
            continue
        for f in axes["compute"]["values"]:
            if f != 1.0:
                compute[m][f] = point(f"compute-{m}-{f:g}", [m], steps=max(1, round(f * s)))
    axes = {**axes, "compute": {**axes["compute"], "reference_steps": {m: s for m, (s, _) in steps_of.items()}}}
    save(axes=axes)

    flops = dict(result.flops)
    for m in models:
        if m not in flops and steps_of[m][0]:  # a study started before the estimate moved up front
            where["stage"] = f"the training-FLOP estimate of {m}"
            echo(f"estimating training FLOPs of {m}")
            flops[m] = training_flops(host.registry.model(m), host.registry.dataset(task), config,
                                      result.device)
    headline = _headline(reference, models)
    points = _points(state["result"], reference, quantity, quality, compute, steps_of, flops)
    warnings = list(dict.fromkeys([*result.warnings, *warnings]))
    save(points=tuple(points), flops=flops, headline=headline, warnings=tuple(warnings))
    where["stage"] = "the augmentation gain"
    augmentation = list(result.augmentation) if resume and result.augmentation else \
        _augmentation(state["result"], reference, directory, host, echo)
    statements = make_statements(replace(state["result"], augmentation=tuple(augmentation)))
    save(augmentation=tuple(augmentation), statements=tuple(statements))
    from .reports.limits import write_limits_report

    state["result"] = replace(state["result"], finished_at=_now())
    save(files=write_limits_report(state["result"], directory))
    for s in statements:
        echo(f"  {s['text']}")
    echo(f"results: {directory / LIMITS_FILE}")
    return state["result"]


def _indent(echo: Callable[[str], None]) -> Callable[[str], None]:
    return lambda line: echo("  " + line)


def _run_point(config: RunConfig, models: list[str], task: str, out: Path, host: Any,
               echo: Callable[[str], None], command: str, started: Callable[[str], None]) -> Any:
    """One point: an ordinary run of ``models`` on ``task`` with ``config`` (its training-data variant or
    steps), through the runner's two stages (here only the first: timing is off). ``started(run_id)`` is
    called once the run's directory holds its ``run.json``, before any work: a study stopped during the
    point then knows the run, and ``--resume`` finishes it instead of leaving it behind.

    ``genbench.run`` takes no training-data variant, so this builds the run as it does and hands it to the
    runner's scheduler; a ``train_fraction``/``train_corruption`` argument on ``run`` would let it call that.
    """
    from .results import SCHEMA as RUN_SCHEMA
    from .results import write_run
    from .runner import run_jobs, environment, new_run_id, plan
    from .runtime import resolve_device
    from .types import RunResult

    planned = plan(host, models, False, [task], baselines=False)
    dev = resolve_device(config.device)
    run_id = new_run_id()
    run_dir = out / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    result = RunResult(
        schema=RUN_SCHEMA, run_id=run_id, genbench_version=__version__, started_at=_now(), finished_at=None,
        command=command, config={**config.to_dict(), "device": dev, "requested_device": config.device,
                                 "selection": {"models": list(models), "all": False, "tasks": [task]}},
        environment={**environment(dev, config.threads), "executor": config.executor, "jobs": config.jobs},
        plugin_failures=tuple(f.to_dict() for f in host.failures))
    write_run(result, run_dir)
    started(run_id)
    return run_jobs(result, run_dir, planned, config, dev, host, True, [], echo)


def _job(run: Any, model: str) -> Any:
    return next((j for j in run.jobs if j.model == model), None)


def _reference_steps(reference: Any, model: str) -> tuple[int | None, str | None]:
    """S: the steps the model's reference job reported (the same for every seed), and a warning or None."""
    job = _job(reference, model)
    if job is None or job.status != "ok":
        return None, f"{model}: no compute axis, its reference job did not finish ({job.status if job else 'missing'})"
    reported = {int((r.train or {}).get("steps") or 0) for r in job.seed_results if r.status == "ok"}
    if not reported or max(reported) == 0:
        return None, f"{model}: no compute axis, its training reported 0 steps"
    if len(reported) > 1:
        return max(reported), f"{model}: seeds reported different steps {sorted(reported)}; S = {max(reported)}"
    return reported.pop(), None


def _headline(reference: Any, models: list[str]) -> dict[str, Any]:
    """The metric the statements and plots use: the task's first in the report order that the models report
    and that has a better direction (a two-sided metric such as copy-ct says nothing of "better")."""
    from .reports import order_metrics

    jobs = [j for j in reference.jobs if j.model in models and j.status == "ok"]
    for name in order_metrics(jobs):
        mv = jobs[0].quality.get(name)
        if mv is not None and isinstance(mv.higher_is_better, bool) and all(name in j.quality for j in jobs):
            return {"metric": name, "unit": mv.unit, "higher_is_better": mv.higher_is_better}
    return {}


def _points(result: LimitsResult, reference: Any, quantity: Mapping[float, Any], quality: Mapping[float, Any],
            compute: Mapping[str, Mapping[float, Any]], steps_of: Mapping[str, tuple[int | None, str | None]],
            flops: Mapping[str, Any]) -> list[LimitsPoint]:
    runs_by_id = {Path(v).name: v for v in result.runs.values()}
    names = list(result.models) + ([result.baseline] if result.baseline else [])

    def make(axis: str, x: float, run: Any, model: str, **extra: Any) -> LimitsPoint:
        job = _job(run, model)
        role = "baseline" if model == result.baseline else "model"
        common = dict(axis=axis, x=x, model=model, role=role, run=runs_by_id.get(run.run_id),
                      shared="reference" if run is reference else None, **extra)
        if job is None:
            return LimitsPoint(status="skipped", error="no job for this model in the point's run", **common)
        ok = [r for r in job.seed_results if r.status == "ok"]
        walls = [float(r.train["wall_seconds"]) for r in ok if r.train and r.train.get("wall_seconds") is not None]
        reported = tuple(int(r.train["steps"]) if r.train and r.train.get("steps") is not None else None for r in ok)
        per_step = (flops.get(model) or {}).get("per_step")
        steps = [s for s in reported if s is not None]
        return LimitsPoint(status="ok" if job.status == "ok" else job.status, steps_reported=reported,
                           train_seconds=float(np.mean(walls)) if walls else None,
                           flops=per_step * float(np.mean(steps)) if per_step and steps else None,
                           quality={k: v.to_dict() for k, v in job.quality.items()},
                           error=job.error.message if job.error else job.reason if job.status != "ok" else None,
                           **common)

    n = result.n_train
    out = []
    for f, run in quantity.items():
        out += [make("quantity", f, run, m, train_examples=train_examples(n, result.task_kind, f)) for m in names]
    for p, run in quality.items():
        out += [make("quality", p, run, m, train_examples=n, corruption=p) for m in names]
    for m in result.models:
        s = steps_of[m][0]
        for f, run in compute.get(m, {}).items():
            out.append(make("compute", f, run, m, train_examples=n, steps=None if f == 1.0 else max(1, round(f * s))))
    return out


# --------------------------------------------------------------------------- training FLOPs


def training_flops(spec: Any, task: Any, config: RunConfig, device: str) -> dict[str, Any]:
    """An estimate of one training step's FLOPs: :data:`FLOPS_METHOD`. Runs the plugin's ``train`` in a
    process of its own (inline with the inline executor) with the job time limit; a failure is recorded in
    the answer, never raised; a model that declines the task (:class:`~genbench.errors.TaskDeclined`) gets
    ``declined``, its reason. ``task`` is the task's :class:`~genbench.types.DatasetSpec`."""
    from .errors import TaskDeclined, one_line

    args = (spec, task, config, device)
    try:
        if config.executor == "process":
            import multiprocessing

            with multiprocessing.get_context("forkserver").Pool(1) as pool:
                counts = pool.apply_async(_count_training_flops, args).get(timeout=config.timeout or 3600.0)
        else:
            counts = _count_training_flops(*args)
    except TaskDeclined as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else f"{spec.name} declines '{task.name}'"
        return {"per_step": None, "method": FLOPS_METHOD, "error": f"declined: {why}", "declined": why}
    except Exception as exc:  # noqa: BLE001 - plugin code; an estimate it could not give is just missing
        return {"per_step": None, "method": FLOPS_METHOD, "error": one_line(exc) or type(exc).__name__}
    (s1, f1), (s2, f2) = min(counts.items()), max(counts.items())
    probe = {str(k): v for k, v in counts.items()}
    if s2 == s1:
        return {"per_step": None, "method": FLOPS_METHOD, "probe": probe,
                "error": f"train() reported {s1} steps whatever steps it was given"}
    return {"per_step": (f2 - f1) / (s2 - s1), "method": FLOPS_METHOD, "probe": probe}


def _count_training_flops(spec: Any, task: Any, config: RunConfig, device: str) -> dict[int, int]:
    """{reported steps: FLOPs counted} for ``train()`` with each of :data:`FLOP_PROBE_STEPS`."""
    from torch.utils.flop_counter import FlopCounterMode

    from .harness import load_task_state
    from .stages.build import instantiate
    from .stages.common import training_data
    from .types import TrainConfig

    data = training_data(load_task_state(task, config).dataset, config)
    counts: dict[int, int] = {}
    for steps in FLOP_PROBE_STEPS:
        model = instantiate(spec)
        with FlopCounterMode(display=False) as counter:
            summary = model.train(data, TrainConfig(seed=config.seed, device=device, profile=config.profile,
                                                    steps=steps), lambda *a, **k: None)
        counts[int(summary.steps)] = int(counter.get_total_flops())
    return counts


# --------------------------------------------------------------------------- augmentation gain


def _augmentation(result: LimitsResult, reference: Any, directory: Path, host: Any,
                  echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """For labelled image tasks: k real training images plus each model's samples (labelled by the
    extractor's head) against k real images alone, per training seed of the reference run."""
    if result.task_kind != "image":
        return []
    from .harness import draw_samples, load_bundle_specs, load_task_state, sample_count
    from .metrics.synthetic import AUGMENTATION_KS, CLASSIFIER_SEEDS, augmentation_gain

    state = load_task_state(host.registry.dataset(result.task), _config_from(result.settings))
    d = state.dataset
    if state.extractor is None or d.train_y is None or d.test_y is None:
        return []
    ks, classifier_seeds = AUGMENTATION.get(result.profile, (AUGMENTATION_KS, CLASSIFIER_SEEDS))
    ks = tuple(k for k in ks if k < len(d.train_x))
    out = []
    run_dir = directory / result.runs["reference"]
    for model in list(result.models) + ([result.baseline] if result.baseline else []):
        job = _job(reference, model)
        if job is None or job.status != "ok":
            continue
        echo(f"augmentation gain of {model}")
        per_k: dict[int, list[dict[str, Any]]] = {k: [] for k in ks}
        for r in job.seed_results:
            unit_dir = run_dir / "jobs" / f"{model}__{result.task}__{job.device}" / f"seed-{r.seed}"
            try:
                bundle = load_bundle_specs(unit_dir)
                n = sample_count(d, get_profile(result.profile))
                samples = draw_samples(bundle, job.device, n, r.seed, d.test_x, d)
            except Exception as exc:  # noqa: BLE001 - one job's graphs; the others still count
                from .errors import one_line

                echo(f"  warning: no samples from {model} seed {r.seed}: {one_line(exc)}")
                continue
            labels = state.extractor(samples)[1].argmax(1)
            for k in ks:
                per_k[k].append(augmentation_gain(d.train_x, d.train_y, samples, labels, d.test_x, d.test_y, k,
                                                  range(classifier_seeds), d.value_range))
        for k, gains in per_k.items():
            if not gains:
                continue
            real = [v for g in gains for v in g["real"]]
            aug = [v for g in gains for v in g["augmented"]]
            gain = [v for g in gains for v in g["gain"]]
            out.append({"model": model, "role": "baseline" if model == result.baseline else "model", "k": k,
                        "generated": gains[0]["generated"], "training_seeds": len(gains),
                        "classifier_seeds": classifier_seeds, "real_accuracy": float(np.mean(real)),
                        "augmented_accuracy": float(np.mean(aug)), "gain": float(np.mean(gain)),
                        "gain_stderr": float(np.std(gain, ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else None})
    return out


# --------------------------------------------------------------------------- statements


def _values(p: LimitsPoint, metric: str) -> list[float]:
    mv = p.quality.get(metric) or {}
    per_seed = mv.get("per_seed") or ([mv["value"]] if mv.get("value") is not None else [])
    return [float(v) for v in per_seed if v is not None]


def _mean_ci(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, half-width of its 95% t-interval, or None with fewer than 2 values)."""
    from .aggregate import t_interval

    mean, _, ci = t_interval(list(values))
    return mean, (None if ci is None else (ci[1] - ci[0]) / 2)


def _fmt(mean: float, half: float | None) -> str:
    """``1123 ± 84``: a mean and the half-width of its interval (2 significant digits, never in e-notation)."""
    return f"{mean:.4g}" + (f" ± {plain(half)}" if half is not None else "")


def paired_better(model: Sequence[float], baseline: Sequence[float], higher_is_better: bool,
                  alpha: float = 0.05) -> tuple[bool, float | None]:
    """Whether the model beats the baseline, paired by training seed (they trained on the same draw of the
    data): a one-sided paired t-test at ``alpha``. (beats, p) with p None when it cannot be tested (fewer
    than 2 seeds, or no spread: then it beats when every pair is better)."""
    from scipy import stats

    diffs = np.asarray(model, dtype=float) - np.asarray(baseline, dtype=float)
    if not higher_is_better:
        diffs = -diffs
    if len(diffs) == 0:
        return False, None
    if len(diffs) < 2 or np.all(diffs == diffs[0]):
        return bool(np.all(diffs > 0)), None
    p = float(stats.ttest_1samp(diffs, 0.0, alternative="greater").pvalue)
    return p < alpha, p


def mean_difference(before: Sequence[float], after: Sequence[float]) -> tuple[float, float, float] | None:
    """(difference, low, high): ``mean(after) − mean(before)`` with its 95% t-interval. Values given for
    the same training seeds in the same order (equal lengths) are paired by seed, as one seed's runs share
    their initialisation and data order; otherwise Welch's interval. The interval is the point itself when
    there is no spread to estimate. None when a side has no values."""
    from scipy import stats

    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return None
    diff = float(np.mean(b) - np.mean(a))
    if len(a) == len(b) and len(a) > 1:
        d = b - a
        se, dof = float(d.std(ddof=1)) / math.sqrt(len(d)), len(d) - 1
    else:
        va = float(a.var(ddof=1)) / len(a) if len(a) > 1 else 0.0
        vb = float(b.var(ddof=1)) / len(b) if len(b) > 1 else 0.0
        if len(a) < 2 or len(b) < 2 or va + vb == 0:
            return diff, diff, diff
        se, dof = math.sqrt(va + vb), (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    if se == 0:
        return diff, diff, diff
    half = float(stats.t.ppf(0.975, dof)) * se
    return diff, diff - half, diff + half


def relative_change(before: Sequence[float], after: Sequence[float]) -> tuple[float, float, float] | None:
    """:func:`mean_difference` as fractions of ``|mean(before)|`` (None when that mean is 0)."""
    d = mean_difference(before, after)
    scale = abs(float(np.mean(before))) if len(before) else 0.0
    if d is None or scale == 0:
        return None
    return d[0] / scale, d[1] / scale, d[2] / scale


def _change_text(before: Sequence[float], after: Sequence[float]) -> tuple[str, dict[str, float]] | None:
    """"+4.1% (95% interval −2.0% to +10.2%)", or the absolute change where the reference mean is 0."""
    rel = relative_change(before, after)
    d = rel if rel is not None else mean_difference(before, after)
    if d is None:
        return None
    fmt = "{:+.1%}" if rel is not None else "{:+.3g}"
    interval = ("the same in every seed" if d[1] == d[2] else
                f"95% interval {fmt.format(d[1])} to {fmt.format(d[2])}, paired by seed" if len(before) == len(after)
                else f"95% interval {fmt.format(d[1])} to {fmt.format(d[2])}")
    return f"{fmt.format(d[0])} ({interval})", {"change": d[0], "low": d[1], "high": d[2], "relative": rel is not None}


def _p_values(verdicts: Sequence[tuple[Any, Any, bool, float | None]], summary: str) -> str:
    """"p < 0.05 passes; no size passes: p = 0.31 at 84, 0.12 at 168": the verdict and each size's p (or why a
    size has none: with one seed, or no spread, a size passes when every seed's model is better)."""
    parts = [f"{'–' if pv is None else f'{pv:.2g}'} at {p.train_examples:,}" for p, _, _, pv in verdicts]
    none = any(pv is None for *_, pv in verdicts)
    return (f"p < 0.05 passes; {summary}: p = {', '.join(parts)}"
            + ("; – where no p can be computed (one seed, or no spread): passes when every seed is better"
               if none else ""))


def make_statements(result: LimitsResult) -> list[dict[str, Any]]:
    """Plain sentences, each with its uncertainty, from a study's points."""
    metric = result.headline.get("metric")
    if not metric:
        return []
    hib = bool(result.headline.get("higher_is_better"))
    better = "higher" if hib else "lower"
    unit_word = "training byte" if result.task_kind == "text" else (
        "training point" if result.task_kind == "points" else "training image")
    seeds = len(result.seeds)
    out: list[dict[str, Any]] = []

    def say(axis: str, model: str, text: str, **data: Any) -> None:
        out.append({"axis": axis, "model": model, "metric": metric, "text": text, **data})

    for model in result.models:
        out += _quantity_statements(result, model, metric, hib, better, unit_word, seeds)
        # quality: the change against clean data, and whether the baseline is still beaten
        curve = result.curve("quality", model)
        base = {p.x: p for p in result.curve("quality", result.baseline)} if result.baseline else {}
        clean = next((p for p in curve if p.x == 0.0), None)
        if clean is not None and _values(clean, metric):
            for p in curve:
                if p.x == 0.0 or not _values(p, metric):
                    continue
                change = _change_text(_values(clean, metric), _values(p, metric))
                if change is None:
                    continue
                beats = ""
                if p.x in base and _values(base[p.x], metric):
                    ok, pv = paired_better(_values(p, metric), _values(base[p.x], metric), hib)
                    beats = (f"; it {'still beats' if ok else 'does not beat'} {result.baseline} fitted on the same "
                             f"corrupted data ({_fmt(*_mean_ci(_values(base[p.x], metric)))})")
                say("quality", model, f"With {p.x:.0%} of the training examples replaced by noise, {model}'s {metric} "
                                      f"moves from {_fmt(*_mean_ci(_values(clean, metric)))} to "
                                      f"{_fmt(*_mean_ci(_values(p, metric)))}, {change[0]}{beats}.",
                    x=p.x, **change[1])
        # compute: what doubling (and halving) the budget changes
        s = (result.axes.get("compute", {}).get("reference_steps") or {}).get(model)
        curve = {p.x: p for p in result.curve("compute", model)}
        one = curve.get(1.0)
        if one is None or not s or not _values(one, metric):
            continue
        for f in sorted(curve):
            p = curve[f]
            if f == 1.0 or not _values(p, metric):
                continue
            if p.steps_reported and any(r is not None and r != p.steps for r in p.steps_reported):
                say("compute", model, f"{model} does not train for the steps it is given (asked {p.steps}, reported "
                                      f"{sorted(set(p.steps_reported))}); its compute axis says nothing.", x=f)
                continue
            change = _change_text(_values(one, metric), _values(p, metric))
            if change is None:
                continue
            c = change[1]
            bound = max(abs(c["low"]), abs(c["high"]))
            flops = f" (about {p.flops:.2g} training FLOPs, an estimate)" if p.flops else ""
            within = "" if c["low"] == c["high"] or f < 1 else \
                f": by less than {f'{bound:.1%}' if c['relative'] else f'{bound:.3g}'} either way"
            what = (f"Doubling {model}'s training steps from S = {s:,} to {p.steps:,}" if f == 2.0 else
                    f"Halving {model}'s training steps from S = {s:,} to {p.steps:,}" if f == 0.5 else
                    f"Training {model} for {f:g} × S = {p.steps:,} steps instead of S = {s:,}")
            say("compute", model, f"{what}{flops} changes {metric} by {change[0]}{within}, over {plural(seeds, 'seed')}.",
                x=f, bound=bound, **c)
    for row in result.augmentation:
        if row.get("role") != "model" or row.get("gain_stderr") is None:
            continue
        say("augmentation", row["model"], f"Adding {row['model']}'s {row['generated']:,} labelled samples to "
                                          f"{plural(row['k'], 'real training image')} changes test accuracy from "
                                          f"{row['real_accuracy']:.1%} to {row['augmented_accuracy']:.1%} "
                                          f"({points_text(row['gain'], row['gain_stderr'])} standard error over "
                                          f"{plural(row['classifier_seeds'], 'classifier draw')} × "
                                          f"{plural(row['training_seeds'], 'training seed')}).", x=row["k"])
    return out


def _quantity_statements(result: LimitsResult, model: str, metric: str, hib: bool, better: str, unit_word: str,
                         seeds: int) -> list[dict[str, Any]]:
    curve = [p for p in result.curve("quantity", model) if _values(p, metric)]
    base = {p.x: p for p in result.curve("quantity", result.baseline)} if result.baseline else {}
    out: list[dict[str, Any]] = []
    if not curve:
        return out
    first, last = curve[0], curve[-1]
    out.append({"axis": "quantity", "model": model, "metric": metric, "x": first.x,
                "text": f"{model}'s {metric} ({better} is better) goes from {_fmt(*_mean_ci(_values(first, metric)))} "
                        f"with {plural(first.train_examples or 0, unit_word)} to "
                        f"{_fmt(*_mean_ci(_values(last, metric)))} with {last.train_examples:,} "
                        f"(mean ± 95% t-interval over {plural(seeds, 'seed')})."})
    if not base:
        return out
    verdicts = []
    for p in curve:
        b = base.get(p.x)
        if b is None or not _values(b, metric) or len(_values(b, metric)) != len(_values(p, metric)):
            return out
        verdicts.append((p, b, *paired_better(_values(p, metric), _values(b, metric), hib)))
    # the smallest size from which the model beats the baseline at every larger size too
    needed = None
    for i in range(len(verdicts)):
        if all(v for _, _, v, _ in verdicts[i:]):
            needed = i
            break
    bl = result.baseline
    test = f"one-sided paired t-test of {model} better than {bl} over {plural(seeds, 'seed')} at each size"
    if needed is None:
        text = (f"{model} is not significantly better than {bl} on {metric} at any training-set size up to "
                f"{plural(last.train_examples or 0, unit_word)} ({_fmt(*_mean_ci(_values(last, metric)))} vs "
                f"{_fmt(*_mean_ci(_values(verdicts[-1][1], metric)))} at the largest; {test}: "
                f"{_p_values(verdicts, 'no size passes')}).")
        n_needed = None
    elif needed == 0:
        p, b, _, _ = verdicts[0]
        text = (f"{model} beats {bl} on {metric} at every training-set size tried, down to "
                f"{plural(p.train_examples or 0, unit_word)} ({_fmt(*_mean_ci(_values(p, metric)))} vs "
                f"{_fmt(*_mean_ci(_values(b, metric)))}; {test}: {_p_values(verdicts, 'every size passes')}); "
                f"this study does not show how few it needs.")
        n_needed = p.train_examples
    else:
        p, b, _, _ = verdicts[needed]
        prev, pb, _, _ = verdicts[needed - 1]
        text = (f"{model} needs more than {prev.train_examples:,} and at most "
                f"{plural(p.train_examples or 0, unit_word)} to beat {bl} on {metric}: "
                f"{_fmt(*_mean_ci(_values(p, metric)))} vs {_fmt(*_mean_ci(_values(b, metric)))} at "
                f"{p.train_examples:,}, {_fmt(*_mean_ci(_values(prev, metric)))} vs "
                f"{_fmt(*_mean_ci(_values(pb, metric)))} at {prev.train_examples:,} ({test}: "
                f"{_p_values(verdicts, f'sizes from {p.train_examples:,} up pass')}).")
        n_needed = p.train_examples
    out.append({"axis": "quantity", "model": model, "metric": metric, "text": text, "needed": n_needed})
    return out


__all__ = ["BASELINES", "COMPUTE", "CORRUPTION", "LimitsPoint", "LimitsResult", "QUANTITY", "SCHEMA", "limits",
           "load_limits", "make_statements", "mean_difference", "paired_better", "parse_values", "relative_change",
           "training_flops", "write_limits"]
