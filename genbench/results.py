"""Reading and writing results files (schema ``genbench.run/2``; ``/1`` files still load), atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import OutputError, ResultsError
from .types import RunResult

SCHEMA = "genbench.run/2"
READABLE = ("genbench.run/2", "genbench.run/1")
MAX_RUN_BYTES = 256 * 2**20  # a run.json larger than this is not one genbench wrote


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory and ``os.replace``: readers see old or new, never half.

    A failure (a directory that cannot be made, no permission, a full disk) leaves the old file as it was
    and raises :class:`OutputError` (an ``OSError`` with the same ``errno``), one line naming the file.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(f.fileno(), 0o666 & ~umask)  # mkstemp makes 0600 files; results are meant to be shared
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            error = OutputError(f"Cannot write {path}: {exc.strerror or exc}.")
            error.errno = exc.errno
            raise error from exc
        raise


def write_run(run: RunResult, run_dir: Path) -> Path:
    """``run_dir/run.json``, atomically: a failure (e.g. a full disk) keeps the last complete file."""
    path = run_dir / "run.json"
    atomic_write_text(path, json.dumps(run.to_dict(), indent=2, allow_nan=False) + "\n")
    return path


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_json(path: Path, what: str = "results file", max_bytes: int = MAX_RUN_BYTES) -> Any:
    """Strict JSON from ``path`` (no NaN or Infinity), with one-line errors."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ResultsError(f"{path} is {size / 2**20:.0f} MiB, larger than any {what} genbench writes; refused.")
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except ResultsError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise ResultsError(f"{path} is corrupt or truncated ({' '.join(str(exc).split())[:160]}); it was not changed.") \
            from exc
    except RecursionError:
        raise ResultsError(f"{path} is nested too deeply to be a {what}.") from None
    except OSError as exc:
        raise ResultsError(f"Cannot read {path}: {exc.strerror or exc}.") from exc


def load_run(path: str | Path) -> RunResult:
    """A run from ``RUN_DIR`` or ``RUN_DIR/run.json``; one-line errors for missing, corrupt or foreign files.

    The file is checked against its shipped JSON Schema (``genbench.run/2``, or ``/1`` for older runs, whose
    missing fields read as unknown) before anything uses it.
    """
    from .schemas import validate

    path = Path(path)
    if path.is_dir():
        path = path / "run.json"
    if not path.is_file():
        raise ResultsError(f"No results file at {path}; pass a run directory made by 'genbench run'.")
    data = read_json(path)
    if not isinstance(data, dict) or data.get("schema") not in READABLE:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ResultsError(f"{path} has schema {str(found)[:80]!r}, expected '{SCHEMA}' (or the older "
                           f"'{READABLE[1]}').")
    validate(data, data["schema"], str(path))
    try:
        return RunResult.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResultsError(f"{path} does not match schema {data['schema']}: {' '.join(str(exc).split())[:160]}.") \
            from exc
