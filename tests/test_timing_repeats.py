"""A latency gate across processes (issue 25, item 4): ``--timing-repeats K`` times each job in K fresh processes,
and ``compare`` judges latency_p50 on the spread of their per-process medians (genbench.reports.compare)."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

import genbench
from genbench.cli import cli
from genbench.reports.compare import process_ratio

K = 5


def _medians(rng: np.random.Generator, true_ms: float) -> np.ndarray:
    """K per-process medians of one graph under a synthetic background load: each fresh process lands on a
    machine state of its own (1.5% log-normal spread), and half of them are slowed by up to 5% more by other
    processes (load only ever slows)."""
    load = np.where(rng.random(K) < 0.5, rng.uniform(0.0, 0.05, K), 0.0)
    return true_ms * np.exp(rng.normal(0.0, 0.015, K)) * (1.0 + load)


def test_20_same_graph_pairs_never_fail_a_10_percent_gate_and_a_20_percent_slower_graph_always_does():
    limit = 1.10  # latency_p50:10%: the gate fails when the interval's lower end passes 1 + limit
    for pair in range(20):
        rng = np.random.default_rng(pair)
        base, same, slower = _medians(rng, 2.0), _medians(rng, 2.0), _medians(rng, 2.4)
        neutral = process_ratio(base, same)
        assert neutral.kind == "processes" and neutral.low <= neutral.worse <= neutral.high
        assert not neutral.low > limit, (pair, neutral)
        worse = process_ratio(base, slower)
        assert worse.low > limit, (pair, worse)


def test_process_ratio_closed_forms():
    same = process_ratio([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert (same.worse, same.low, same.high) == (1.0, 1.0, 1.0)
    r = process_ratio([1.0, 1.1, 0.9], [2.0, 2.2, 1.8])  # the same spread, twice as slow: exactly ×2 in the middle
    assert abs(r.worse - 2.0) < 1e-12 and r.low < 2.0 < r.high and abs(r.low * r.high - 4.0) < 1e-9


def test_timing_repeats_time_each_job_in_fresh_processes_and_compare_reads_their_medians(fake_host, tmp_path):
    """End to end, small: two timing processes per job; every record keeps both medians, and compare of the run
    with itself judges latency on them (unchanged)."""
    result = genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                          baselines=False, device="cpu", timing_repeats=2, executor="process", jobs=1)
    (job,) = result.jobs
    assert job.status == "ok" and job.timing["timing_processes"] == 2, job.timing
    records = [p for p in job.performance if p.runtime == "onnxruntime"]
    assert records and all(len(p.process_p50_ms) == 2 for p in records)
    assert all(p.process_p50_ms[-1] == p.latency_ms["p50"] for p in records)  # the record is the last process's
    assert result.config["timing_repeats"] == 2
    run_dir = str(tmp_path / result.run_id)
    r = CliRunner().invoke(cli, ["compare", run_dir, run_dir, "--json", "--allow-noisy"], catch_exceptions=False)
    row = next(x for x in json.loads(r.stdout)["rows"] if x["metric"] == "latency_p50")
    assert row["change"]["from"] == "processes" and row["verdict"] == "unchanged", row


def test_the_reproducing_command_keeps_timing_repeats_and_bad_values_are_refused():
    from genbench.cli import _reproduce

    assert "--timing-repeats 3" in _reproduce({"timing_repeats": 3})
    assert "--timing-repeats" not in _reproduce({"timing_repeats": 1})
    r = CliRunner().invoke(cli, ["run", "tiny-ok", "--timing-repeats", "0"])
    assert r.exit_code == 2 and "--timing-repeats" in r.output and "Traceback" not in r.output
