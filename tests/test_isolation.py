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
    import os
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
