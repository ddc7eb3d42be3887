"""Run units (a job's build for one seed, or its timing) and task data loading on this machine, each in its
own process with a time limit.

Every such process is forked from one pre-warmed server (``multiprocessing`` forkserver, torch and ONNX
Runtime already imported), and on start it

* leads its own process group: Ctrl-C in the terminal reaches genbench only, which decides what stops, and
  a kill reaches whatever the plugin started too;
* dies with genbench: the kernel kills it when the forkserver exits (``PR_SET_PDEATHSIG``), and a watchdog
  thread kills its group when the pipe to genbench breaks (genbench killed, even by SIGKILL);
* caps its data memory at ``--max-memory``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..types import DatasetSpec, JobError
from . import BuildUnit, TimingUnit, UnitStopped

_CONTEXT: Any = None
_START_LOCK = threading.Lock()
STARTUP_LIMIT = 300.0
POLL_SECONDS = 0.2  # how soon a stop request (Ctrl-C, SIGTERM) reaches a running unit
STOP_GRACE = 1.0  # how long a unit that died without a result waits for a stop request that explains it


def _context() -> Any:
    """A forkserver that has imported torch and ONNX Runtime once (Linux); spawn elsewhere."""
    global _CONTEXT
    if _CONTEXT is None:
        if sys.platform.startswith("linux"):
            _CONTEXT = multiprocessing.get_context("forkserver")
            _CONTEXT.set_forkserver_preload(["genbench.executors.worker"])
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


def _supervise(target: Callable[..., None], args: tuple, name: str, timeout: float | None,
               stop: threading.Event | None, on_message: Callable[[str, Any], None] | None = None) -> _Outcome:
    """Run ``target(*args, conn)`` in a fresh process until it sends a result, crashes, dies, overruns
    ``timeout`` seconds (counted from its first phase message) or ``stop`` is set (then :class:`UnitStopped`).
    ``on_message`` hears its ``("phase", name)`` and ``("progress", (done, total, losses))`` messages."""
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, sender), name=name, daemon=True)
    t0 = time.perf_counter()
    proc.start()
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
            _kill(proc)
        proc.join(10)
        if proc.is_alive():  # it sent its result but would not end
            _kill(proc)
            proc.join(10)
        _kill_group(proc.pid)  # whatever it started and left behind
        receiver.close()
    if payload is None and crash is None and not (stopped or timed_out) and stop is not None:
        # A signal sent to genbench's whole process group (Ctrl-C, `timeout`, `kill -TERM -PGID`) also ends the
        # forkserver, and so the unit (its exit code reads 255), before genbench's own handler sets ``stop``:
        # a unit that ended without a word while the run is being stopped was stopped, not failed.
        stopped = stop.wait(STOP_GRACE)
    if stopped and payload is None:
        raise UnitStopped(name)
    return _Outcome(payload, crash, phase, timed_out, proc.exitcode, proc.pid, time.perf_counter() - t0)


def _tell(on_message: Callable[[str, Any], None] | None, kind: str, message: Any) -> None:
    """Hand a unit's message to the display; a display that fails must not fail the unit."""
    if on_message is not None:
        try:
            on_message(kind, message)
        except Exception:  # noqa: BLE001
            pass


def _kill(proc: Any) -> None:
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


def run_in_process(unit: BuildUnit | TimingUnit, timeout: float | None, stop: threading.Event | None = None,
                   on_message: Callable[[str, Any], None] | None = None) -> Any:
    """Run ``unit`` in a fresh process; a hang past ``timeout`` seconds or a dying process fails it. When ``stop``
    is set the process is killed and :class:`UnitStopped` raised: the unit has no result, and stays to do.
    ``on_message(kind, payload)`` hears the unit's phases and training steps as they come (for the display)."""
    out = _supervise(_child, (unit,), f"genbench-{unit.kind}-{unit.job.model.name}", timeout, stop, on_message)
    if out.payload is not None:
        return unit.result_from_dict(out.payload)
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
        files = {"error": os.path.relpath(where / name, unit.job.run_dir)}
    except OSError:  # e.g. a full disk: the error is in run.json all the same
        files = {}
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


def _child(unit: BuildUnit | TimingUnit, conn: Any) -> None:
    detach(conn)
    from .worker import child_main

    child_main(unit, conn)


def detach(conn: Any) -> None:
    """In a unit's process: lead a process group, leave Ctrl-C to genbench, and die with genbench."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(conn.fileno())


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
                    if os.getpgid(0) == os.getpid():  # this process leads its group: take what it started too
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


def load_task_in_process(task: DatasetSpec, config: Any, directory: Path,
                         stop: threading.Event | None = None) -> LoadedTask:
    """Load ``task``'s data (and its feature extractor) in a child process under the jobs' limits (``--timeout``,
    ``--max-memory``) and save its arrays in ``directory``: a loader that hangs, crashes or inflates a file to
    gigabytes fails the task's jobs, never genbench."""
    out = _supervise(_data_child, (task, config, str(directory)), f"genbench-data-{task.name}", config.timeout, stop)
    if out.payload is not None:
        error = out.payload.get("error")
        if error is not None:
            return LoadedTask(error=JobError.from_dict(error), unavailable=bool(out.payload.get("unavailable")))
        return LoadedTask(directory=directory if out.payload.get("saved") else None)
    who = f"loading task '{task.name}'"
    if out.timed_out:
        error = JobError("data", "Timeout", f"{who} took more than {config.timeout:g} s (--timeout); it was stopped")
    elif out.crash is not None:
        error = JobError("data", "WorkerError", out.crash.strip().splitlines()[-1] + _start_hint(out, config))
    else:
        error = JobError("data", "ProcessDied", f"the process {who} died ({_describe_exit(out.exitcode)})"
                                                f"{_start_hint(out, config)}")
    return LoadedTask(error=error)


def _data_child(task: DatasetSpec, config: Any, directory: str, conn: Any) -> None:
    detach(conn)
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
