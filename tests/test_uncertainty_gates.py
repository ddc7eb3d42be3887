"""Uncertainty you can gate on (issue 25): seeds in the key, pooled seeds on the leaderboard, compare refusing a seed
change, timings under load that cannot fail a gate, gates that say what they skipped, intervals in every format."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from genbench.aggregate import aggregate_quality
from genbench.cli import cli
from genbench.comparability import make_key, seed_ids
from genbench.errors import GenbenchError
from genbench.reports import board_markdown, leaderboard
from genbench.results import write_run
from genbench.types import JobResult, MetricValue, PerfRecord, RunResult, SeedResult


def key(n=500, seeds=1):
    return make_key(task="digits", data="d" * 64, extractor="digits-cnn@sha256:" + "a" * 64, n=n, params=None,
                    profile="smoke", seeds=seeds)


def fd(value, half=25.0, floor=4.8):
    """An FD as one seed's score writes it: with its sampling interval."""
    return MetricValue(value, "", False, n=500, extractor=key()["extractor"], floor=floor, key=key(),
                       interval=(value - half, value + half), interval_of="95% basic bootstrap over ...")


def seed_result(seed, quality, cache_key=None):
    return SeedResult(seed=seed, status="ok", quality=quality, cache={"key": cache_key} if cache_key else None)


def perf(latency=0.05, noisy=False, valid=True):
    return (PerfRecord("onnxruntime", "CPUExecutionProvider", "cpu", 1, 2, 2000, 0.1,
                       {"p50": latency, "p90": latency, "p99": latency * 2, "mean": latency, "std": 0.0},
                       1 / latency * 1e3, valid, noisy=noisy, invalid_reason=None if valid else "too few calls"),)


def job(model, seeds_quality, family="vae", noisy=False, valid=True, cache=None):
    """A job over seeds: ``{seed: {metric: MetricValue}}``, aggregated as genbench does."""
    results = tuple(seed_result(s, q, (cache or {}).get(s)) for s, q in seeds_quality.items())
    return JobResult(model=model, family=family, plugin="genbench-x", plugin_version="1", task="digits", device="cpu",
                     status="ok", quality=aggregate_quality(results), performance=perf(noisy=noisy, valid=valid),
                     seeds=tuple(seeds_quality), seed_results=results)


def run(run_id, started, jobs):
    return RunResult(schema="genbench.run/2", run_id=run_id, genbench_version="0.2.0", started_at=started,
                     finished_at=started, command=f"genbench run  # {run_id}", config={"profile": "smoke"},
                     environment={"cpu": "x", "cpu_count": 2, "gpus": [], "git_commit": "c" * 40}, jobs=tuple(jobs))


def write(tmp_path, r):
    d = tmp_path / r.run_id
    write_run(r, d)
    return str(d)


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# --------------------------------------------------------------------------- seeds in the key


def test_the_key_records_which_seeds_made_a_number():
    j = job("vae-mlp", {3: {"fd": fd(900.0)}, 7: {"fd": fd(950.0)}})
    assert seed_ids(j.quality["fd"]) == (3, 7) and j.quality["fd"].key["seeds"] == 2
    assert j.quality["fd"].interval is None  # a mean over seeds: its t-interval over them takes the place


def test_compare_refuses_two_single_seed_runs_with_different_seeds(tmp_path):
    a = write(tmp_path, run("s0", "2026-01-01", [job("vae-mlp", {0: {"fd": fd(821.1)}})]))
    b = write(tmp_path, run("s1", "2026-01-02", [job("vae-mlp", {1: {"fd": fd(1108.0)}})]))
    r = invoke("compare", a, b, "--fail-on-regression", "fd:5%")
    assert r.exit_code == 2, r.output
    assert "seed 0 vs seed 1" in r.output and "one seed each cannot tell a code change from seed variance" in r.output
    r = invoke("compare", a, b)  # no gate: still refused
    assert r.exit_code == 2 and "--allow-seed-change" in r.output
    r = invoke("compare", a, b, "--allow-seed-change", "--json")
    data = json.loads(r.stdout)
    row = next(x for x in data["rows"] if x["metric"] == "fd")
    assert r.exit_code == 0 and row["change"]["from"] == "sampling"
    assert any("seeds differ" in n for n in data["gate"]["notes"])


def test_same_seed_single_runs_are_judged_on_their_sampling_intervals(tmp_path):
    a = write(tmp_path, run("a", "2026-01-01", [job("vae-mlp", {0: {"fd": fd(821.1)}})]))
    b = write(tmp_path, run("b", "2026-01-02", [job("vae-mlp", {0: {"fd": fd(822.7)}})]))  # +0.2%
    r = invoke("compare", a, b, "--fail-on-regression", "fd:5%")
    assert r.exit_code == 0 and "(sampling) | within noise" in r.output, r.output
    c = write(tmp_path, run("c", "2026-01-03", [job("vae-mlp", {0: {"fd": fd(1000.0)}})]))  # +22%, past noise
    r = invoke("compare", a, c, "--fail-on-regression", "fd:5%")
    assert r.exit_code == 1 and "FAIL: fd of vae-mlp" in r.output, r.output


def _three_seeds(values):
    return {s: {"fd": fd(v)} for s, v in zip((0, 1, 2), values)}


def test_three_seeds_a_neutral_rerun_passes_and_a_30_percent_worsening_fails(tmp_path):
    base = [900.0, 960.0, 1010.0]
    a = write(tmp_path, run("a", "2026-01-01", [job("vae-mlp", _three_seeds(base))]))
    same = write(tmp_path, run("b", "2026-01-02", [job("vae-mlp", _three_seeds(base))]))
    r = invoke("compare", a, same, "--fail-on-regression", "fd:5%")
    assert r.exit_code == 0 and "unchanged" in r.output, r.output
    worse = write(tmp_path, run("c", "2026-01-03", [job("vae-mlp", _three_seeds([1.3 * v for v in base]))]))
    r = invoke("compare", a, worse, "--fail-on-regression", "fd:5%")
    assert r.exit_code == 1 and "(seeds)" in r.output and "FAIL: fd of vae-mlp" in r.output, r.output


# --------------------------------------------------------------------------- the leaderboard pools seeds


def test_leaderboard_pools_runs_that_differ_only_in_their_seeds(tmp_path):
    r0 = run("r0", "2026-01-01", [job("vae-mlp", {0: {"fd": fd(821.1)}})])
    r1 = run("r1", "2026-01-02", [job("vae-mlp", {1: {"fd": fd(1108.0)}})])
    board = leaderboard.build([r0, r1])
    (table,) = board.tables
    (row,) = table.rows
    mv = row.cells["fd"].value
    assert mv.value == pytest.approx((821.1 + 1108.0) / 2) and mv.per_seed == (821.1, 1108.0)
    assert table.shared["seeds"] == 2 and seed_ids(mv) == (0, 1)
    assert [s.run.run_id for s in row.sources] == ["r0", "r1"]
    assert row.pooled == "pooled over seeds 0, 1 from runs r0 (seed 0), r1 (seed 1)"
    text = board_markdown.render_markdown([r0, r1], board=board)
    assert "pooled over seeds 0, 1" in text
    data = leaderboard.to_dict(board)
    assert data["tables"][0]["rows"][0]["run_ids"] == ["r0", "r1"]
    # a third run adds its seed to the mean, whatever order the runs come in
    r2 = run("r2", "2026-01-03", [job("vae-mlp", {2: {"fd": fd(900.0)}})])
    for order in ([r0, r1, r2], [r2, r0, r1]):
        cell = leaderboard.build(order).tables[0].rows[0].cells["fd"].value
        assert cell.value == pytest.approx((821.1 + 1108.0 + 900.0) / 3)


def test_a_seed_given_twice_with_different_results_is_a_one_line_error(tmp_path):
    r0 = run("r0", "2026-01-01", [job("vae-mlp", {0: {"fd": fd(821.1)}})])
    again = run("r0-again", "2026-01-02", [job("vae-mlp", {0: {"fd": fd(790.0)}})])
    with pytest.raises(GenbenchError, match=r"seed 0 of vae-mlp on digits is in runs r0 and r0-again") as e:
        leaderboard.build([r0, again])
    assert "\n" not in str(e.value)
    r = invoke("leaderboard", write(tmp_path, r0), write(tmp_path, again))
    assert r.exit_code == 1 and "error: seed 0 of vae-mlp" in r.output and "Traceback" not in r.output


def test_the_same_build_given_twice_counts_once():
    """A cache-restored rerun (same model cache key) is the same seed scored again, not a second seed."""
    r0 = run("r0", "2026-01-01", [job("vae-mlp", {0: {"fd": fd(821.1)}}, cache={0: "k0"})])
    again = run("r0b", "2026-01-02", [job("vae-mlp", {0: {"fd": fd(821.3)}}, cache={0: "k0"})])
    (row,) = leaderboard.build([r0, again]).tables[0].rows
    assert row.cells["fd"].value.key["seeds"] == 1 and row.pooled is None


# --------------------------------------------------------------------------- timing under load


def _timed(tmp_path, name, started, noisy, valid=True, latency=0.05):
    return write(tmp_path, run(name, started, [JobResult(
        model="vae-mlp", family="vae", plugin="p", plugin_version="1", task="digits", device="cpu", status="ok",
        quality={"fd": fd(821.1)}, performance=perf(latency, noisy=noisy, valid=valid), seeds=(0,),
        seed_results=(seed_result(0, {"fd": fd(821.1)}),))]))


def test_a_noisy_timing_cannot_fail_a_gate(tmp_path):
    a = _timed(tmp_path, "a", "2026-01-01", noisy=True)
    b = _timed(tmp_path, "b", "2026-01-02", noisy=True, latency=0.087)  # ×1.74 on point values
    r = invoke("compare", a, b, "--fail-on-regression", "latency_p50:10%")
    assert r.exit_code == 2 and "cannot judge latency_p50 of vae-mlp on digits (cpu): measured under load" in r.output
    assert "BASE: noisy; NEW: noisy" in r.output
    r = invoke("compare", a, b, "--fail-on-regression", "latency_p50:10%", "--allow-noisy")
    assert r.exit_code == 1, r.output  # judged: point values, ×1.74
    invalid = _timed(tmp_path, "c", "2026-01-03", noisy=False, valid=False)
    r = invoke("compare", _timed(tmp_path, "d", "2026-01-01", noisy=False), invalid,
               "--fail-on-regression", "latency_p50:10%")
    assert r.exit_code == 2 and "NEW: not valid (too few calls)" in r.output


# --------------------------------------------------------------------------- gates say what they skipped


def _mixture_value(value, metric, **kw):
    k = make_key(task="digits", data="d" * 64, extractor=None, n=500, params=None, profile="smoke", seeds=1)
    return MetricValue(value, "nats", False, n=500, key=k, **kw)


def test_a_gate_names_the_models_without_the_metric_and_require_all_fails(tmp_path):
    jobs = [job("vae-mlp", {0: {"fd": fd(821.1), "knn-kl": _mixture_value(3.5, "knn-kl")}}),
            job("gan-mlp", {0: {"fd": fd(1100.0)}}, family="gan")]
    a = write(tmp_path, run("a", "2026-01-01", jobs))
    b = write(tmp_path, run("b", "2026-01-02", jobs))
    r = invoke("compare", a, b, "--fail-on-regression", "knn-kl:5%")
    assert r.exit_code == 0 and "knn-kl not gated for gan-mlp on digits (cpu): no knn-kl in either run" in r.output
    r = invoke("compare", a, b, "--fail-on-regression", "knn-kl:5%", "--require-all")
    assert r.exit_code == 2 and "(--require-all): gan-mlp on digits (cpu) has no knn-kl" in r.output


def test_a_metric_nan_by_design_is_not_defined_not_failed(tmp_path):
    why = "no sample is high quality (within 3 sigma of a mode), so the histogram of modes is empty"
    undefined = _mixture_value(None, "reverse-kl", params={"not_defined": why}, error=f"not defined: {why}")
    a = write(tmp_path, run("a", "2026-01-01", [job("vae-mlp", {0: {"reverse-kl": _mixture_value(2.08, "r")}}),
                                                job("gan-mlp", {0: {"reverse-kl": undefined}}, family="gan")]))
    b = write(tmp_path, run("b", "2026-01-02", [job("vae-mlp", {0: {"reverse-kl": _mixture_value(2.08, "r")}}),
                                                job("gan-mlp", {0: {"reverse-kl": undefined}}, family="gan")]))
    r = invoke("compare", a, b, "--fail-on-regression", "reverse-kl:5%")
    assert r.exit_code == 0, r.output
    assert "not defined: not defined in BASE: no sample is high quality" in r.output
    assert "reverse-kl failed" not in r.output


# --------------------------------------------------------------------------- intervals in every format


def _fraction(successes, n=500):
    from genbench.metrics.bootstrap import binomial_interval

    k = make_key(task="digits", data="d" * 64, extractor=None, n=n, params=None, profile="smoke", seeds=1)
    rate = successes / n
    return MetricValue(rate, "", True, n=n, key=k, stderr=(rate * (1 - rate) / n) ** 0.5,
                       interval=binomial_interval(successes, n), interval_of="95% Clopper–Pearson ...")


def test_zero_successes_get_an_exact_interval_and_overlapping_ranks_share_a_range():
    r = run("a", "2026-01-01", [job("vae-mlp", {0: {"high-quality": _fraction(2)}}),
                                job("gan-mlp", {0: {"high-quality": _fraction(0)}}, family="gan")])
    board = leaderboard.build([r])
    rows = {row.model: row for row in board.tables[0].rows}
    assert rows["vae-mlp"].rank == (1, 2) and rows["gan-mlp"].rank == (1, 2)
    text = leaderboard.cell_text(rows["gan-mlp"].cells["high-quality"])
    assert text.startswith("0 [0, 0.007") and "± 0 (se)" not in text


def test_a_seed_sd_of_round_off_is_shown_as_0():
    values = {s: {"fd": fd(12.24 + s * 1e-15, half=1.0)} for s in (0, 1, 2)}
    (row,) = leaderboard.build([run("a", "2026-01-01", [job("baseline-x", values, family="vae")])]).tables[0].rows
    assert " ± 0 (seed sd)" in leaderboard.cell_text(row.cells["fd"])


def test_intervals_are_clipped_to_the_metric_range_in_every_format():
    from genbench.reports.html import render_board

    def modes(v):
        k = make_key(task="digits", data="d" * 64, extractor=None, n=500, params=None, profile="smoke", seeds=1)
        return MetricValue(v, "modes", True, n=500, key=k, params={"range": [0, 8]})

    r = run("a", "2026-01-01", [job("vae-mlp", {s: {"modes-covered": modes(v)} for s, v in
                                                enumerate((1.0, 8.0, 8.0))})])
    mv = r.jobs[0].quality["modes-covered"]
    assert mv.ci95[1] > 8  # the t-interval as computed passes the 8 modes
    board = leaderboard.build([r])
    assert "\\[0, 8\\] (clipped to 0–8)" in board_markdown.render_markdown([r], board=board)  # Markdown-escaped
    row = csv.DictReader(io.StringIO(leaderboard.render_csv([r], board=board))).__next__()
    assert float(row["modes-covered ci95_high"]) == 8.0 and float(row["modes-covered ci95_low"]) == 0.0
    html = render_board(board)
    assert "[0, 8]" in html and f"{mv.ci95[1]:.4g}" not in html


def test_smoke_tables_say_they_are_no_result_and_mark_models_worse_than_the_baseline():
    from genbench.reports.html import render_board

    r = run("a", "2026-01-01", [job("vae-mlp", {0: {"fd": fd(821.1)}}), job("gan-mlp", {0: {"fd": fd(150.0)}}),
                                job("baseline-gaussian", {0: {"fd": fd(177.6)}}, family="baseline")])
    board = leaderboard.build([r])
    rows = {row.model: row for row in board.tables[0].rows}
    assert rows["vae-mlp"].worse_than_baseline == "baseline-gaussian"
    assert rows["gan-mlp"].worse_than_baseline is None  # [125, 175] overlaps the baseline's [152.6, 202.6]
    text = board_markdown.render_markdown([r], board=board)
    assert "**smoke profile: a check that the pipeline runs, not a result**" in text
    assert "`vae-mlp` **worse than baseline-gaussian**" in text
    assert "smoke profile: a check that the pipeline runs, not a result" in render_board(board)
    assert leaderboard.to_dict(board)["tables"][0]["rows"][0]["worse_than_baseline"] in (None, "baseline-gaussian")
    assert leaderboard.is_smoke(board.tables[0])


def test_a_value_inside_the_floor_spread_says_so_and_one_beyond_it_is_flagged():
    def floored(v):
        return MetricValue(v, "", False, n=500, extractor=key()["extractor"], floor=4.8, key=key(),
                           floor_interval=(0.1, 9.5), interval=(max(v - 1, 0), v + 1))

    r = run("a", "2026-01-01", [job("vae-mlp", {0: {"fd": floored(5.0)}}), job("gan-mlp", {0: {"fd": floored(0.05)}}),
                                job("x-mlp", {0: {"fd": floored(50.0)}})])
    rows = {row.model: row for row in leaderboard.build([r]).tables[0].rows}
    assert "floor 4.8 [0.1, 9.5] (within the floor's spread" in leaderboard.cell_text(rows["vae-mlp"].cells["fd"])
    assert "beyond the floor" in leaderboard.cell_text(rows["gan-mlp"].cells["fd"])
    assert any("better than real data" in f for f in rows["gan-mlp"].flags) and not rows["vae-mlp"].flags
    assert leaderboard.floor_position(rows["x-mlp"].cells["fd"].value) == "short" and not rows["x-mlp"].flags
