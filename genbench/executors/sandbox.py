"""Containment of build processes with bubblewrap (``bwrap``), where the OS allows it.

A build process runs plugin code. Under ``--sandbox bwrap`` (or ``auto`` where bwrap can run) it is started
as ``bwrap … python -c …`` with:

* the whole filesystem read-only, a private ``/tmp``, and a private ``/dev`` and ``/proc``;
* the run directory hidden (an empty tmpfs) but for its own unit directory (read-write) and its task's
  saved data (read-only): no other job's files, no other seed's;
* the model cache hidden (an empty tmpfs): no other model's entries (a cache hit never starts a build
  process: genbench copies the entry itself);
* no network (a namespace of its own, with only a loopback), its own PID, IPC and UTS namespaces;
* death with its parent (``--die-with-parent``), and its own session.

What it would write elsewhere fails with "Read-only file system"; what it would open fails to connect.
Either fails its own job with that one line, and the run goes on. ``--sandbox none`` runs build processes
without containment (forked like every other unit process).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError

SANDBOX_MODES = ("auto", "bwrap", "none")
_PROBE: dict[str, str | None] = {}
_PROBE_LOCK = threading.Lock()
#: the pickled call a sandboxed process makes, beside it in its unit directory (read once, then removed)
CALL_FILE = ".genbench-call.pkl"


def bwrap_problem() -> str | None:
    """None if bwrap can run here (checked once, by running it), else why not, in one line."""
    with _PROBE_LOCK:
        if "bwrap" not in _PROBE:
            _PROBE["bwrap"] = _probe()
        return _PROBE["bwrap"]


def _probe() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"bwrap is for Linux; this is {sys.platform}"
    exe = shutil.which("bwrap")
    if exe is None:
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        done = subprocess.run([exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net",
                               "--unshare-pid", "--die-with-parent", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not start ({exc})"
    if done.returncode != 0:
        said = (done.stderr.decode(errors="replace").strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"bwrap cannot make a sandbox here ({said[:200]})"
    return None


def resolve_mode(mode: str) -> tuple[bool, str | None]:
    """(whether build processes run in bwrap, a one-line note when ``auto`` falls back to none)."""
    if mode not in SANDBOX_MODES:
        raise ConfigError(f"--sandbox {mode!r}: use one of {', '.join(SANDBOX_MODES)}.")
    if mode == "none":
        return False, None
    problem = bwrap_problem()
    if problem is None:
        return True, None
    if mode == "bwrap":
        raise ConfigError(f"--sandbox bwrap: {problem}; install bubblewrap, or pass --sandbox none.")
    return False, f"build processes run without a sandbox: {problem} (--sandbox none says this is intended)"


@dataclass(frozen=True)
class Sandbox:
    """Where one build process may read and write."""

    unit_dir: Path
    hide: tuple[Path, ...]  # directories made empty (the run directory, the model cache)
    readable: tuple[Path, ...] = ()  # shown again read-only inside the hidden ones (the task's saved data)

    def argv(self, command: Sequence[str]) -> list[str]:
        exe = shutil.which("bwrap") or "bwrap"
        args = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
                "--new-session"]
        hidden = sorted({p.resolve() for p in self.hide}, key=lambda p: len(p.parts))
        shown = [p.resolve() for p in self.readable if p.exists()]
        inside = [p for p in shown if any(p.is_relative_to(h) for h in hidden)]
        for path in (p for p in shown if p not in inside):  # code and data outside what is hidden: first, so that
            args += ["--ro-bind", str(path), str(path)]       # hiding comes after (a run directory inside a shown
        for path in hidden:                                    # folder stays hidden)
            if path.is_dir():
                args += ["--tmpfs", str(path)]
        for path in inside:  # shown again inside what is hidden (the task's saved data)
            args += ["--ro-bind", str(path), str(path)]
        unit = str(self.unit_dir.resolve())
        args += ["--bind", unit, unit, "--chdir", unit,
                 "--setenv", "TMPDIR", "/tmp", "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib",
                 "--setenv", "XDG_CACHE_HOME", "/tmp/.cache", "--setenv", "GENBENCH_SANDBOXED", "bwrap", "--"]
        return args + list(command)


class SandboxedProcess:
    """A build process started through bwrap, with the interface of ``multiprocessing.Process`` that the
    supervisor uses (``start``, ``pid``, ``is_alive``, ``join``, ``kill``, ``exitcode``). It runs
    ``function(*args, None, conn)`` (``function`` a "module:name" path of genbench's), with ``conn`` the write
    end of the supervisor's pipe, inherited as a file descriptor."""

    def __init__(self, sandbox: Sandbox, function: str, args: tuple, output: tuple[str, str] | None,
                 conn: Any) -> None:
        self.sandbox, self.function, self.args, self.output, self.conn = sandbox, function, args, output, conn
        self._popen: subprocess.Popen | None = None

    def start(self) -> None:
        call = self.sandbox.unit_dir.absolute() / CALL_FILE
        self.sandbox.unit_dir.mkdir(parents=True, exist_ok=True)
        args = tuple(absolute_paths(a) for a in self.args)  # it starts in its unit directory, not the caller's
        call.write_bytes(pickle.dumps((self.function, args, [os.path.abspath(p) for p in sys.path if p])))
        fd = self.conn.fileno()
        bootstrap = ("import sys; sys.path.pop(0); from genbench.executors.sandbox import sandboxed_main; "
                     "sandboxed_main()")
        command = [sys.executable, "-c", bootstrap, str(fd), str(call)]
        out = open(self.output[0], "ab") if self.output else subprocess.DEVNULL
        err = open(self.output[1], "ab") if self.output else subprocess.DEVNULL
        try:
            self._popen = subprocess.Popen(self.sandbox.argv(command), stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=err, pass_fds=(fd,), start_new_session=True,
                                           cwd=str(self.sandbox.unit_dir))
        finally:
            for f in (out, err):
                if hasattr(f, "close"):
                    f.close()

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def exitcode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        if self._popen is not None:
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

    def kill(self) -> None:
        if self._popen is not None and self._popen.poll() is None:
            self._popen.kill()


def absolute_paths(value: Any) -> Any:
    """``value`` with every relative :class:`~pathlib.Path` in it (in dataclasses, to any depth) made absolute
    against this process's working directory, which a sandboxed process does not share."""
    if isinstance(value, Path):
        return value if value.is_absolute() else Path.cwd() / value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            if not f.init:
                continue
            old = getattr(value, f.name)
            new = absolute_paths(old)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    if isinstance(value, tuple) and value and any(isinstance(v, Path) or dataclasses.is_dataclass(v) for v in value):
        return type(value)(absolute_paths(v) for v in value) if type(value) is tuple else value
    return value


def sandboxed_main() -> None:
    """Inside the sandbox: read the call genbench left, then run it (the process's first act)."""
    from multiprocessing.connection import Connection

    fd, call = int(sys.argv[1]), Path(sys.argv[2])
    function, args, path = pickle.loads(call.read_bytes())
    call.unlink()
    sys.path[:] = path  # genbench's own, as the forkserver's children get it
    conn = Connection(fd, readable=False)
    module, name = function.split(":")
    import importlib
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .local import _die_with_parent

    _die_with_parent(fd)
    getattr(importlib.import_module(module), name)(*args, conn)


def environment_note(active: bool, note: str | None) -> dict[str, Any]:
    """run.json's ``environment.sandbox``."""
    return {"build_processes": "bwrap" if active else "none", **({"note": note} if note else {})}


__all__ = ["SANDBOX_MODES", "Sandbox", "SandboxedProcess", "bwrap_problem", "resolve_mode", "sandboxed_main"]
