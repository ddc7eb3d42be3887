"""Progress of a run, shown by the parent process: one display for the whole run.

Units (one seed's build and score, one job's timing) report their phase (``load``, ``train``, ``export``,
``validate``, ``sample``, ``likelihood``, ``quality``, ``timing``) and their training steps to the parent as
they go (:class:`JobProgress` in the unit's process, the unit's pipe, :class:`RunDisplay` here). Three modes:

* ``live``: when stdout and stderr are both a terminal. One block at the bottom of the terminal, redrawn in
  place (rich): units done of all, elapsed, the ETA, and a line per running unit (its number, model, task,
  phase, training step and losses, elapsed). Result lines are printed above it.
* ``plain``: otherwise (piped, redirected, CI logs). A line on stderr when a unit starts, changes phase and
  ends; result lines on stdout, as without a display.
* ``off``: ``--quiet``; the Python API's default.

The ETA adds up, for the units not done, how long each took last time on this machine (the same model,
task, profile, device and kind of unit, and whether the model cache held its model, which
decides whether it trains): ``history.json`` in the model cache directory, written as units finish (not
with ``--no-cache``). On a machine with no history it learns from this run:

* a unit that is training projects its end from its own step rate (the steps it reported, over the time
  since its first report) and its declared total, plus the time the units done so far spent after training;
* a unit not started yet counts as the units most like it seen so far in this run (the same model and task,
  else the same family, else any unit of its kind), each done unit by its time and each training unit by
  its projection, so that a long autoregressive unit done first does not make every GAN look as long.

Timing units not planned yet count :data:`TIMING_GUESS_S` each until one is done. Until some build is done or
reports a step rate the ETA is shown as unknown. Build units run ``--jobs`` at a
time; timing units one at a time.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from .errors import printable

MODES = ("live", "plain", "off")
HISTORY_FILE = "history.json"
#: a timing unit's seconds before any was seen (the default profile's timings of one job, all runtimes and batch
#: sizes, took 9–20 s on a 2-vCPU machine): a build's time is no guide to it, training dominates builds
TIMING_GUESS_S = 15.0
HISTORY_LIMIT = 5000  # keys kept in history.json


def choose_mode(quiet: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None) -> str:
    """``off`` when quiet; ``live`` when stdout and stderr are both a terminal (and ``$TERM`` is not
    ``dumb``); ``plain`` otherwise."""
    if quiet:
        return "off"
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr

    def tty(stream: Any) -> bool:
        try:
            return bool(stream.isatty())
        except (AttributeError, ValueError):
            return False

    return "live" if tty(stdout) and tty(stderr) and os.environ.get("TERM") != "dumb" else "plain"


def console_echo(quiet: bool = False) -> Callable[[str], None]:
    """How the command line prints a run's lines: results on stdout; notes and warnings (lines that start with
    ``note:`` or ``warning:``) on stderr, so that stdout piped elsewhere holds the results alone. With
    ``quiet``, nothing."""
    if quiet:
        return lambda line: None

    def echo(line: str) -> None:
        side = line.lstrip().startswith(("note:", "warning:"))
        try:
            (sys.stderr if side else sys.stdout).write(line + "\n")
            (sys.stderr if side else sys.stdout).flush()
        except (OSError, ValueError):  # a closed pipe: the run goes on, its results are in run.json
            pass

    return echo


class JobProgress:
    """Context manager giving the ``progress(completed, total, losses)`` callback handed to ``train``.

    It draws nothing itself: it hands the step and losses to ``sink`` (at most every ``every`` seconds,
    and the last step), which in a unit's process sends them to the parent's display."""

    def __init__(self, label: str, sink: Callable[[int, int, dict[str, float]], None] | None = None,
                 every: float = 0.25):
        self.label = label
        self.sink = sink
        self.every = every
        self._last: float | None = None  # never 0.0: time.monotonic() may count from boot, minutes ago

    def __enter__(self) -> "JobProgress":
        return self

    def __call__(self, completed: int, total: int, losses: Mapping[str, float] | None = None) -> None:
        if self.sink is None:
            return
        now = time.monotonic()
        if self._last is not None and now - self._last < self.every and completed < total:
            return
        self._last = now
        try:
            values = {printable(k, 20): float(v) for k, v in list((losses or {}).items())[:4]}
            self.sink(int(completed), int(total), values)
        except Exception:  # noqa: BLE001 - a plugin's odd progress call must never fail its training
            pass

    def __exit__(self, *exc: object) -> None:
        pass


# ------------------------------------------------------------------ past timings, for the ETA


class UnitHistory:
    """Seconds each kind of unit took last time (``history.json`` in the model cache directory)."""

    def __init__(self, directory: Path | None) -> None:
        self.path = Path(directory) / HISTORY_FILE if directory else None
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        if self.path is not None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.seconds = {str(k): float(v) for k, v in data.get("seconds", {}).items()
                                if isinstance(v, (int, float)) and 0 <= v < 1e7}
            except (OSError, ValueError, AttributeError, TypeError):
                self.seconds = {}

    def get(self, key: str) -> float | None:
        return self.seconds.get(key)

    def record(self, key: str, seconds: float) -> None:
        """Keep ``seconds`` for ``key`` and write the file (atomically; a failure to write is ignored)."""
        if self.path is None or not 0 <= seconds < 1e7:
            return
        with self._lock:
            self.seconds.pop(key, None)
            self.seconds[key] = round(float(seconds), 3)
            while len(self.seconds) > HISTORY_LIMIT:
                self.seconds.pop(next(iter(self.seconds)))
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_name(f".{HISTORY_FILE}.{os.getpid()}.{threading.get_ident()}")
                tmp.write_text(json.dumps({"format": 1, "seconds": self.seconds}), encoding="utf-8")
                os.chmod(tmp, 0o644)  # like every file genbench writes into the cache: the owner's only, any umask
                os.replace(tmp, self.path)
            except OSError:
                pass


# ------------------------------------------------------------------ the display


@dataclass
class UnitState:
    """One unit as the display knows it."""

    label: str
    kind: str  # build | timing
    history_key: str
    estimate: float | None = None
    number: int | None = None  # i of N, given when it starts
    started: float | None = None
    phase: str = "queued"
    step: tuple[int, int] | None = None
    losses: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None  # when done
    #: what it is like, most alike first (e.g. ``("gan-mlp|digits", "gan")``): for the ETA of units never seen
    groups: tuple[str, ...] = ()
    first_step: tuple[float, int] | None = None  # (when, steps done) of its first progress report
    last_step: tuple[float, int, int] | None = None  # (when, steps done, steps in all) of its latest
    train_end: float | None = None  # seconds after its start when it left training

    def projected(self, now: float, after_training: float | None) -> float | None:
        """Its whole duration as its step rate projects it (None without a rate): elapsed, the training steps
        left at its own rate, and ``after_training`` seconds of what follows training."""
        if self.started is None or self.first_step is None or self.last_step is None:
            return None
        elapsed = now - self.started
        if self.train_end is not None:
            return max(elapsed, self.train_end + (after_training or 0.0))
        (t0, d0), (t1, d1, total) = self.first_step, self.last_step
        if t1 <= t0 or d1 <= d0:
            return None
        left = max(total - d1, 0) / ((d1 - d0) / (t1 - t0))
        return elapsed + max(left - (now - t1), 0.0) + (after_training or 0.0)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class RunDisplay:
    """The progress display of one run (see the module's docstring). Thread-safe: units report from the
    scheduler's threads.

    ``echo`` prints result lines (as without a display); in ``live`` mode they are printed above the display
    by its console instead. ``jobs``: build units at once, for the ETA."""

    def __init__(self, mode: str, echo: Callable[[str], None], title: str = "genbench run", jobs: int = 1,
                 history: UnitHistory | None = None, stream: TextIO | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
        self.mode, self._echo, self.title, self.jobs = mode, echo, title, max(1, jobs)
        self.history = history or UnitHistory(None)
        self.stream = stream or sys.stderr
        self.units: dict[int, UnitState] = {}
        self.total = 0
        self.started_at = time.monotonic()
        self.note_text = ""
        self._numbers = 0
        self._lock = threading.RLock()
        self._live: Any = None

    # ---- lifecycle

    def __enter__(self) -> "RunDisplay":
        if self.mode == "live":
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, highlight=False, soft_wrap=False)
            self._live = Live(console=console, get_renderable=self._render, refresh_per_second=4, transient=True,
                              redirect_stdout=True, redirect_stderr=True)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # ---- what the run says

    def line(self, text: str) -> None:
        """A result line (each built seed, each timing, warnings): above the live display, else ``echo``. It
        carries text from plugins and results files (error messages): escape sequences and other control
        characters are shown as visible escapes, never sent to the terminal, and rich markup is not read."""
        from .text import neutralise_controls

        text = neutralise_controls(text, limit=None)
        if self._live is not None:
            from rich.text import Text

            self._live.console.print(Text(text), soft_wrap=True)  # a Text: "[bold]" stays as it is
        else:
            self._echo(text)

    def note(self, text: str) -> None:
        """What the run does between units (e.g. loading a task's data)."""
        with self._lock:
            self.note_text = text
        if self.mode == "plain" and text:
            self._plain(text)

    def add(self, key: int, label: str, kind: str, history_key: str, expected_total: int | None = None,
            groups: tuple[str, ...] = ()) -> None:
        """A unit to come; ``expected_total``: how many units the whole run has, as now known; ``groups``: what
        it is like, most alike first (its model and task, its family), for the ETA of units never seen."""
        with self._lock:
            self.units[key] = UnitState(label, kind, history_key, self.history.get(history_key),
                                        groups=tuple(groups))
            self.total = max(expected_total or 0, len(self.units))

    def set_total(self, total: int) -> None:
        with self._lock:
            self.total = max(total, sum(u.started is not None for u in self.units.values()))

    def started(self, key: int) -> None:
        with self._lock:
            unit = self.units[key]
            self._numbers += 1
            unit.number, unit.started, unit.phase = self._numbers, time.monotonic(), "start"
        if self.mode == "plain":
            self._plain(f"{self._tag(unit)} start   {unit.label}")

    def message(self, key: int, kind: str, payload: Any) -> None:
        """A message from a unit's process: ``("phase", name)`` or ``("progress", (done, total, losses))``."""
        with self._lock:
            unit = self.units.get(key)
            if unit is None:
                return
            now = time.monotonic()
            if kind == "phase" and printable(payload, 20) == unit.phase:
                return  # the same phase said again (the score process and its harness both say "validate")
            if kind == "phase":
                if unit.phase == "train" and unit.started is not None and unit.train_end is None:
                    unit.train_end = now - unit.started
                unit.phase, unit.step = printable(payload, 20), None
            elif kind == "progress":
                done, total, losses = payload
                unit.step, unit.losses = (int(done), int(total)), dict(losses)
                if unit.first_step is None:
                    unit.first_step = (now, int(done))
                unit.last_step = (now, int(done), int(total))
                return
        if kind == "phase" and self.mode == "plain" and unit.phase not in ("start", "done"):
            self._plain(f"{self._tag(unit)} {unit.phase:<7} {unit.label} ({_clock(self._elapsed(unit))})")

    def finished(self, key: int, status: str, history_key: str | None = None) -> None:
        """The unit ended (``status``: ok, failed, skipped); unless it failed, its time goes into the history
        under ``history_key`` (default: the one it was added with; e.g. a build that was expected to train
        but found its model in the cache)."""
        with self._lock:
            unit = self.units.get(key)
            if unit is None:
                return
            if unit.started is None:  # e.g. a Ray task: the display did not see it start
                self._numbers += 1
                unit.number, unit.started = self._numbers, time.monotonic()
            unit.seconds, unit.phase = time.monotonic() - unit.started, "done"
            done = sum(u.seconds is not None for u in self.units.values())
        if status == "ok":
            self.history.record(history_key or unit.history_key, unit.seconds)
        if self.mode == "plain":
            self._plain(f"{self._tag(unit)} {status:<7} {unit.label} in {unit.seconds:.1f} s; {done}/{self.total} "
                        f"done, elapsed {_clock(time.monotonic() - self.started_at)}, ETA {self._eta_text()}")

    # ---- ETA

    def eta(self) -> float | None:
        """Seconds left, from past timings and this run's step rates (see the module's docstring); None when
        some unit has no estimate."""
        with self._lock:
            now = time.monotonic()
            after = [u.seconds - u.train_end for u in self.units.values()
                     if u.seconds is not None and u.train_end is not None]
            after_training = sum(after) / len(after) if after else None
            # what each unit seen in this run took, or is projected to take: done units, training units
            seen: dict[str, list[float]] = {}
            projections: dict[int, float] = {}
            for key, u in self.units.items():
                total = u.seconds if u.seconds is not None else u.projected(now, after_training)
                if total is None:
                    continue
                if u.seconds is None:
                    projections[key] = total
                for group in (*u.groups, u.kind):
                    seen.setdefault(f"{u.kind}:{group}", []).append(total)

            def like(u: UnitState) -> float | None:
                for group in (*u.groups, u.kind):
                    values = seen.get(f"{u.kind}:{group}")
                    if values:
                        return sum(values) / len(values)
                return None

            means = {kind: like(UnitState("", kind, "")) for kind in ("build", "timing")}
            left: dict[str, list[float]] = {"build": [], "timing": []}
            for key, u in self.units.items():
                if u.seconds is not None:
                    continue
                guess = u.estimate if u.estimate is not None else projections.get(key, like(u))
                if guess is None:
                    return None
                left[u.kind].append(max(guess - (now - u.started if u.started else 0.0), 0.0))
            unknown = self.total - len(self.units)  # units not planned yet (timing, before stage 2)
            if unknown > 0:
                left["timing"] += [means["timing"] if means["timing"] is not None else TIMING_GUESS_S] * unknown
        build = max(sum(left["build"]) / self.jobs, max(left["build"], default=0.0))
        return build + sum(left["timing"])

    def _eta_text(self) -> str:
        with self._lock:
            left = self.total - sum(u.seconds is not None for u in self.units.values())
        eta = self.eta() if self.total else None
        if eta is None:
            return "unknown"
        if left <= 0:
            return "0:00"
        # work is left, and a unit may run past its past time: never "0:00" until every unit is done
        return "finishing" if eta < 1 else f"~{_clock(eta)}"

    # ---- rendering

    def _tag(self, unit: UnitState) -> str:
        return f"[{unit.number or '?'}/{self.total}]"

    def _elapsed(self, unit: UnitState) -> float | None:
        return None if unit.started is None else time.monotonic() - unit.started

    def _plain(self, text: str) -> None:
        with self._lock:
            try:
                self.stream.write(text + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def status_lines(self) -> list[str]:
        """What the live display shows, as text: a header, then one line per running unit."""
        with self._lock:
            done = sum(u.seconds is not None for u in self.units.values())
            running = [u for u in self.units.values() if u.started is not None and u.seconds is None]
            elapsed = _clock(time.monotonic() - self.started_at)
            if not self.total:  # no unit planned yet: say what the run is doing (e.g. loading a task's data)
                return [f"{self.note_text or 'starting'} · elapsed {elapsed} · {self.title}"]
            head = (f"{done}/{self.total} units done · {len(running)} running · elapsed {elapsed} · "
                    f"ETA {self._eta_text()} · {self.title}")
            lines = [head] + ([f"  {self.note_text}"] if self.note_text and not running else [])
            for u in sorted(running, key=lambda u: u.number or 0):
                what = "finishing" if u.phase == "done" else u.phase  # its result is on its way
                if u.step is not None:
                    losses = " ".join(f"{k}={v:.3g}" for k, v in u.losses.items())
                    what += f" {u.step[0]:,}/{u.step[1]:,}" + (f" {losses}" if losses else "")
                lines.append(f"  {self._tag(u)} {u.label} · {what} · {_clock(self._elapsed(u))}")
            return lines

    def _render(self) -> Any:
        from rich.text import Text

        return Text("\n".join(self.status_lines()), no_wrap=True, overflow="ellipsis")


__all__ = ["HISTORY_FILE", "JobProgress", "MODES", "RunDisplay", "UnitHistory", "choose_mode", "console_echo"]
