"""Each job runs in its own process: a plugin that hangs or kills its process fails only its own job."""

import json

import pytest

import genbench


@pytest.mark.parametrize("model, phase, error_type, words", [
    ("tiny-hangs", "train", "Timeout", ["no result after 10 s", "in phase train", "--timeout"]),
    ("tiny-exits", "export", "ProcessDied", ["died during export", "exit code 3"]),
    ("tiny-segfaults", "train", "ProcessDied", ["died during train", "SIGSEGV"]),
    ("tiny-sys-exit", "train", "SystemExit", ["plugin called sys.exit"]),
    ("tiny-killed", "train", "ProcessDied", ["died during train", "SIGKILL", "out-of-memory killer", "--max-memory"]),
])
def test_hostile_plugin_fails_its_own_job_and_the_run_goes_on(fake_host, tmp_path, model, phase, error_type, words):
    result = genbench.run([model, "tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                          baselines=False, device="cpu", timing=False, timeout=10)
    jobs = {j.model: j for j in result.jobs}
    bad = jobs[model]
    assert bad.status == "failed" and bad.error.phase == phase and bad.error.type == error_type, bad.error
    for w in words:
        assert w in bad.error.message, bad.error.message
    assert jobs["tiny-ok"].status == "ok"
    on_disk = json.loads((tmp_path / result.run_id / "run.json").read_text())
    assert [j["status"] for j in on_disk["jobs"]] == ["failed", "ok"]
    assert (tmp_path / result.run_id / bad.files["error"]).is_file()


def test_inline_and_process_executors_give_the_same_quality(fake_host, tmp_path):
    runs = [genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path, baselines=False,
                         device="cpu", timing=False, executor=e) for e in ("inline", "process")]
    assert runs[0].jobs[0].quality["fd"].value == pytest.approx(runs[1].jobs[0].quality["fd"].value, abs=1e-9)


def test_a_job_over_its_memory_limit_fails_alone(fake_host, tmp_path):
    """--max-memory: a model that asks for 8 GiB gets a MemoryError in its own job, not the OOM killer."""
    result = genbench.run(["tiny-memory-hog", "tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host,
                          out=tmp_path, baselines=False, device="cpu", timing=False, max_memory=3)
    hog, ok = result.jobs
    assert hog.status == "failed" and hog.error.phase == "train" and hog.error.type == "MemoryError", hog.error
    assert "8.00 GiB" in hog.error.message and "--max-memory 3 GiB" in hog.error.message
    assert ok.status == "ok" and result.config["max_memory"] == 3


def test_threads_a_plugin_leaves_running_are_reported_and_do_not_hold_the_run(fake_host, tmp_path):
    import multiprocessing

    result = genbench.run(["tiny-leaky-threads", "tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host,
                          out=tmp_path, baselines=False, device="cpu", timing=False, timeout=60)
    leaky, ok = result.jobs
    assert leaky.status == "ok" and ok.status == "ok" and not ok.warnings
    (warning,) = leaky.warnings
    assert "2 Python thread(s)" in warning and "leaked-sleeper" in warning and "leaked-daemon" in warning
    # the hour-long non-daemon thread did not keep the job's process alive
    assert not [p for p in multiprocessing.active_children() if p.name == "genbench-job-tiny-leaky-threads"]
    report = (tmp_path / result.run_id / "report.md").read_text()
    assert "leaked-sleeper" in report


def test_a_script_read_from_stdin_gets_a_clear_error_not_dead_jobs(tmp_path):
    """Job processes re-run __main__ from its file; a script piped to `python -` has none."""
    import subprocess
    import sys

    script = ("import genbench\n"
              f"genbench.run(['baseline-gaussian'], tasks=['digits'], profile='smoke', out={str(tmp_path)!r}, "
              "device='cpu', timing=False)\n")
    proc = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "ConfigError: Job processes cannot start from a script read from <stdin>" in proc.stderr
    assert "executor='inline'" in proc.stderr and not list(tmp_path.iterdir())  # nothing started, nothing half-written


def test_a_job_that_times_out_takes_the_processes_it_started_with_it(fake_host, tmp_path):
    import secrets
    import tempfile
    import time
    from pathlib import Path

    steps = 100_000 + secrets.randbelow(800_000)  # names this test's marker file
    marker = Path(tempfile.gettempdir(), f"genbench-spawned-{steps}")
    try:
        job = genbench.run(["tiny-spawns"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                           baselines=False, device="cpu", timing=False, timeout=10, steps=steps).jobs[0]
        assert job.error.type == "Timeout" and job.error.phase == "train", job.error
        pid = int(marker.read_text())
        deadline = time.time() + 10
        while time.time() < deadline and Path(f"/proc/{pid}").exists() and \
                Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.1)
        alive = Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        assert not alive, f"the job's child process {pid} outlived it"
    finally:
        marker.unlink(missing_ok=True)


# --------------------------------------------------------------------------- processes that leave the group and the tree


def _sleepers(seconds: int) -> list:
    """Live `sleep SECONDS` processes (the escaping sleepers of tests/fakes.py, told apart by their duration)."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["cmdline"] == ["sleep", str(seconds)] and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            pass
    return found


def _gone(seconds: int, within: float = 15.0) -> bool:
    import time

    deadline = time.time() + within
    while time.time() < deadline:
        if not _sleepers(seconds):
            return True
        time.sleep(0.1)
    return False


def _unique_seconds() -> int:
    import secrets

    return 900_000 + secrets.randbelow(90_000)  # names this test's sleeper


@pytest.mark.parametrize("model, status", [("tiny-setsid-hangs", "Timeout"), ("tiny-setsid-ok", "ok"),
                                           ("tiny-setsid-exits", "ProcessDied")])
def test_a_process_started_in_a_new_session_by_a_double_fork_ends_with_its_job(fake_host, tmp_path, model, status):
    """setsid and a double fork leave the job's process group and tree; the job's process (a subreaper) still
    finds the process when the job times out or ends, and when the job's process itself dies first, the
    forkserver (a subreaper too) takes it and genbench kills it as the unit ends."""
    seconds = _unique_seconds()
    try:
        job = genbench.run([model], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path, baselines=False,
                           device="cpu", timing=False, timeout=5, steps=seconds).jobs[0]
        assert (job.status if status == "ok" else job.error.type) == status, job.error
        assert _gone(seconds), f"`sleep {seconds}` outlived its job"
    finally:
        for p in _sleepers(seconds):
            p.kill()


def test_what_a_plugin_prints_is_kept_in_the_jobs_files_not_on_genbenchs_output(fake_host, tmp_path, capfd):
    from genbench.executors.local import OUTPUT_CAP

    lines = []
    result = genbench.run(["tiny-escapes", "tiny-chatty"], tasks=["digits"], profile="smoke", host=fake_host,
                          out=tmp_path, baselines=False, device="cpu", timing=False, echo=lines.append)
    out, err = capfd.readouterr()
    assert "\x1b" not in out + err and "screen cleared" not in out + err and "xxxx" not in out + err
    run_dir = tmp_path / result.run_id
    escapes, chatty = result.jobs
    assert chatty.status == "ok" and escapes.status == "failed"
    printed = (run_dir / escapes.seed_results[0].files["stdout"]).read_text()
    assert "\x1b[2J\x1b[Hscreen cleared by the plugin" in printed and "straight to fd 1" in printed
    assert "red from the plugin" in (run_dir / escapes.seed_results[0].files["stderr"]).read_text()
    big = run_dir / chatty.files["stdout"]  # 3 MiB printed: the first MiB kept, and a note that it was cut
    assert OUTPUT_CAP <= big.stat().st_size < OUTPUT_CAP + 200 and big.read_text().endswith("bytes]\n")
    assert "stderr" not in chatty.files  # nothing printed there: no file
    notes = [line for line in lines if line.startswith("  printed")]
    assert len(notes) == 2 and all("\x1b" not in line for line in notes), notes
    assert any("first line: \\x1b[31mred from the plugin" in line for line in notes), notes


def test_a_plugin_process_that_keeps_genbenchs_stdout_does_not_hang_a_pipe(tmp_path):
    """`genbench run ... | grep` must end when genbench does: what a job starts never holds genbench's stdout."""
    import subprocess
    import sys
    import textwrap
    import time
    from pathlib import Path

    seconds = _unique_seconds()
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import genbench
        from fakes import FakePlugin
        from genbench.plugins import make_plugin_manager
        if __name__ == "__main__":
            host = make_plugin_manager(extra_plugins=[("fakes", FakePlugin)], entry_points=False)
            genbench.run(["tiny-setsid-ok"], tasks=["digits"], profile="smoke", host=host, out={str(tmp_path)!r},
                         baselines=False, device="cpu", timing=False, steps={seconds}, echo=print)
    """))
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
        assert "built   tiny-setsid-ok" in proc.stdout and time.monotonic() - t0 < 180
    finally:
        for p in _sleepers(seconds):
            p.kill()
