"""Run units (a job's build for one seed, or its timing) and task data loading on this machine, each in its
own process with a time limit.

Every such process is forked from one pre-warmed server (``multiprocessing`` forkserver, torch and ONNX
Runtime already imported), and on start it

* leads its own process group: Ctrl-C in the terminal reaches genbench only, which decides what stops;
* is the subreaper of what its plugin starts (Linux, :mod:`genbench.executors.reaping`): a process that left
  the group (``setsid``) or the tree (a double fork) is still found, and killed, when the unit ends, times
  out or is stopped; what a unit's process that died abruptly left behind moves to the forkserver (a
  subreaper too) and is killed when the unit is over;
* writes its standard output and error (and so does everything it starts) to capped files in the job's
  directory, never to genbench's terminal or pipe (:class:`UnitOutput`);
* dies with genbench: the kernel kills it when the forkserver exits (``PR_SET_PDEATHSIG``; the forkserver
  kills every process below it first), and a watchdog thread kills it and what it started when the pipe
  to genbench breaks (genbench killed, even by SIGKILL);
* caps its data memory at ``--max-memory``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..errors import ConfigError
from ..types import DatasetSpec, JobError
from . import BuildUnit, TimingUnit, UnitStopped

_CONTEXT: Any = None
_START_LOCK = threading.Lock()
STARTUP_LIMIT = 300.0
POLL_SECONDS = 0.2  # how soon a stop request (Ctrl-C, SIGTERM) reaches a running unit
STOP_GRACE = 1.0  # how long a unit that died without a result waits for a stop request that explains it
#: the most of a unit's standard output, and of its standard error, kept on disk; the rest is dropped
OUTPUT_CAP = 2**20
_LIVE: set[int] = set()  # pids of the unit processes running now (the forkserver's other children are orphans)
_LIVE_LOCK = threading.Lock()


def _context() -> Any:
    """A forkserver that has imported torch and ONNX Runtime once (Linux); spawn elsewhere."""
    global _CONTEXT
    if _CONTEXT is None:
        if sys.platform.startswith("linux"):
            _CONTEXT = multiprocessing.get_context("forkserver")
            _CONTEXT.set_forkserver_preload(["genbench.executors.worker", "genbench.executors._forkserver_init"])
        else:  # pragma: no cover - macOS/Windows
            _CONTEXT = multiprocessing.get_context("spawn")
    return _CONTEXT


def start_server() -> None:
    """Start the forkserver (if it is not running) from the installed package's own directory.

    The forkserver is a ``python -c`` process, so the directory it starts in heads its ``sys.path``: started
    from a working directory that holds a folder named ``genbench``, it would import that folder instead of
    genbench, and every job would die at start. Job processes change to the caller's directory when they
    start, so relative paths still mean what they meant. Call it from the main thread, before units run.
    """
    if _context().get_start_method() != "forkserver":  # pragma: no cover - macOS/Windows
        return
    from multiprocessing import forkserver

    home = Path(__file__).resolve().parents[2]  # the directory that holds this genbench package
    with _START_LOCK:
        try:
            cwd = os.getcwd()
        except OSError:  # the working directory is gone: nothing there can shadow anything
            forkserver.ensure_running()
            return
        try:
            os.chdir(home)
            forkserver.ensure_running()
        finally:
            os.chdir(cwd)


def check_can_start() -> None:
    """Job processes re-run the caller's ``__main__`` from its file; a script read from stdin has none."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if getattr(main, "__spec__", None) is None and path and not os.path.isfile(path):
        raise ConfigError(f"Job processes cannot start from a script read from {path}: save the script to a file, "
                          "or pass executor='inline' (--executor inline).")
    start_server()


class UnitOutput:
    """Where a unit's process writes its standard output and error: ``<stem>.stdout.txt`` and
    ``<stem>.stderr.txt`` in ``directory``, each kept to :data:`OUTPUT_CAP` bytes (checked as the unit runs,
    and cut to it when it ends); an empty one is removed. A plugin's prints, and its escape sequences, stay
    there: genbench shows at most a neutralised line of them (:func:`printed_note`)."""

    def __init__(self, directory: Path, stem: str, key: str = "") -> None:
        self.paths = {name: Path(directory) / f"{stem}.{name}.txt" for name in ("stdout", "stderr")}
        self.key = key  # the prefix of their ``files`` entries (``stdout``, or e.g. ``timing_stdout``)
        self.cut: set[str] = set()

    def prepare(self) -> tuple[str, str] | None:
        """Create both files empty; their paths for the unit's process, or None if they cannot be made (it
        then writes to /dev/null)."""
        try:
            for path in self.paths.values():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")
        except OSError:
            return None
        return str(self.paths["stdout"]), str(self.paths["stderr"])

    def cap(self) -> None:
        """Cut a file grown past the cap back to it (the process appends: it writes on at the new end)."""
        for name, path in self.paths.items():
            try:
                if path.stat().st_size > OUTPUT_CAP:
                    os.truncate(path, OUTPUT_CAP)
                    self.cut.add(name)
            except OSError:
                pass

    def settle(self, run_dir: Path) -> dict[str, str]:
        """After the unit: cap the files, note a cut in them, remove empty ones; ``files`` entries (relative to
        ``run_dir``) of those kept."""
        self.cap()
        files = {}
        for name, path in self.paths.items():
            try:
                if path.stat().st_size == 0:
                    path.unlink()
                    continue
                if name in self.cut:
                    with open(path, "ab") as f:
                        f.write(f"\n[genbench: cut at {OUTPUT_CAP:,} bytes]\n".encode())
                files[self.key + name] = os.path.relpath(path, run_dir)
            except OSError:
                continue
        return files


def printed_note(who: str, files: Mapping[str, str], run_dir: Path) -> str | None:
    """One line saying that ``who`` printed (``files``' ``stdout``/``stderr`` entries, relative to ``run_dir``),
    where it is kept, and the first line printed, neutralised (no escape sequence reaches the terminal) and
    cut; None if it printed nothing."""
    from ..text import contained_file, term_safe

    kept = [name for name in files if name.endswith(("stdout", "stderr")) and files[name]]
    if not kept:
        return None
    first = ""
    for name in sorted(kept, key=lambda n: not n.endswith("stderr")):
        path, _ = contained_file(run_dir, files[name], OUTPUT_CAP + 4096)  # only the run's own files are read
        if path is None or first:
            continue
        try:
            with open(path, "rb") as f:
                head = f.read(4096).decode("utf-8", errors="replace")
        except OSError:
            continue
        first = next((line.strip() for line in head.splitlines() if line.strip()), "")
    where = " and ".join(f"{name} in {files[name]}" for name in kept)
    shown = term_safe(first[:120] + ("…" if len(first) > 120 else ""))
    return f"  printed {term_safe(who)}: kept, {term_safe(where)}" + (f"; first line: {shown}" if shown else "")


@dataclass
class _Outcome:
    """How a supervised process ended."""

    payload: Any  # what it sent as ("result", payload), or None
    crash: str | None  # the traceback it sent instead
    phase: str  # the last phase it announced
    timed_out: bool
    exitcode: int | None
    pid: int
    seconds: float
    files: dict[str, str]  # its output files kept (UnitOutput.settle)


def _supervise(target: Callable[..., None], args: tuple, name: str, timeout: float | None,
               stop: threading.Event | None, on_message: Callable[[str, Any], None] | None = None,
               output: UnitOutput | None = None, run_dir: Path | None = None,
               sandboxed: tuple[Any, str] | None = None, plugin_code: bool = False) -> _Outcome:
    """Run ``target(*args, output_paths, conn)`` in a fresh process until it sends a result, crashes, dies,
    overruns ``timeout`` seconds (counted from its first phase message) or ``stop`` is set (then
    :class:`UnitStopped`). ``on_message`` hears its ``("phase", name)`` and ``("progress", (done, total,
    losses))`` messages. Its standard output and error go to ``output``'s files (else /dev/null). Whatever
    way it ends, every process it started ends with it. ``sandboxed`` (a :class:`genbench.executors.sandbox.Sandbox`
    and the "module:function" to call there with ``(*args, conn)``) starts it through bwrap instead of forking it.
    ``plugin_code``: the process runs a plugin's code (a build, a task's loader), and may re-run the caller's
    ``__main__`` (where a script may define its plugin); a genbench-only process never does."""
    import psutil

    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    paths = output.prepare() if output is not None else None
    if sandboxed is not None:
        from .sandbox import SandboxedProcess

        proc = SandboxedProcess(sandboxed[0], sandboxed[1], args, paths, sender)
    else:
        proc = ctx.Process(target=target, args=(*args, paths, sender), name=name, daemon=True)
    t0 = time.perf_counter()
    with _LIVE_LOCK, (contextlib.nullcontext() if sandboxed is not None or plugin_code else _main_hidden()):
        proc.start()  # no orphan sweep may take it for an orphan before it is known
        _LIVE.add(proc.pid)
    try:
        handle = psutil.Process(proc.pid)  # pins the pid: a later kill never reaches a process that reused it
    except psutil.Error:
        handle = None
    sender.close()
    phase, payload, crash, timed_out, stopped = "start", None, None, False, False
    # The clock starts when the process says it is running: starting a process (the first one starts the
    # forkserver, importing torch) is not the plugin's time.
    deadline: float | None = t0 + STARTUP_LIMIT
    try:
        while True:
            if stop is not None and stop.is_set():
                stopped = True
                break
            left = None if deadline is None else deadline - time.perf_counter()
            if left is not None and left <= 0:
                timed_out = True
                break
            if output is not None:
                output.cap()
            if not receiver.poll(POLL_SECONDS if left is None else min(POLL_SECONDS, left)):
                continue
            try:
                kind, message = receiver.recv()
            except EOFError:
                break  # the process ended without a result
            if kind == "phase":
                if phase == "start":
                    deadline = None if timeout is None else time.perf_counter() + timeout
                phase = message
                _tell(on_message, kind, message)
            elif kind == "progress":
                _tell(on_message, kind, message)
            elif kind == "result":
                payload = message
                break
            else:
                crash = message
                break
    finally:
        if payload is None:
            _end(proc, handle)
        proc.join(10)
        if proc.is_alive():  # it sent its result but would not end
            _end(proc, handle)
            proc.join(10)
        _kill_group(proc.pid)  # whatever it started and left behind
        with _LIVE_LOCK:
            _LIVE.discard(proc.pid)
        sweep_orphans()
        receiver.close()
    if payload is None and crash is None and not (stopped or timed_out) and stop is not None:
        # A signal sent to genbench's whole process group (Ctrl-C, `timeout`, `kill -TERM -PGID`) also ends the
        # forkserver, and so the unit (its exit code reads 255), before genbench's own handler sets ``stop``:
        # a unit that ended without a word while the run is being stopped was stopped, not failed.
        stopped = stop.wait(STOP_GRACE)
    files = output.settle(run_dir) if output is not None and run_dir is not None else {}
    if stopped and payload is None:
        raise UnitStopped(name)
    return _Outcome(payload, crash, phase, timed_out, proc.exitcode, proc.pid, time.perf_counter() - t0, files)


def _tell(on_message: Callable[[str, Any], None] | None, kind: str, message: Any) -> None:
    """Hand a unit's message to the display; a display that fails must not fail the unit."""
    if on_message is not None:
        try:
            on_message(kind, message)
        except Exception:  # noqa: BLE001
            pass


def _end(proc: Any, handle: Any) -> None:
    """Kill a unit's process and every process below it: the descendants first, while the unit's process is
    alive to adopt (as their subreaper) what a dying one leaves, then its group, then it."""
    from .reaping import kill_descendants

    if handle is not None and proc.is_alive():
        kill_descendants(process=handle)
    _kill_group(proc.pid)
    if proc.is_alive():
        proc.kill()


def _kill_group(pid: int | None) -> None:
    """SIGKILL the process group a unit's process leads (it, and what it started)."""
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def sweep_orphans() -> int:
    """Kill the forkserver's children that are not running units, and everything below them: processes a
    plugin started whose unit's process died before them (they moved to the forkserver, their subreaper).
    How many processes were killed."""
    if _CONTEXT is None or _CONTEXT.get_start_method() != "forkserver":
        return 0
    from multiprocessing import forkserver

    import psutil

    from .reaping import kill_descendants

    server = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if server is None:
        return 0
    killed = 0
    with _LIVE_LOCK:
        try:
            orphans = [c for c in psutil.Process(server).children() if c.pid not in _LIVE]
        except psutil.Error:
            return 0
        for orphan in orphans:
            killed += kill_descendants(process=orphan)
            try:
                if orphan.status() != psutil.STATUS_ZOMBIE:
                    orphan.kill()
                    killed += 1
            except psutil.Error:
                pass
    return killed


def run_in_process(unit: BuildUnit | TimingUnit, timeout: float | None, stop: threading.Event | None = None,
                   on_message: Callable[[str, Any], None] | None = None) -> Any:
    """Run ``unit`` in fresh processes; a hang past ``timeout`` seconds or a dying process fails it. When ``stop``
    is set the process is killed and :class:`UnitStopped` raised: the unit has no result, and stays to do.
    ``on_message(kind, payload)`` hears the unit's phases and training steps as they come (for the display).

    A build unit is a build process (plugin code: train, export, capture; skipped when the model cache holds
    the model, whose files genbench copies itself), then a score process (genbench only). A timing unit is a
    time process (genbench only), then, for graphs whose module torch.export could not capture, a build process
    that times torch on the plugin's own module (``computed_by: plugin``)."""
    if unit.kind == "build":
        return _run_build_unit(unit, timeout, stop, on_message)
    return _run_timing_unit(unit, timeout, stop, on_message)


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """While a genbench-only (score or time) process starts: multiprocessing would have it re-run the caller's
    ``__main__`` script (as ``__mp_main__``), and a script that imports a plugin at its top would put plugin
    code there. Its functions are genbench's, so it needs none: hide the script's file and spec for the start
    (the caller holds ``_LIVE_LOCK``, under which every unit process starts)."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None  # multiprocessing reads main.__spec__ unguarded
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)


def _sandbox_for(unit: BuildUnit | TimingUnit) -> Any:
    """The bwrap sandbox of a unit's build process, or None (``--sandbox none``, or bwrap cannot run here)."""
    from .sandbox import Sandbox, resolve_mode

    active, _ = resolve_mode(getattr(unit.job.config, "sandbox", "auto"))
    if not active:
        return None
    from ..cache import default_cache_dir

    config = unit.job.config
    hide = [unit.job.run_dir, Path(config.cache_dir or default_cache_dir()).expanduser()]
    readable = [Path(unit.job.data)] if unit.job.data is not None else []
    # the user's own data files, which the run's settings name (and a build process's copy of them checks)
    readable += [Path(p) for p in (config.text_file, config.data_dir) if p is not None]
    # the code it runs, where the private /tmp or a hidden directory would hide it: sys.path entries there, and
    # the source of the model's package (an editable install's lives outside site-packages, e.g. under /tmp)
    # "": the working directory; the interpreter's prefix (a virtual environment under /tmp)
    entries = [os.path.abspath(p or os.curdir) for p in (*sys.path, sys.prefix, sys.exec_prefix)]
    readable += [Path(p) for p in entries if os.path.isdir(p) and p != "/tmp"
                 and (p.startswith("/tmp/") or any(Path(p).is_relative_to(h) for h in hide))]
    readable += _source_dirs(getattr(unit.job.model, "cls", "") or "") + _source_dirs("genbench:run")
    # `run --onnx FILE`: the graph files the user named (under /tmp, they would be hidden by the private /tmp)
    readable += [Path(f) for f in getattr(unit.job.model, "files", ()) or () if os.path.isfile(f)]
    return Sandbox(unit.unit_dir, tuple(hide), tuple(readable))


def _source_dirs(class_path: str) -> list[Path]:
    """Where the top-level package of ``"package.module:Class"`` lives, found without importing it (a top-level
    ``find_spec`` runs no code of the package); empty when it cannot be found."""
    import importlib.util

    top = class_path.split(":", 1)[0].split(".", 1)[0]
    if not top.isidentifier():
        return []
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    places = list(spec.submodule_search_locations or []) or ([os.path.dirname(spec.origin)] if spec.origin else [])
    return [Path(p) for p in places if os.path.isdir(p)]


def _run_build_unit(unit: BuildUnit, timeout: float | None, stop: threading.Event | None,
                    on_message: Callable[[str, Any], None] | None) -> Any:
    from ..stages.build import clear_unit
    from ..stages.cached import cache_use, refused_after_validation, restore
    from .worker import data_error, load_dataset

    job = unit.job
    config = dataclasses.replace(job.config, seed=unit.seed)
    t0 = time.perf_counter()
    try:
        clear_unit(unit.unit_dir)
        use = cache_use(job.model, load_dataset(job), config, job.device)  # genbench's key, computed here
    except Exception as exc:  # noqa: BLE001 - the task's saved data could not be read
        return unit.failed(data_error(exc, job.config), time.perf_counter() - t0)
    built = restore(use, unit.unit_dir, config)  # a hit runs no plugin code: genbench copies the entry's files
    if built is not None:
        result = _score_unit(unit, built, use, timeout, stop, on_message, {})
        if not refused_after_validation(use, result):
            return result
        clear_unit(unit.unit_dir)  # the entry is discarded: train the model afresh
    files: dict[str, str] = {}
    sandbox = _sandbox_for(unit)
    out = _supervise(_build_child, (unit,), f"genbench-build-{job.model.name}", timeout, stop, on_message,
                     UnitOutput(job.job_dir, f"seed-{unit.seed}", ""), job.run_dir,
                     sandboxed=(sandbox, "genbench.executors.worker:build_child_main") if sandbox else None,
                     plugin_code=True)
    files.update(out.files)
    if out.payload is None:
        return _process_failure(unit, out, timeout, files)
    left = None if timeout is None else max(1.0, timeout - out.seconds)
    return _score_unit(unit, out.payload, use, left, stop, on_message, files)


def _score_unit(unit: BuildUnit, built: dict, use: Any, timeout: float | None, stop: threading.Event | None,
                on_message: Callable[[str, Any], None] | None, files: dict[str, str]) -> Any:
    job = unit.job
    out = _supervise(_score_child, (unit, built, use.to_dict() if use else None), f"genbench-score-{job.model.name}",
                     timeout, stop, on_message, UnitOutput(job.job_dir, f"seed-{unit.seed}-score", "score_"),
                     job.run_dir)
    files = {**files, **out.files}
    if out.payload is None:
        return _process_failure(unit, out, timeout, files)
    result = unit.result_from_dict(out.payload)
    if use is not None and result.cache:
        use.info.clear()
        use.info.update(result.cache)
    return dataclasses.replace(result, files={**result.files, **files}) if files else result


def _run_timing_unit(unit: TimingUnit, timeout: float | None, stop: threading.Event | None,
                     on_message: Callable[[str, Any], None] | None) -> Any:
    from ..stages import PLUGIN
    from .worker import merge_plugin_torch

    job = unit.job
    out = _supervise(_time_child, (unit,), f"genbench-timing-{job.model.name}", timeout, stop, on_message,
                     UnitOutput(job.job_dir, "timing", "timing_"), job.run_dir)
    if out.payload is None:
        return _process_failure(unit, out, timeout, out.files)
    result = unit.result_from_dict(out.payload)
    result = dataclasses.replace(result, files={**result.files, **out.files}) if out.files else result
    roles = list(result.info.get("plugin_torch") or [])
    if result.status != "done" or not roles:
        return result
    sandbox = _sandbox_for(unit)
    out = _supervise(_plugin_torch_child, (unit, roles), f"genbench-plugin-timing-{job.model.name}", timeout, stop,
                     on_message, UnitOutput(job.job_dir, "timing-plugin", "timing_plugin_"), job.run_dir,
                     sandboxed=(sandbox, "genbench.executors.worker:plugin_torch_child_main") if sandbox else None,
                     plugin_code=True)
    extra = unit.result_from_dict(out.payload) if out.payload is not None else \
        _process_failure(unit, out, timeout, out.files)
    merged = merge_plugin_torch(result, extra, PLUGIN)
    return dataclasses.replace(merged, files={**merged.files, **out.files})


def _process_failure(unit: BuildUnit | TimingUnit, out: _Outcome, timeout: float | None, files: dict[str, str]) -> Any:
    config = unit.job.config
    if out.timed_out and out.phase == "start":
        error = JobError(out.phase, "Timeout", f"the job's process did not start within {STARTUP_LIMIT:g} s; it was "
                                               "killed.")
    elif out.timed_out:
        error = JobError(out.phase, "Timeout", f"no result after {timeout:g} s (in phase {out.phase}); the job's "
                                               "process was killed. Raise --timeout if it needs longer.")
    elif out.crash is not None:
        error = JobError(out.phase, "WorkerError", out.crash.strip().splitlines()[-1] + _start_hint(out, config))
    else:
        hint = ("; SIGKILL usually means the kernel's out-of-memory killer: --max-memory GIB makes a job that "
                "allocates too much fail with a MemoryError instead") \
            if out.exitcode == -signal.SIGKILL and not config.max_memory else ""
        error = JobError(out.phase, "ProcessDied", f"the job's process died during {out.phase} "
                                                   f"({_describe_exit(out.exitcode)}) without a result{hint}"
                                                   f"{_start_hint(out, config)}")
    evicted = _evict_hung_restore(unit, out)
    if evicted:
        error = JobError(error.phase, error.type, f"{error.message} {evicted}")
    where = unit.unit_dir if unit.kind == "build" else unit.job.job_dir
    name = "error.txt" if unit.kind == "build" else "timing-error.txt"
    try:
        where.mkdir(parents=True, exist_ok=True)
        (where / name).write_text(f"{error.type}: {error.message}\n" + (out.crash or ""))
        files = {**files, "error": os.path.relpath(where / name, unit.job.run_dir)}
    except OSError:  # e.g. a full disk: the error is in run.json all the same
        pass
    return unit.failed(error, out.seconds, files)


def _start_hint(out: _Outcome, config: Any) -> str:
    """Why a process that never got going may have died: its memory limit, or a folder shadowing genbench."""
    if out.phase not in ("start", "load", "data"):
        return ""
    hints = []
    if config.max_memory and (out.crash is None or "MemoryError" in out.crash or "memory" in out.crash.lower()):
        hints.append(f"the process may not fit in its memory limit (--max-memory {config.max_memory:g} GiB): "
                     "raise it")
    shadow = shadowing_folder()
    if shadow is not None:
        hints.append(f"the folder {shadow} shadows the installed genbench package: run genbench from another "
                     "directory, or rename that folder")
    return "".join(f"; {h}" for h in hints)


def shadowing_folder() -> Path | None:
    """A ``genbench`` folder in the working directory that is not this package (it would shadow it)."""
    here = Path(__file__).resolve().parents[1]
    candidate = Path.cwd() / "genbench"
    try:
        return candidate if candidate.is_dir() and candidate.resolve() != here else None
    except OSError:
        return None


def _evict_hung_restore(unit: BuildUnit | TimingUnit, out: _Outcome) -> str:
    """A unit that hung or died while restoring a model-cache entry: evict the entry (every later run would
    hang on it too) and say so."""
    config = unit.job.config
    if unit.kind != "build" or not config.cache or out.phase not in ("restore", "validate"):
        return ""
    from ..cache import ModelCache, default_cache_dir

    cache = ModelCache(config.cache_dir or default_cache_dir())
    key = cache.evict_restoring(out.pid)
    if key is None:
        return ""
    return (f"It was restoring model cache entry {key[:16]} (in {cache.root}), which is evicted: the next run "
            "trains this model afresh.")


def _build_child(unit: BuildUnit, output: tuple[str, str] | None, conn: Any) -> None:
    detach(conn, output)
    from .worker import build_child_main

    build_child_main(unit, conn)


def _score_child(unit: BuildUnit, built: dict, use: dict | None, output: tuple[str, str] | None, conn: Any) -> None:
    detach(conn, output)
    from .worker import score_child_main

    score_child_main(unit, built, use, conn)


def _time_child(unit: TimingUnit, output: tuple[str, str] | None, conn: Any) -> None:
    detach(conn, output)
    from .worker import time_child_main

    time_child_main(unit, conn)


def _plugin_torch_child(unit: TimingUnit, roles: list, output: tuple[str, str] | None, conn: Any) -> None:
    detach(conn, output)
    from .worker import plugin_torch_child_main

    plugin_torch_child_main(unit, roles, conn)


def detach(conn: Any, output: tuple[str, str] | None = None) -> None:
    """In a unit's process, before any plugin code: lead a process group, adopt what the plugin starts
    (subreaper), leave Ctrl-C to genbench, die with genbench, and write standard output and error to the
    ``output`` files (stdout, stderr; else /dev/null), never to genbench's terminal or pipe."""
    from .reaping import become_subreaper

    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    become_subreaper()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _redirect_output(output)
    _die_with_parent(conn.fileno())


def _redirect_output(output: tuple[str, str] | None) -> None:
    """Point file descriptors 1 and 2 (inherited by every process started from here) at the unit's output
    files, appending."""
    for fd, path in zip((1, 2), output or (os.devnull, os.devnull)):
        try:
            target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:
            target = os.open(os.devnull, os.O_WRONLY)
        stream = sys.stdout if fd == 1 else sys.stderr
        try:
            stream.flush()  # nothing written before belongs in the files
        except (AttributeError, OSError, ValueError):
            pass
        os.dup2(target, fd)
        os.close(target)


def _die_with_parent(fd: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        try:  # the kernel kills this process when its parent (the forkserver, which exits with genbench) exits
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    import select

    watched = os.dup(fd)  # the write end of the pipe to genbench: it breaks when genbench is gone

    def watchdog() -> None:
        poller = select.poll()
        poller.register(watched, 0)  # POLLERR and POLLHUP are reported whatever the mask
        while True:
            for _, event in poller.poll():
                if event & (select.POLLERR | select.POLLHUP):
                    from .reaping import kill_descendants

                    kill_descendants()  # what it started, wherever it moved (this process is their subreaper)
                    if os.getpgid(0) == os.getpid():  # this process leads its group
                        _kill_group(os.getpid())
                    os._exit(1)
                if event & select.POLLNVAL:
                    return

    threading.Thread(target=watchdog, name="genbench-watchdog", daemon=True).start()


# ------------------------------------------------------------------ task data


@dataclass(frozen=True)
class LoadedTask:
    """A task's data loaded by a child process: saved in ``directory`` for the jobs to memory-map (None: the
    jobs load it themselves), or why it could not be loaded."""

    directory: Path | None = None
    error: JobError | None = None
    unavailable: bool = False  # DataUnavailableError: the data's files are not on this machine
    printed: str | None = None  # the loader printed: where it is kept (printed_note)


def load_task_in_process(task: DatasetSpec, config: Any, directory: Path,
                         stop: threading.Event | None = None) -> LoadedTask:
    """Load ``task``'s data (and its feature extractor) in a child process under the jobs' limits (``--timeout``,
    ``--max-memory``) and save its arrays in ``directory``: a loader that hangs, crashes or inflates a file to
    gigabytes fails the task's jobs, never genbench."""
    run_dir = Path(directory).parent.parent  # directory: <run>/.data/<task>
    out = _supervise(_data_child, (task, config, str(directory)), f"genbench-data-{task.name}", config.timeout, stop,
                     output=UnitOutput(run_dir / "tasks", task.name), run_dir=run_dir, plugin_code=True)
    _remove_if_empty(run_dir / "tasks")
    printed = printed_note(f"loading task {task.name}", out.files, run_dir)
    if out.payload is not None:
        error = out.payload.get("error")
        if error is not None:
            return LoadedTask(error=JobError.from_dict(error), unavailable=bool(out.payload.get("unavailable")),
                              printed=printed)
        return LoadedTask(directory=directory if out.payload.get("saved") else None, printed=printed)
    who = f"loading task '{task.name}'"
    if out.timed_out:
        error = JobError("data", "Timeout", f"{who} took more than {config.timeout:g} s (--timeout); it was stopped")
    elif out.crash is not None:
        error = JobError("data", "WorkerError", out.crash.strip().splitlines()[-1] + _start_hint(out, config))
    else:
        error = JobError("data", "ProcessDied", f"the process {who} died ({_describe_exit(out.exitcode)})"
                                                f"{_start_hint(out, config)}")
    return LoadedTask(error=error, printed=printed)


def write_report_in_process(writer: str, name: str, result: Any, run_dir: Path, timeout: float | None = None) -> Path:
    """A plugin's reporter (plugin code) run on the finished run in a process of its own, never in genbench's:
    the path it wrote, or :class:`RuntimeError` saying in one line why not (it raised, hung past ``timeout``
    seconds, or died)."""
    out = _supervise(_report_child, (writer, name, result, str(run_dir)), f"genbench-report-{name}", timeout, None,
                     output=UnitOutput(Path(run_dir) / "reporters", name), run_dir=Path(run_dir), plugin_code=True)
    _remove_if_empty(Path(run_dir) / "reporters")
    if out.payload is not None:
        if out.payload.get("error"):
            raise RuntimeError(str(out.payload["error"]).strip().splitlines()[0][:300])
        return Path(out.payload["path"])
    if out.timed_out:
        raise RuntimeError(f"it took more than {timeout:g} s; it was stopped")
    if out.crash is not None:
        raise RuntimeError(out.crash.strip().splitlines()[-1][:300])
    raise RuntimeError(f"its process died ({_describe_exit(out.exitcode)})")


def _report_child(writer: str, name: str, result: Any, run_dir: str, output: tuple[str, str] | None,
                  conn: Any) -> None:
    detach(conn, output)
    from .worker import report_child_main

    report_child_main(writer, name, result, Path(run_dir), conn)


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass


def _data_child(task: DatasetSpec, config: Any, directory: str, output: tuple[str, str] | None, conn: Any) -> None:
    detach(conn, output)
    from .worker import data_child_main

    data_child_main(task, config, Path(directory), conn)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
