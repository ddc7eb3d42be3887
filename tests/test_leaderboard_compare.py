"""genbench leaderboard and genbench compare, on results files written by the tests."""

import csv
import io
import json
from dataclasses import replace

from click.testing import CliRunner

from genbench.cli import cli
from genbench.results import write_run
from genbench.types import JobResult, MetricValue, PerfRecord, RunResult


def _run(run_id, started, fds, cpu="AMD EPYC", latency=0.05):
    jobs = []
    for model, fd in fds.items():
        perf = (PerfRecord("onnxruntime", "CPUExecutionProvider", "cpu", 1, 2, 2000, 0.1,
                           {"p50": latency, "p90": latency, "p99": latency * 2, "mean": latency, "std": 0.0},
                           1 / latency * 1e3, True),)
        jobs.append(JobResult(model=model, family="gan", plugin="genbench-x", plugin_version="1", task="digits",
                              device="cpu", status="ok",
                              quality={"fd": MetricValue(fd, "", False, n=100, floor=1.0),
                                       "precision": MetricValue(0.5, "", True, n=100)},
                              performance=perf))
    return RunResult(schema="genbench.run/1", run_id=run_id, genbench_version="0.1.0", started_at=started,
                     finished_at=started, command=f"genbench run --all  # {run_id}", config={"profile": "default"},
                     environment={"cpu": cpu, "cpu_count": 2, "gpus": [], "torch": "2.13", "onnxruntime": "1.32"},
                     jobs=tuple(jobs))


def _write(tmp_path, run):
    d = tmp_path / run.run_id
    write_run(run, d)
    return str(d)


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_compare_with_itself_reports_no_change_and_exits_0(tmp_path):
    a = _write(tmp_path, _run("a", "2026-01-01", {"gan-mlp": 10.0}))
    r = invoke("compare", a, a, "--fail-on-regression", "fd:5%,latency_p50:10%")
    assert r.exit_code == 0, r.output
    assert "no gated regression" in r.output and "regressed" not in r.output and "warning" not in r.output


def test_a_degraded_model_fails_the_gate_and_names_the_metric(tmp_path):
    a = _write(tmp_path, _run("a", "2026-01-01", {"gan-mlp": 10.0, "vae-mlp": 20.0}))
    b = _write(tmp_path, _run("b", "2026-01-02", {"gan-mlp": 11.0, "vae-mlp": 19.0}))
    r = invoke("compare", a, b, "--fail-on-regression", "fd:5%")
    assert r.exit_code == 1
    assert "FAIL: fd of gan-mlp on digits regressed: 10 -> 11 (+10.0%; limit 5%)" in r.output
    assert "vae-mlp" in r.output and "FAIL: fd of vae-mlp" not in r.output  # an improvement is not a failure
    assert invoke("compare", a, b, "--fail-on-regression", "fd:15%").exit_code == 0
    assert invoke("compare", a, b, "--fail-on-regression", "fd:0.5").exit_code == 1  # absolute limit


def test_slower_latency_is_a_regression_and_other_machines_are_warned_about(tmp_path):
    a = _write(tmp_path, _run("a", "2026-01-01", {"gan-mlp": 10.0}, latency=0.05))
    b = _write(tmp_path, _run("b", "2026-01-02", {"gan-mlp": 10.0}, cpu="Intel Xeon", latency=0.08))
    r = invoke("compare", a, b, "--fail-on-regression", "latency_p50:10%")
    assert r.exit_code == 1 and "latency_p50 of gan-mlp" in r.output
    assert "warning: the runs differ in cpu: AMD EPYC vs Intel Xeon" in r.output


def test_bad_gate_is_a_one_line_error(tmp_path):
    a = _write(tmp_path, _run("a", "2026-01-01", {"gan-mlp": 10.0}))
    r = invoke("compare", a, a, "--fail-on-regression", "fd=5")
    assert r.exit_code == 1 and "Invalid gate 'fd=5'" in r.output


def test_leaderboard_merges_ranks_and_traces_rows_to_runs(tmp_path):
    a = _write(tmp_path, _run("a", "2026-01-01", {"gan-mlp": 10.0, "vae-mlp": 5.0}))
    b = _write(tmp_path, _run("b", "2026-01-02", {"gan-mlp": 3.0}))
    md = invoke("leaderboard", a, b).output
    lines = [ln for ln in md.splitlines() if ln.startswith("| ") and "`" in ln]
    assert "gan-mlp" in lines[0] and "# b" in lines[0] and "vae-mlp" in lines[1]  # latest gan-mlp (fd 3) ranks first
    assert "fd ↓" in md and "precision ↑" in md
    rows = list(csv.DictReader(io.StringIO(invoke("leaderboard", a, b, "--format", "csv").output)))
    assert [(r["rank"], r["model"], r["fd"], r["run_id"]) for r in rows] == [("1", "gan-mlp", "3.0", "b"),
                                                                            ("2", "vae-mlp", "5.0", "a")]
    data = json.loads(invoke("leaderboard", a, b, "--format", "json").output)
    assert data["schema"] == "genbench.leaderboard/1" and data["rows"][0]["command"].endswith("# b")
    out = tmp_path / "board.md"
    assert invoke("leaderboard", a, "-o", str(out)).exit_code == 0 and out.read_text().startswith("# genbench")


def test_plugin_supplied_names_are_escaped_in_markdown(tmp_path):
    run = _run("a", "2026-01-01", {"gan-mlp": 1.0})
    evil = replace(run, command="genbench run <script>alert(1)</script>|x")
    md = invoke("leaderboard", _write(tmp_path, evil)).output
    assert "<script>" not in md and "\\<script\\>" in md
