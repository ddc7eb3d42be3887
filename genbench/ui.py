"""Progress display (rich) for training; quiet when output is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import Mapping


class JobProgress:
    """Context manager giving the ``progress(completed, total, losses)`` callback handed to ``train``."""

    def __init__(self, label: str, enabled: bool | None = None):
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress = None
        self._task = None
        self._last = 0.0

    def __enter__(self) -> "JobProgress":
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                      TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=None, losses="")
        return self

    def __call__(self, completed: int, total: int, losses: Mapping[str, float] | None = None) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and completed < total:
            return
        self._last = now
        text = " ".join(f"{k}={float(v):.3f}" for k, v in (losses or {}).items())
        self._progress.update(self._task, completed=completed, total=total, losses=text)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
