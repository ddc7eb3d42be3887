"""The plugin manager: host built-ins first, then every entry point of group ``genbench``, one by one.

A plugin that fails to import, implements a hook that does not exist, raises while registering, or
registers a malformed or duplicate spec is recorded in :attr:`PluginHost.failures`; every other
plugin still works.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .registry import Registry, suggest

ENTRY_POINT_GROUP = "genbench"
DISABLE_ENV = "GENBENCH_DISABLE_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    name: str  # entry-point name (or "genbench" for the host's built-ins)
    distribution: str
    version: str
    registered: tuple[str, ...] = ()


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
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if (ep.name, getattr(ep, "value", "")) in seen:  # one distribution found twice on sys.path
                continue
            seen.add((ep.name, getattr(ep, "value", "")))
            dist = ep.dist.name if ep.dist is not None else ep.name
            ver = ep.dist.version if ep.dist is not None else "0"
            candidates.append((ep.name, dist, ver, ep.load))

    for name, dist, version, load in candidates:
        if name in blocked or dist in blocked:
            host.disabled.append(name)
            continue
        _add_plugin(host, name, dist, version, load)
    return host


def _add_plugin(host: PluginHost, name: str, dist: str, version: str, load: Callable[[], Any]) -> None:
    def fail(phase: str, message: str) -> None:
        host.failures.append(PluginFailure(name, dist, phase, message))

    try:
        plugin = load()
    except BaseException as exc:  # noqa: BLE001 - a broken plugin (even SystemExit) must not stop the host
        if isinstance(exc, KeyboardInterrupt):
            raise
        fail("import", f"{type(exc).__name__}: {exc}")
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
