"""Stopping a run with --jobs 2 (Ctrl-C, SIGTERM, SIGKILL of genbench): no unit starts after it, no process is left
behind (job processes, the forkserver, the resource tracker), what finished is kept, and --resume finishes the run
(a job built but not yet timed is only timed). Two --resume at once on one directory: the second refuses."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import genbench
from genbench.errors import RunLockedError

TESTS = Path(__file__).parent


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            out.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(name))
    return out


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (from /proc)."""
    children, found, todo = _children(), set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (dead, waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start_run(tmp_path: Path, marks: Path, timing: bool, train: float, restore: float = 1) -> subprocess.Popen:
    """genbench.run in a process of its own (its own session, as a shell would start it): tiny-sleepy trains for
    ``train`` seconds per seed (2 seeds) and restores for timing in ``restore`` s, beside tiny-ok, 2 units at a time."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import genbench
        from fakes import FakePlugin
        from genbench.errors import RunInterrupted
        from genbench.plugins import make_plugin_manager
        if __name__ == "__main__":
            host = make_plugin_manager(extra_plugins=[("fakes", FakePlugin)], entry_points=False)
            try:
                genbench.run(["tiny-sleepy", "tiny-ok"], tasks=["digits"], seeds=[0, 1], profile="smoke", host=host,
                             out={str(tmp_path / "runs")!r}, baselines=False, device="cpu", timing={timing}, jobs=2,
                             cache=False, echo=print)
            except RunInterrupted as exc:
                print("error:", exc, file=sys.stderr)
                sys.exit(1)
    """))
    marks.mkdir()
    env = {**os.environ, "GENBENCH_TEST_MARKS": str(marks), "GENBENCH_TEST_SLEEP_TRAIN": str(train),
           "GENBENCH_TEST_SLEEP_RESTORE": str(restore)}
    return subprocess.Popen([sys.executable, str(script)], env=env, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stop_and_check(proc: subprocess.Popen, how: str, marks: Path) -> tuple[str, str]:
    """Stop ``proc`` as ``how`` says; every process it had (and every unit process) must be gone soon after."""
    before = descendants(proc.pid) | {int(p.name.rsplit("-", 1)[1]) for p in marks.iterdir()}
    assert len(before) >= 3, before  # at least the forkserver and two unit processes
    started = sorted(p.name for p in marks.iterdir())
    if how == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    else:
        os.kill(proc.pid, getattr(signal, how))
    out, err = proc.communicate(timeout=60)
    wait_for(lambda: not any(running(p) for p in before), 15, f"every process of the run to end after {how}")
    assert sorted(p.name for p in marks.iterdir()) == started, "a unit started after the run was stopped"
    return out, err


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_stopping_during_builds_leaves_no_process_and_a_resumable_run(tmp_path, fake_host, how):
    marks = tmp_path / "marks"
    proc = start_run(tmp_path, marks, timing=False, train=60)
    try:
        wait_for(lambda: len(list(marks.glob("train-*"))) >= 2, 240, "two units to run at once")
        out, err = stop_and_check(proc, how, marks)
    finally:
        if proc.poll() is None:
            proc.kill()
    if how == "SIGINT":
        assert proc.returncode == 1
        (line,) = err.strip().splitlines()
        assert line.startswith("error: Interrupted (SIGINT):") and "genbench run --resume" in line, err
    else:
        assert proc.returncode == -signal.SIGKILL
    (run_json,) = (tmp_path / "runs").glob("*/run.json")
    saved = json.loads(run_json.read_text())
    assert saved["finished_at"] is None
    sleepy = next(j for j in saved["jobs"] if j["model"] == "tiny-sleepy")
    assert sleepy["status"] == "pending" and sleepy["seed_results"] == []  # killed units left no result

    result = genbench.run(resume=run_json.parent, host=fake_host)  # trains for 1 s per seed now
    assert [(j.model, j.status) for j in result.jobs] == [("tiny-sleepy", "ok"), ("tiny-ok", "ok")]
    assert result.finished_at and [s.seed for s in result.jobs[0].seed_results] == [0, 1]
    assert not (run_json.parent / ".data").exists()  # the task's memory-mapped arrays are gone with the run


def test_sigterm_during_timing_leaves_the_job_built_and_resume_only_times_it(tmp_path, fake_host):
    marks = tmp_path / "marks"
    proc = start_run(tmp_path, marks, timing=True, train=0.1, restore=60)
    try:
        # torch.export cannot capture tiny-sleepy: timing restores it in the plugin's process, slowly; stop there
        wait_for(lambda: list(marks.glob("restore-*")), 240, "the timing stage")
        out, err = stop_and_check(proc, "SIGTERM", marks)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1 and "Interrupted (SIGTERM)" in err, err
    (run_json,) = (tmp_path / "runs").glob("*/run.json")
    saved = {j["model"]: j for j in json.loads(run_json.read_text())["jobs"]}
    sleepy = saved["tiny-sleepy"]
    assert sleepy["status"] == "pending" and sleepy["timing"]["status"] == "pending"
    assert [s["status"] for s in sleepy["seed_results"]] == ["ok", "ok"]  # built: only its timing is left

    result = genbench.run(resume=run_json.parent, host=fake_host)  # restores in 1 s now
    job = result.jobs[0]
    assert job.model == "tiny-sleepy" and job.status == "ok" and job.timing["status"] == "done"
    assert [s.to_dict() for s in job.seed_results] == sleepy["seed_results"]  # not built again
    assert job.performance


def test_a_run_directory_is_locked_while_a_run_writes_it(tmp_path, fake_host):
    from genbench.runner import run_lock

    result = genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                          baselines=False, device="cpu", timing=False)
    run_dir = tmp_path / result.run_id
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from genbench.runner import run_lock
        with run_lock(Path({str(run_dir)!r})):
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match="is being written by another genbench run"):
            genbench.run(resume=run_dir, host=fake_host)
        from click.testing import CliRunner

        from genbench.cli import cli

        r = CliRunner().invoke(cli, ["run", "--resume", str(run_dir)])
        assert r.exit_code == 1 and r.output.count("\n") == 1 and "another genbench run" in r.output, r.output
    finally:
        holder.kill()
        holder.wait()
    with run_lock(run_dir):  # released when its holder died
        pass


def test_ctrl_c_with_the_inline_executor_keeps_what_finished(fake_host, tmp_path):
    from genbench.errors import RunInterrupted

    with pytest.raises(RunInterrupted, match=r"Interrupted \(SIGINT\).*genbench run --resume"):
        genbench.run(["tiny-ok", "tiny-self-interrupting", "tiny-cached"], tasks=["digits"], profile="smoke",
                     host=fake_host, out=tmp_path, baselines=False, device="cpu", timing=False, executor="inline")
    (run_json,) = tmp_path.glob("*/run.json")
    jobs = [(j["model"], j["status"]) for j in json.loads(run_json.read_text())["jobs"]]
    assert jobs == [("tiny-ok", "ok"), ("tiny-self-interrupting", "pending"), ("tiny-cached", "pending")]
    assert signal.getsignal(signal.SIGINT) is not None and signal.getsignal(signal.SIGINT).__name__ != "handler"


def test_a_unit_that_dies_while_the_run_is_being_stopped_was_stopped_not_failed():
    """A signal to genbench's whole process group (as `timeout` sends SIGTERM) kills the forkserver, so the unit
    ends (exit code 255) before genbench's own handler has run: it is stopped, not failed. Without a stop request
    the same death is a failure."""
    import threading

    from fakes_limits import die_at_once

    from genbench.executors import UnitStopped
    from genbench.executors.local import _supervise

    outcome = _supervise(die_at_once, (), "genbench-test-die", 60, threading.Event())  # (starts the forkserver)
    assert outcome.payload is None and outcome.exitcode == 255
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()  # the handler runs a moment after the unit is gone
    with pytest.raises(UnitStopped):
        _supervise(die_at_once, (), "genbench-test-die", 60, stop)


def start_cli(tmp_path: Path, marks: Path, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """The genbench program (genbench.cli.main) with the fake plugins, in a session of its own."""
    script = tmp_path / "cli.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import genbench.runner
        from fakes import FakePlugin
        from genbench.plugins import make_plugin_manager
        genbench.runner.make_plugin_manager = lambda: make_plugin_manager(extra_plugins=[("fakes", FakePlugin)],
                                                                          entry_points=False)
        from genbench.cli import main
        if __name__ == "__main__":
            main(sys.argv[1:])
    """))
    marks.mkdir()
    env = {**os.environ, "GENBENCH_TEST_MARKS": str(marks), **(env or {})}
    return subprocess.Popen([sys.executable, str(script), *args], env=env, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("when, signals", [("stopping", 2), ("stopping", 3), ("exiting", 2), ("exiting", 3)])
def test_more_ctrl_c_while_stopping_never_gives_a_traceback_and_exits_1(tmp_path, when, signals):
    """After the first Ctrl-C, more of them (while the run stops, or while genbench exits: its exit handlers
    used to raise KeyboardInterrupt) are absorbed, or a third ends genbench at once: exit 1, never a traceback."""
    marks = tmp_path / "marks"
    proc = start_cli(tmp_path, marks, ["run", "tiny-sleepy", "tiny-ok", "--task", "digits", "--profile", "smoke",
                                       "--no-baselines", "--no-timing", "--jobs", "2", "--no-cache", "--quiet",
                                       "--out", str(tmp_path / "runs")], {"GENBENCH_TEST_SLEEP_TRAIN": "60"})
    try:
        wait_for(lambda: list(marks.glob("train-*")), 240, "the sleepy unit to train")
        before = descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        err = ""
        if when == "exiting":  # again as soon as genbench says it stopped: it is on its way out
            err = proc.stderr.readline()
            assert err.startswith("error: Interrupted (SIGINT)"), err
        for _ in range(signals - 1):
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.02)
        out, rest = proc.communicate(timeout=60)
        err += rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, (proc.returncode, err)
    assert "Traceback" not in err and "Exception ignored" not in err and "KeyboardInterrupt" not in err, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(("error: Interrupted (SIGINT)", "error: stopped at once (SIGINT again)")), err
    assert len(lines) <= 2, err  # the error, and perhaps the line that says genbench is stopping
    wait_for(lambda: not any(running(p) for p in before), 15, "every process of the run to end")
    (run_json,) = (tmp_path / "runs").glob("*/run.json")
    assert json.loads(run_json.read_text())["finished_at"] is None  # resumable


def test_sigkill_of_genbench_takes_a_process_the_plugin_started_in_a_new_session(tmp_path):
    """A double-forked, setsid process of a plugin is below the forkserver (a subreaper): when genbench is
    SIGKILLed, the forkserver sees it gone and kills everything below it before it exits."""
    import secrets

    import psutil

    seconds = 800_000 + secrets.randbelow(90_000)
    marks = tmp_path / "marks"
    proc = start_cli(tmp_path, marks, ["run", "tiny-setsid-hangs", "--task", "digits", "--profile", "smoke",
                                       "--no-baselines", "--no-timing", "--no-cache", "--steps", str(seconds),
                                       "--out", str(tmp_path / "runs")])

    def sleepers() -> list:
        return [p for p in psutil.process_iter(["cmdline", "status"])
                if p.info["cmdline"] == ["sleep", str(seconds)] and p.info["status"] != psutil.STATUS_ZOMBIE]

    try:
        (sleeper,) = wait_for(sleepers, 240, "the plugin's sleep to start")
        assert sleeper.pid not in descendants(proc.pid) or os.getsid(sleeper.pid) != os.getsid(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        wait_for(lambda: not sleepers(), 15, "the plugin's sleep to end with genbench")
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in sleepers():
            p.kill()


def test_a_run_stopped_before_any_result_counts_its_planned_jobs_as_pending(tmp_path):
    """A run stopped before its first result said "0 jobs are pending": run.json lists no job until one ends."""
    import pytest

    from genbench.errors import RunInterrupted
    from genbench.runner import _Stop, _stopped
    from genbench.types import RunResult

    result = RunResult(schema="genbench.run/2", run_id="r", genbench_version="0", started_at="t", finished_at=None,
                       command="genbench run --all", config={}, environment={}, jobs=())
    stop = _Stop()
    stop.set("SIGTERM")
    with pytest.raises(RunInterrupted, match=r"0 units finished in this session, .*; 3 jobs are pending; finish"):
        _stopped({"result": result, "done": 0, "planned": 3}, tmp_path, stop, lambda s: None)
