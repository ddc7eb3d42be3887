"""A model that copies is marked and not ranked in every report format; a two-sided metric (copy-ct) has no
better direction: it is never ranked by, its arrow is →0, and compare calls a move away from 0 worse."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from test_leaderboard_compare import csv_rows, invoke, job, run, write
from test_leaderboard_compare import mv as keyed

from genbench.aggregate import aggregate_metric
from genbench.reports import arrow, badness, better_text, leaderboard
from genbench.reports.compare import compare_runs
from genbench.schemas import validate
from genbench.errors import SpecError
from genbench.types import MetricSpec, SeedResult

CT_FLAG_TEXT = "copies training data (C_T = -12.3 < -3: samples closer to it than held-out data are)"
RATE_FLAG_TEXT = ("copies training data (100% of samples closer to a training example than 95% of held-out "
                  "examples are; 4% for the test split, 6% for held-out data)")
CONCENTRATED = CT_FLAG_TEXT + ("; but as close to the test split (copy rate 40% against train, 38% against test): "
                               "concentrated samples rather than copies")


def mv(value, metric="fd", params=None, **kw):
    """A keyed metric value (tests/test_leaderboard_compare.py) with the ``params`` a metric wrote."""
    return replace(keyed(value, metric, **kw), params=params)


def ct(value, **params):
    return mv(value, "copy-ct", higher=None, unit="z", target=0.0, floor=0.7, params=params or None)


def memo_run(run_id="a"):
    """gan-mlp (fd 40), a copier with the best fd (2.4), a model flagged only with the concentration caveat, and
    the replayed-training-data baseline."""
    return run(run_id, "2026-01-01", [
        job("gan-mlp", {"fd": mv(40.0, floor=2.4), "copy-ct": ct(9.8)}),
        job("all-digits", {"fd": mv(2.4, floor=2.4), "copy-ct": ct(-12.3, flag=CT_FLAG_TEXT, copies="training"),
                           "copy-rate": mv(1.0, "copy-rate", params={"flag": RATE_FLAG_TEXT, "copies": "training"})},
            family="samples"),
        job("prototypes", {"fd": mv(30.0, floor=2.4), "copy-ct": ct(-4.0, flag=CONCENTRATED)}),
        job("baseline-train-copy", {"fd": mv(4.9, floor=2.4), "copy-ct": ct(-12.3, flag=CT_FLAG_TEXT,
                                                                             copies="training")}),
    ])


def test_a_copying_model_is_marked_and_not_ranked_in_every_leaderboard_format(tmp_path):
    (table,) = leaderboard.build([memo_run()]).tables
    rows = {r.model: r for r in table.rows}
    assert [r.model for r in table.rows] == ["prototypes", "gan-mlp", "all-digits", "baseline-train-copy"]
    assert rows["prototypes"].rank == (1, 1) and rows["gan-mlp"].rank == (2, 2)  # the copier takes no rank
    assert rows["all-digits"].rank is None and rows["all-digits"].not_ranked == "copies training data"
    assert rows["all-digits"].flags == [f"copy-ct: {CT_FLAG_TEXT}", f"copy-rate: {RATE_FLAG_TEXT}"]
    assert rows["baseline-train-copy"].copies == "copies training data" and rows["baseline-train-copy"].not_ranked is None
    # the C_T flag with its caveat is shown, but it is no copying verdict: the model keeps its rank
    assert rows["prototypes"].flags and rows["prototypes"].copies is None

    d = write(tmp_path, memo_run())
    md = invoke("leaderboard", d).output
    assert "| – | `all-digits` **⚠ copies training data** |" in md
    assert "| ref | `baseline-train-copy` (replayed training data) **⚠ copies training data** |" in md
    assert "`prototypes` **⚠ flagged (see notes)** |" in md
    assert "all-digits: not ranked (–): it copies training data" in md and "⚠ all-digits: copy-rate: copies" in md

    data = json.loads(invoke("leaderboard", d, "--json").output)
    validate(data, "genbench.leaderboard/2")
    by = {r["model"]: r for r in data["tables"][0]["rows"]}
    assert by["all-digits"]["rank"] is None and by["all-digits"]["not_ranked"] == "copies training data"
    assert by["all-digits"]["flags"] == rows["all-digits"].flags and by["gan-mlp"]["flags"] == []
    assert by["baseline-train-copy"]["copies"] == "copies training data"

    csv = {r["model"]: r for r in csv_rows(invoke("leaderboard", d, "--format", "csv").output)}
    assert csv["all-digits"]["rank"] == "" and csv["all-digits"]["not_ranked"] == "copies training data"
    assert "copy-rate: copies training data" in csv["all-digits"]["flags"] and csv["gan-mlp"]["flags"] == ""


def test_the_run_report_marks_the_copier_and_does_not_rank_it(tmp_path):
    from genbench.reports.markdown import render

    text = render(memo_run())
    assert "| – | `all-digits` **⚠ copies training data** |" in text and "| 1 | `prototypes`" in text


def test_results_written_before_params_copies_are_read_from_the_flag_text():
    legacy = [mv(-9.2, "copy-ct", params={"flag": CT_FLAG_TEXT}),
              mv(1.0, "copy-rate", params={"flag": "copies train data (100% of samples closer to a train example…)"}),
              mv(1.0, "copy-rate-test", params={"flag": "copies test data (100% …)"}),
              mv(-4.0, "copy-ct", params={"flag": CONCENTRATED}), mv(0.1, "copy-ct", params={"cells": 4})]
    assert [leaderboard.copying(v) for v in legacy] == ["training", "training", "test", None, None]


def test_flags_of_any_seed_reach_the_job():
    def seed(s, value, flag=None):
        params = {"cells": 4, **({"flag": flag, "copies": "training"} if flag else {})}
        return SeedResult(seed=s, status="ok", quality={"copy-ct": ct(value, **params)})

    merged = aggregate_metric("copy-ct", [seed(0, -1.0), seed(1, -9.0, CT_FLAG_TEXT), seed(2, -2.0)])
    assert merged.params["copies"] == "training" and merged.params["cells"] == 4
    assert merged.params["flag"] == f"seed 1: {CT_FLAG_TEXT} (flagged in 1 of 3 seeds)"
    clean = aggregate_metric("copy-ct", [seed(0, -1.0), seed(1, 1.0)])
    assert "flag" not in clean.params and "copies" not in clean.params


# --------------------------------------------------------------------------- two-sided metrics


def test_copy_ct_has_no_better_direction_and_is_never_ranked_by(tmp_path):
    assert (arrow(None, 0.0), better_text(None, 0.0)) == ("→0", "closer to 0 is better")
    assert badness(-9.0, None, 0.0) == badness(9.0, None, 0.0) == 9.0 and badness(3.0, True) == -3.0
    only_ct = run("a", "2026-01-01", [job("gan-mlp", {"copy-ct": ct(8.05)}), job("real", {"copy-ct": ct(0.74)})])
    (table,) = leaderboard.build([only_ct]).tables
    assert table.rank_by is None and all(r.rank is None for r in table.rows)
    (column,) = table.columns
    assert (column.higher_is_better, column.target) == (None, 0.0)
    assert leaderboard.column_header(column) == "copy-ct (z) →0 · n 100"
    notes = leaderboard.table_notes(table)
    assert any("closer to 0 is better" in n for n in notes) and not any("ceiling" in n for n in notes)
    data = json.loads(invoke("leaderboard", write(tmp_path, only_ct), "--json").output)
    validate(data, "genbench.leaderboard/2")
    assert data["tables"][0]["columns"][0]["higher_is_better"] is None and data["tables"][0]["columns"][0]["target"] == 0


def test_the_ceiling_note_names_only_metrics_where_higher_is_better():
    r = run("a", "2026-01-01", [job("gan-mlp", {"fd": mv(40.0, floor=2.4), "precision": mv(0.5, "precision", higher=True,
                                                                                       floor=0.9),
                                                "copy-ct": ct(9.8)})])
    (table,) = leaderboard.build([r]).tables
    (note,) = [n for n in leaderboard.table_notes(table) if n.startswith("floor")]
    assert note.endswith("where higher is better it is what real data reaches, not a bound: a model can score "
                         "above it (in precision)")


@pytest.mark.parametrize("base,new,verdict", [(0.5, -6.0, "regressed"), (0.5, 8.0, "regressed"),
                                              (9.0, 1.0, "improved"), (-9.0, 2.0, "improved"), (4.0, -4.0, "unchanged")])
def test_compare_calls_a_move_away_from_zero_worse_for_copy_ct(tmp_path, base, new, verdict):
    a = run("a", "2026-01-01", [job("gan-mlp", {"copy-ct": ct(base)})])
    b = run("b", "2026-01-02", [job("gan-mlp", {"copy-ct": ct(new)})])
    (row,) = [r for r in compare_runs(a, b) if r.metric == "copy-ct"]
    assert row.verdict == verdict and row.change.worse == pytest.approx(abs(new) - abs(base))
    assert (row.higher_is_better, row.target) == (None, 0.0)
    out = invoke("compare", write(tmp_path, a), write(tmp_path, b), "--json")
    data = json.loads(out.stdout)
    validate(data, "genbench.compare/1")


def test_a_metric_spec_is_two_sided_only_with_a_target():
    spec = MetricSpec("x", ("image",), "m:f", "z", None, "two-sided", target=0.0)
    assert spec.higher_is_better is None and spec.target == 0.0
    for bad in (dict(higher_is_better=None), dict(higher_is_better=True, target=0.0),
                dict(higher_is_better=None, target=float("nan")), dict(higher_is_better="yes")):
        with pytest.raises(SpecError, match="higher_is_better|target"):
            MetricSpec("x", ("image",), "m:f", "z", description="d", **{"higher_is_better": True, **bad})


def test_builtin_memorisation_metrics_state_direction_and_unit_as_their_values_do():
    from genbench.metrics.memorization import COPY_RATE_UNIT, CT_TARGET, CT_UNIT
    from genbench.metrics.synthetic import TSTR_UNIT
    from genbench.plugins import make_plugin_manager

    reg = make_plugin_manager(entry_points=False).registry
    specs = {name: reg.metrics.get(name) for name in ("copy-ct", "copy-rate", "copy-rate-test", "tstr")}
    assert (specs["copy-ct"].higher_is_better, specs["copy-ct"].target, specs["copy-ct"].unit) == (None, CT_TARGET, CT_UNIT)
    assert specs["copy-rate"].unit == specs["copy-rate-test"].unit == COPY_RATE_UNIT
    assert specs["copy-rate"].higher_is_better is False and specs["tstr"].unit == TSTR_UNIT


def test_the_html_page_marks_the_copier_and_does_not_rank_it():
    import re

    from genbench.reports.html import render

    page = render([memo_run()])
    row = re.search(r"<tr class='ranked'><td class='rank'[^>]*>([^<]*)</td><td class='l model' data-v='all-digits'>"
                    r"(.*?)</td>", page)
    assert row is not None and row.group(1) == "–"  # listed, but no rank
    assert "<span class='copies'" in row.group(2) and "⚠ copies training data" in row.group(2)
    gan = re.search(r"<td class='rank'[^>]*>([^<]*)</td><td class='l model' data-v='gan-mlp'>", page)
    assert gan.group(1) == "2"
