"""``genbench.run(...)``: plan the jobs, run them one by one, write results and reports.

``genbench run`` on the command line calls exactly this function.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import contextlib
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from . import __version__
from .builtin import NOT_BESIDE_EVERY_MODEL
from .config import RunConfig
from .errors import (ConfigError, DataUnavailableError, GenbenchError, OutputError, RunInterrupted, RunLockedError,
                     one_line)
from .features import inception_for
from .plugins import PluginHost, make_plugin_manager
from .registry import load_object
from .results import SCHEMA, write_run
from .types import DatasetSpec, JobError, JobResult, ModelSpec, RunResult

DEFAULT_OUT = Path("results") / "runs"


@dataclass(frozen=True)
class PlannedJob:
    model: ModelSpec
    task: DatasetSpec
    skip_reason: str | None = None


def plan(host: PluginHost, models: Sequence[str] = (), all_models: bool = False, tasks: Sequence[str] = (),
         baselines: bool = True) -> list[PlannedJob]:
    """Jobs = chosen models × the tasks they support (a task of a kind the model names, or a task it names).
    Unknown names raise with suggestions."""
    reg = host.registry
    if not models and not all_models:
        raise ConfigError("Name at least one model or pass --all (see 'genbench list').")
    chosen = list(reg.models) if all_models else [reg.model(m) for m in dict.fromkeys(models)]
    if all_models and not baselines:
        chosen = [m for m in chosen if m.family != "baseline"]
    task_specs = [reg.dataset(t) for t in dict.fromkeys(tasks)] if tasks else list(reg.datasets)
    jobs: list[PlannedJob] = []
    for task in task_specs:
        here = [m for m in chosen if m.supports(task)]
        if baselines and not all_models and any(m.family != "baseline" for m in here):
            # reference rows beside the named models, on the tasks they run on
            here += [m for m in reg.models if m.family == "baseline" and m.supports(task) and m not in here
                     and m.name not in NOT_BESIDE_EVERY_MODEL]
        for model in chosen + [m for m in here if m not in chosen]:
            if model in here:
                jobs.append(PlannedJob(model, task))
            elif tasks and model.name in models:
                jobs.append(PlannedJob(model, task, f"model supports {model.describe_tasks()}; "
                                                    f"'{task.name}' is a {task.kind} task"))
    if not any(j.skip_reason is None for j in jobs):
        raise ConfigError("No job to run: none of the chosen models supports the chosen tasks (see 'genbench list').")
    return jobs


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y-%m-%dT%H-%M-%S}-{secrets.token_hex(3)}"


def environment(device: str, threads: int) -> dict[str, Any]:
    import numpy
    import onnx
    import onnxruntime
    import torch

    from .perf.cores import usable_cores
    from .perf.machine import machine_identity

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "python": platform.python_version(), "numpy": numpy.__version__, "torch": torch.__version__,
        "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(), "platform": platform.platform(),
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "usable_cores": usable_cores(), "gpus": gpus, "device": device, "threads": threads,
        "git_commit": _git_commit(), "executor": "local", "hostname": platform.node(),
        "machine": machine_identity(),  # what tells machines apart; its clock is measured when a run times models
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run(models: Sequence[str] = (), *, all: bool = False, tasks: Sequence[str] = (),  # noqa: A002 - mirrors --all
        profile: str | None = None, out: str | Path | None = None, seed: int | None = None,
        seeds: Sequence[int] | None = None, device: str | None = None, data_dir: str | Path | None = None,
        steps: int | None = None, threads: int | None = None, baselines: bool = True, timing: bool = True,
        text_file: str | Path | None = None, train_threads: int = 1, timeout: float | None = 3600.0,
        executor: str = "process", jobs: int | None = None, address: str | None = None,
        features: str = "default", inception_weights: str | Path | None = None, fid_n: int | None = None,
        cache: bool = True,
        cache_dir: str | Path | None = None, max_memory: float | None = None, sandbox: str | None = None,
        timing_repeats: int = 1,
        reporters: Iterable[str] | None = None, host: PluginHost | None = None,
        command: str | None = None, echo: Callable[[str], None] | None = None,
        resume: str | Path | None = None, settings: Any = True, progress: str | None = None,
        record: Mapping[str, Any] | None = None) -> RunResult:
    """Run the benchmark and return the :class:`RunResult` also written to ``<out>/<run-id>/run.json``.

    Stage 1 builds and scores every job once per training seed (``seeds``, default ``[seed]``), up to
    ``jobs`` at once (default: the usable cores); stage 2 then times each job alone, one at a time.
    Jobs that fail are recorded as ``failed`` and the run goes on; check ``result.failed``.
    Every option is checked before anything runs (:class:`~genbench.errors.ConfigError`, one line).

    ``models``/``all``, ``tasks``, ``profile`` (``smoke``, ``default`` or a user-defined profile), ``seeds``,
    ``device``, ``out`` and ``jobs`` not given (None, empty) come from the settings files
    (:mod:`genbench.settings`: ``genbench.toml``, then ``pyproject.toml``'s ``[tool.genbench]``, in the working
    directory; ``settings=False`` reads none, a path reads that directory or file), else from genbench's
    defaults (``default``, seed 0, ``auto``, ``results/runs``, the usable cores).

    ``progress``: ``"live"`` (one display for the whole run on stderr, redrawn in place; the result lines
    ``echo`` would get are printed above it instead), ``"plain"`` (a line on stderr as each unit starts,
    changes phase and ends), ``"off"`` (None: the default); see :mod:`genbench.ui` and
    :func:`genbench.ui.choose_mode`. ``echo`` gets the result lines (each built seed, each timing).

    Ctrl-C (SIGINT) or SIGTERM stops the run: no unit starts after it, running ones are killed, every
    finished one is saved, and :class:`~genbench.errors.RunInterrupted` is raised; so does a full disk.
    ``resume=RUN_DIR`` finishes such a run (see :func:`resume_run`; the other arguments given must agree
    with its stored configuration, except ``jobs``; settings files are not read).

    ``record``: more entries of run.json's ``config``, for what the run was given besides these options
    (:func:`genbench.run_onnx` records its graphs as ``config.onnx``).
    """
    if resume is not None:
        given = {name: value for name, value in locals().items() if name in _RESUMABLE and _given(name, value)}
        return resume_run(resume, options=given, reporters=reporters, host=host, echo=echo, progress=progress)
    from .cache import default_cache_dir
    from .runtime import choose_device
    from .runtime.validate import max_graph_bytes
    from .settings import Settings, load_settings

    echo = echo or (lambda s: None)
    if out is not None and not str(out).strip():
        raise ConfigError("--out is empty: give the directory in which to make the run directory (default "
                          f"{DEFAULT_OUT}).")
    found = settings if isinstance(settings, Settings) else load_settings(settings)
    options, used = found.run_options(dict(models=tuple(models), all=all, tasks=tuple(tasks), profile=profile,
                                           seeds=seeds, seed=seed, device=device, out=out, jobs=jobs))
    models, all, tasks = options["models"], options["all"], options["tasks"]  # noqa: A001
    profile, seeds, device = options["profile"] or "default", options["seeds"], options["device"] or "auto"
    out, jobs = options["out"] or DEFAULT_OUT, options["jobs"]
    if seeds is not None and seed is not None and tuple(seeds) != (seed,):
        raise ConfigError(f"Give a seed or seeds, not both (seed={seed}, seeds={list(seeds)}).")
    seed_list = tuple(seeds) if seeds else (seed or 0,)
    user_profile = found.profile(profile)
    if user_profile is not None:
        steps = steps if steps is not None else user_profile.steps
    config = RunConfig(profile=user_profile.based_on if user_profile else profile, seed=seed_list[0], seeds=seed_list,
                       device=device, steps=steps, data_dir=Path(data_dir) if data_dir else None, baselines=baselines,
                       timing=timing, text_file=Path(text_file) if text_file else None, train_threads=train_threads,
                       timeout=timeout, executor=executor, address=address, features=features,
                        inception_weights=Path(inception_weights) if inception_weights else None, fid_n=fid_n,
                        cache=cache, max_memory=max_memory, user_profile=user_profile, timing_repeats=timing_repeats,
                       sandbox=sandbox or _sandbox_from_environment(),
                       # resolved here: job processes fork from a server that may predate this run's environment
                       cache_dir=Path(cache_dir).resolve() if cache_dir else default_cache_dir() if cache else None,
                       **({"threads": threads} if threads is not None else {}),
                       **({"jobs": jobs} if jobs is not None else {}))
    max_graph_bytes()  # a bad $GENBENCH_MAX_GRAPH_MB is refused here, not in every job
    _check_executor(config)
    # the Inception space's file, hash and ONNX export are checked (and exported, once) here: a missing extra or a
    # wrong file is one line before anything runs, not a failure in every image job
    inception_for("image", config.features, config.inception_weights, config.cache_dir)
    from .executors.sandbox import environment_note, resolve_mode

    contained, sandbox_note = resolve_mode(config.sandbox) if config.executor != "inline" else (False, None)
    if sandbox_note:
        echo(f"note: {sandbox_note}")
    host = host or make_plugin_manager()
    for failure in host.failures:
        echo(f"warning: {failure}")
    for warning in host.warnings:
        echo(f"warning: {warning}")
    _check_names_from_files(host, models, tasks, used)
    planned = plan(host, models, all, tasks, baselines)
    dev, device_note = choose_device(device)
    out_dir = output_dir(out)  # made only once the plan holds: a refused run leaves no folder behind
    if device_note:
        echo(f"note: {device_note}")

    run_id = new_run_id()
    run_dir = out_dir / run_id
    try:
        run_dir.mkdir()
    except OSError as exc:
        raise OutputError(f"Cannot create the run directory {run_dir}: {exc.strerror or exc}.") from exc
    with run_lock(run_dir):
        result = RunResult(
            schema=SCHEMA, run_id=run_id, genbench_version=__version__, started_at=_now(), finished_at=None,
            command=command or "genbench.run(...)",
            config={**config.to_dict(), "device": dev, "requested_device": device, "device_note": device_note,
                    "settings": found.record(used),
                    "selection": {"models": list(dict.fromkeys(models)), "all": bool(all), "tasks": list(tasks)},
                    **dict(record or {})},
            environment={**environment(dev, config.threads), "executor": config.executor, "jobs": config.jobs,
                         "sandbox": environment_note(contained, sandbox_note), "plugins": loaded_plugins(host)},
            plugin_failures=tuple(f.to_dict() for f in host.failures))
        write_run(result, run_dir)
        n = sum(j.skip_reason is None for j in planned)
        seeds_text = f" × {len(config.seeds)} seeds" if len(config.seeds) > 1 else ""
        from_files = f"; from {', '.join(sorted({Path(p).name for p in used.values()}))}: {', '.join(used)}" \
            if used else ""
        at_once = min(config.jobs, n * len(config.seeds))  # never more at once than there is to build
        header = (f"run {run_id}: {n} job{'s' if n != 1 else ''}{seeds_text}, profile {profile}, device {dev}, "
                  f"{at_once} at a time (timing alone){from_files}")
        try:
            return run_jobs(result, run_dir, planned, config, dev, host, bool(tasks), reporters, echo, progress,
                             header)
        except DataUnavailableError:  # a task named but not on this machine: no run at all, not an empty one
            if not _has_results(run_dir):
                shutil.rmtree(run_dir, ignore_errors=True)
            raise


def loaded_plugins(host: PluginHost) -> list[dict[str, Any]]:
    """Every plugin this run loaded: its entry point, distribution, version and a sha256 over its installed
    files (what ran, even if it was never named in the command)."""
    from .plugins import distribution_hash

    return [{"plugin": p.name, "distribution": p.distribution, "version": p.version,
             "files_sha256": distribution_hash(p.distribution)} for p in host.plugins]


def _check_names_from_files(host: PluginHost, models: Sequence[str], tasks: Sequence[str],
                            used: Mapping[str, str]) -> None:
    """Model and task names a settings file gave: an unknown one is refused naming the file and its key."""
    from .errors import UnknownNameError

    for key, names, lookup in (("models", models, host.registry.model), ("tasks", tasks, host.registry.dataset)):
        if key not in used:
            continue
        where = used[key] + (" [tool.genbench]" if Path(used[key]).name == "pyproject.toml" else "")
        for name in names:
            try:
                lookup(name)
            except UnknownNameError as exc:
                raise ConfigError(f"{where}: {key} = {list(names)!r} is not allowed: {exc}") from None


def _has_results(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` holds any finished work."""
    from .results import load_run

    try:
        return any(j.status != "pending" or j.seed_results for j in load_run(run_dir).jobs)
    except Exception:  # noqa: BLE001 - unreadable: keep it, as it is
        return True


#: run() arguments that --resume may change: where the rest of the work runs, not what it is (a run a lost Ray
#: cluster stopped finishes with ``--executor process``, or on another cluster's ``--address``)
RESUME_MAY_CHANGE = ("jobs", "executor", "address")
#: run() arguments that --resume takes from the stored configuration (but :data:`RESUME_MAY_CHANGE`)
_RESUMABLE = ("sandbox", "models", "all", "tasks", "profile", "out", "seed", "seeds", "device", "data_dir", "steps", "threads",
              "baselines", "timing", "text_file", "train_threads", "timeout", "executor", "jobs", "address",
               "features", "inception_weights", "fid_n", "cache", "cache_dir", "max_memory", "timing_repeats")


def _given(name: str, value: Any) -> bool:
    """Whether run()'s argument ``name`` was given a value other than its default."""
    import inspect

    default = inspect.signature(run).parameters[name].default
    return value != default and not (name in ("models", "tasks") and not value)


def resume_run(run_dir: str | Path, *, options: Mapping[str, Any] | None = None,
               reporters: Iterable[str] | None = None, host: PluginHost | None = None,
               echo: Callable[[str], None] | None = None, progress: str | None = None) -> RunResult:
    """Finish the interrupted run in ``run_dir``: the same selection and settings (read from its ``run.json``),
    running only the work it has no result for (a job built but not timed is only timed).

    ``options`` are run() arguments given with the resume (``genbench run --resume DIR --profile ...``): one
    that contradicts the stored configuration is refused (:class:`~genbench.errors.ConfigError`), since the
    run would mix two configurations; ``jobs`` may change. A run directory another genbench process is
    writing is refused (:class:`~genbench.errors.RunLockedError`).
    """
    from .results import load_run

    echo = echo or (lambda s: None)
    run_dir = Path(run_dir)
    if run_dir.name == "run.json" and run_dir.is_file():
        run_dir = run_dir.parent
    load_run(run_dir)  # a missing or corrupt file is an error here, and is left as it is
    with run_lock(run_dir):
        previous = load_run(run_dir)  # as it is now that no one else writes it
        stored = dict(previous.config)
        selection = stored.get("selection") or {}
        options = dict(options or {})
        _check_resume_options(options, stored, run_dir)
        if previous.finished_at and not any(j.status == "pending" for j in previous.jobs):
            echo(f"nothing to resume: run {previous.run_id} finished at {previous.finished_at}, every job has its "
                 f"result ({run_dir / 'run.json'})")
            return previous
        fields = {f.name for f in dataclasses.fields(RunConfig)}
        kwargs = {k: v for k, v in stored.items() if k in fields}
        kwargs["device"] = stored.get("requested_device", stored.get("device", "auto"))
        kwargs["seeds"] = tuple(kwargs.get("seeds") or (stored.get("seed", 0),))
        kwargs["seed"] = kwargs["seeds"][0]
        for key in ("data_dir", "text_file", "inception_weights", "cache_dir"):
            kwargs[key] = Path(kwargs[key]) if kwargs.get(key) else None
        if kwargs.get("user_profile") is not None:
            from .settings import UserProfile

            kwargs["user_profile"] = UserProfile.from_dict(kwargs["user_profile"])
        if options.get("jobs") is not None:
            kwargs["jobs"] = options["jobs"]
        moved = {k: options[k] for k in ("executor", "address") if k in options and options[k] != stored.get(k)}
        if moved:
            kwargs.update(moved)
            if moved.get("executor", kwargs.get("executor")) != "ray":
                kwargs["address"] = None  # an address means nothing off Ray
        config = RunConfig(**kwargs)
        _check_executor(config)
        host = host or make_plugin_manager()
        planned = plan(host, selection.get("models", ()), selection.get("all", False), selection.get("tasks", ()),
                       config.baselines)
        resumes = [*stored.get("resumed_at", []), _now()]
        where = [*stored.get("resumed_on", []), {"at": resumes[-1], "executor": config.executor,
                                                 "address": config.address, "jobs": config.jobs}]
        result = replace(previous, finished_at=None, config={**stored, "resumed_at": resumes, "resumed_on": where})
        finished = sum(j.status != "pending" for j in previous.jobs)
        header = (f"resuming run {previous.run_id}: {finished} jobs done, "
                  f"{sum(j.status == 'pending' for j in previous.jobs)} part-done")
        return run_jobs(result, run_dir, planned, config, stored.get("device", "cpu"), host,
                         bool(selection.get("tasks")), reporters, echo, progress, header)


_FLAGS = {"models": "MODEL arguments", "all": "--all", "tasks": "--task", "profile": "--profile", "out": "--out",
          "seed": "--seed", "seeds": "--seeds", "device": "--device", "data_dir": "--data-dir", "steps": "--steps",
          "threads": "--threads", "baselines": "--no-baselines", "timing": "--no-timing", "text_file": "--text-file",
          "train_threads": "--train-threads", "timeout": "--timeout", "executor": "--executor",
           "address": "--address", "features": "--features", "inception_weights": "--inception-weights", "fid_n": "--fid-n",
           "cache": "--no-cache", "cache_dir": "--cache-dir", "max_memory": "--max-memory",
           "timing_repeats": "--timing-repeats"}
#: run() arguments that are on/off flags: the value the flag sets
_SWITCHES = {"all": True, "baselines": False, "timing": False, "cache": False}


def _check_resume_options(options: Mapping[str, Any], stored: Mapping[str, Any], run_dir: Path) -> None:
    """Refuse resume options that contradict the stored configuration, all of them in one line, each written as
    the flags a user types (``--all contradicts the stored run (started without --all)``)."""
    selection = stored.get("selection") or {}
    seeds = tuple(stored.get("seeds") or (stored.get("seed", 0),))

    def same_path(given: Any, kept: Any) -> bool:
        return (given is None and kept is None) or (given is not None and kept is not None
                                                    and Path(given).resolve() == Path(kept).resolve())

    have = {"models": list(selection.get("models") or []), "all": bool(selection.get("all")),
            "tasks": list(selection.get("tasks") or []), "seed": seeds, "seeds": seeds,
            "device": stored.get("requested_device", stored.get("device")), "out": run_dir.resolve().parent}
    wrong = []
    for name, value in options.items():
        if name in RESUME_MAY_CHANGE or name not in _FLAGS:
            continue
        kept = have[name] if name in have else stored.get(name)
        if name in ("models", "tasks"):  # the same names, in any order, repeated or not
            agrees = set(value or ()) == set(kept)
        elif name == "seed":
            agrees = (value,) == kept
        elif name == "seeds":
            agrees = tuple(value or ()) == kept
        elif name in ("data_dir", "text_file", "inception_weights", "cache_dir", "out"):
            agrees = same_path(value, kept)
        else:
            agrees = value == kept
        if not agrees:
            wrong.append(f"{_as_typed(name, value)} {'contradict' if name == 'models' else 'contradicts'} the stored "
                         f"run (started {_as_stored(name, kept)})")
    if wrong:
        raise ConfigError(f"--resume finishes the run in {run_dir} with the options it was started with: "
                          f"{'; '.join(wrong)}. Drop them (only --jobs, --executor and --address may change), or start a new run.")


def _as_typed(name: str, value: Any) -> str:
    """A run() argument as the command line gives it: ``--no-timing``, ``--steps 5``, ``--task a --task b``."""
    if name in _SWITCHES:
        return _FLAGS[name]
    if name == "models":
        return "MODEL arguments " + (" ".join(dict.fromkeys(value or ())) or "(none)")
    if name == "tasks":
        return " ".join(f"--task {t}" for t in dict.fromkeys(value or ())) or "no --task"
    return f"{_FLAGS[name]} {_show(value)}"


def _as_stored(name: str, kept: Any) -> str:
    """How the stored run was started, as to ``name``: ``without --all``, ``with --steps 10``."""
    flag = _FLAGS[name]
    if name in _SWITCHES:
        return f"with {flag}" if kept == _SWITCHES[name] else f"without {flag}"
    if name == "models":
        return f"with {' '.join(kept)}" if kept else "with no MODEL argument"
    if name == "tasks":
        return f"with {' '.join(f'--task {t}' for t in kept)}" if kept else "without --task"
    if kept is None or kept in ((), []):
        return f"without {flag}"
    if name in ("seed", "seeds"):  # stored as the list of seeds
        return f"with --seeds {_show(kept)}" if len(kept) > 1 else f"with --seed {_show(kept)}"
    return f"with {flag} {_show(kept)}"


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "(none)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


LOCK_FILE = ".genbench.lock"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock (``flock`` on ``run_dir/.genbench.lock``; the kernel releases it when the process
    ends, even by SIGKILL) while a run writes there: a second writer gets :class:`RunLockedError`."""
    import fcntl

    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise OutputError(f"Cannot write in the run directory {run_dir}: {exc.strerror or exc}.") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(f"{run_dir} is being written by another genbench run right now; wait for it to "
                                 f"end (or stop it), then run 'genbench run --resume {run_dir}' again.") from None
        yield
    finally:
        os.close(fd)


def output_dir(out: str | Path) -> Path:
    """``--out``, made if needed and checked writable before anything runs."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"Cannot use --out {out}: {exc.strerror or exc}; give a directory you can write to.") \
            from None
    return path


class _Stop:
    """Why the run stops early: a signal (set by the handler), or a file that cannot be written."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: str | None = None
        self.lost = False  # the Ray cluster lost the work: resumable elsewhere

    def set(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    def __bool__(self) -> bool:
        return self.event.is_set()


def _say(line: str) -> None:
    """A line on stderr from a signal handler (``os.write``: a print could re-enter a write the signal
    interrupted), the terminal's cursor shown again (the live display hides it)."""
    try:
        os.write(2, (("\x1b[?25h" if os.isatty(2) else "") + line + "\n").encode())
    except OSError:
        pass


@contextmanager
def _stop_on_signals(stop: _Stop, inline: bool, run_dir: Path | None = None) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM ask the run to stop (the process executor's scheduler sees it
    within a fraction of a second); with the inline executor the unit runs in this thread, so the first
    signal also raises KeyboardInterrupt where it is. A second signal is absorbed (one line says the run is
    stopping), a third ends genbench at once with exit status 1: what finished is on disk already."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    received = []

    def handler(signum: int, frame: Any) -> None:
        first = not stop
        stop.set(signal.Signals(signum).name)
        received.append(signum)
        if len(received) == 2:
            _say("genbench is stopping: the running units are being killed and what finished is kept; a third "
                 "Ctrl-C quits at once")
        elif len(received) > 2:
            _say(f"error: stopped at once ({signal.Signals(signum).name} again)" + (
                f": every unit that finished is in {run_dir / 'run.json'}; finish the run with: genbench run "
                f"--resume {run_dir}" if run_dir is not None else ""))
            os._exit(1)  # the job processes go with genbench (their forkserver kills them when it sees it gone)
        if inline and first:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def interrupt_on_signals() -> Iterator[_Stop]:
    """While the block runs (in the main thread), SIGINT and SIGTERM raise KeyboardInterrupt where the code is,
    and the object yielded says which (``.reason``): for work done in this process, with no unit to stop
    (``genbench score``)."""
    stop = _Stop()
    with _stop_on_signals(stop, inline=True):
        yield stop


@dataclass
class _Entry:
    """A job being run: its seeds' results so far and its timing."""

    head: dict[str, Any]
    spec: Any  # executors.JobSpec
    results: dict[int, Any]
    needs_timing: bool
    off_reason: str | None
    timing: Any = None

    def assemble(self, seeds: Sequence[int]) -> JobResult:
        from .aggregate import assemble

        return assemble(self.head, seeds, self.results, self.timing, self.needs_timing, self.off_reason)


def run_jobs(result: RunResult, run_dir: Path, planned: list[PlannedJob], config: RunConfig, dev: str,
              host: PluginHost, explicit_tasks: bool, reporters: Iterable[str] | None,
              echo: Callable[[str], None], progress: str | None = None, header: str = "") -> RunResult:
    """Run ``planned`` jobs into ``run_dir`` (both stages), writing ``run.json`` after every unit: the public
    orchestration entry point that :func:`run`, :func:`resume_run` and ``genbench limits`` share."""
    from .ui import RunDisplay, UnitHistory

    stop = _Stop()
    state = {"result": result, "done": 0, "planned": len(planned)}
    data_dir = run_dir / DATA_COPIES
    display = RunDisplay(progress or "off", echo, f"genbench run {result.run_id}", config.jobs,
                         UnitHistory(config.cache_dir if config.cache else None))
    with _stop_on_signals(stop, config.executor == "inline", run_dir):  # until the end: cleaning up included
        try:
            with display:
                try:
                    return _run_stages(state, run_dir, planned, config, dev, host, explicit_tasks, reporters,
                                       display.line, stop, display, header)
                except KeyboardInterrupt:
                    stop.set("SIGINT")
                except OutputError as exc:
                    stop.set(str(exc))
                except GenbenchError as exc:
                    if type(exc).__name__ != "ClusterLost":  # the Ray cluster, not the run, failed: keep the run
                        raise
                    stop.set(str(exc))
                    stop.lost = True
            return _stopped(state, run_dir, stop, echo)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


def _stopped(state: dict[str, Any], run_dir: Path, stop: _Stop, echo: Callable[[str], None]) -> RunResult:
    """End a run that stopped early: what finished is on disk; say how to finish it."""
    result: RunResult = state["result"]
    # jobs with no result yet are not in run.json at all: count them as the plan does
    finished = sum(j.status != "pending" for j in result.jobs)
    pending = max(sum(j.status == "pending" for j in result.jobs), state.get("planned", 0) - finished)
    done = f"{state['done']} units finished in this session, every finished unit is in {run_dir / 'run.json'}"
    resume = f"finish the run with: genbench run --resume {run_dir}"
    if stop.reason in ("SIGINT", "SIGTERM"):
        message = f"Interrupted ({stop.reason}): {done}; {pending} jobs are pending; {resume}"
    elif stop.lost:
        message = (f"{stop.reason} The run stopped: {done}; {pending} jobs are pending; {resume} (on the cluster "
                   "again, or add --executor process [--jobs N] to finish on this machine)")
    else:
        message = f"{stop.reason} The run stopped: {done}; {pending} jobs are pending; make room, then {resume}"
    raise RunInterrupted(message, result, run_dir, stop.reason)


def _no_space(error: JobError | None) -> bool:
    return error is not None and ("No space left on device" in error.message or "[Errno 28]" in error.message)


def _run_stages(state: dict[str, Any], run_dir: Path, planned: list[PlannedJob], config: RunConfig, dev: str,
                host: PluginHost, explicit_tasks: bool, reporters: Iterable[str] | None,
                echo: Callable[[str], None], stop: _Stop, display: Any = None, header: str = "") -> RunResult:
    from .executors import BuildUnit, JobSpec, TimingUnit
    from .ui import RunDisplay

    display = display or RunDisplay("off", echo)
    said: list[str] = []  # lines about tasks that cannot run, said after the header
    task_states: dict[str, Any] = {}
    result: RunResult = state["result"]
    previous = {(j.model, j.task, j.device): j for j in result.jobs}
    jobs: dict[tuple[str, str, str], JobResult] = dict(previous)  # what run.json holds, in order
    told: dict[str, list[JobResult]] = {}  # a reason shared by several jobs (a task's data): said once, naming them
    lock = threading.Lock()
    entries: dict[tuple[str, str, str], _Entry] = {}

    def save(key: tuple[str, str, str], jr: JobResult) -> None:
        with lock:
            jobs[key] = jr
            state["result"] = replace(state["result"], jobs=tuple(jobs.values()))
            write_run(state["result"], run_dir)  # every finished unit is on disk before the next result comes

    for job in planned:
        key = (job.model.name, job.task.name, dev)
        old = previous.get(key)
        if old is not None and old.status != "pending":
            continue
        head = dict(model=job.model.name, family=job.model.family, plugin=job.model.plugin,
                    plugin_version=job.model.plugin_version, task=job.task.name, device=dev)
        if not job.skip_reason and job.task.name not in task_states:
            display.note(f"loading task {job.task.name}")
        task_state = job.skip_reason or _task_state(task_states, job.task, config, explicit_tasks, run_dir, stop,
                                                    said)
        if stop:
            break
        if isinstance(task_state, (str, JobError)):
            jr = (JobResult(**head, status="skipped", reason=task_state, seeds=config.seeds)
                  if isinstance(task_state, str) else JobResult(**head, status="failed", error=task_state,
                                                                seeds=config.seeds))
            save(key, jr)
            told.setdefault(str(task_state), []).append(jr)
            continue
        spec = JobSpec(job.model, job.task, config, dev, run_dir / "jobs" / f"{job.model.name}__{job.task.name}__{dev}",
                       tuple(s for s in host.registry.metrics if job.task.kind in s.kinds),
                       data=task_state if isinstance(task_state, Path) else None)
        timed = config.timing and job.model.family != "baseline"
        off = None if timed else ("baselines are quality references; not timed" if job.model.family == "baseline"
                                  else "timing switched off (--no-timing)")
        entry = _Entry(head, spec, {r.seed: r for r in (old.seed_results if old else ())}, timed, off)
        entries[key] = entry
        save(key, entry.assemble(config.seeds))

    display.note("")
    said += [_job_line(jrs[0], [j.model for j in jrs]) for jrs in told.values()]
    for line in ([header] if header else []) + said:
        echo(line)

    # Stage 1: build and score, every job × seed, in parallel up to config.jobs.
    units = [BuildUnit(e.spec, s, keep_state=e.needs_timing) for e in entries.values() for s in config.seeds
             if s not in e.results]
    to_time = sum(e.needs_timing and (e.timing is None or e.timing.status != "done") for e in entries.values())
    hits = _cached_models(config) if units else set()
    how = {id(u): "cached" if _cache_hit(u, config, dev, hits) else "trained" for u in units}
    # longest first (LPT): a long unit started last would run alone at the end while the other cores idle
    units.sort(key=lambda u: -_expected_seconds(u, how[id(u)], display.history.get(_history_key(u, config, how[id(u)]))))
    for unit in units:
        display.add(id(unit), unit.label, "build", _history_key(unit, config, how[id(unit)]), len(units) + to_time,
                    groups=_alike(unit, how[id(unit)]))

    def on_built(unit: Any, seed_result: Any) -> None:
        if _no_space(seed_result.error):  # not the plugin's failure: the seed stays to do
            raise _disk_full(f"{unit.label}: {seed_result.error.message}")
        key = (unit.job.model.name, unit.job.task.name, dev)
        entry = entries[key]
        entry.results[unit.seed] = seed_result
        jr = entry.assemble(config.seeds)
        save(key, jr)
        state["done"] += 1
        how = "cached" if (seed_result.cache or {}).get("status") == "hit" else "trained"
        display.finished(id(unit), seed_result.status, _history_key(unit, config, how))
        echo(_unit_line(unit, seed_result, len(config.seeds)))
        _echo_printed(echo, unit, seed_result.files, run_dir)

    stage_clock = time.perf_counter()
    if not stop:
        _run_units(units, config, task_states, on_built, stop, display)
    if stop:
        return _stopped(state, run_dir, stop, echo)
    stages = {"build_seconds": time.perf_counter() - stage_clock}

    # Stage 2: timing, one job at a time, nothing else of this run going on.
    timing_units = []
    for entry in entries.values():
        ok = [entry.results[s] for s in config.seeds if s in entry.results and entry.results[s].status == "ok"]
        if entry.needs_timing and ok and len(entry.results) == len(config.seeds):
            graphs = (ok[0].export or {}).get("graphs") or {}
            expected = tuple((role, g["sha256"]) for role, g in graphs.items() if isinstance(g, dict) and g.get("sha256"))
            timing_units.append(TimingUnit(entry.spec, ok[0].seed, expected))
    # --timing-repeats K: K rounds, each job once per round in a fresh process, rounds interleaved across jobs
    rounds = max(1, int(config.timing_repeats or 1))
    timing_units = [u if r == 0 else replace(u) for r in range(rounds) for u in timing_units]
    medians: dict[tuple, list] = {}
    display.set_total(len(units) + len(timing_units))
    for unit in timing_units:
        display.add(id(unit), unit.label, "timing", _history_key(unit, config, "timing"), groups=_alike(unit, "timing"))
    result = state["result"]
    stage_clock = time.perf_counter()
    if timing_units:  # the machine's limits, measured as the timing stage starts: nothing else of genbench runs
        result = replace(result, environment=_with_limits(result.environment, dev, config.threads))
    state["result"] = result

    def on_timed(unit: Any, timing: Any) -> None:
        if _no_space(timing.error):
            raise _disk_full(f"{unit.label}: {timing.error.message}")
        key = (unit.job.model.name, unit.job.task.name, dev)
        entry = entries[key]
        if rounds > 1:
            timing = _with_process_medians(timing, medians.setdefault(key, []))
        entry.timing = timing
        jr = entry.assemble(config.seeds)
        save(key, jr)
        state["done"] += 1
        display.finished(id(unit), "ok" if timing.status == "done" else timing.status)
        echo(_timing_line(jr))
        _echo_printed(echo, unit, timing.files, run_dir)

    _run_units(timing_units, replace(config, jobs=1), task_states, on_timed, stop, display)
    if stop:
        return _stopped(state, run_dir, stop, echo)
    result = state["result"]
    if timing_units and result.environment.get("matmul_gflops"):
        result = replace(result, environment={**result.environment, "matmul_gflops": _settle_ceiling(
            result.environment["matmul_gflops"], [jobs[k] for k in entries], config.threads,
            (result.environment.get("physical_peak") or {}).get("gflops_per_s"))})
    state["result"] = result
    if timing_units:  # every record of this session: its machine, its shares of both limits, a peak-breaker flagged
        for key, entry in entries.items():
            if entry.timing is not None and entry.timing.performance:
                entry.timing = _against_limits(entry.timing, result.environment)
                save(key, entry.assemble(config.seeds))
    result = state["result"]
    stages["timing_seconds"] = time.perf_counter() - stage_clock
    result = replace(result, environment={**result.environment, "stage_seconds": _add_stages(
        result.environment.get("stage_seconds"), stages)})
    state["result"] = result
    for key, entry in entries.items():  # jobs that were not timed are complete now
        if jobs[key].status == "pending":
            save(key, entry.assemble(config.seeds))
        if entry.timing is None and len(config.seeds) > 1 and jobs[key].status != "pending":
            echo(_job_line(jobs[key]))  # the mean over seeds
    result = replace(state["result"], finished_at=_now())
    write_run(result, run_dir)
    state["result"] = result
    write_reports(result, run_dir, host, reporters, echo)
    echo(f"results: {run_dir / 'run.json'}")
    return result


def _echo_printed(echo: Callable[[str], None], unit: Any, files: Mapping[str, str], run_dir: Path) -> None:
    """What a unit's process printed stays in its files: say where, with its first line made harmless."""
    if any(name.endswith(("stdout", "stderr")) for name in files):
        from .executors.local import printed_note

        note = printed_note(unit.label, files, run_dir)
        if note:
            echo(note)


def _disk_full(what: str) -> OutputError:
    import errno

    error = OutputError(f"No space left on device ({what[:200]}).")
    error.errno = errno.ENOSPC
    return error


def _with_process_medians(timing: Any, rounds: list) -> Any:
    """``timing`` (one timing process's result) with every record's ``process_p50_ms``: the p50 of that record in
    each timing process of the job so far (``rounds`` keeps them, one dict per process, by record)."""
    if timing.status != "done":
        return timing
    rounds.append({_perf_key(p): p.latency_ms.get("p50") for p in timing.performance})
    records = []
    for p in timing.performance:
        seen = tuple(float(r[_perf_key(p)]) for r in rounds if r.get(_perf_key(p)) is not None)
        records.append(replace(p, process_p50_ms=seen))
    info = {**dict(timing.info), "timing_processes": len(rounds)}
    return replace(timing, performance=tuple(records), info=info)


def _perf_key(p: Any) -> tuple:
    return (p.graph, p.scenario, p.runtime, p.provider, p.batch_size)


def _run_units(units: list[Any], config: RunConfig, task_states: dict[str, Any],
               on_result: Callable[[Any, Any], None], stop: _Stop, display: Any = None) -> None:
    """Run ``units`` with the configured executor, ``config.jobs`` at a time, handing each result over. Once
    ``stop`` is set no unit starts, and running ones are stopped (they stay to do). ``display`` (a
    :class:`genbench.ui.RunDisplay`) hears each unit start, and its phases and training steps."""
    if not units:
        return
    from .ui import RunDisplay

    display = display or RunDisplay("off", lambda s: None)
    if config.executor == "ray":
        from .executors.ray_executor import run_units

        run_units(units, config.address, config.timeout, on_result, one_at_a_time=config.jobs == 1, stop=stop.event,
                  on_start=lambda unit: display.started(id(unit)))
    elif config.executor == "inline":
        from .executors.worker import execute, single_threaded_blas

        for unit in units:
            if stop:
                return
            state = task_states.get(unit.job.task.name)
            display.started(id(unit))
            with single_threaded_blas() if unit.kind == "build" else contextlib.nullcontext():  # as in a process
                outcome = execute(unit, task_state=state if not isinstance(state, (str, JobError)) else None,
                                  on_phase=lambda phase, key=id(unit): display.message(key, "phase", phase),
                                  on_progress=lambda *step, key=id(unit): display.message(key, "progress", step))
            on_result(unit, outcome)
    else:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        from .executors import UnitStopped
        from .executors.local import run_in_process

        queue = list(units)
        running: dict[Any, Any] = {}
        with ThreadPoolExecutor(max_workers=min(config.jobs, len(units))) as pool:
            try:
                while queue or running:
                    while queue and len(running) < config.jobs and not stop:  # units start one by one, as slots free
                        unit = queue.pop(0)
                        display.started(id(unit))
                        tell = (lambda kind, message, key=id(unit): display.message(key, kind, message))
                        running[pool.submit(run_in_process, unit, config.timeout, stop.event, tell)] = unit
                    if not running:
                        break
                    done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in done:
                        unit = running.pop(future)
                        try:
                            outcome = future.result()
                        except UnitStopped:
                            continue
                        on_result(unit, outcome)
            except BaseException as exc:  # e.g. a full disk: stop the running units, keep what is saved
                stop.set(str(exc) if isinstance(exc, OutputError) else
                         "SIGINT" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__)
                raise


#: before a unit has a past time (history.json), a rough guess of its seconds by model family: enough to start the
#: autoregressive and VAE models before the GANs, and baselines last
_COLD_GUESS = {"ar": 120.0, "vae": 60.0, "gan": 30.0, "baseline": 1.0, "samples": 1.0}


def _expected_seconds(unit: Any, how: str, past: float | None) -> float:
    """How long a build unit is expected to take, to start the longest first: its time last time on this
    machine, else 1 s for a model the cache holds, else a guess by family (a third-party family: 60 s)."""
    if past is not None:
        return past
    if how == "cached":
        return 1.0
    return _COLD_GUESS.get(unit.job.model.family, 60.0)


def _alike(unit: Any, how: str) -> tuple[str, ...]:
    """What a unit is like, most alike first, for the ETA of units never timed on this machine: the same model
    and task (its other seeds), then its family; a build that restores from the cache only like another."""
    model = unit.job.model
    return (f"{model.name}|{unit.job.task.name}|{how}", f"{model.family}|{how}")


def _history_key(unit: Any, config: RunConfig, how: str) -> str:
    """What a unit's past timing is filed under (genbench.ui.UnitHistory): model, task, profile, device, and
    how the unit goes (a build that trains or restores from the cache, or a timing)."""
    from .comparability import profile_key

    profile = config.user_profile.name if config.user_profile is not None else profile_key(config.profile,
                                                                                             config.steps)
    return "|".join((unit.job.model.name, unit.job.task.name, profile, unit.job.device, how))


def _cached_models(config: RunConfig) -> set[tuple[Any, ...]]:
    """(model, task, profile, steps, seed, device) of the model cache's entries: the builds likely to restore
    rather than train (for the ETA only; the cache's own key decides)."""
    if not config.cache or config.cache_dir is None:
        return set()
    from .cache import ModelCache

    try:
        return {(e["model"], e["task"], e["profile"], e["steps"], e["seed"], e["device"])
                for e in ModelCache(config.cache_dir).entries() if e["readable"]}
    except OSError:
        return set()


def _cache_hit(unit: Any, config: RunConfig, dev: str, hits: set[tuple[Any, ...]]) -> bool:
    return (unit.job.model.name, unit.job.task.name, config.profile, config.steps, unit.seed, dev) in hits


def _sandbox_from_environment() -> str:
    """``--sandbox``'s default: ``$GENBENCH_SANDBOX`` (auto, bwrap or none), else auto."""
    value = os.environ.get("GENBENCH_SANDBOX", "").strip()
    if value and value not in ("auto", "bwrap", "none"):
        raise ConfigError(f"GENBENCH_SANDBOX={value!r} is not a sandbox mode: set it to auto, bwrap or none, or unset "
                          "it.")
    return value or "auto"


def _check_executor(config: RunConfig) -> None:
    if config.executor == "process":
        from .executors.local import check_can_start

        check_can_start()
    elif config.executor == "ray":  # before the run directory exists: a cluster no one answers at is one line
        from .executors.ray_executor import _ray, check_address

        _ray()
        address = config.address or os.environ.get("RAY_ADDRESS")
        if address:
            check_address(address)


def _ceiling(threads: int) -> dict[str, Any] | None:
    """The matmul ceiling, measured as the timing stage starts: nothing else of genbench is running."""
    from .runtime.flops import matmul_ceiling_gflops

    try:
        return matmul_ceiling_gflops(threads)
    except Exception:  # noqa: BLE001 - a figure for context, never a reason to fail a run
        return None


def _with_limits(env: Mapping[str, Any], dev: str, threads: int) -> dict[str, Any]:
    """``env`` with the machine's measured clock and FLOP/cycle (:func:`~genbench.perf.machine.measure_clock`,
    once per process), its physical peak at ``threads`` and, on the CPU, its practical GEMM ceiling; what a
    resumed run measured before is kept."""
    from .perf.machine import machine_identity, measure_clock, physical_peak

    out = dict(env)
    machine = dict(out.get("machine") or machine_identity())
    if dev == "cpu" and not machine.get("clock_ghz"):
        try:
            clock = measure_clock(machine)
        except Exception:  # noqa: BLE001 - a figure for context, never a reason to fail a run
            clock = {}
        machine.update({k: clock.get(k) for k in ("clock_ghz", "flop_per_cycle", "flop_per_cycle_measured", "method",
                                                  "error", "seconds") if k in clock})
        out["machine"] = machine
        out["physical_peak"] = physical_peak(machine, threads, machine.get("cores"))
    if dev == "cpu" and "matmul_gflops" not in out:
        out["matmul_gflops"] = _ceiling(threads)
    return out


def _against_limits(timing: Any, env: Mapping[str, Any]) -> Any:
    """``timing`` with each record stamped with the machine's identity and its shares of the physical peak and
    the practical ceiling; a record above the physical peak flagged as a measurement error. Records already
    stamped with another machine (a resumed run's earlier session) keep theirs."""
    from .perf.machine import annotate
    from .runtime.flops import ceiling_value

    machine = env.get("machine") if isinstance(env.get("machine"), Mapping) else {}
    peak = (env.get("physical_peak") or {}).get("gflops_per_s") if isinstance(env.get("physical_peak"), Mapping) else None
    return replace(timing, performance=tuple(annotate(timing.performance, machine.get("identity"), peak,
                                                      ceiling_value(env.get("matmul_gflops")))))


def _settle_ceiling(ceiling: dict[str, Any], jobs: list[JobResult], threads: int,
                    peak: float | None = None) -> dict[str, Any] | None:
    """Re-measure the ceiling if a graph beat it; if one still does, the final value stays and the run says so.
    A record above the physical ``peak`` is a measurement error and moves nothing."""
    from .runtime.flops import settle_ceiling

    achieved = [(f"{j.model} on {j.task}: {p.graph} {p.runtime} b{p.batch_size}", p.gflops_per_s)
                for j in jobs for p in j.performance if p.gflops_per_s and not (peak and p.gflops_per_s > peak)]
    return settle_ceiling(ceiling, achieved, lambda: _ceiling(threads))


def _add_stages(before: dict[str, float] | None, now: dict[str, float]) -> dict[str, float]:
    """Wall seconds of each stage, summed over the run and its resumes."""
    out = dict(before or {})
    for k, v in now.items():
        out[k] = out.get(k, 0.0) + v
    return out


DATA_COPIES = ".data"  # in the run directory while it runs: each task's arrays, memory-mapped by its jobs


def _task_state(cache: dict, task: DatasetSpec, config: RunConfig, explicit: bool, run_dir: Path, stop: _Stop,
                notes: list[str] | None = None):
    """A task's data for its jobs, loaded once: the loaded state (inline executor), the directory of its saved
    arrays (process executor; None: each job loads it), or why its jobs cannot run (a skip reason, a JobError).

    Outside the inline executor the loader runs in a child process under the jobs' ``--timeout`` and
    ``--max-memory``, so a loader that hangs or inflates a file to gigabytes fails the task's jobs, not the run."""
    if task.name in cache:
        return cache[task.name]
    if config.executor == "inline":
        from .harness import load_task_state, warm_references

        try:
            cache[task.name] = load_task_state(task, config)
            warm_references(cache[task.name], config)
        except DataUnavailableError as exc:
            if explicit:
                raise
            cache[task.name] = f"data not available: {exc}"
        except Exception as exc:  # noqa: BLE001 - bad data fails the task's jobs, not the run
            from .executors.worker import data_error

            cache[task.name] = data_error(exc, config, task.name)
        return cache[task.name]
    from .executors import UnitStopped
    from .executors.local import load_task_in_process

    try:
        loaded = load_task_in_process(task, config, run_dir / DATA_COPIES / task.name, stop.event)
    except UnitStopped:
        return None
    if loaded.printed and notes is not None:
        notes.append(loaded.printed)
    if loaded.unavailable:
        message = loaded.error.message if loaded.error else "unavailable"
        if explicit:
            raise DataUnavailableError(message)
        cache[task.name] = f"data not available: {message}"
    elif loaded.error is not None:
        cache[task.name] = loaded.error
    else:
        # the ray executor's workers may be other machines: they load the task themselves
        cache[task.name] = loaded.directory if config.executor == "process" else None
    return cache[task.name]


def quality_summary(quality: Any) -> str:
    """A job's quality on the console (``genbench run`` and ``genbench score``): every metric, in the order the
    reports show them, each beside its floor; a metric that could not be computed says so."""
    from .reports import METRIC_ORDER

    rank = {m: i for i, m in enumerate(METRIC_ORDER)}
    parts = []
    for k in sorted(quality, key=lambda k: (rank.get(k, len(rank)), k)):
        v = quality[k]
        if v.value is None:
            if v.error and v.error.startswith("not computed"):  # e.g. a classifier metric in a space with none
                parts.append(f"{k} not computed ({v.error.split(':', 1)[1].split(';')[0].strip()})")
            elif v.error and v.error.startswith("not defined"):  # NaN by design (reverse-kl, no good sample)
                parts.append(f"{k} not defined")
            else:
                parts.append(f"{k} failed" if v.error else f"{k} –")
            continue
        parts.append(f"{k} {v.value:.4g}" + (f" (floor {v.floor:.4g})" if v.floor is not None else ""))
    return ", ".join(parts)


def _unit_line(unit: Any, r: Any, seeds: int) -> str:
    """One line per built seed, as it finishes."""
    who = f"{unit.job.model.name} on {unit.job.task.name}" + (f" (seed {unit.seed})" if seeds > 1 else "")
    if r.status == "ok":
        cache = r.cache or {}
        note = f"; {cache.get('reason')}: trained again" if cache.get("status") == "rebuilt" else ""
        return f"  built   {who}: {quality_summary(r.quality) or 'no quality metric'} ({r.seconds or 0:.1f} s{note})"
    if r.status == "skipped":
        return f"  skipped {who}: {r.reason}"
    return f"  FAILED  {who} in {r.error.phase}: {r.error.message}" if r.error else f"  FAILED  {who}"


def _timing_line(j: JobResult) -> str:
    if j.status != "ok":
        return _job_line(j)
    from .reports import perf_summary

    p = perf_summary(j)
    ort, torch_ = p.get("ort_p50_ms_b1"), p.get("torch_p50_ms_b1")
    speed = ", ".join(f"{name} p50 {v:.3g} ms/sample @b1" for name, v in (("ORT", ort), ("torch", torch_))
                      if v is not None)
    if not speed:  # no per-sample figure: say what there is instead
        forward = sum(r.scenario == "forward" for r in j.performance)
        speed = (f"no per-sample figure ({forward} forward-pass records, in report.md's details; the job's warnings "
                 "say why)") if forward else "no timing record (the job's warnings say why)"
    return f"  timed   {j.model} on {j.task}: {speed} ({(j.timing or {}).get('status')})"


def _job_line(j: JobResult, models: Sequence[str] = ()) -> str:
    """One line for a finished job; ``models``: every job the line speaks for (a task's data that could not be
    loaded fails all of its jobs, said once)."""
    who = f"{', '.join(dict.fromkeys(models or (j.model,)))} on {j.task}"
    if j.status == "ok":
        return f"  ok      {who}: {quality_summary(j.quality) or 'no quality metric'} ({j.seconds or 0:.1f} s)"
    if j.status == "failed" and j.error:
        return f"  FAILED  {who} in {j.error.phase}: {j.error.message}"
    return f"  skipped {who}: {j.reason}"


def failure_lines(result: RunResult) -> list[str]:
    """One ``FAILED`` line per failed job (jobs failed by one reason, such as their task's data, share a line):
    the errors ``genbench run --quiet`` still prints."""
    groups: dict[tuple[str, str, str], list[JobResult]] = {}
    for j in result.failed:
        shared = j.error is not None and j.error.phase == "data"
        key = (j.task, j.error.phase, j.error.message) if shared and j.error else (j.model, j.task, j.device)
        groups.setdefault(key, []).append(j)
    return [_job_line(jobs[0], [j.model for j in jobs]) for jobs in groups.values()]


#: seconds a plugin's reporter may take (it runs in a process of its own)
REPORTER_TIMEOUT = 600.0


def write_reports(result: RunResult, run_dir: Path, host: PluginHost | None = None,
                  names: Iterable[str] | None = None, echo: Callable[[str], None] | None = None) -> list[Path]:
    """Call every registered reporter (or those named); a failing reporter is reported, not fatal.

    A plugin's reporters run first, each in a process of its own (plugin code never runs in genbench's); then
    ``run.json`` is written again from the result held here and genbench's own reporters run, so no plugin's
    reporter can change a file genbench writes."""
    from .executors.local import write_report_in_process

    echo = echo or (lambda s: None)
    host = host or make_plugin_manager()
    specs = [host.registry.reporters.get(n) for n in names] if names is not None else list(host.registry.reporters)
    theirs = [s for s in specs if s.plugin != "genbench"]
    written = []
    for spec in theirs:
        try:
            written.append(write_report_in_process(spec.writer, spec.name, result, run_dir, REPORTER_TIMEOUT))
        except Exception as exc:  # noqa: BLE001 - one broken reporter must not hide the others
            echo(f"warning: reporter '{spec.name}' ({spec.plugin}) failed: {one_line(exc)}")
    if theirs and (run_dir / "run.json").is_file():
        write_run(result, run_dir)
    for spec in specs:
        if spec in theirs:
            continue
        try:
            writer = load_object(spec.writer, owner=f"reporter '{spec.name}'")
            written.append(Path(writer(result, run_dir)))
        except Exception as exc:  # noqa: BLE001 - one broken reporter must not hide the others
            echo(f"warning: reporter '{spec.name}' failed: {type(exc).__name__}: {exc}")
    return written


__all__ = ["PlannedJob", "environment", "failure_lines", "interrupt_on_signals", "new_run_id", "output_dir", "plan",
           "quality_summary", "resume_run", "run", "run_jobs", "run_lock", "write_reports"]
