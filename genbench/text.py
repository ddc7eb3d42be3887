"""Text and files that come from results files or plugins, made safe for where they land.

Everything here treats its input as untrusted data: strings are neutralised for the medium they land in
(a terminal, Markdown, CSV), numbers of the wrong type read as missing, and files a results file names are
read only from inside its run directory. Reports, the console and the executors share it.
"""

from __future__ import annotations

from typing import Any

# Everything below treats a results file as untrusted data: strings are neutralised for the medium they land
# in, numbers of the wrong type read as missing, and files it names are read only from inside its run directory.

import math as _math
import re as _re
import unicodedata as _unicodedata
from pathlib import Path as _Path

#: the largest file a report reads because a results file names it (samples.txt, latency_raw.json)
MAX_NAMED_FILE_BYTES = 16 * 2**20
#: the longest single-line text field shown in a report (longer ones are cut, with an ellipsis)
MAX_FIELD_CHARS = 500
_INVISIBLE = set("\u061c\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e"
                 "\u2060\u2066\u2067\u2068\u2069\ufeff")
_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_RE = _re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def text_of(value: Any, limit: int | None = MAX_FIELD_CHARS) -> str:
    """``str(value)`` that never raises (deeply nested values, hostile ``__str__``), cut to ``limit`` chars."""
    try:
        s = value if isinstance(value, str) else str(value)
    except (RecursionError, ValueError, TypeError):
        s = "…"
    if limit is not None and len(s) > limit:
        s = s[:limit] + "…"
    return s


def neutralise_controls(text: Any, keep: str = "", limit: int | None = MAX_FIELD_CHARS) -> str:
    """``text`` with control characters (C0, DEL, C1), bidirectional overrides and zero-width characters shown
    as visible escapes (``\\x1b``); the characters in ``keep`` (e.g. newline and tab in a code block) stay.
    Tabs, newlines and carriage returns not kept become spaces, so one field stays one line."""
    out = []
    for ch in text_of(text, limit):
        if ch in keep:
            out.append(ch)
        elif ch in "\t\n\r":
            out.append(" ")
        elif _unicodedata.category(ch) == "Cc" or ch in _INVISIBLE:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def term_safe(text: Any) -> str:
    """One line for a terminal: escape sequences and other control characters cannot move the cursor, erase
    lines or change colours; they are shown as visible escapes instead."""
    return neutralise_controls(text)


def md_text(text: Any) -> str:
    """Plain Markdown text (a table cell, a bullet, a heading): one line, every character that Markdown or
    HTML would read as syntax escaped, control characters neutralised."""
    s = neutralise_controls(text)
    s = _re.sub(r"([\\`*_\[\]<>|~&$!#])", r"\\\1", s)
    s = _re.sub(r"^(\s*)([-+=])(?=\s|=|$)", r"\1\\\2", s)  # where a line starts: no list item, no underline
    return _re.sub(r"^(\s*\d+)([.)])(?=\s|$)", r"\1\\\2", s)


def md_code(text: Any, in_table: bool = True) -> str:
    """``text`` as one Markdown code span: a backtick fence longer than any run inside, control characters
    neutralised; inside a table, ``|`` is written ``\\|`` (GitHub's table rule, shown as ``|``), and backslashes
    just before it doubled, so that every table parser keeps the cell whole."""
    s = neutralise_controls(text)
    if in_table:  # backslashes before a pipe doubled, so that no table parser reads it as a cell border
        s = _re.sub(r"(\\*)\|", lambda m: m.group(1) * 2 + "\\|", s)
    runs = [len(r) for r in _re.findall(r"`+", s)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if (s.startswith("`") or s.endswith("`") or not s.strip()) else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def md_link_target(rel: str) -> str:
    """A relative path as a Markdown link target: percent-encoded, so it cannot close the link or add a title."""
    from urllib.parse import quote

    return quote(rel, safe="/._-~")


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula: text starting with ``= + - @``, a tab or a carriage
    return gets a leading ``'`` unless it is a plain number; numbers stay numbers (non-finite ones empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value if _math.isfinite(value) else ""
    s = neutralise_controls(value, keep="\n", limit=None)
    if s.startswith(_FORMULA_LEAD) and not _NUMBER_RE.match(s):
        return "'" + s
    return s


def number(value: Any) -> float | int | None:
    """``value`` if it is a finite number (an int stays an int), else None: strings, booleans, NaN, infinity
    and ints too large for a float all read as missing."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    if not _math.isfinite(f):
        return None
    return value if isinstance(value, int) else f


def fmt_num(value: Any, fmt: str = "{:.4g}", missing: str = "–") -> str:
    """A number formatted with ``fmt``; ``missing`` for anything that is not a finite number."""
    f = number(value)
    if f is None:
        return missing
    try:
        return fmt.format(f)
    except (ValueError, OverflowError):
        return missing


def mapping(value: Any) -> dict:
    """``value`` if it is a dict, else an empty one (a results field of the wrong type reads as absent)."""
    return value if isinstance(value, dict) else {}


def contained_file(run_dir: _Path | None, rel: Any, max_bytes: int = MAX_NAMED_FILE_BYTES) -> tuple[_Path | None, str]:
    """The file a results file names, only if it resolves (symlinks followed) to a regular file inside
    ``run_dir`` no larger than ``max_bytes``; else ``(None, why it was skipped)``."""
    what = neutralise_controls(rel, limit=120)
    if not isinstance(rel, str) or not rel:
        return None, f"{what!s} is not a file name"
    if run_dir is None:
        return None, f"{what} not read: the run directory is unknown"
    try:
        root = _Path(run_dir).resolve(strict=True)
        path = (root / rel).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None, f"{what} not read: it does not exist"
    if root not in path.parents:
        return None, f"{what} not read: it lies outside the run directory"
    try:
        st = path.stat()
    except OSError:
        return None, f"{what} not read: it cannot be read"
    import stat as _stat

    if not _stat.S_ISREG(st.st_mode):
        return None, f"{what} not read: it is not a regular file"
    if st.st_size > max_bytes:
        return None, f"{what} not read: {st.st_size:,} bytes, over the {max_bytes:,}-byte limit"
    return path, ""


def read_contained(run_dir: _Path | None, rel: Any, max_bytes: int = MAX_NAMED_FILE_BYTES) -> tuple[bytes | None, str]:
    """The bytes of :func:`contained_file` (at most ``max_bytes``), or ``(None, why not)``."""
    path, why = contained_file(run_dir, rel, max_bytes)
    if path is None:
        return None, why
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError:
        return None, f"{neutralise_controls(rel, limit=120)} not read: it cannot be read"
    if len(data) > max_bytes:
        return None, f"{neutralise_controls(rel, limit=120)} not read: over the {max_bytes:,}-byte limit"
    return data, ""


def plural(n: int, word: str) -> str:
    """``1 seed``, ``3 seeds``, ``1,347 training images``: a count and its noun, in the right number."""
    head, _, tail = word.rpartition(" ")
    noun = tail if n == 1 else (tail[:-1] + "ies" if tail.endswith("y") and tail[-2:-1] not in "aeiou" else tail + "s")
    return f"{n:,} {head + ' ' if head else ''}{noun}"


def points_text(gain: float, stderr: float | None = None) -> str:
    """A difference of two accuracies in percentage points: ``+27.8 pp ± 1.4 pp`` (not "%": it is no ratio)."""
    return f"{100 * gain:+.1f} pp" + (f" ± {100 * stderr:.1f} pp" if stderr is not None else "")


def plain(x: float) -> str:
    """A spread to 2 significant digits below 100, to a whole number from 100 up (152, not 1.5e+02)."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.2g}"
