"""The plugin manager: host built-ins first, then every entry point of group ``genbench``, one by one.

A plugin that fails to import, implements a hook that does not exist, raises while registering, or
registers a malformed or duplicate spec is recorded in :attr:`PluginHost.failures`; every other
plugin still works, and so does every other spec of that plugin (a malformed spec made inside a hook is
refused when it is registered, not when it is made). What a plugin prints while it loads is kept in
:attr:`PluginInfo.printed`, never written between genbench's own output (``genbench list --json`` stays JSON).

Entry points are imported in a child process first (one for all of them, each import under a time limit,
``$GENBENCH_PLUGIN_TIMEOUT`` seconds, default 60, and a 4 GiB memory cap): a plugin whose import hangs,
crashes the interpreter, exits or allocates without end is a failed plugin, with its reason, and never
stalls or kills ``genbench list`` or ``genbench run``. Only plugins that imported there are imported here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any, Callable, Iterable, Iterator, Sequence

import pluggy

from . import hookspecs
from .errors import one_line, printable
from .registry import Registry, suggest
from .types import deferred_spec_checks

ENTRY_POINT_GROUP = "genbench"
DISABLE_ENV = "GENBENCH_DISABLE_PLUGINS"
TIMEOUT_ENV = "GENBENCH_PLUGIN_TIMEOUT"  # seconds each plugin's import may take (0: import in-process, unchecked)
DEFAULT_IMPORT_TIMEOUT = 60.0
IMPORT_MEMORY = 4 * 2**30  # bytes of data memory the import probe may allocate


@dataclass(frozen=True)
class PluginInfo:
    name: str  # entry-point name (or "genbench" for the host's built-ins)
    distribution: str
    version: str
    registered: tuple[str, ...] = ()
    #: what the plugin wrote to stdout or stderr while it was imported and registered (up to PRINTED_CHARS)
    printed: str = ""


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    distribution: str
    phase: str  # import | validate | register
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"plugin": self.plugin, "distribution": self.distribution, "phase": self.phase, "message": self.message}

    def __str__(self) -> str:
        return f"plugin '{self.plugin}' ({self.distribution}) failed to {self.phase}: {self.message}"


@dataclass
class PluginHost:
    pm: pluggy.PluginManager
    registry: Registry
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    #: what loaded but will not work as its author meant (e.g. a model naming a task nobody registers)
    warnings: list[str] = field(default_factory=list)


def disabled_from_env() -> set[str]:
    return {p.strip() for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()}


def make_plugin_manager(
    extra_plugins: Iterable[tuple[str, Any]] = (),
    *,
    entry_points: bool = True,
    builtins: bool = True,
    disabled: Iterable[str] | None = None,
) -> PluginHost:
    """Build the plugin manager and fill the registry.

    :param extra_plugins: ``(name, module_or_object)`` pairs registered after the built-ins, as if they
        came from entry points (tests use this to register fake plugins in-process).
    :param entry_points: load the installed entry points of group ``genbench``.
    :param disabled: plugin names (entry-point or distribution names) to block; defaults to
        ``$GENBENCH_DISABLE_PLUGINS`` (comma-separated).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm=pm, registry=Registry.empty())
    blocked = set(disabled) if disabled is not None else disabled_from_env()

    candidates: list[tuple[str, str, str, Callable[[], Any]]] = []
    if builtins:
        from . import builtin

        candidates.append(("genbench", "genbench", _version("genbench"), lambda: builtin))
    for name, obj in extra_plugins:
        candidates.append((name, name, "0", lambda obj=obj: obj))
    if entry_points:
        seen: set[tuple[str, str]] = set()
        eps = []
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if (ep.name, getattr(ep, "value", "")) in seen:  # one distribution found twice on sys.path
                continue
            seen.add((ep.name, getattr(ep, "value", "")))
            dist = ep.dist.name if ep.dist is not None else ep.name
            if ep.name in blocked or dist in blocked:
                host.disabled.append(printable(ep.name))
                continue
            eps.append(ep)
        # only real entry points can be imported elsewhere by their value
        probed = [ep for ep in eps if isinstance(getattr(ep, "value", None), str)]
        found = dict(zip(map(id, probed), _probe_imports([ep.value for ep in probed])))
        verdicts = [found.get(id(ep)) for ep in eps]
        for ep, verdict in zip(eps, verdicts):
            dist = ep.dist.name if ep.dist is not None else ep.name
            ver = ep.dist.version if ep.dist is not None else "0"
            candidates.append((ep.name, dist, ver, ep.load if verdict is None else _refused(verdict)))

    for name, dist, version, load in candidates:
        if name in blocked or dist in blocked:
            host.disabled.append(name)
            continue
        _add_plugin(host, printable(name), printable(dist), printable(version), load)
    host.warnings += host.registry.unknown_tasks()
    return host


class _ImportRefused(Exception):
    pass


def _refused(reason: str) -> Callable[[], Any]:
    def load() -> Any:
        raise _ImportRefused(reason)

    return load


#: the import probe: imports each entry point named on stdin, one verdict (null, or why not) per line
_PROBE = r"""
import ctypes, json, os, resource, sys
from importlib import metadata
try:
    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: never outlive genbench
except Exception:
    pass
parent, paths, limit, values = json.loads(sys.stdin.readline())
if os.getppid() != parent:
    sys.exit(1)
sys.path[:] = paths
try:
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
except (ValueError, OSError):
    pass
verdicts = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # what a plugin prints goes to stderr, never between the verdicts
for value in values:
    try:
        metadata.EntryPoint("probe", value, "genbench").load()
        verdict = None
    except BaseException as exc:
        text = str(exc).strip()
        verdict = type(exc).__name__ + (": " + text.splitlines()[0] if text else "")
    verdicts.write(json.dumps(verdict) + "\n")
    verdicts.flush()
"""


def _probe_imports(values: Sequence[str]) -> list[str | None]:
    """Import entry points ``values`` in a child process, in order, each within ``$GENBENCH_PLUGIN_TIMEOUT``
    seconds; for each, None (it imported) or why it must not be imported here. A child whose import hangs or
    dies is replaced by a new one for the entry points after it."""
    from .settings import env_number

    timeout = env_number(TIMEOUT_ENV, DEFAULT_IMPORT_TIMEOUT, "seconds", zero=True)
    if not values or not timeout > 0:
        return [None] * len(values)
    verdicts: list[str | None] = []
    while len(verdicts) < len(values):
        rest = list(values[len(verdicts):])
        proc = subprocess.Popen([sys.executable, "-I", "-c", _PROBE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            try:
                proc.stdin.write((json.dumps([os.getpid(), sys.path, IMPORT_MEMORY, rest]) + "\n").encode())
                proc.stdin.close()
            except BrokenPipeError:  # it died at once: _read_verdicts says how
                pass
            verdicts += _read_verdicts(proc, len(rest), timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
            proc.stdout.close()
    return verdicts


def _read_verdicts(proc: subprocess.Popen, count: int, timeout: float) -> list[str | None]:
    """Verdict lines from the probe, until ``count`` came, or one took longer than ``timeout`` seconds, or the
    probe died (then that entry point's verdict says so, and the caller starts a new probe for the rest)."""
    out: list[str | None] = []
    buffer = b""
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    while len(out) < count:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return out + [f"its import did not finish within {timeout:g} s (${TIMEOUT_ENV} sets the limit)"]
        chunk = os.read(fd, 65536)
        if not chunk:
            code = proc.wait()
            how = f"killed by {_signal_name(-code)}" if code < 0 else f"exit code {code}"
            return out + [f"its import ended the process ({how})"]
        buffer += chunk
        while b"\n" in buffer and len(out) < count:
            line, buffer = buffer.split(b"\n", 1)
            try:
                verdict = json.loads(line)
            except ValueError:
                verdict = "its import garbled genbench's check of it"
            out.append(None if verdict is None else str(verdict))
            deadline = time.monotonic() + timeout
    return out


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


PRINTED_CHARS = 2000


@contextlib.contextmanager
def _captured(into: io.StringIO) -> Iterator[None]:
    """What Python code writes to stdout and stderr while the block runs goes into ``into``."""
    with contextlib.redirect_stdout(into), contextlib.redirect_stderr(into):
        yield


def _add_plugin(host: PluginHost, name: str, dist: str, version: str, load: Callable[[], Any]) -> None:
    printed = io.StringIO()
    with _captured(printed):
        _load_plugin(host, name, dist, version, load)
    text = printed.getvalue()
    if text.strip() and host.plugins and host.plugins[-1].name == name:
        host.plugins[-1] = replace(host.plugins[-1], printed=text[:PRINTED_CHARS])


def _load_plugin(host: PluginHost, name: str, dist: str, version: str, load: Callable[[], Any]) -> None:
    def fail(phase: str, message: str) -> None:
        host.failures.append(PluginFailure(name, dist, phase, printable(message)))

    try:
        plugin = load()
    except _ImportRefused as exc:
        fail("import", str(exc))
        return
    except BaseException as exc:  # noqa: BLE001 - a broken plugin (even SystemExit) must not stop the host
        if isinstance(exc, KeyboardInterrupt):
            raise
        fail("import", one_line(exc))
        return

    unknown = [a for a in _hookimpl_names(plugin) if a not in hookspecs.HOOK_NAMES]
    if unknown:
        hints = "".join(suggest(u, list(hookspecs.HOOK_NAMES)) for u in unknown)
        fail("validate", f"implements unknown hook(s) {', '.join(unknown)}.{hints}")
        return
    if not _hookimpl_names(plugin):
        fail("validate", "implements no genbench hook; decorate a function such as "
                         "'genbench_register_models' with @genbench.hookimpl.")
        return
    if host.pm.is_registered(plugin) or host.pm.get_plugin(name) is not None:
        fail("validate", f"is registered twice (name '{name}').")
        return
    try:
        host.pm.register(plugin, name=name)
    except Exception as exc:  # noqa: BLE001 - pluggy validates signatures against the specs
        fail("validate", f"{type(exc).__name__}: {exc}")
        return

    registered: list[str] = []
    tables = {
        "genbench_register_models": host.registry.models,
        "genbench_register_datasets": host.registry.datasets,
        "genbench_register_metrics": host.registry.metrics,
        "genbench_register_reporters": host.registry.reporters,
    }
    for hook_name, table in tables.items():
        for impl in getattr(host.pm.hook, hook_name).get_hookimpls():
            if impl.plugin is not plugin:
                continue

            def register(spec: Any, table=table) -> None:
                try:
                    added = table.add(spec, dist, version)
                except Exception as exc:  # noqa: BLE001 - one bad spec is recorded, the rest load
                    fail("register", str(exc))
                    return
                registered.append(f"{table.kind}:{added.name}")

            try:
                with deferred_spec_checks():  # one bad spec is refused by register(); the hook goes on
                    impl.function(register=register)
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, KeyboardInterrupt):
                    raise
                fail("register", f"{hook_name} raised {type(exc).__name__}: {exc}")
    host.plugins.append(PluginInfo(name, dist, version, tuple(registered)))


def _hookimpl_names(plugin: Any) -> list[str]:
    marker = hookspecs.PROJECT_NAME + "_impl"
    return [a for a in dir(plugin) if not a.startswith("_") and hasattr(getattr(plugin, a, None), marker)]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


__all__ = ["ENTRY_POINT_GROUP", "PluginFailure", "PluginHost", "PluginInfo", "make_plugin_manager"]
