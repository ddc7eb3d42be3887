"""Expected failures. ``genbench.cli.main`` prints each as one line and exits 1.

Every message names what was wrong and what to do about it; none needs a traceback to be understood.
"""

from __future__ import annotations


class GenbenchError(Exception):
    """Base class of every error genbench expects and explains to the user."""


class UnknownNameError(GenbenchError, KeyError):
    """A model, task, metric or reporter name that no loaded plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SpecError(GenbenchError, ValueError):
    """A spec handed to a ``register`` callback is malformed or duplicates another."""


class PluginError(GenbenchError):
    """A plugin failed to load, or its code failed while genbench called it."""


class DataError(GenbenchError):
    """A data set is missing, unreadable or malformed."""


class DataUnavailableError(DataError):
    """A data set's files are not on this machine (the message says which files, where)."""


class TaskDeclined(GenbenchError):
    """Raised by a model's ``train`` to decline a task it cannot do within reason here (e.g. far too costly
    on this device). The job is recorded as ``skipped`` with the message as its reason, never as failed."""


class BundleError(GenbenchError):
    """An exported ONNX bundle breaks the contract: checker, shapes, dtypes, finiteness, parity."""


class MetricError(GenbenchError):
    """Every quality metric of a job failed: the job has no number to stand on, so it fails."""


class ResultsError(GenbenchError):
    """A results file is missing, corrupt, or of an unknown schema."""


class ConfigError(GenbenchError, ValueError):
    """An invalid option value."""


class OutputError(GenbenchError, OSError):
    """A file genbench must write cannot be written (a missing or read-only directory, a full disk).

    It is an ``OSError`` too, with the ``errno`` of the failure."""


class RunLockedError(GenbenchError):
    """A run directory is being written by another genbench process."""


class RunInterrupted(GenbenchError):
    """A run stopped before its end (Ctrl-C, SIGTERM, a full disk): every unit that finished is in its
    ``run.json`` and ``genbench run --resume RUN_DIR`` finishes it. ``result`` is the run as saved; ``reason``
    the signal's name (``SIGINT``, ``SIGTERM``) or what could not be written."""

    def __init__(self, message: str, result: object = None, run_dir: object = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.run_dir = run_dir
        self.reason = reason


def one_line(exc: BaseException) -> str:
    """``"Type: first line of the message"`` (just ``"Type"`` when the message is empty), for results files."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def printable(text: object, limit: int = 300) -> str:
    """``text`` as one printable line (line breaks, escape sequences and other control or format characters
    shown escaped), cut to ``limit`` characters: for text from plugins and files that reaches a terminal."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return out if len(out) <= limit else out[:limit - 3] + "..."
