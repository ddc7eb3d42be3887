"""The run's progress display: one live block in a terminal (captured in a pseudo-terminal, --jobs 2), plain
lines when piped, nothing with --quiet; the ETA from past timings; training steps from the unit processes."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest

from genbench.ui import JobProgress, RunDisplay, UnitHistory, choose_mode

TESTS = Path(__file__).resolve().parent
CSI = re.compile(r"\x1b\[(\??)(\d*)([A-Za-z])")


def driver(tmp_path: Path, *args: str) -> Path:
    """A script that runs ``genbench run ARGS`` with the test plugin as its only entry point."""
    script = tmp_path / "drive.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from types import SimpleNamespace
        sys.path.insert(0, {str(TESTS)!r})
        import fakes
        import genbench.plugins as plugins
        from genbench.cli import main

        ep = SimpleNamespace(name="fakes", dist=None, load=lambda: fakes.FakePlugin)
        plugins.metadata.entry_points = lambda group: [ep] if group == "genbench" else []
        if __name__ == "__main__":
            main({["run", *args]!r})
    """))
    return script


RUN = ("tiny-stepping", "tiny-ok", "--task", "digits", "--seeds", "0,1", "--profile", "smoke", "--device", "cpu",
       "--no-baselines")


def in_a_terminal(argv: list[str], cwd: Path, cols: int = 160, rows: int = 40, timeout: float = 300) -> tuple[str, int]:
    """Run ``argv`` with stdin, stdout and stderr on one pseudo-terminal; everything written, and the exit code."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.chdir(cwd)
        os.environ["TERM"] = "xterm"
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    chunks, deadline, status = [], time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            status = None
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    if status is None:
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace"), os.waitstatus_to_exitcode(status)


def screen(stream: str) -> list[str]:
    """What a terminal shows after ``stream``: enough of a VT100 for rich's live display (carriage return, new
    line, erase line, cursor up; other escape sequences are dropped)."""
    lines, row, col = [""], 0, 0
    i = 0
    while i < len(stream):
        c = stream[i]
        m = CSI.match(stream, i)
        if m:
            private, number, final = m.groups()
            if not private and final == "K":
                lines[row] = ""
            elif not private and final == "A":
                row = max(0, row - int(number or 1))
                col = min(col, len(lines[row]))
            i = m.end()
            continue
        if c == "\r":
            col = 0
        elif c == "\n":
            row += 1
            if row == len(lines):
                lines.append("")
            col = 0
        elif c >= " ":
            line = lines[row].ljust(col)
            lines[row] = line[:col] + c + line[col + 1:]
            col += 1
        i += 1
    return [ln.rstrip() for ln in lines if ln.strip()]


def test_live_display_in_a_terminal_with_two_jobs_at_once(tmp_path):
    stream, code = in_a_terminal([sys.executable, str(driver(tmp_path, *RUN, "--jobs", "2", "--out", "runs"))],
                                 tmp_path)
    assert code == 0, stream[-3000:]
    frames = stream.split("\x1b[2K")
    # one display: a header with units done of all, and a line per running unit, two at once with --jobs 2
    assert any(re.search(r"\d/6 units done · 2 running", f) for f in frames), stream[-3000:]
    two = [f for f in re.split(r"\d/6 units done", stream)[1:] if f.count("  [") >= 2]
    assert any(re.search(r"\[\d/6\] tiny-stepping on digits \(seed \d\) · train \d/6 loss=", f) for f in two)
    assert re.search(r"\[\d/6\] tiny-\w+ on digits[^·]* · (load|train|export|validate|sample|quality)", stream)
    assert re.search(r"ETA ~\d+:\d\d", stream)  # once a unit of each kind is done, or from past timings
    # what stays on the terminal: the result lines only, each on its own line, and no display
    final = screen(stream)
    assert not [ln for ln in final if "units done" in ln or ln.lstrip().startswith("[")], final
    built = [ln for ln in final if ln.startswith("  built ")]
    assert len(built) == 4 and all(re.fullmatch(r"  built   tiny-\w+ on digits \(seed [01]\): fd .*", ln) for ln in built)
    assert sum(ln.startswith("  timed ") for ln in final) == 2
    assert final[-1] == "2 ok, 0 failed, 0 skipped" and final[-2].startswith("results: ")
    # the next run knows how long each unit took: its ETA is there from the start
    history = json.loads(Path(os.environ["GENBENCH_CACHE_DIR"], "history.json").read_text())["seconds"]
    assert {k.split("|")[0] for k in history} == {"tiny-stepping", "tiny-ok"}
    assert any(k.endswith("|trained") for k in history) and any(k.endswith("|timing") for k in history)


def test_plain_lines_when_piped(tmp_path):
    proc = subprocess.run([sys.executable, str(driver(tmp_path, *RUN, "--jobs", "2", "--out", "runs"))],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\x1b" not in proc.stdout + proc.stderr  # no escape sequences in a file or a pipe
    out, err = proc.stdout.splitlines(), proc.stderr.splitlines()
    assert sum(ln.startswith("  built ") for ln in out) == 4 and out[-1] == "2 ok, 0 failed, 0 skipped"
    assert not [ln for ln in out if ln.startswith("[")]  # progress goes to stderr, results to stdout
    # each unit: start, its phases as the unit's process announces them, and its end, numbered i of N
    assert sorted(ln.split()[0] for ln in err if " start " in ln) == [f"[{i}/6]" for i in range(1, 7)]
    for phase in ("load", "train", "export", "validate", "sample", "quality", "timing"):
        assert any(re.match(rf"\[\d/6\] {phase} +tiny-", ln) for ln in err), phase
    assert any(re.match(r"\[\d/6\] ok +tiny-stepping on digits \(seed \d\) in [\d.]+ s; \d/6 done, elapsed", ln)
               for ln in err)


def test_nothing_with_quiet(tmp_path):
    proc = subprocess.run([sys.executable, str(driver(tmp_path, *RUN, "--executor", "inline", "--quiet", "--out",
                                                      "runs"))], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stdout + proc.stderr
    (run_json,) = (tmp_path / "runs").glob("*/run.json")
    assert json.loads(run_json.read_text())["finished_at"]


def test_errors_still_show_with_quiet(tmp_path):
    proc = subprocess.run([sys.executable, str(driver(tmp_path, "tiny-okk", "--quiet"))], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: Unknown model 'tiny-okk'. Did you mean 'tiny-ok'")


def test_a_failed_job_is_an_error_even_with_quiet(tmp_path):
    proc = subprocess.run([sys.executable, str(driver(tmp_path, "tiny-raises", "tiny-ok", "--task", "digits",
                                                      "--profile", "smoke", "--no-baselines", "--no-timing",
                                                      "--quiet", "--out", "runs"))],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout
    (line,) = proc.stderr.splitlines()
    assert line.startswith("  FAILED  tiny-raises on digits in train: "), proc.stderr


def test_text_from_a_plugin_cannot_drive_the_terminal_under_the_live_display(tmp_path):
    """A plugin's error message and prints carry escape sequences (erase the line, move up, paint a fake
    verdict) and rich markup: the live display shows them as visible text; the prints stay in the job's files."""
    stream, code = in_a_terminal([sys.executable, str(driver(tmp_path, "tiny-escapes", "tiny-ok", "--task", "digits",
                                                             "--profile", "smoke", "--no-baselines", "--no-timing",
                                                             "--out", "runs"))], tmp_path)
    assert code == 1, stream[-3000:]
    assert "\x1b[31m" not in stream and "\x1b[1A\x1b[31m" not in stream and "\x1b[2J" not in stream, stream[-3000:]
    assert "screen cleared" not in stream and "straight to fd" not in stream  # the prints are in the files
    final = screen(stream)
    (failed,) = [ln for ln in final if ln.startswith("  FAILED  tiny-escapes")]
    assert "\\x1b[2K\\x1b[1A\\x1b[31mFAKE: all good\\x1b[0m [bold]styled[/bold]" in failed, failed
    (printed,) = [ln for ln in final if ln.startswith("  printed tiny-escapes")]
    assert "stdout in jobs/tiny-escapes__digits__cpu/seed-0.stdout.txt" in printed, printed


def test_the_display_neutralises_every_line_it_prints():
    out = Stream()
    with RunDisplay("plain", lambda line: out.write(line + "\n"), stream=Stream()) as display:
        display.line("  FAILED  x on digits in train: ValueError: \x1b[2K\x1b[31mFAKE\x1b[0m\nsecond line")
    assert out.text == "  FAILED  x on digits in train: ValueError: \\x1b[2K\\x1b[31mFAKE\\x1b[0m second line\n"


# ------------------------------------------------------------------ the display's parts


class Stream:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class Tty(Stream):
    def isatty(self) -> bool:
        return True


def test_mode_follows_the_terminal(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    assert choose_mode(False, Tty(), Tty()) == "live"
    assert choose_mode(False, Stream(), Tty()) == "plain"  # genbench run > file: the display would be torn
    assert choose_mode(False, Tty(), Stream()) == "plain"
    assert choose_mode(True, Tty(), Tty()) == "off"
    monkeypatch.setenv("TERM", "dumb")
    assert choose_mode(False, Tty(), Tty()) == "plain"


def test_eta_from_past_timings_then_from_this_run(tmp_path):
    history = UnitHistory(tmp_path)
    history.record("a|digits|smoke|cpu|trained", 10.0)
    history.record("a|digits|smoke|cpu|timing", 3.0)
    again = UnitHistory(tmp_path)  # read back from history.json
    assert again.get("a|digits|smoke|cpu|trained") == 10.0

    display = RunDisplay("off", print, jobs=2, history=again)
    for key in (1, 2):
        display.add(key, f"a seed {key}", "build", "a|digits|smoke|cpu|trained", expected_total=3)
    display.add(3, "a (timing)", "timing", "a|digits|smoke|cpu|timing")
    # two builds of 10 s on two slots, then a 3 s timing
    assert display.eta() == pytest.approx(13.0, abs=0.1)

    fresh = RunDisplay("off", print, jobs=1, history=UnitHistory(tmp_path / "none"))
    fresh.add(1, "b", "build", "b|...|trained", expected_total=3)
    fresh.add(2, "b2", "build", "b|...|trained", expected_total=3)
    assert fresh.eta() is None  # nothing known: said as unknown, not guessed
    fresh.started(1)
    fresh.finished(1, "ok")
    # the other build counts as the mean of this run's builds; the timing unit not planned yet as a timing guess
    from genbench.ui import TIMING_GUESS_S

    assert fresh.eta() == pytest.approx(fresh.units[1].seconds + TIMING_GUESS_S, abs=0.05)
    assert (tmp_path / "none" / "history.json").is_file()


def test_a_failed_unit_is_not_remembered_and_plain_lines_say_i_of_n(tmp_path):
    stream = Stream()
    display = RunDisplay("plain", print, history=UnitHistory(tmp_path), stream=stream)
    display.add(7, "m on t", "build", "m|t|smoke|cpu|trained", expected_total=2)
    display.started(7)
    display.message(7, "phase", "train")
    display.message(7, "phase", "train")  # said twice, shown once
    display.message(7, "progress", (3, 10, {"loss": 0.5}))
    assert "  [1/2] m on t · train 3/10 loss=0.5 · 0:00" in display.status_lines()
    display.finished(7, "failed")
    assert not (tmp_path / "history.json").exists()
    lines = stream.text.splitlines()
    assert lines[0] == "[1/2] start   m on t" and lines[1].startswith("[1/2] train   m on t (0:00)")
    assert lines[2].startswith("[1/2] failed  m on t in ")


def test_job_progress_forwards_steps_at_a_bounded_rate_and_never_raises():
    got = []
    progress = JobProgress("x", sink=lambda *a: got.append(a), every=3600)
    for step in range(1, 101):
        progress(step, 100, {"loss\x1b[2J": step})
    assert got == [(1, 100, {"loss\\x1b[2J": 1.0}), (100, 100, {"loss\\x1b[2J": 100.0})]  # first and last; escaped
    progress(1, 2, {"loss": "not a number"})  # a plugin's odd call is ignored
    JobProgress("y")(1, 2, {"loss": 1.0})  # no display: nothing happens


def test_before_any_unit_the_display_says_what_the_run_does_and_never_shows_an_eta_of_zero_with_work_left(tmp_path):
    display = RunDisplay("off", print, title="genbench run R", history=UnitHistory(tmp_path))
    assert display.status_lines() == ["starting · elapsed 0:00 · genbench run R"]
    display.note("loading task digits")
    assert display.status_lines() == ["loading task digits · elapsed 0:00 · genbench run R"]  # not "0/0 units done"

    history = UnitHistory(tmp_path)
    history.record("m|t|smoke|cpu|trained", 0.2)  # last time it took 0.2 s: the estimate is used up at once
    history.record("m|t|smoke|cpu|timing", 0.0)
    stream = Stream()
    display = RunDisplay("plain", print, history=history, stream=stream)
    display.add(1, "m on t", "build", "m|t|smoke|cpu|trained", expected_total=2)
    display.add(2, "m on t (timing)", "timing", "m|t|smoke|cpu|timing")
    display.started(1)
    time.sleep(0.3)  # past its estimate, still running
    assert display.eta() == pytest.approx(0.0, abs=1e-9) and "ETA finishing" in display.status_lines()[0]
    display.finished(1, "ok")
    assert stream.text.splitlines()[-1].endswith("1/2 done, elapsed 0:00, ETA finishing")  # the timing unit is left
    display.started(2)
    display.finished(2, "ok")
    assert stream.text.splitlines()[-1].endswith("2/2 done, elapsed 0:00, ETA 0:00")  # only when all is done


def test_results_go_to_stdout_and_notes_and_warnings_to_stderr(capsys):
    from genbench.ui import console_echo

    echo = console_echo()
    for line in ("run R: 1 job", "note: --device auto fell back to CPU", "  note: scored the first 1,347",
                 "warning: plugin 'x' failed", "  built   m on t: fd 3"):
        echo(line)
    out, err = capsys.readouterr()
    assert out.splitlines() == ["run R: 1 job", "  built   m on t: fd 3"]
    assert err.splitlines() == ["note: --device auto fell back to CPU", "  note: scored the first 1,347",
                                "warning: plugin 'x' failed"]
    console_echo(quiet=True)("note: hidden")
    assert capsys.readouterr() == ("", "")


def test_the_header_counts_one_job_in_the_singular_and_no_more_at_once_than_there_is(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import fakes
    from click.testing import CliRunner

    import genbench.plugins as plugins
    import genbench.runtime as runtime
    from genbench.cli import cli

    ep = SimpleNamespace(name="fakes", dist=None, load=lambda: fakes.FakePlugin)
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [ep] if group == "genbench" else [])
    monkeypatch.setattr(runtime, "choose_device", lambda device: ("cpu", "--device auto fell back to CPU: no GPU here"))
    r = CliRunner().invoke(cli, ["run", "tiny-ok", "--task", "digits", "--jobs", "4", "--no-baselines", "--no-timing",
                                 "--executor", "inline", "--profile", "smoke", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert re.search(r"^run \S+: 1 job, profile smoke, device cpu, 1 at a time \(timing alone\)$", r.stdout, re.M)
    assert "note: --device auto fell back to CPU: no GPU here" in r.stderr and "note:" not in r.stdout


def test_the_eta_learns_from_step_rates_and_alike_units_on_a_machine_with_no_history(monkeypatch, tmp_path):
    """On a fresh machine the ETA said ~22 minutes at minute 4 of a 10-minute run: it took the mean of the units
    done so far, and with the longest first those were the slowest. A simulated run with the default run's
    shape (2 slots, longest first; 2 autoregressive, 2 VAE, 3 GAN, a diffusion and a flow model on 2 tasks,
    6 baselines, then 9 timings of 12 s: the issue's default run spent 137 s timing about as many jobs), each unit training at its own step rate and then spending 3–10 s on
    export, sampling and scoring, with progress reports every second: from 40% to 80% of the run, the ETA is
    within 25% of the time really left (the issue asks it at 40%)."""
    import heapq

    from genbench import ui

    clock = [1000.0]
    monkeypatch.setattr(ui.time, "monotonic", lambda: clock[0])
    # (model, family, steps, steps/s, seconds after training) per task
    models = [("ar-pixel", "ar", 2000, 20.0, 10.0), ("ar-transformer", "ar", 1500, 18.0, 9.0),
              ("vae-conv", "vae", 3000, 60.0, 6.0), ("vae-mlp", "vae", 3000, 120.0, 5.0),
              ("ddpm-mlp", "diffusion", 2000, 50.0, 8.0), ("realnvp", "flow", 1000, 40.0, 4.0),
              ("gan-conv", "gan", 3000, 150.0, 4.0), ("gan-mlp", "gan", 10000, 400.0, 3.0),
              ("gan-wide", "gan", 10000, 500.0, 3.0)]
    units = []  # (key, label, groups, steps, rate, after)
    for task, speed in (("digits", 1.0), ("mnist5k", 0.5)):
        for name, family, steps, rate, after in models:
            units.append((len(units), f"{name} on {task}", (f"{name}|{task}", family), steps, rate * speed, after))
        for i in range(3):
            units.append((len(units), f"baseline-{i} on {task}", (f"baseline-{i}|{task}", "baseline"), 0, 1.0, 1.0))
    timings = [(100 + i, f"timing {i}") for i in range(9)]
    display = RunDisplay("off", lambda s: None, jobs=2, history=UnitHistory(tmp_path / "none"))
    for key, label, groups, *_ in units:
        display.add(key, label, "build", f"{label}|trained", expected_total=len(units) + len(timings),
                    groups=groups)

    # the schedule, event by event: (time, order, what, key, payload)
    events, order, free, queue = [], 0, [0.0, 0.0], list(units)
    while queue:
        key, label, groups, steps, rate, after = queue.pop(0)
        start = heapq.heappop(free)
        train = steps / rate
        events += [(start, order, "start", key, None), (start, order + 1, "phase", key, "train")]
        events += [(start + t, order + 2, "progress", key, (int(min(t, train) * rate), steps))
                   for t in range(1, int(train) + 1)]
        events += [(start + train, order + 3, "phase", key, "sample"), (start + train + after, order + 4, "end", key, None)]
        heapq.heappush(free, start + train + after)
        order += 5
    builds_end = max(free)
    for i, (key, label) in enumerate(timings):
        events += [(builds_end + 12 * i, order, "add", key, label), (builds_end + 12 * i, order + 1, "start", key, None),
                   (builds_end + 12 * (i + 1), order + 2, "end", key, None)]
        order += 3
    events.sort()
    end = builds_end + 12 * len(timings)
    checked = []
    for when, _, what, key, payload in events:
        if when >= 0.4 * end and checked and checked[-1][0] < when - 5 or (when >= 0.4 * end and not checked):
            eta, left = display.eta(), end - clock[0] + 1000.0
            checked.append((when, eta, left))
            assert eta is not None and abs(eta - left) <= 0.25 * left, (when, eta, left, end)
        clock[0] = 1000.0 + when
        if what == "add":
            display.add(key, payload, "timing", f"{payload}|timing")
        elif what == "start":
            display.started(key)
        elif what == "phase":
            display.message(key, "phase", payload)
        elif what == "progress":
            display.message(key, "progress", (*payload, {}))
        else:
            display.finished(key, "ok")
        if clock[0] - 1000.0 >= 0.8 * end:
            break
    assert len(checked) >= 10 and checked[0][0] <= 0.45 * end  # judged from 40% of the run to 80%


def test_history_json_is_the_owners_only_whatever_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0)
    try:
        UnitHistory(tmp_path).record("a|digits|smoke|cpu|trained", 1.0)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "history.json").stat().st_mode) == 0o644
