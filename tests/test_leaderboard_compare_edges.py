"""Edges of ``leaderboard`` and ``compare`` an outside tester found from the docs alone: numbers that record
no comparability key, gates that gate nothing, JSON on every exit path, and labels that say what each
number, ± and floor is over."""

import json
import re
from dataclasses import replace

import pytest
from click.testing import CliRunner

from genbench.cli import cli
from genbench.comparability import UNKNOWN, differing, make_key
from genbench.reports import leaderboard, markdown
from genbench.reports import csv as results_csv
from genbench.schemas import validate
from test_leaderboard_compare import csv_rows, fd_run, job, mv, run, write


def mvp(value, metric, params, **kw):
    """:func:`mv` with ``params`` (what the metric records beside its value: ``stderr_of``, ``floor_n``)."""
    return replace(mv(value, metric, **kw), params=params)


def call(*args):
    """stdout and stderr apart (``.stdout``, ``.stderr``)."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def v1_dir(tmp_path, run_id, started, fds, steps=None):
    """A ``genbench.run/1`` file, as genbench 0.1 wrote it: its numbers carry no comparability key."""
    data = {"schema": "genbench.run/1", "run_id": run_id, "genbench_version": "0.1.0", "started_at": started,
            "finished_at": started, "command": "genbench run --all --profile smoke",
            "config": {"profile": "smoke", "seed": 0, "steps": steps}, "environment": {"cpu": "x"},
            "jobs": [{"model": m, "family": "gan", "plugin": "genbench-gan", "plugin_version": "0.1.0",
                      "task": "digits", "device": "cpu", "status": "ok",
                      "quality": {"fd": {"value": v, "unit": "", "higher_is_better": False, "n": 500,
                                         "extractor": "digits-cnn@sha256:abc", "floor": 2.41}}}
                     for m, v in fds.items()]}
    d = tmp_path / run_id
    d.mkdir()
    (d / "run.json").write_text(json.dumps(data))
    return str(d)


# --------------------------------------------------------------------------- 1: no key equals nothing


def test_a_field_a_key_does_not_record_equals_nothing():
    known = make_key(task="digits", data="d", extractor="e", n=5, params=None, profile="smoke", seeds=1)
    assert differing(known, dict(known)) == []
    unknown = {**known, "profile": UNKNOWN}
    assert differing(unknown, dict(unknown)) == ["profile"]  # "unknown" == "unknown" proves nothing
    assert differing(known, unknown) == ["profile"]


def test_compare_of_two_version_1_runs_is_not_comparable_and_their_gate_cannot_pass(tmp_path):
    a = v1_dir(tmp_path, "a", "2026-01-01", {"gan-mlp": 40.0})
    b = v1_dir(tmp_path, "b", "2026-01-02", {"gan-mlp": 60.0}, steps=50)
    r = call("compare", a, b)
    assert r.exit_code == 0
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("| gan-mlp"))
    assert "not comparable: BASE and NEW record no comparability key (genbench.run/1)" in row
    assert "| 40 | 60 | – | – |" in row and "regressed" not in row  # never diffed
    r = call("compare", a, b, "--fail-on-regression", "fd:5%")
    assert r.exit_code == 2 and "record no comparability key (genbench.run/1)" in r.stderr
    assert "pass --allow-incomparable" in r.stderr and "FAIL" not in r.stdout
    r = call("compare", a, b, "--fail-on-regression", "fd:5%", "--allow-incomparable", "--json")
    data = json.loads(r.stdout)
    validate(data, "genbench.compare/1")
    assert r.exit_code == 2 and data["exit_code"] == 2 and data["gate"]["result"] == "error"
    assert data["rows"][0]["verdict"] == "not comparable" and "profile" in data["rows"][0]["differing"]


def test_a_version_2_number_without_a_key_is_treated_like_version_1(tmp_path):
    a = fd_run("a", "2026-01-01", {"gan-mlp": 10.0})
    b = fd_run("b", "2026-01-02", {"gan-mlp": 30.0})
    b = replace(b, jobs=tuple(replace(j, quality={m: replace(v, key=None) for m, v in j.quality.items()})
                              for j in b.jobs))
    r = call("compare", write(tmp_path, a), write(tmp_path, b), "--fail-on-regression", "fd:5%")
    assert r.exit_code == 2 and "NEW records no comparability key (genbench.run/2)" in r.stderr
    partial = replace(b, jobs=tuple(replace(j, quality={m: replace(v, key={"task": "digits", "n": 100})
                                                        for m, v in j.quality.items()}) for j in b.jobs))
    r = call("compare", str(tmp_path / "a"), write(tmp_path, replace(partial, run_id="p")))
    assert "NEW's comparability key does not record data (sha256), feature extractor" in r.stdout


def test_leaderboard_never_ranks_a_keyless_run_beside_another(tmp_path):
    dirs = [v1_dir(tmp_path, "a", "2026-01-01", {"gan-mlp": 40.0, "vae-mlp": 50.0}),
            v1_dir(tmp_path, "b", "2026-01-02", {"gan-mlp": 60.0}, steps=50),
            v1_dir(tmp_path, "c", "2026-01-03", {"gan-mlp": 30.0})]
    r = call("leaderboard", *dirs)
    assert r.exit_code == 0
    (warning,) = r.stderr.splitlines()
    assert warning.startswith("warning: run(s) a (genbench.run/1), b (genbench.run/1), c (genbench.run/1) record no "
                              "full comparability key") and "never ranked beside another run's" in warning
    data = json.loads(call("leaderboard", *dirs, "--json").stdout)
    validate(data, "genbench.leaderboard/2")
    assert len(data["tables"]) == 3  # the newer gan-mlp replaced nothing: every run keeps its own table
    for t in data["tables"]:
        assert len({row["run_id"] for row in t["rows"]}) == 1 and t["title"].startswith(f"run {t['rows'][0]['run_id']} ")
    assert sorted(row["cells"]["fd"]["value"] for t in data["tables"] for row in t["rows"]) == [30.0, 40.0, 50.0, 60.0]
    rows = csv_rows(call("leaderboard", *dirs, "--format", "csv").stdout)
    assert sorted((x["table"][:5], x["model"], x["rank"]) for x in rows if not x["reference"]) == [
        ("run a", "gan-mlp", "1"), ("run a", "vae-mlp", "2"), ("run b", "gan-mlp", "1"), ("run c", "gan-mlp", "1")]
    single = call("leaderboard", dirs[0])  # one run alone: its own numbers, ranked, nothing to warn about
    assert single.exit_code == 0 and not single.stderr and "| 1 | `gan-mlp`" in single.stdout


def test_a_keyless_run_beside_a_keyed_one_stays_apart(tmp_path):
    keyed = write(tmp_path, fd_run("new", "2026-01-05", {"gan-mlp": 10.0}))
    old = v1_dir(tmp_path, "old", "2026-01-01", {"gan-mlp": 40.0, "vae-mlp": 50.0})
    board = leaderboard.build_from_dirs([keyed, old])[0]
    assert {t.title: [(r.model, r.source.run.run_id) for r in t.rows] for t in board.tables} == {
        "": [("gan-mlp", "new")],
        "run old alone: its numbers record no full comparability key (genbench.run/1)": [("gan-mlp", "old"),
                                                                                         ("vae-mlp", "old")]}
    assert len(board.warnings) == 1 and "old (genbench.run/1)" in board.warnings[0]


# --------------------------------------------------------------------------- 2, 3, 4: gates that gate nothing


@pytest.mark.parametrize("spec, says", [
    ("fd:5%,fd:50%", "'fd' is named twice"),
    ("fd:5%, precision:0.1 ,fd:1", "'fd' is named twice"),
    ("", "an empty gate gates nothing"),
    (",", "an empty gate gates nothing"),
    (" , ,", "an empty gate gates nothing"),
])
def test_a_malformed_gate_exits_2_with_one_line_and_a_json_document(tmp_path, spec, says):
    a = write(tmp_path, fd_run("a", "2026-01-01", {"gan-mlp": 10.0}))
    b = write(tmp_path, fd_run("b", "2026-01-02", {"gan-mlp": 30.0}))
    r = call("compare", a, b, "--fail-on-regression", spec)
    assert r.exit_code == 2 and "no gated regression" not in r.output
    (line,) = r.stderr.splitlines()
    assert says in line
    r = call("compare", a, b, "--fail-on-regression", spec, "--format", "json")
    data = json.loads(r.stdout)
    validate(data, "genbench.compare/1")
    assert r.exit_code == data["exit_code"] == 2 and data["gate"]["result"] == "error"
    assert says in data["error"] and data["gate"]["errors"] == [data["error"]] and data["rows"] == []


def test_an_empty_gate_on_the_command_line_does_not_silently_switch_off_the_files(tmp_path, monkeypatch):
    a = write(tmp_path, fd_run("a", "2026-01-01", {"gan-mlp": 10.0}))
    b = write(tmp_path, fd_run("b", "2026-01-02", {"gan-mlp": 30.0}))
    (tmp_path / "genbench.toml").write_text('[compare]\nfail_on_regression = "fd:5%"\n')
    monkeypatch.chdir(tmp_path)
    assert call("compare", a, b).exit_code == 1  # the file's gate
    r = call("compare", a, b, "--fail-on-regression", "")
    assert r.exit_code == 2 and "an empty gate gates nothing" in r.stderr


def test_a_gate_that_judged_no_model_exits_2_but_one_that_judged_some_passes(tmp_path):
    other = dict(profile="smoke, steps=50")
    a = run("a", "2026-01-01", [job("gan-mlp", {"fd": mv(10.0)}), job("vae-mlp", {"fd": mv(20.0)})])
    b = run("b", "2026-01-02", [job("gan-mlp", {"fd": mv(30.0, **other)}), job("vae-mlp", {"fd": mv(20.0)})])
    da, db = write(tmp_path, a), write(tmp_path, b)
    r = call("compare", da, db, "--fail-on-regression", "fd:5%", "--allow-incomparable")
    assert r.exit_code == 0 and "fd of gan-mlp on digits (cpu) is not comparable" in r.stdout  # vae-mlp judged
    assert "no gated regression" in r.stdout
    c = run("c", "2026-01-03", [job("gan-mlp", {"fd": mv(30.0, **other)}), job("vae-mlp", {"fd": mv(20.0, **other)})])
    r = call("compare", da, write(tmp_path, c), "--fail-on-regression", "fd:5%", "--allow-incomparable", "--json")
    data = json.loads(r.stdout)
    assert r.exit_code == 2 and data["gate"]["result"] == "error" and "no gated regression" not in r.stdout
    assert data["gate"]["errors"] == ["cannot evaluate the gate on fd: no model was judged: 2 model(s) skipped as "
                                      "not comparable under --allow-incomparable"]


def test_reference_rows_are_not_gated_and_the_output_says_so(tmp_path):
    a = run("a", "2026-01-01", [job("gan-mlp", {"fd": mv(10.0)}), job("baseline-gaussian", {"fd": mv(100.0)}),
                                job("baseline-train-copy", {"fd": mv(3.0)})])
    b = run("b", "2026-01-02", [job("gan-mlp", {"fd": mv(10.0)}), job("baseline-gaussian", {"fd": mv(900.0)})])
    da, db = write(tmp_path, a), write(tmp_path, b)
    r = call("compare", da, db, "--fail-on-regression", "fd:5%")
    assert r.exit_code == 0, r.output  # the baseline got 9x worse and vanished: references are not competitors
    assert "note: fd not gated for reference rows (baselines, replayed training data: not competitors): " \
           "baseline-gaussian on digits (cpu), baseline-train-copy on digits (cpu)" in r.stdout
    refs_only = run("c", "2026-01-03", [job("baseline-gaussian", {"fd": mv(100.0)})])
    r = call("compare", write(tmp_path, refs_only), write(tmp_path, replace(refs_only, run_id="d")),
             "--fail-on-regression", "fd:5%")
    assert r.exit_code == 2 and "no model was judged: 1 reference row(s) skipped" in r.stderr


# --------------------------------------------------------------------------- 5, 6: escaping, JSON everywhere


def test_html_from_a_results_file_is_escaped_in_compares_markdown(tmp_path):
    evil = "<img src=x onerror=alert(1)>"
    a = write(tmp_path, fd_run("a", "2026-01-01", {"gan-mlp": 10.0}))
    b = write(tmp_path, run("b", "2026-01-02", [job("gan-mlp", {"fd": mv(10.0)})], cpu=evil, version=evil))
    r = call("compare", a, b)
    assert r.exit_code == 0
    assert not re.search(r"(?<!\\)<img", r.stdout), r.stdout  # every < escaped for Markdown
    warnings = [ln for ln in r.stdout.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 2 and all("\\<img src=x onerror=alert(1)\\>" in w for w in warnings)


def test_compare_json_is_written_on_every_exit_path(tmp_path):
    a = write(tmp_path, fd_run("a", "2026-01-01", {"gan-mlp": 10.0}))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "run.json").write_text('{"schema": "genbench.run/2", "jobs": [')
    for args, code in (([a, str(tmp_path / "nowhere")], 1), ([a, str(corrupt)], 1),
                       ([a, str(corrupt), "--fail-on-regression", "fd:5%"], 2),
                       ([a, a, "--fail-on-regression", "fd=5"], 2), ([a, a, "--fail-on-regression", "fdd:5%"], 2),
                       ([a, a, "--fail-on-regression", "fd:5%"], 0), ([a, a], 0)):
        r = call("compare", *args, "--json")
        assert r.exit_code == code, (args, r.output)
        data = json.loads(r.stdout)
        validate(data, "genbench.compare/1")
        assert data["exit_code"] == code
        if code == 1:  # no gate: an expected error, said in the document
            assert data["error"] and data["gate"]["result"] == "none" and data["rows"] == []
        if code == 2:
            assert data["gate"]["result"] == "error" and data["gate"]["errors"]
    assert json.loads(call("compare", a, a, "--json").stdout)["gate"]["result"] == "none"


# --------------------------------------------------------------------------- 7: labels


def _tstr(value, n=500, test=450, **kw):
    return mvp(value, "tstr", {"stderr_of": f"{test} real test images (binomial)"}, n=n, higher=True,
               stderr=(value * (1 - value) / test) ** 0.5, floor=0.9, **kw)


def test_each_standard_error_says_what_it_is_over(tmp_path):
    r = run("a", "2026-01-01", [job("gan-mlp", {"tstr": _tstr(0.8), "copy-rate": mvp(
        0.06, "copy-rate", {"stderr_of": "500 samples (binomial)", "floor_n": 225}, stderr=0.01, floor=0.049),
        "nll": mv(22.3, "nll", stderr=0.18, unit="nats/example", extractor=None)})])
    md = leaderboard.render([r], "md")
    assert "± (se) is the standard error over 450 real test images (binomial) (in tstr)" in md
    assert "± (se) is the standard error over 500 samples (binomial) (in copy-rate)" in md
    assert "standard error of the mean over the n = 100 examples (in nll)" in md
    assert "no unit given" not in md
    assert "tstr: accuracy on the real test split, a fraction 0 to 1" in md
    assert "copy-rate: fraction of samples, 0 to 1" in md


def test_one_plus_minus_names_one_spread_in_every_csv(tmp_path):
    kid = mv(4593.0, "kid", std=900.0, std_of="100 subsets of 450", seeds=3, per_seed=(4000.0, 4593.0, 5186.0),
             seed_std=593.0, ci95=(3120.0, 6066.0))
    r = run("a", "2026-01-01", [job("gan-mlp", {"kid": kid, "tstr": _tstr(0.8)})])
    (row,) = [x for x in csv_rows(leaderboard.render([r], "csv")) if not x["reference"]]
    assert (row["kid err"], row["kid err_kind"], row["kid err_of"]) == ("593.0", "seed sd", "3 training seeds")
    assert (row["tstr err_kind"], row["tstr err_of"]) == ("se", "450 real test images (binomial)")
    assert "100 subsets" not in ",".join(row.values()) and not any("std_of" in h for h in row)
    (row,) = csv_rows(results_csv.render(r))
    assert (row["kid_err_kind"], row["kid_err_of"]) == ("seed sd", "3 training seeds")
    assert not any("std_of" in h for h in row)


def test_a_floor_not_at_the_rows_n_says_its_own_n_everywhere(tmp_path):
    def rate(v):
        return mvp(v, "copy-rate", {"floor_n": 225}, n=500, stderr=0.01, floor=0.049)

    r = run("a", "2026-01-01", [job("gan-mlp", {"copy-rate": rate(0.06)}), job("vae-mlp", {"copy-rate": rate(0.08)})])
    md = leaderboard.render([r], "md")
    assert "0.06 ± 0.01 (se) · floor 0.049 (from 225 held-out examples)" in md
    assert "| ref | real data at n (floor) | – | 0.049 (from 225 held-out examples, not n) |" in md
    assert "except in copy-rate: there the floor is held-out real data of its own size" in md
    rows = csv_rows(leaderboard.render([r], "csv"))
    assert [(x["copy-rate floor"], x["copy-rate floor_n"], x["copy-rate n"]) for x in rows][:2] == [
        ("0.049", "225", "500")] * 2
    assert csv_rows(results_csv.render(r))[0]["copy-rate_floor_n"] == "225"
    data = json.loads(leaderboard.render([r], "json"))
    validate(data, "genbench.leaderboard/2")
    assert data["tables"][0]["rows"][0]["cells"]["copy-rate"]["floor_n"] == 225
    at_n = run("b", "2026-01-01", [job("gan-mlp", {"fd": mvp(4.0, "fd", {"floor_n": 100}, floor=1.0)})])
    assert "held-out" not in leaderboard.render([at_n], "md")  # a floor at the row's n says nothing more


def test_a_fractions_interval_is_clipped_to_its_range_and_says_so():
    precision = mv(0.1, "precision", higher=True, seeds=3, per_seed=(0.0, 0.0, 0.3), seed_std=0.3,
                   ci95=(-0.676, 0.874))
    fd = mv(4.0, seeds=3, per_seed=(1.0, 4.0, 7.0), seed_std=3.0, ci95=(-3.5, 11.5))
    kid = mv(4.0, "kid", seeds=3, per_seed=(1.0, 4.0, 7.0), seed_std=3.0, ci95=(-3.5, 11.5))
    r = run("a", "2026-01-01", [job("gan-mlp", {"precision": precision, "fd": fd, "kid": kid})])
    md = leaderboard.render([r], "md")
    assert "0.1 ± 0.3 (seed sd) \\[0, 0.874\\] (clipped to 0–1)" in md
    assert "4 ± 3 (seed sd) \\[0, 11.5\\] (clipped at 0) |" in md  # a squared distance is never negative
    assert "4 ± 3 (seed sd) \\[-3.5, 11.5\\] |" in md  # KID's unbiased estimate can be: shown as computed
    assert "shown clipped to it, and says so (in fd, precision)" in md
    cells = json.loads(leaderboard.render([r], "json"))["tables"][0]["rows"][0]["cells"]
    assert cells["precision"]["ci95"] == [-0.676, 0.874]  # the machine formats keep run.json's interval


def test_compare_names_each_metrics_unit_or_scale(tmp_path):
    kid = {"kid": mv(4593.0, "kid", std=900.0, std_of="100 subsets of 1000")}
    a, b = (write(tmp_path, run(i, "2026-01-01", [job("gan-mlp", kid)])) for i in ("a", "b"))
    r = call("compare", a, b)
    assert "- kid: MMD² (unbiased, cubic kernel) in the digits-cnn feature space, raw: not ×10³" in r.stdout
    rows = json.loads(call("compare", a, b, "--json").stdout)["rows"]
    assert rows[0]["unit"] == "" and rows[0]["scale"].startswith("MMD² (unbiased, cubic kernel)")
    assert {x["metric"]: x["scale"] for x in rows}["latency_p50"] == "ms"


def test_a_column_header_never_nests_parentheses():
    bpd = mv(3.1, "bpd", unit="bits/dim (continuous density)", extractor=None)
    headers = [ln for ln in leaderboard.render([run("a", "1", [job("vae-mlp", {"bpd": bpd})])], "md").splitlines()
               if ln.startswith("| #")]
    assert len(headers) == 2 and "| bpd ↓ |" in headers[0]  # the headline table, then its details
    assert "bpd, bits/dim (continuous density) ↓ · n 100" in headers[1] and not any("((" in h for h in headers)


# --------------------------------------------------------------------------- 8 and the minor ones


def test_an_unknown_task_is_one_line_naming_the_tasks_the_runs_hold(tmp_path):
    a = write(tmp_path, fd_run("a", "2026-01-01", {"gan-mlp": 10.0}))
    r = call("leaderboard", a, "--task", "digitz")
    assert r.exit_code == 1 and not r.stdout
    assert r.stderr.splitlines() == ["error: unknown task 'digitz': the runs hold digits; pass one of them to --task, "
                                     "or leave it out."]
    assert call("leaderboard", a, "--task", "digits").exit_code == 0


def test_the_same_run_given_twice_counts_once(tmp_path):
    a = write(tmp_path, fd_run("a", "2026-01-01", {"gan-mlp": 10.0}))
    r = call("leaderboard", a, a)
    headline = r.stdout.split("<details>")[0]
    assert "Merged from 1 run(s)" in r.stdout and headline.count("| 1 | `gan-mlp`") == 1
    assert "1 run(s) given more than once (the same run_id); each counted once" in r.stderr


def test_compare_says_why_it_fell_back_to_point_values(tmp_path):
    a = write(tmp_path, fd_run("a", "1", {"gan-mlp": 10.0}))
    (tmp_path / "elsewhere.json").write_text(json.dumps({"sample/forward/onnxruntime/b1": [0.05] * 50}))
    base = fd_run("b", "2", {"gan-mlp": 10.0})
    base = replace(base, jobs=(replace(base.jobs[0], files={"latency_raw": "../elsewhere.json"}),))
    r = call("compare", write(tmp_path, base), a, "--json")
    row = next(x for x in json.loads(r.stdout)["rows"] if x["metric"] == "latency_p50")
    assert row["change"]["from"] == "none"
    assert row["why"] == ("point values, no bootstrap: BASE raw latencies: ../elsewhere.json not read: it lies "
                          "outside the run directory; NEW records no raw latencies")


def test_report_md_shows_every_seed_of_the_run():
    r = fd_run("a", "2026-01-01", {"gan-mlp": 10.0})
    assert "- profile: default, seeds 0, 1, device" in markdown.render(replace(r, config={"profile": "default", "seed": 0,
                                                                                          "seeds": [0, 1]}))
    assert "- profile: default, seed 0, device" in markdown.render(replace(r, config={"profile": "default", "seed": 0,
                                                                                      "seeds": [0]}))


def test_the_metrics_doc_gives_every_unitless_metric_its_scale():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text()
    table = doc.split("## Units and scales in reports")[1].split("\n## ")[0]
    for metric in leaderboard.SCALES:
        assert re.search(rf"^\| [^|]*`{re.escape(metric)}`", table, re.M), metric
    assert "limits.md" in doc and all(f"`{m}`" in doc for m in ("copy-rate", "copy-rate-test", "tstr", "copy-ct"))
