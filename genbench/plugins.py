"""The plugin manager: host built-ins first, then every entry point of group ``genbench``, one by one.

A plugin that fails to import, implements a hook that does not exist, raises while registering, or
registers a malformed or duplicate spec is recorded in :attr:`PluginHost.failures`; every other
plugin still works, and so does every other spec of that plugin (a malformed spec made inside a hook is
refused when it is registered, not when it is made). What a plugin prints while it loads is kept in
:attr:`PluginInfo.printed`, never written between genbench's own output (``genbench list --json`` stays JSON).

Entry points are imported, and their register hooks called, in a child process and never in genbench's
own (one child for all of them, each plugin under a time limit, ``$GENBENCH_PLUGIN_TIMEOUT`` seconds,
default 60, and a 4 GiB memory cap): what a plugin does when its module is imported (patch numpy, the clock
or genbench itself) happens there and goes no further, and a plugin whose import hangs, crashes the
interpreter, exits or allocates without end is a failed plugin, with its reason, and never stalls or kills
``genbench list`` or ``genbench run``. The child sends back the specs each plugin registered, as data; the
registry here is filled from them (every check runs again), and the lazy paths they hold are imported only
in the processes that run plugin code. ``$GENBENCH_PLUGIN_TIMEOUT=0`` switches the child off: plugins are
then imported and registered in genbench's own process (for debugging only).
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
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

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
        # only real entry points can be registered elsewhere, by their value; a plugin that did (or failed to)
        # is added from its record, and its module is never imported here
        remote = [ep for ep in eps if isinstance(getattr(ep, "value", None), str)]
        records = dict(zip(map(id, remote), _register_elsewhere(
            [(printable(ep.name), _dist_of(ep)[0], _dist_of(ep)[1], ep.value) for ep in remote])))
        for ep in eps:
            dist, ver = _dist_of(ep)
            record = records.get(id(ep))
            if record is None:  # registered in this process (the child is off, or not a real entry point)
                candidates.append((ep.name, dist, ver, ep.load))
            else:
                candidates.append((ep.name, dist, ver, _from_record(record)))
    for name, dist, version, load in candidates:
        if name in blocked or dist in blocked:
            host.disabled.append(name)
            continue
        _add_plugin(host, printable(name), printable(dist), printable(version), load)
    host.warnings += host.registry.unknown_tasks()
    return host


def _dist_of(ep: Any) -> tuple[str, str]:
    if ep.dist is None:
        return printable(ep.name), "0"
    return printable(ep.dist.name), printable(ep.dist.version)


@dataclass(frozen=True)
class _Record:
    """What the registration child said of one plugin (see :func:`plugin_record`), or why it could not."""

    data: dict[str, Any]

    def __call__(self) -> Any:  # pragma: no cover - records are added by _add_record, never loaded
        raise RuntimeError("a plugin registered in a child process is not imported here")


def _from_record(data: dict[str, Any]) -> _Record:
    return _Record(data)


#: the registration child: for each entry point named on stdin, one JSON record per line (plugin_record's)
_CHILD = r"""
import ctypes, json, os, resource, sys
try:
    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: never outlive genbench
except Exception:
    pass
parent, paths, limit, entries = json.loads(sys.stdin.readline())
if os.getppid() != parent:
    sys.exit(1)
sys.path[:] = paths
try:
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))
except (ValueError, OSError):
    pass
records = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # what a plugin prints goes to stderr, never between the records
from genbench.plugins import plugin_record
for name, dist, version, value in entries:
    try:
        record = plugin_record(name, dist, version, value)
    except BaseException as exc:
        record = {"error": type(exc).__name__ + ": " + (str(exc).strip().splitlines() or [""])[0]}
    records.write(json.dumps(record) + "\n")
    records.flush()
"""


def plugin_record(name: str, dist: str, version: str, value: str) -> dict[str, Any]:
    """In the registration child: import entry point ``value``, validate and call its register hooks as the host
    does, and return what came of it as JSON data: ``specs`` (per table kind, each spec's fields), ``failures``
    (each a :class:`PluginFailure`'s fields) and ``printed``."""
    host = PluginHost(pm=pluggy.PluginManager(hookspecs.PROJECT_NAME), registry=Registry.empty())
    host.pm.add_hookspecs(hookspecs)
    _add_plugin(host, name, dist, version, metadata.EntryPoint(name, value, ENTRY_POINT_GROUP).load)
    specs = {t.kind: [spec.to_dict() for spec in t] for t in host.registry.tables()}
    info = host.plugins[-1] if host.plugins else None
    return {"specs": specs, "failures": [f.to_dict() for f in host.failures],
            "registered": info is not None, "printed": info.printed if info else ""}


def _add_record(host: PluginHost, name: str, dist: str, version: str, data: Mapping[str, Any]) -> None:
    """A plugin as the registration child recorded it: its failures, then each spec rebuilt from its fields and
    registered here (every check again, and duplicates against the plugins registered before it)."""
    def fail(phase: str, message: str) -> None:
        host.failures.append(PluginFailure(name, dist, phase, printable(str(message))[:2000]))

    if not isinstance(data, Mapping) or "error" in data:
        fail("import", data.get("error") if isinstance(data, Mapping) else "garbled record")
        return
    for f in data.get("failures") or []:
        if isinstance(f, Mapping):
            fail(str(f.get("phase", "register")), str(f.get("message", "")))
    if not data.get("registered"):
        return
    registered: list[str] = []
    for table in host.registry.tables():
        for fields_ in (data.get("specs") or {}).get(table.kind) or []:
            try:
                added = table.add(table.spec_type.from_dict(fields_), dist, version)
            except Exception as exc:  # noqa: BLE001 - one bad spec is recorded, the rest load
                fail("register", one_line(exc))
                continue
            registered.append(f"{table.kind}:{added.name}")
    host.plugins.append(PluginInfo(name, dist, version, tuple(registered),
                                   printable(str(data.get("printed") or ""))[:PRINTED_CHARS]))


def _register_elsewhere(entries: Sequence[tuple[str, str, str, str]]) -> list[dict[str, Any] | None]:
    """Register entry points ``entries`` ((name, distribution, version, value)) in a child process, in order,
    each within ``$GENBENCH_PLUGIN_TIMEOUT`` seconds; for each its record, or a record saying why not. A child
    whose plugin hangs or dies is replaced by a new one for the entry points after it. With the timeout 0,
    None for each (they are registered in this process)."""
    from .settings import env_number

    timeout = env_number(TIMEOUT_ENV, DEFAULT_IMPORT_TIMEOUT, "seconds", zero=True)
    if not entries or not timeout > 0:
        return [None] * len(entries)
    records: list[dict[str, Any] | None] = []
    while len(records) < len(entries):
        rest = [list(e) for e in entries[len(records):]]
        proc = subprocess.Popen([sys.executable, "-I", "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            try:
                proc.stdin.write((json.dumps([os.getpid(), sys.path, IMPORT_MEMORY, rest]) + "\n").encode())
                proc.stdin.close()
            except BrokenPipeError:  # it died at once: _read_records says how
                pass
            records += _read_records(proc, len(rest), timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
            proc.stdout.close()
    return records


def _read_records(proc: subprocess.Popen, count: int, timeout: float) -> list[dict[str, Any] | None]:
    """Record lines from the child, until ``count`` came, or one took longer than ``timeout`` seconds, or the
    child died (then that entry point's record says so, and the caller starts a new child for the rest)."""
    out: list[dict[str, Any] | None] = []
    buffer = b""
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    while len(out) < count:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return out + [{"error": f"its import did not finish within {timeout:g} s "
                                    f"(${TIMEOUT_ENV} sets the limit)"}]
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            code = proc.wait()
            how = f"killed by {_signal_name(-code)}" if code < 0 else f"exit code {code}"
            return out + [{"error": f"its import ended the process ({how})"}]
        buffer += chunk
        while b"\n" in buffer and len(out) < count:
            line, buffer = buffer.split(b"\n", 1)
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            out.append(record if isinstance(record, dict) else {"error": "its import garbled genbench's record of it"})
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
    if isinstance(load, _Record):
        _add_record(host, name, dist, version, load.data)
        return
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


def distribution_hash(name: str) -> str | None:
    """sha256 over the installed files of distribution ``name`` (its RECORD) and the source of the packages its
    ``genbench`` entry points name (an editable install's code lives outside its RECORD); None if it is not
    installed (genbench's own built-ins hash genbench)."""
    import hashlib

    from .cache import source_fingerprint

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    h = hashlib.sha256()
    for file in sorted(dist.files or (), key=str):
        if "__pycache__" in str(file) or str(file).endswith(".pyc"):
            continue
        path = dist.locate_file(file)
        try:
            h.update(str(file).encode() + b"\0" + hashlib.sha256(open(path, "rb").read()).digest())
        except OSError:
            continue
    for ep in dist.entry_points:
        if ep.group == ENTRY_POINT_GROUP:
            h.update(source_fingerprint(ep.value.split(":", 1)[0] + ":x").encode())
    return h.hexdigest()
