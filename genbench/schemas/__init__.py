"""The JSON Schemas genbench ships, one per results file and per ``--format json`` output.

Every consumer applies them on load (``genbench report``, ``leaderboard``, ``compare``, ``--resume``), so a
foreign or corrupt file is refused with one line naming the field, never a traceback; and every JSON
genbench writes is validated against its schema in the tests. ``python -m genbench.schemas NAME`` prints
one; ``docs/results-schema.md`` describes them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from ..errors import ResultsError

#: schema name -> file in this package
SCHEMAS = {
    "genbench.run/2": "run-2.schema.json",
    "genbench.run/1": "run-1.schema.json",
    "genbench.leaderboard/2": "leaderboard-2.schema.json",
    "genbench.compare/1": "compare-1.schema.json",
    "genbench.limits/1": "limits-1.schema.json",
    "genbench.cache-manifest/1": "cache-manifest-1.schema.json",
    # --format json of genbench list, plugins, cache list, check-plugin
    "genbench.list/1": "list-1.schema.json",
    "genbench.plugins/1": "plugins-1.schema.json",
    "genbench.cache-list/1": "cache-list-1.schema.json",
    "genbench.check-plugin/1": "check-plugin-1.schema.json",
}


def register(name: str, filename: str) -> None:
    """Make a schema shipped in this package known under ``name`` (modules that add outputs call this)."""
    SCHEMAS[name] = filename


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema (a dict) for ``name`` (e.g. ``"genbench.run/2"``)."""
    if name not in SCHEMAS:
        raise ResultsError(f"No shipped schema named {name!r}; known: {', '.join(sorted(SCHEMAS))}.")
    text = resources.files(__name__).joinpath(SCHEMAS[name]).read_text(encoding="utf-8")
    return json.loads(text)


def _where(path: Any) -> str:
    parts = [str(p) for p in path]
    return "/".join(parts) if parts else "(top level)"


def validate(data: Any, name: str, source: str = "the file") -> None:
    """Raise :class:`ResultsError` (one line: the field and what is wrong) unless ``data`` matches schema ``name``."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema(name))
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    except RecursionError:
        raise ResultsError(f"{source} is nested too deeply to be a {name} file.") from None
    if error is not None:
        message = " ".join(str(error.message).split())
        if len(message) > 160:
            message = message[:157] + "..."
        raise ResultsError(f"{source} does not match schema {name}: field {_where(error.absolute_path)}: {message}")


__all__ = ["SCHEMAS", "load_schema", "register", "validate"]
