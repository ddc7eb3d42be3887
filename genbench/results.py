"""Reading and writing results files (schema ``genbench.run/1``), atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import ResultsError
from .types import RunResult

SCHEMA = "genbench.run/1"


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory and ``os.replace``: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; results are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_run(run: RunResult, run_dir: Path) -> Path:
    path = run_dir / "run.json"
    atomic_write_text(path, json.dumps(run.to_dict(), indent=2, allow_nan=False) + "\n")
    return path


def load_run(path: str | Path) -> RunResult:
    """A run from ``RUN_DIR`` or ``RUN_DIR/run.json``; one-line errors for missing, corrupt or foreign files."""
    path = Path(path)
    if path.is_dir():
        path = path / "run.json"
    if not path.is_file():
        raise ResultsError(f"No results file at {path}; pass a run directory made by 'genbench run'.")
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path} is corrupt or truncated ({exc}); it was not changed.") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ResultsError(f"{path} has schema {found!r}, expected '{SCHEMA}'.")
    try:
        return RunResult.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResultsError(f"{path} does not match schema {SCHEMA}: {exc}.") from exc
