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

import dataclasses
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

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
    from ..reports import contained_file, term_safe

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
               output: UnitOutput | None = None, run_dir: Path | None = None) -> _Outcome:
    """Run ``target(*args, output_paths, conn)`` in a fresh process until it sends a result, crashes, dies,
    overruns ``timeout`` seconds (counted from its first phase message) or ``stop`` is set (then
    :class:`UnitStopped`). ``on_message`` hears its ``("phase", name)`` and ``("progress", (done, total,
    losses))`` messages. Its standard output and error go to ``output``'s files (else /dev/null). Whatever
    way it ends, every process it started ends with it."""
    import psutil

    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    paths = output.prepare() if output is not None else None
    proc = ctx.Process(target=target, args=(*args, paths, sender), name=name, daemon=True)
    t0 = time.perf_counter()
    with _LIVE_LOCK:  # no orphan sweep may take it for an orphan before it is known
        proc.start()
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
    """Run ``unit`` in a fresh process; a hang past ``timeout`` seconds or a dying process fails it. When ``stop``
    is set the process is killed and :class:`UnitStopped` raised: the unit has no result, and stays to do.
    ``on_message(kind, payload)`` hears the unit's phases and training steps as they come (for the display)."""
    output = UnitOutput(unit.job.job_dir, f"seed-{unit.seed}", "") if unit.kind == "build" else \
        UnitOutput(unit.job.job_dir, "timing", "timing_")
    out = _supervise(_child, (unit,), f"genbench-{unit.kind}-{unit.job.model.name}", timeout, stop, on_message,
                     output, unit.job.run_dir)
    if out.payload is not None:
        result = unit.result_from_dict(out.payload)
        return dataclasses.replace(result, files={**result.files, **out.files}) if out.files else result
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
    return unit.failed(error, out.seconds, {**out.files, **files})


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


def _child(unit: BuildUnit | TimingUnit, output: tuple[str, str] | None, conn: Any) -> None:
    detach(conn, output)
    from .worker import child_main

    child_main(unit, conn)


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
                     output=UnitOutput(run_dir / "tasks", task.name), run_dir=run_dir)
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
