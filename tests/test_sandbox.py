"""Build processes (plugin code) in a bubblewrap sandbox: a plugin that writes outside its unit directory,
reads another job's files or opens a socket fails its own job with a one-line error, and the run goes on."""

import socket
import threading

import pytest

from genbench.executors.sandbox import bwrap_problem, resolve_mode
from genbench.errors import ConfigError
from genbench.plugins import make_plugin_manager
from genbench.runner import run

PROBLEM = bwrap_problem()
needs_bwrap = pytest.mark.skipif(PROBLEM is not None, reason=f"bwrap cannot run here: {PROBLEM}")


@pytest.fixture
def host():
    from fakes import FakePlugin
    from sandbox_fakes import SandboxPlugin

    return make_plugin_manager(extra_plugins=[("fakes", FakePlugin), ("sandbox-fakes", SandboxPlugin)],
                               entry_points=False)


def _run(host, tmp_path, sandbox="bwrap"):
    return run(["tiny-attacker", "tiny-bystander"], tasks=["digits"], profile="smoke", out=tmp_path / "runs",
               host=host, settings=False, baselines=False, timing=False, jobs=1, sandbox=sandbox)


def _jobs(result):
    return {j.model: j for j in result.jobs}


@pytest.fixture
def attack():
    """Aim the attacking plugin (``attack("write:PATH")``); the aim is removed after the test."""
    from sandbox_fakes import ATTACK_FILE

    yield lambda what: ATTACK_FILE.write_text(what)
    ATTACK_FILE.unlink(missing_ok=True)


@pytest.fixture
def outside():
    """A writable folder outside /tmp (inside the sandbox /tmp is private; everything else is read-only)."""
    import shutil
    import tempfile
    from pathlib import Path

    where = Path(tempfile.mkdtemp(prefix="genbench-sandbox-test-", dir="/var/tmp"))
    yield where
    shutil.rmtree(where, ignore_errors=True)


@needs_bwrap
def test_a_plugin_that_writes_outside_its_unit_directory_fails_alone(host, tmp_path, monkeypatch, attack, outside):
    target = outside / "planted.txt"
    attack(f"write:{target}")
    jobs = _jobs(_run(host, tmp_path))
    assert jobs["tiny-attacker"].status == "failed"
    message = jobs["tiny-attacker"].error.message
    assert "Read-only file system" in message and "\n" not in message
    assert not target.exists()
    assert jobs["tiny-bystander"].status == "ok"


@needs_bwrap
def test_a_plugin_that_reads_another_jobs_files_fails_alone(host, tmp_path, monkeypatch, attack):
    """The run directory is hidden but for the unit's own directory: run.json, other jobs, other seeds."""
    runs = tmp_path / "runs"
    runs.mkdir()
    attack("read:RUN_JSON")
    import genbench.runner as runner

    real = runner._run_units

    def aim(units, *a, **k):  # point the attack at this run's own run.json once it exists
        run_json = next(runs.glob("*/run.json"))
        attack(f"read:{run_json}")
        return real(units, *a, **k)

    monkeypatch.setattr(runner, "_run_units", aim)
    jobs = _jobs(_run(host, tmp_path))
    assert jobs["tiny-attacker"].status == "failed"
    assert "No such file or directory" in jobs["tiny-attacker"].error.message
    assert jobs["tiny-bystander"].status == "ok"


@needs_bwrap
def test_a_plugin_that_opens_a_socket_fails_alone(host, tmp_path, monkeypatch, attack):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(60)
    heard: list[bytes] = []

    def listen():
        try:
            conn, _ = server.accept()
            heard.append(conn.recv(100))
        except OSError:
            pass

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    attack(f"connect:{server.getsockname()[1]}")
    try:
        jobs = _jobs(_run(host, tmp_path))
    finally:
        server.close()
    assert jobs["tiny-attacker"].status == "failed"
    assert "Connection refused" in jobs["tiny-attacker"].error.message or \
        "unreachable" in jobs["tiny-attacker"].error.message
    assert heard == []
    assert jobs["tiny-bystander"].status == "ok"


@needs_bwrap
def test_a_sandboxed_build_that_hangs_is_killed_at_its_timeout_with_every_process_it_started(host, tmp_path, attack):
    import secrets

    import psutil

    from genbench.runner import run as run_benchmark

    seconds = str(700_000 + secrets.randbelow(90_000))
    attack(f"hang:{seconds}")
    result = run_benchmark(["tiny-attacker", "tiny-bystander"], tasks=["digits"], profile="smoke",
                           out=tmp_path / "runs", host=host, settings=False, baselines=False, timing=False, jobs=1,
                           sandbox="bwrap", timeout=15)
    jobs = _jobs(result)
    assert jobs["tiny-attacker"].status == "failed" and jobs["tiny-attacker"].error.type == "Timeout"
    assert jobs["tiny-bystander"].status == "ok"
    import time

    def left():
        return [p for p in psutil.process_iter(["cmdline", "status"])
                if p.info["cmdline"] == ["sleep", seconds] and p.info["status"] != psutil.STATUS_ZOMBIE]

    deadline = time.monotonic() + 30  # the kernel tears the sandbox's PID namespace down as its init dies
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left() == []


def test_without_the_sandbox_the_same_attack_succeeds(host, tmp_path, monkeypatch, attack, outside):
    """The control: --sandbox none contains nothing, so the tests above test the sandbox."""
    target = outside / "planted.txt"
    attack(f"write:{target}")
    jobs = _jobs(_run(host, tmp_path, sandbox="none"))
    assert jobs["tiny-attacker"].status == "ok" and target.read_text() == "planted by a plugin"


def test_sandbox_modes_say_what_they_do(monkeypatch):
    import genbench.executors.sandbox as sandbox

    assert resolve_mode("none") == (False, None)
    monkeypatch.setitem(sandbox._PROBE, "bwrap", "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
    active, note = resolve_mode("auto")
    assert not active and "without a sandbox" in note and "bwrap is not installed" in note and "\n" not in note
    with pytest.raises(ConfigError, match="--sandbox bwrap: bwrap is not installed"):
        resolve_mode("bwrap")
    with pytest.raises(ConfigError, match="use one of auto, bwrap, none"):
        resolve_mode("firejail")


@needs_bwrap
def test_a_plugin_whose_code_lives_under_tmp_still_runs_in_the_sandbox(tmp_path, monkeypatch):
    """The sandbox's /tmp is private: a plugin installed from a folder under /tmp (a sys.path entry there, or
    an editable install) is shown to its build process read-only, and its job runs."""
    import genbench

    src = tmp_path / "src"  # pytest's tmp_path is under /tmp
    src.mkdir()
    (src / "tmp_placed_model.py").write_text("from fakes import TinyModel\n\n\nclass Placed(TinyModel):\n    pass\n")
    monkeypatch.syspath_prepend(str(src))

    class Placed:
        @staticmethod
        @genbench.hookimpl
        def genbench_register_models(register):
            register(genbench.ModelSpec("tiny-placed", "test", ("image",), "tmp_placed_model:Placed", "under /tmp"))

    from fakes import FakePlugin

    host = make_plugin_manager(extra_plugins=[("fakes", FakePlugin), ("placed", Placed)], entry_points=False)
    result = run(["tiny-placed"], tasks=["digits"], profile="smoke", out=tmp_path / "runs", host=host,
                 settings=False, baselines=False, timing=False, jobs=1, sandbox="bwrap")
    (job,) = result.jobs
    assert job.status == "ok", job.error
    assert result.environment["sandbox"]["build_processes"] == "bwrap"


@needs_bwrap
def test_a_graph_file_under_tmp_is_shown_to_its_sandboxed_build(tmp_path, monkeypatch):
    """An outside tester: `genbench run --onnx good.onnx` from a folder under /tmp failed in export with
    FileNotFoundError under the default sandbox (its private /tmp hid the file the user named)."""
    from click.testing import CliRunner

    from test_onnx_model import FACTS, sample_graph

    from genbench.cli import cli
    from genbench.results import load_run

    import genbench.plugins as plugins

    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [])
    graph = sample_graph(tmp_path / "good.onnx")  # pytest's tmp_path is under /tmp
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["run", "--onnx", "good.onnx", "--role", "sample", *FACTS, "--task", "digits",
                                 "--profile", "smoke", "--no-baselines", "--no-timing", "--sandbox", "bwrap",
                                 "--out", str(tmp_path / "runs")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    run = load_run(next((tmp_path / "runs").iterdir()))
    (job,) = run.jobs
    assert job.status == "ok" and run.environment["sandbox"]["build_processes"] == "bwrap"
    assert graph.is_file()
