"""What is installed, as data: ``genbench list``, ``genbench plugins`` and ``genbench cache list`` (text, or
``--format json`` following the shipped schemas ``genbench.list/1``, ``genbench.plugins/1`` and
``genbench.cache-list/1``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import __version__
from .errors import printable
from .plugins import PluginHost
from .reports import better_text

#: shipped in genbench/schemas/ (see genbench.schemas.SCHEMAS)
LIST_SCHEMA = "genbench.list/1"
PLUGINS_SCHEMA = "genbench.plugins/1"
CACHE_LIST_SCHEMA = "genbench.cache-list/1"


def _failures(host: PluginHost) -> list[dict[str, str]]:
    return [f.to_dict() for f in host.failures]


def listing(host: PluginHost) -> dict[str, Any]:
    """Every registered model, task, metric and reporter (``genbench list``), schema ``genbench.list/1``."""
    reg = host.registry
    return {"schema": LIST_SCHEMA, "genbench_version": __version__,
            "models": [m.to_dict() for m in reg.models], "tasks": [d.to_dict() for d in reg.datasets],
            "metrics": [s.to_dict() for s in reg.metrics], "reporters": [r.to_dict() for r in reg.reporters],
            "plugin_failures": _failures(host), "warnings": list(host.warnings)}


def plugin_table(host: PluginHost) -> dict[str, Any]:
    """Loaded plugins and what each registered, disabled and failed ones (``genbench plugins``), schema
    ``genbench.plugins/1``."""
    return {"schema": PLUGINS_SCHEMA, "genbench_version": __version__,
            "plugins": [{"name": p.name, "distribution": p.distribution, "version": p.version,
                         "registered": list(p.registered), "printed": p.printed} for p in host.plugins],
            "disabled": list(host.disabled), "failures": _failures(host), "warnings": list(host.warnings)}


def listing_lines(host: PluginHost) -> list[str]:
    """``genbench list`` as text."""
    reg = host.registry
    lines = ["models:"]
    lines += [f"  {m.name:<22} {m.family:<9} tasks: {','.join(m.tasks):<12} {m.description} "
              f"[{m.plugin} {m.plugin_version}]" for m in reg.models]
    lines += ["tasks:"] + [f"  {d.name:<22} {d.kind:<9} {d.description}" for d in reg.datasets]
    lines += ["metrics:"] + [f"  {s.name:<22} {better_text(s.higher_is_better, s.target)}; {s.description}"
                             for s in reg.metrics]
    lines += ["reporters:"] + [f"  {r.name:<22} {r.description}" for r in reg.reporters]
    return lines


def plugin_lines(host: PluginHost) -> tuple[list[str], list[str]]:
    """``genbench plugins`` as text: lines for stdout (what loaded, what is disabled) and for stderr (what
    failed, what a plugin printed while loading, warnings)."""
    out = [f"{p.name:<20} {p.distribution} {p.version}: {', '.join(p.registered) or 'nothing registered'}"
           for p in host.plugins]
    out += [f"{name:<20} disabled by $GENBENCH_DISABLE_PLUGINS" for name in host.disabled]
    err = [f"FAILED {f}" for f in host.failures]
    err += [f"note: plugin '{p.name}' printed while loading: {printable(' '.join(p.printed.split()), 200)}"
            for p in host.plugins if p.printed.strip()]
    err += [f"warning: {w}" for w in host.warnings]
    return out, err


def cache_table(root: Path | None = None) -> dict[str, Any]:
    """The model cache's entries and its stored real-data references (``genbench cache list``), schema
    ``genbench.cache-list/1``; ``bytes`` is the model entries' total."""
    from .cache import ModelCache, default_cache_dir
    from .features.reference import ReferenceCache

    cache = ModelCache(root or default_cache_dir())
    entries = cache.entries()
    return {"schema": CACHE_LIST_SCHEMA, "genbench_version": __version__, "cache_dir": str(cache.root),
            "bytes": sum(e["bytes"] for e in entries), "entries": entries,
            "references": ReferenceCache(cache.root).entries()}


def cache_lines(table: dict[str, Any]) -> list[str]:
    """``genbench cache list`` as text: one line per entry."""
    entries, refs = table["entries"], table.get("references") or []
    lines = [f"{table['cache_dir']}: {len(entries)} entries, {table['bytes'] / 2**20:.1f} MiB; {len(refs)} references, "
             f"{sum(r['bytes'] for r in refs) / 2**20:.1f} MiB"]
    for e in entries:
        if not e["readable"]:
            fate = ("another user's: 'genbench cache clear' leaves it, its owner can remove it" if e.get("foreign")
                    else "'genbench cache clear' removes it")
            lines.append(f"  {printable(e['key'], 16):<16}  unreadable: {printable(e['problem'])} "
                         f"({e['bytes'] / 2**20:.1f} MiB; {fate})")
            continue
        steps = "default" if e["steps"] is None else e["steps"]
        lines.append(f"  {e['key'][:16]}  {e['model']:<20} {e['task']:<8} {e['profile']:<8} steps={steps} "
                     f"seed={e['seed']} {e['device']} {e['bytes'] / 2**20:.1f} MiB {e['created_at']}")
    for r in refs:
        state = f"  {printable(r['problem'])}" if r["problem"] else ""
        lines.append(f"  {r['key'][:16]}  reference (real-data features and statistics) {r['bytes'] / 2**20:.1f} MiB "
                     f"{r['created_at']}{state}")
    return lines


__all__ = ["CACHE_LIST_SCHEMA", "LIST_SCHEMA", "PLUGINS_SCHEMA", "cache_lines", "cache_table", "listing",
           "listing_lines", "plugin_lines", "plugin_table"]
