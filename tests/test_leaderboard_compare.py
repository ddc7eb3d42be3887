"""genbench leaderboard and genbench compare, on results files written by the tests.

Numbers stand side by side only under one comparability key: each mismatch kind (extractor, n, data variant,
profile) is split by the leaderboard (separate tables or columns, named) and refused by compare's gate.
"""

import csv
import io
import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from genbench.cli import cli
from genbench.comparability import make_key
from genbench.reports import leaderboard
from genbench.reports.compare import bootstrap_ratio, compare_runs, gate
from genbench.results import write_run
from genbench.schemas import validate
from genbench.types import JobError, JobResult, MetricValue, PerfRecord, RunResult

DIGITS_CNN = "digits-cnn@sha256:" + "a" * 64
INCEPTION = "inception-v3-compat@sha256:" + "b" * 64


def mv(value, metric="fd", *, n=100, extractor=DIGITS_CNN, profile="default", seeds=1, variant=None, bound=None,
       higher=False, unit="", **kw):
    """A metric value with its comparability key, as the harness writes it."""
    params = {"variant": variant, "bound": bound} if variant or bound else None
    key = make_key(task="digits", data="d" * 64, extractor=extractor if variant is None else None, n=n,
                   params=params, profile=profile, seeds=seeds)
    return MetricValue(value, unit, higher, n=n, extractor=key["extractor"], params=params, key=key, **kw)


def job(model, quality, family=None, status="ok", latency=0.05, files=None, error=None):
    perf = (PerfRecord("onnxruntime", "CPUExecutionProvider", "cpu", 1, 2, 2000, 0.1,
                       {"p50": latency, "p90": latency, "p99": latency * 2, "mean": latency, "std": 0.0},
                       1 / latency * 1e3, True),) if status == "ok" and latency else ()
    fam = family or ("baseline" if model.startswith("baseline") else "gan")
    return JobResult(model=model, family=fam, plugin="genbench-x", plugin_version="1", task="digits", device="cpu",
                     status=status, quality=quality if status == "ok" else {}, performance=perf, files=files or {},
                     error=error)


def run(run_id, started, jobs, cpu="AMD EPYC", commit="c0ffee" * 7, version="0.1.0"):
    return RunResult(schema="genbench.run/2", run_id=run_id, genbench_version=version, started_at=started,
                     finished_at=started, command=f"genbench run --all  # {run_id}", config={"profile": "default"},
                     environment={"cpu": cpu, "cpu_count": 2, "gpus": [], "torch": "2.13", "onnxruntime": "1.32",
                                  "git_commit": commit},
                     jobs=tuple(jobs))


def fd_run(run_id, started, fds, **key):
    """One run of models with an fd (floor 1.0) and a precision."""
    return run(run_id, started, [job(m, {"fd": mv(v, floor=1.0, **key), "precision": mv(0.5, "precision", higher=True,
                                                                                           **key)})
                                 for m, v in fds.items()])


def write(tmp_path, r):
    d = tmp_path / r.run_id
    write_run(r, d)
    return str(d)


def invoke(*args):
    """The command's result; ``.stdout`` is what it printed there, ``.output`` stdout and stderr together."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def csv_rows(text):
    return list(csv.DictReader(io.StringIO(text)))


# --------------------------------------------------------------------------- leaderboard


def test_leaderboard_merges_ranks_and_traces_rows_to_runs(tmp_path):
    a = write(tmp_path, fd_run("a", "2026-01-01", {"gan-mlp": 10.0, "vae-mlp": 5.0}))
    b = write(tmp_path, fd_run("b", "2026-01-02", {"gan-mlp": 3.0}, ))
    r = invoke("leaderboard", a, b)
    assert r.exit_code == 0 and "warning" not in r.output  # same keys: nothing split
    headline, details = r.output.split("<details>")
    lines = [ln for ln in details.splitlines() if ln.startswith("| ") and "`" in ln]
    assert lines[0].startswith("| 1 | `gan-mlp`") and "3 · floor 1" in lines[0]
    assert lines[1].startswith("| 2 | `vae-mlp`")
    top = [ln for ln in headline.splitlines() if ln.startswith("| ") and "`" in ln]
    assert top[0].startswith("| 1 | `gan-mlp` | gan | 3 |") and top[1].startswith("| 2 | `vae-mlp` | gan | 5 |")
    # what rows do not share is traced per model, once, under the headline table; the version and commit once
    assert "- Reproduce: `genbench run --all  # b` (gan-mlp); `genbench run --all  # a` (vae-mlp)" in headline
    assert "- genbench @ commit: 0.1.0 @ c0ffeec0ffee\n" in headline
    assert "fd ↓ · n 100" in r.output and "precision ↑ · n 100" in r.output
    rows = csv_rows(invoke("leaderboard", a, b, "--format", "csv").output)
    assert [(r["rank"], r["model"], r["fd"], r["fd floor"], r["fd n"], r["run_id"]) for r in rows if not r["reference"]] \
        == [("1", "gan-mlp", "3.0", "1.0", "100", "b"), ("2", "vae-mlp", "5.0", "1.0", "100", "a")]
    data = json.loads(invoke("leaderboard", a, b, "--json").output)
    validate(data, "genbench.leaderboard/2")
    (table,) = data["tables"]
    assert table["rows"][0]["command"].endswith("# b") and table["rows"][0]["git_commit"] == "c0ffee" * 7
    assert table["rows"][0]["cells"]["fd"] == {**table["rows"][0]["cells"]["fd"], "value": 3.0, "floor": 1.0, "n": 100}
    out = tmp_path / "board.md"
    assert invoke("leaderboard", a, "-o", str(out)).exit_code == 0 and out.read_text().startswith("# genbench")


def test_a_smoke_run_and_a_default_run_merged_land_in_separate_tables(tmp_path):
    default = write(tmp_path, fd_run("d", "2026-01-01", {"gan-mlp": 40.0, "vae-mlp": 60.0}, profile="default"))
    smoke = write(tmp_path, fd_run("s", "2026-01-02", {"gan-mlp": 900.0}, profile="smoke"))
    r = CliRunner().invoke(cli, ["leaderboard", default, smoke], catch_exceptions=False)
    warning = [ln for ln in r.stderr.splitlines() if ln.startswith("warning")]
    assert len(warning) == 1 and "profile" in warning[0]  # one line naming what differs
    sections = {part.split("\n", 1)[0]: part for part in r.stdout.split("### ")[1:]}
    assert sorted(sections) == ["profile default", "profile smoke"]
    assert "| 1 | `gan-mlp` | gan | 40 · floor 1 |" in sections["profile default"]  # the smoke run replaced nothing
    assert "| 1 | `gan-mlp` | gan | 900 · floor 1 |" in sections["profile smoke"]
    assert "vae-mlp" not in sections["profile smoke"]
    rows = csv_rows(invoke("leaderboard", default, smoke, "--format", "csv").stdout)
    ranked = {(r["table"], r["model"]): r["fd"] for r in rows if not r["reference"]}
    assert ranked == {("profile default", "gan-mlp"): "40.0", ("profile default", "vae-mlp"): "60.0",
                      ("profile smoke", "gan-mlp"): "900.0"}
    data = json.loads(invoke("leaderboard", default, smoke, "--format", "json").stdout)
    validate(data, "genbench.leaderboard/2")
    assert sorted(t["title"] for t in data["tables"]) == ["profile default", "profile smoke"]
    assert len(data["warnings"]) == 1


def test_a_newer_result_replaces_an_older_one_only_under_the_same_key(tmp_path):
    old = fd_run("a", "2026-01-01", {"gan-mlp": 40.0})
    new = fd_run("b", "2026-01-02", {"gan-mlp": 30.0})
    board = leaderboard.build([new, old])  # order given does not matter: started_at decides
    (table,) = board.tables
    (row,) = table.rows
    assert row.cells["fd"].value.value == 30.0 and row.source.run.run_id == "b"


# each mismatch kind: the key field, two values of it, and whether it splits tables (job-wide) or columns
MISMATCHES = {
    "extractor": ({"extractor": DIGITS_CNN}, {"extractor": INCEPTION}, "table", "feature extractor"),
    "n": ({"n": 500}, {"n": 1347}, "column", "n scored"),
    "variant": ({"variant": "binarized", "bound": "iwae"}, {"variant": "quantized-17", "bound": "iwae"}, "column",
                "data variant"),
    "profile": ({"profile": "default"}, {"profile": "smoke, steps=50"}, "table", "profile"),
}


def _mismatched(kind):
    ka, kb, _, _ = MISMATCHES[kind]
    metric = "bpd" if kind == "variant" else "fd"
    a = run("a", "2026-01-01", [job("gan-mlp", {metric: mv(10.0, metric, floor=1.0, **ka)}),
                                job("vae-mlp", {metric: mv(12.0, metric, floor=1.0, **ka)})])
    b = run("b", "2026-01-02", [job("gan-mlp", {metric: mv(3.0, metric, floor=1.0, **kb)}),
                                job("vae-mlp", {metric: mv(12.0, metric, floor=1.0, **kb)})])
    return a, b, metric


@pytest.mark.parametrize("kind", sorted(MISMATCHES))
def test_leaderboard_splits_every_mismatch_kind_and_names_the_field(tmp_path, kind):
    a, b, metric = _mismatched(kind)
    label = MISMATCHES[kind][3]
    da, db = write(tmp_path, a), write(tmp_path, b)
    r = CliRunner().invoke(cli, ["leaderboard", da, db], catch_exceptions=False)
    assert r.exit_code == 0
    (warning,) = r.stderr.splitlines()
    assert warning.startswith("warning: the merged runs differ in " + label)
    data = json.loads(invoke("leaderboard", da, db, "--format", "json").stdout)
    validate(data, "genbench.leaderboard/2")
    if MISMATCHES[kind][2] == "table":
        assert len(data["tables"]) == 2 and all(t["title"].startswith(label) for t in data["tables"])
        assert r.stdout.count(f"### {label}") == 2
        for t in data["tables"]:  # each model once per table, every number from that table's run only
            assert sorted(row["model"] for row in t["rows"]) == ["gan-mlp", "vae-mlp"]
            assert len({row["run_id"] for row in t["rows"]}) == 1
    else:
        (t,) = data["tables"]
        labels = [c["label"] for c in t["columns"]]
        assert len(labels) == 2 and all(lb.startswith(f"{metric} [{label}") for lb in labels)
        assert all(c["split"] == [kind] if kind != "variant" else "variant" in c["split"] for c in t["columns"])
        header = next(ln for ln in r.stdout.splitlines() if ln.startswith("| #"))
        assert header.count(label) == 2
        # the column ranked is one key's; never a mix of the two runs' numbers
        rank_col = t["rank_by"]
        assert {row["cells"][rank_col]["run_id"] for row in t["rows"] if row["cells"][rank_col]["value"] is not None} \
            in ({"a"}, {"b"})
    csv_text = invoke("leaderboard", da, db, "--format", "csv").stdout
    rows = csv_rows(csv_text)
    assert len({(r["table"], r["model"]) for r in rows if not r["reference"]}) == len(
        [r for r in rows if not r["reference"]])
    assert label in csv_text


def test_reference_rows_are_shown_apart_and_never_ranked(tmp_path):
    r = run("a", "2026-01-01", [
        job("baseline-train-copy", {"fd": mv(4.9, floor=2.4)}),
        job("baseline-gaussian", {"fd": mv(175.0, floor=2.4)}),
        job("gan-mlp", {"fd": mv(42.6, floor=2.4)}),
        job("vae-mlp", {"fd": mv(57.8, floor=2.4)}),
    ])
    board = leaderboard.build([r])
    (table,) = board.tables
    assert [(row.model, row.rank, row.reference) for row in table.rows] == [
        ("gan-mlp", (1, 1), None), ("vae-mlp", (2, 2), None),
        ("baseline-train-copy", None, "replayed training data"), ("baseline-gaussian", None, "baseline")]
    md = invoke("leaderboard", write(tmp_path, r)).output
    lines = md.splitlines()
    refs = lines.index(next(ln for ln in lines if "references, not ranked" in ln))
    assert lines[refs - 2].startswith("| 1 | `gan-mlp`") and lines[refs - 1].startswith("| 2 | `vae-mlp`")
    assert lines[refs + 1].startswith("| ref | `baseline-train-copy` (replayed training data)")
    assert lines[refs + 3].startswith("| ref | real data at n (floor) | – | 2.4 |")
    rows = csv_rows(invoke("leaderboard", write(tmp_path, r), "--format", "csv").output)
    assert [(x["model"], x["rank"], x["reference"]) for x in rows] == [
        ("gan-mlp", "1", ""), ("vae-mlp", "2", ""), ("baseline-train-copy", "", "replayed training data"),
        ("baseline-gaussian", "", "baseline"), ("real data", "", "real data at n (floor)")]
    html = leaderboard_html(r)
    assert "references, not ranked" in html and "real data at n (floor)" in html and "floor 2.4" in html


def leaderboard_html(r):
    from genbench.reports.html import render

    return render([r])


def test_with_seeds_a_rank_is_a_range_where_intervals_overlap():
    def seeded(v, lo, hi):
        return mv(v, seeds=3, per_seed=(v, v, v), seed_std=(hi - lo) / 5, ci95=(lo, hi), floor=2.0)

    r = run("a", "2026-01-01", [job("gan-mlp", {"fd": seeded(40.0, 35.0, 45.0)}),
                                job("vae-mlp", {"fd": seeded(44.0, 41.0, 47.0)}),
                                job("vae-conv", {"fd": seeded(60.0, 55.0, 65.0)}),
                                job("ar-pixel", {"fd": seeded(20.0, 18.0, 22.0)})])
    (table,) = leaderboard.build([r]).tables
    assert [(row.model, leaderboard.rank_text(row.rank)) for row in table.rows] == [
        ("ar-pixel", "1"), ("gan-mlp", "2–3"), ("vae-mlp", "2–3"), ("vae-conv", "4")]
    md = leaderboard.render([r], "md")
    assert "| 2–3 | `gan-mlp` | gan | 40 ± 2 (seed sd) \\[35, 45\\] · floor 2 |" in md
    assert "standard deviation over 3 training seeds" in md


def test_rank_ranges_follow_the_definition():
    # 1 + how many lie wholly better; how many do not lie wholly worse (itself included)
    ivs = [(0.0, 1.0), (0.5, 2.0), (3.0, 4.0), (3.5, 3.6)]
    assert leaderboard.rank_ranges(ivs, higher_is_better=False) == [(1, 2), (1, 2), (3, 4), (3, 4)]
    assert leaderboard.rank_ranges(ivs, higher_is_better=True) == [(3, 4), (3, 4), (1, 2), (1, 2)]
    assert leaderboard.rank_ranges([(1.0, 1.0), (1.0, 1.0)], False) == [(1, 2), (1, 2)]  # a tie is shared


def test_floors_are_per_row_at_that_rows_n_and_spreads_are_labelled(tmp_path):
    kid = {"std": 900.0, "std_of": "100 subsets of 1000"}
    r = run("a", "2026-01-01", [
        job("gan-mlp", {"kid": mv(4593.0, "kid", floor=-732.0, **kid), "nll": mv(22.3, "nll", stderr=0.18,
                                                                               unit="nats/example", extractor=None)}),
        job("vae-mlp", {"kid": mv(22690.0, "kid", floor=-700.0, **kid), "nll": mv(22.2, "nll", stderr=0.17,
                                                                                unit="nats/example", extractor=None)}),
    ])
    md = invoke("leaderboard", write(tmp_path, r)).output
    assert "4593 ± 9e+02 (spread) · floor -732" in md and "2.269e+04 ± 9e+02 (spread) · floor -700" in md
    assert "22.3 ± 0.18 (se)" in md
    assert "-732 to -700" in md  # the floor row shows the range when rows' floors differ
    assert "standard deviation over 100 subsets of 1000: a spread, not a standard error" in md
    assert "standard error of the mean over the n = 100 examples" in md
    assert "MMD² (unbiased, cubic kernel) in the digits-cnn feature space, raw: not ×10³" in md
    data = json.loads(invoke("leaderboard", write(tmp_path, r), "--json").output)
    cells = {row["model"]: row["cells"] for row in data["tables"][0]["rows"]}
    assert cells["gan-mlp"]["kid"]["err_kind"] == "spread" and cells["gan-mlp"]["kid"]["std_of"] == "100 subsets of 1000"
    assert cells["gan-mlp"]["nll"]["err_kind"] == "se" and cells["vae-mlp"]["kid"]["floor"] == -700.0
    rows = csv_rows(invoke("leaderboard", write(tmp_path, r), "--format", "csv").output)
    assert rows[0]["kid err_kind"] == "spread" and rows[0]["kid unit"].startswith("MMD²")
    assert rows[0]["kid"] == "4593.0" and rows[0]["kid floor"] == "-732.0"  # negative numbers stay numbers


def test_leaderboard_json_never_writes_bare_nan_and_html_splits_tables(tmp_path):
    a = fd_run("d", "2026-01-01", {"gan-mlp": 40.0}, profile="default")
    b = fd_run("s", "2026-01-02", {"gan-mlp": 900.0}, profile="smoke")
    b = replace(b, jobs=(replace(b.jobs[0], quality={**b.jobs[0].quality,
                                                     "fd": replace(b.jobs[0].quality["fd"], value=math.nan)}),))
    text = leaderboard.render([a, b], "json")
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}"))
    from genbench.reports.html import render

    html = render([a, b])
    assert html.count("<table class='sortable'") == 2 and "<h3>profile smoke</h3>" in html


# --------------------------------------------------------------------------- compare


def test_compare_with_itself_reports_no_change_and_exits_0(tmp_path):
    a = write(tmp_path, fd_run("a", "2026-01-01", {"gan-mlp": 10.0}))
    r = invoke("compare", a, a, "--fail-on-regression", "fd:5%,latency_p50:10%")
    assert r.exit_code == 0, r.output
    assert "no gated regression" in r.output and "regressed" not in r.output and "warning" not in r.output


def test_a_degraded_model_fails_the_gate_and_names_the_metric(tmp_path):
    a = write(tmp_path, fd_run("a", "2026-01-01", {"gan-mlp": 10.0, "vae-mlp": 20.0}))
    b = write(tmp_path, fd_run("b", "2026-01-02", {"gan-mlp": 11.0, "vae-mlp": 19.0}))
    r = invoke("compare", a, b, "--fail-on-regression", "fd:5%")
    assert r.exit_code == 1
    assert "FAIL: fd of gan-mlp on digits regressed: 10 → 11 (+10.0%; limit 5%)" in r.output
    assert "vae-mlp" in r.output and "FAIL: fd of vae-mlp" not in r.output  # an improvement is not a failure
    assert invoke("compare", a, b, "--fail-on-regression", "fd:15%").exit_code == 0
    assert invoke("compare", a, b, "--fail-on-regression", "fd:0.5").exit_code == 1  # absolute limit


def test_quality_is_judged_against_its_standard_error_not_the_raw_delta(tmp_path):
    def nll(v, se):
        return {"nll": mv(v, "nll", stderr=se, unit="nats/example", extractor=None)}

    a = write(tmp_path, run("a", "2026-01-01", [job("vae-mlp", nll(22.0, 0.5))]))
    close = write(tmp_path, run("b", "2026-01-02", [job("vae-mlp", nll(22.5, 0.5))]))
    # +6.8%, past a 5% limit as a raw delta; its 95% interval (0.11 to 2.9 nats, from 0.5% up) is not wholly past it
    noisy = write(tmp_path, run("c", "2026-01-03", [job("vae-mlp", nll(23.5, 0.5))]))
    worse = write(tmp_path, run("d", "2026-01-04", [job("vae-mlp", nll(26.0, 0.5))]))  # +18%, far beyond its se
    r = invoke("compare", a, close, "--fail-on-regression", "nll:5%")
    assert r.exit_code == 0 and "(se) | within noise" in r.output, r.output
    r = invoke("compare", a, noisy, "--fail-on-regression", "nll:5%")
    assert r.exit_code == 0 and "worse by 1.5 \\[0.114, 2.89\\] (se) | regressed" in r.output, r.output
    r = invoke("compare", a, worse, "--fail-on-regression", "nll:5%")
    assert r.exit_code == 1 and "FAIL: nll of vae-mlp on digits regressed" in r.output and "(se)" in r.output


def test_quality_with_seeds_is_judged_against_the_seed_spread(tmp_path):
    def seeded(values):
        m = float(np.mean(values))
        return {"fd": mv(m, seeds=len(values), per_seed=tuple(values), seed_std=float(np.std(values, ddof=1)))}

    a = write(tmp_path, run("a", "2026-01-01", [job("vae-conv", seeded([56.2, 62.3, 59.0]))]))
    b = write(tmp_path, run("b", "2026-01-02", [job("vae-conv", seeded([61.0, 66.4, 58.1]))]))  # +6%, seeds overlap
    r = invoke("compare", a, b, "--fail-on-regression", "fd:5%")
    assert r.exit_code == 0 and "(seeds) | within noise" in r.output, r.output
    c = write(tmp_path, run("c", "2026-01-03", [job("vae-conv", seeded([80.1, 81.0, 79.5]))]))
    assert invoke("compare", a, c, "--fail-on-regression", "fd:5%").exit_code == 1


@pytest.mark.parametrize("kind", sorted(MISMATCHES))
def test_compare_marks_every_mismatch_kind_not_comparable_and_its_gate_an_error(tmp_path, kind):
    a, b, metric = _mismatched(kind)
    da, db = write(tmp_path, a), write(tmp_path, b)
    r = CliRunner().invoke(cli, ["compare", da, db], catch_exceptions=False)
    assert r.exit_code == 0
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("| gan-mlp") and f"| {metric} " in ln)
    assert f"not comparable: {MISMATCHES[kind][3]}" in row and "improved" not in row  # 10 -> 3 is no improvement
    assert "| 10 | 3 | – | – |" in row  # both numbers shown, no difference of them
    r = CliRunner().invoke(cli, ["compare", da, db, "--fail-on-regression", f"{metric}:5%"], catch_exceptions=False)
    assert r.exit_code == 2
    assert "is not comparable" in r.stderr and MISMATCHES[kind][3] in r.stderr and "--allow-incomparable" in r.stderr
    r = CliRunner().invoke(cli, ["compare", da, db, "--fail-on-regression", f"{metric}:5%", "--allow-incomparable"],
                           catch_exceptions=False)
    # every model skipped: a gate that judged nothing cannot pass
    assert r.exit_code == 2 and r.stdout.count("not gated (--allow-incomparable)") == 2, r.output
    assert f"cannot evaluate the gate on {metric}: no model was judged: 2 model(s) skipped as not comparable" in r.stderr
    data = json.loads(invoke("compare", da, db, "--json").stdout)
    validate(data, "genbench.compare/1")
    gan = next(x for x in data["rows"] if x["model"] == "gan-mlp" and x["metric"] == metric)
    assert gan["verdict"] == "not comparable" and MISMATCHES[kind][3] in gan["differing"]


def _gate_case(tmp_path, new_jobs, gates="fd:5%"):
    a = write(tmp_path, fd_run("a", "2026-01-01", {"gan-mlp": 10.0, "vae-mlp": 20.0}))
    b = write(tmp_path, run("b", "2026-01-02", new_jobs))
    return CliRunner().invoke(cli, ["compare", a, b, "--fail-on-regression", gates], catch_exceptions=False)


def _ok(model, value):
    return job(model, {"fd": mv(value, floor=1.0), "precision": mv(0.5, "precision", higher=True)})


def test_a_gate_that_cannot_be_evaluated_exits_2_with_one_line_naming_the_choices(tmp_path):
    r = _gate_case(tmp_path, [_ok("gan-mlp", 10.0), _ok("vae-mlp", 20.0)], gates="fdd:5%")  # a typo
    assert r.exit_code == 2
    (line,) = r.stderr.splitlines()
    assert "'fdd'" in line and "valid: fd, latency_p50, latency_p99, precision, throughput" in line
    failed = job("gan-mlp", {}, status="failed", error=JobError("train", "RuntimeError", "boom"))
    r = _gate_case(tmp_path, [failed, _ok("vae-mlp", 20.0)])
    assert r.exit_code == 2 and "gan-mlp on digits (cpu) failed in NEW (train: boom)" in r.stderr
    r = _gate_case(tmp_path, [_ok("vae-mlp", 20.0)])  # gan-mlp disappeared
    assert r.exit_code == 2 and "gan-mlp on digits (cpu) is in BASE but missing from NEW" in r.stderr
    assert "note: gan-mlp on digits (cpu): ok in BASE, missing from NEW" in r.stdout  # said without a gate too
    null = job("gan-mlp", {"fd": mv(None, error="ValueError: no samples"), "precision": mv(0.5, "precision")})
    r = _gate_case(tmp_path, [null, _ok("vae-mlp", 20.0)])
    assert r.exit_code == 2 and "no value in NEW (ValueError: no samples)" in r.stderr
    r = _gate_case(tmp_path, [_ok("gan-mlp", 10.0), _ok("vae-mlp", 20.0)], gates="fd=5")
    assert r.exit_code == 2 and "Invalid gate 'fd=5'" in r.stderr


def test_a_nan_metric_exits_2(tmp_path):
    a = write(tmp_path, fd_run("a", "2026-01-01", {"gan-mlp": 10.0}))
    b = tmp_path / "b"
    write_run(fd_run("b", "2026-01-02", {"gan-mlp": 10.0}), b)
    (b / "run.json").write_text((b / "run.json").read_text().replace('"value": 10.0', '"value": NaN'))
    r = CliRunner().invoke(cli, ["compare", a, str(b), "--fail-on-regression", "fd:5%"], catch_exceptions=False)
    assert r.exit_code == 2 and "NaN is not JSON" in r.stderr and len(r.stderr.splitlines()) == 1
    # the same metric as null in a valid file (how genbench writes a non-finite value)
    write_run(run("b", "2026-01-02", [job("gan-mlp", {"fd": mv(math.nan), "precision": mv(0.5, "precision")})]), b)
    r = CliRunner().invoke(cli, ["compare", a, str(b), "--fail-on-regression", "fd:5%"], catch_exceptions=False)
    assert r.exit_code == 2 and "fd: gan-mlp on digits (cpu): no value in NEW" in r.stderr


def test_slower_latency_is_a_regression_and_other_machines_are_warned_about(tmp_path):
    a = write(tmp_path, run("a", "2026-01-01", [_ok("gan-mlp", 10.0)]))
    slow = job("gan-mlp", {"fd": mv(10.0, floor=1.0), "precision": mv(0.5, "precision", higher=True)}, latency=0.08)
    b = write(tmp_path, run("b", "2026-01-02", [slow], cpu="Intel Xeon"))
    r = invoke("compare", a, b, "--fail-on-regression", "latency_p50:10%")
    assert r.exit_code == 1 and "latency\\_p50 of gan-mlp" in r.output and "(none)" in r.output
    assert "warning: the runs differ in cpu: AMD EPYC vs Intel Xeon" in r.output


def _latencies(rng, n, shift=1.0):
    """Latencies as a CPU gives them: a tight lognormal body and a 2% tail up to 10× slower."""
    body = 0.05 * shift * rng.lognormal(0.0, 0.1, n)
    return np.where(rng.random(n) < 0.02, body * rng.uniform(1, 10, n), body)


def test_latency_gate_flags_at_most_one_of_20_null_trials_and_every_10_percent_shift():
    rng = np.random.default_rng(20261129)
    null_flags = shift_flags = 0
    for _ in range(20):
        base = _latencies(rng, 1000)
        ratio, _ = bootstrap_ratio(base, _latencies(rng, 1000))
        null_flags += ratio.low > 1.05  # the gate's rule: the 95% interval wholly above 1 + limit
        ratio, _ = bootstrap_ratio(base, _latencies(rng, 1000, shift=1.10))
        shift_flags += ratio.low > 1.05
    assert null_flags <= 1 and shift_flags == 20


def test_latency_gate_end_to_end_reads_the_raw_latencies_inside_the_run(tmp_path):
    rng = np.random.default_rng(7)

    def timed_run(run_id, started, shift):
        raw = _latencies(rng, 1000, shift)
        p50 = float(np.median(raw))
        perf = (PerfRecord("onnxruntime", "CPU", "cpu", 1, 2, 1000, 1.0, {"p50": p50, "p99": float(np.quantile(raw, .99))},
                           1e3 / p50, True),)
        j = replace(_ok("gan-mlp", 10.0), performance=perf, files={"latency_raw": "jobs/g/latency_raw.json"})
        r = run(run_id, started, [j])
        d = tmp_path / run_id
        write_run(r, d)
        (d / "jobs/g").mkdir(parents=True)
        (d / "jobs/g/latency_raw.json").write_text(json.dumps({"sample/forward/onnxruntime/b1": raw.tolist()}))
        return str(d)

    a, same, slower = timed_run("a", "1", 1.0), timed_run("b", "2", 1.0), timed_run("c", "3", 1.10)
    r = invoke("compare", a, same, "--fail-on-regression", "latency_p50:5%")
    assert r.exit_code == 0 and "(bootstrap)" in r.output
    r = invoke("compare", a, slower, "--fail-on-regression", "latency_p50:5%")
    assert r.exit_code == 1 and "FAIL: latency\\_p50 of gan-mlp on digits regressed" in r.output
    assert "95% interval ×1.0" in r.output


def test_compare_json_is_valid_against_its_schema_and_carries_the_exit_code(tmp_path):
    a = write(tmp_path, fd_run("a", "2026-01-01", {"gan-mlp": 10.0}))
    b = write(tmp_path, fd_run("b", "2026-01-02", {"gan-mlp": 12.0}))
    r = invoke("compare", a, b, "--format", "json", "--fail-on-regression", "fd:5%")
    data = json.loads(r.output)
    validate(data, "genbench.compare/1")
    assert r.exit_code == 1 and data["exit_code"] == 1 and data["gate"]["result"] == "fail"
    assert data["gate"]["failures"][0].startswith("fd of gan-mlp on digits regressed")


def test_terminal_escapes_from_a_results_file_never_reach_the_terminal(tmp_path):
    evil = "fd\x1b[2K\x1b[1A\rPASS"
    a = run("a", "2026-01-01", [job("gan-mlp", {evil: mv(10.0), "fd": mv(10.0)})], cpu="x\x1b]0;pwned\x07")
    b = run("b", "2026-01-02", [job("gan-mlp", {evil: mv(20.0), "fd": mv(20.0)})])
    r = CliRunner().invoke(cli, ["compare", write(tmp_path, a), write(tmp_path, b), "--fail-on-regression", "fd:5%"],
                           catch_exceptions=False)
    assert r.exit_code == 1 and "\x1b" not in r.output and "\x07" not in r.output and "\r" not in r.output
    assert "fd\\\\x1b" in r.output and "x\\\\x1b\\]0;pwned\\\\x07" in r.output  # shown, harmless


def test_gate_function_and_compare_runs_agree_with_the_cli(tmp_path):
    a, b = fd_run("a", "1", {"gan-mlp": 10.0}), fd_run("b", "2", {"gan-mlp": 12.0})
    failures, errors, _ = gate(compare_runs(a, b), a, b, {"fd": (5.0, True)})
    assert len(failures) == 1 and not errors


def test_plugin_supplied_text_is_escaped_in_markdown(tmp_path):
    r = fd_run("a", "2026-01-01", {"gan-mlp": 1.0})
    evil = replace(r, command="genbench run <script>alert(1)</script>|x\n# Heading\n| a | b |")
    md = invoke("leaderboard", write(tmp_path, evil)).output
    assert "\n# Heading" not in md and "\n| a | b |" not in md
    outside_code = re.sub(r"(`+)(.+?)\1", "", md)  # a code span shows its text literally, markup and all
    assert "<script>" not in outside_code and "<script>" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| 1 |"))
    assert row.count(" | ") == next(ln for ln in md.splitlines() if ln.startswith("| #")).count(" | ")


def test_the_leaderboard_names_its_speed_unit_and_marks_noisy_figures(tmp_path):
    """Speed columns are per generated sample, and say so in every format; a noisy or invalid figure is marked."""
    noisy = replace(job("gan-mlp", {"fd": mv(40.0, floor=1.0)}, latency=0.05).performance[0], noisy=True,
                    background_cpu_cores=1.2)
    r = run("r1", "2026-01-01T00:00:00", [replace(job("gan-mlp", {"fd": mv(40.0, floor=1.0)}), performance=(noisy,)),
                                         job("vae-mlp", {"fd": mv(50.0, floor=1.0)}, latency=0.1),
                                         job("baseline-gaussian", {"fd": mv(90.0, floor=1.0)}, latency=None)])
    d = write(tmp_path, r)
    md = invoke("leaderboard", d).stdout
    header = next(line for line in md.splitlines() if line.startswith("| #"))
    assert "ORT ms/sample @b1 ↓" in header and "ORT samples/s (best batch) ↑" in header
    assert "ORT best /s" not in md and "ORT p50 ms @b1" not in md
    rows: dict = {}
    for line in md.splitlines():  # the headline table's row of each model (its details follow)
        if line.startswith("| "):
            rows.setdefault(line.split(" | ")[1], line)
    assert "| 0.050 (not valid, noisy) | 20,000 (not valid, noisy) |" in rows["`gan-mlp`"]
    assert "| 0.100 | 10,000 |" in rows["`vae-mlp`"]
    assert "per generated sample" in md.lower() or "one generated sample" in md
    data = json.loads(invoke("leaderboard", d, "--format", "json").stdout)
    validate(data, "genbench.leaderboard/2", "the leaderboard")
    by_model = {row["model"]: row for row in data["tables"][0]["rows"]}
    assert by_model["gan-mlp"]["speed_unit"] == "samples/s" and by_model["gan-mlp"]["timing_noisy"] is True
    assert by_model["vae-mlp"]["timing_noisy"] is False and by_model["vae-mlp"]["timing_valid"] is True
    assert by_model["baseline-gaussian"]["speed_unit"] is None and by_model["baseline-gaussian"]["timing_noisy"] is None
    table = {row["model"]: row for row in csv_rows(invoke("leaderboard", d, "--format", "csv").stdout)}
    assert table["gan-mlp"]["speed_unit"] == "samples/s" and table["gan-mlp"]["timing_noisy"] == "True"
