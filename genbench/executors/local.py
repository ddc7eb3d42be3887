"""Run units (a job's build for one seed, or its timing) on this machine, each in its own process with a
time limit."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from typing import Any

from ..errors import ConfigError
from ..types import JobError
from . import BuildUnit, TimingUnit

_CONTEXT: Any = None
STARTUP_LIMIT = 300.0


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


def check_can_start() -> None:
    """Job processes re-run the caller's ``__main__`` from its file; a script read from stdin has none."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if getattr(main, "__spec__", None) is None and path and not os.path.isfile(path):
        raise ConfigError(f"Job processes cannot start from a script read from {path}: save the script to a file, "
                          "or pass executor='inline' (--executor inline).")


def run_in_process(unit: BuildUnit | TimingUnit, timeout: float | None) -> Any:
    """Run ``unit`` in a fresh process; a hang past ``timeout`` seconds or a dying process fails it."""
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(unit, sender), name=f"genbench-{unit.kind}-{unit.job.model.name}",
                       daemon=True)
    t0 = time.perf_counter()
    proc.start()
    sender.close()
    phase, result, crash, died = "start", None, None, False
    # The unit's clock starts when its process says it is running: starting a process (the first one
    # starts the forkserver, importing torch) is not the plugin's time.
    deadline = t0 + STARTUP_LIMIT
    try:
        while True:
            if not receiver.poll(max(0.0, deadline - time.perf_counter()) if deadline is not None else None):
                break  # timed out
            try:
                kind, payload = receiver.recv()
            except EOFError:
                died = True  # the process ended without a result
                break
            if kind == "phase":
                if phase == "start":
                    deadline = None if timeout is None else time.perf_counter() + timeout
                phase = payload
            elif kind == "result":
                result = unit.result_from_dict(payload)
                break
            else:
                crash = payload
                break
    finally:
        timed_out = result is None and crash is None and not died and proc.is_alive()
        if timed_out or result is None:
            proc.kill()
        proc.join(10)
        if proc.is_alive():  # it sent its result but would not end
            proc.kill()
            proc.join(10)
        receiver.close()
    if result is not None:
        return result
    seconds = time.perf_counter() - t0
    if timed_out and phase == "start":
        error = JobError(phase, "Timeout", f"the job's process did not start within {STARTUP_LIMIT:g} s; it was killed.")
    elif timed_out:
        error = JobError(phase, "Timeout", f"no result after {timeout:g} s (in phase {phase}); the job's process was "
                                          "killed. Raise --timeout if it needs longer.")
    elif crash is not None:
        error = JobError(phase, "WorkerError", crash.strip().splitlines()[-1])
    else:
        hint = ("; SIGKILL usually means the kernel's out-of-memory killer: --max-memory GIB makes a job that "
                "allocates too much fail with a MemoryError instead") if proc.exitcode == -signal.SIGKILL else ""
        error = JobError(phase, "ProcessDied", f"the job's process died during {phase} ({_describe_exit(proc.exitcode)}) "
                                              f"without a result{hint}")
    where = unit.unit_dir if unit.kind == "build" else unit.job.job_dir
    where.mkdir(parents=True, exist_ok=True)
    name = "error.txt" if unit.kind == "build" else "timing-error.txt"
    (where / name).write_text(f"{error.type}: {error.message}\n" + (crash or ""))
    rel = os.path.relpath(where / name, unit.job.run_dir)
    return unit.failed(error, seconds, {"error": rel})


def _child(unit: BuildUnit | TimingUnit, conn: Any) -> None:
    from .worker import child_main

    child_main(unit, conn)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
