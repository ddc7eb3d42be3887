"""Copy flags judged against held-out data, and values better than real data (issue #24 item 3), on the real
digits the package ships.

The attacks: a replay of real digits, half from the training split and half from the test split, was close to
both splits alike, so each split's copy rate (then judged against the other split's) and C_T (then waived as
"concentration") let it through: it ranked first with no copying verdict. And an exact replay of the test
digits scored better than real data does (precision 1, recall 1, FD far below the floor), with nothing said.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from genbench.config import RunConfig
from genbench.harness import load_task_state
from genbench.metrics.memorization import CopyRate, CopyRateAgainstTest, DataCopyingCT
from genbench.types import DatasetSpec

REPLAY = "closer to the test data than real data is: replayed data?"
DIGITS = DatasetSpec("digits", "image", "genbench.data.digits:load_digits", "digits")


@pytest.fixture(scope="module")
def digits():
    return load_task_state(DIGITS, RunConfig(profile="smoke"))


def _score(state, samples, names=("copy-ct", "copy-rate", "copy-rate-test")):
    """The metrics' values for ``samples``, computed by the harness exactly as in a job."""
    from genbench.harness import score
    from genbench.metrics.builtin import FrechetDistance, KernelInceptionDistance, Precision, Recall
    from genbench.types import MetricSpec

    factories = {"copy-ct": DataCopyingCT, "copy-rate": CopyRate, "copy-rate-test": CopyRateAgainstTest,
                 "fd": FrechetDistance, "kid": KernelInceptionDistance, "precision": Precision, "recall": Recall}
    specs = [(MetricSpec(n, ("image",), "x.y:z", "", True, "test"), factories[n]()) for n in names]
    values, errors = score(state, samples, specs, 0, None, RunConfig(profile="smoke"))
    assert not errors
    return values


def _params(mv):
    return dict(mv.params or {})


def split_replay(d, n=500, seed=0):
    """Real digits, half drawn from the training split and half from the test split (no repeats)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([d.train_x[rng.choice(len(d.train_x), n // 2, replace=False)],
                           d.test_x[rng.choice(len(d.test_x), n - n // 2, replace=False)]])


def exact_test_replay(d, n=500):
    """n exact test digits: all of them, then the first again (the split has 450)."""
    return np.concatenate([d.test_x, d.test_x[: n - len(d.test_x)]])


def fitted_gaussian(d, n=500, seed=0):
    """What baseline-gaussian draws: a full-covariance Gaussian fitted to the training pixels, clipped to range."""
    x = d.train_x.reshape(len(d.train_x), -1).astype(np.float64)
    mu, cov = x.mean(0), np.cov(x, rowvar=False)
    g = np.random.default_rng(seed).multivariate_normal(mu, cov + 1e-6 * np.eye(len(mu)), n)
    return np.clip(g, *d.value_range).astype(np.float32).reshape(n, *d.shape)


# --------------------------------------------------------------------------- the copying verdict


def test_a_half_train_half_test_replay_gets_the_copying_verdict_for_each_split(digits):
    m = _score(digits, split_replay(digits.dataset))
    rate, test, ct = m["copy-rate"], m["copy-rate-test"], m["copy-ct"]
    # about half the samples are copies of each split; held-out data is near 5% against either
    assert 0.35 < rate.value < 0.65 and 0.35 < test.value < 0.65
    assert rate.floor < 0.1 and test.floor < 0.1
    assert _params(rate)["copies"] == "training" and _params(rate)["flag"].startswith("copies training data")
    assert _params(test)["copies"] == "test" and _params(test)["flag"].startswith("copies test data")
    # judged against held-out data: the flag quotes held-out data's rate, and the other split's only beside it
    assert f"against {rate.floor:.0%} of held-out data" in _params(rate)["flag"]
    # C_T is not waived as concentration: the samples are as close to both splits, but far closer than held-out data
    assert ct.value < -3 and _params(ct)["copies"] == "training"
    assert "rather than copies" not in _params(ct)["flag"]
    # both splits together: far more samples within copying distance of real data than held-out data
    assert _params(rate)["both_splits_rate"] > 3 * _params(rate)["both_splits_floor"]


def test_a_genuine_models_samples_are_flagged_by_nothing(digits):
    m = _score(digits, fitted_gaussian(digits.dataset),
               names=("copy-ct", "copy-rate", "copy-rate-test", "fd", "kid", "precision", "recall"))
    assert not any(_params(v).get("flag") or _params(v).get("copies") or _params(v).get("replayed")
                   for v in m.values()), {k: _params(v).get("flag") for k, v in m.items()}
    assert m["copy-rate"].value < m["copy-rate"].floor and m["copy-rate"].params["both_splits_rate"] < 0.05
    # a genuine model is worse than real data, never beyond the floor's interval
    assert m["fd"].value > m["fd"].floor_interval[1] and m["precision"].value < m["precision"].floor_interval[0]


def test_both_splits_together_flag_copies_that_neither_split_shows_alone():
    """Rates the union alone lifts above held-out data's: the copy-rate flag says so, and the verdict names both."""
    rates = {"train": 0.08, "test": 0.04, "both": 0.2, "n": 1000, "reference_n": 500, "train_reference": 0.05,
             "test_reference": 0.05, "both_reference": 0.05, "both_reference_n": 500, "train_threshold": 0.1,
             "test_threshold": 0.1, "both_threshold": 0.1, "both_n": 2000}
    ctx = SimpleNamespace(dataset=SimpleNamespace(kind="points"), samples=np.zeros((1000, 2)), extractor_id=None,
                          cache={}, job_cache={"memorization:rates": rates})
    mv = CopyRate()(ctx)
    assert mv.params["copies"] == "training and test"
    assert mv.params["flag"].startswith("copies real data (20% of samples closer to an example of either split than "
                                        "95% of held-out examples are, against 5% of held-out data")
    ctx.job_cache["memorization:rates"] = {**rates, "both": 0.07}  # within noise of held-out data: no flag
    assert "flag" not in CopyRate()(ctx).params


# --------------------------------------------------------------------------- better than real data


def test_an_exact_replay_of_test_digits_is_flagged_as_closer_to_the_test_data_than_real_data(digits):
    m = _score(digits, exact_test_replay(digits.dataset), names=("fd", "kid", "precision", "recall"))
    for name in ("precision", "recall"):  # each sample sits in its own ball: 1, above every training subset's
        mv = m[name]
        assert mv.value == 1.0 and mv.value > mv.floor_interval[1]
        assert _params(mv)["replayed"] is True and _params(mv)["flag"].startswith(REPLAY)
        assert "5 training subsets" in mv.floor_of
    fd = m["fd"]
    assert fd.value < fd.floor / 3  # far below the floor; its interval over 5 subsets of 500 is wide
    # a training subset of the samples' size, scored the same way, lands inside every interval: no flag
    from genbench.metrics.builtin import _subset

    subset = digits.dataset.train_x[_subset(len(digits.dataset.train_x), 500, 3)]
    real = _score(digits, subset, names=("fd", "kid", "precision", "recall"))
    assert not any(_params(v).get("replayed") for v in real.values())
    assert all(v.floor_interval[0] <= v.value <= v.floor_interval[1] for v in real.values())


def test_no_interval_where_every_training_subset_is_the_whole_split(digits):
    """At n = |train| the 'subsets' are one set: no spread, so no interval and no flag (not a zero-width one)."""
    d = digits.dataset
    m = _score(digits, d.train_x[::-1].copy(), names=("fd", "kid", "precision", "recall"))
    for mv in m.values():
        assert mv.n == len(d.train_x) and mv.floor_interval is None and "no interval" in mv.floor_of
        assert not _params(mv).get("replayed")


# --------------------------------------------------------------------------- run.json and every report


def test_replays_are_marked_and_not_ranked_in_run_json_and_every_leaderboard_format(tmp_path):
    """The attack end to end: arrays handed to genbench score, then the leaderboard of the runs."""
    from genbench.cli import cli
    from genbench.data.digits import load_digits
    from genbench.reports import leaderboard
    from genbench.reports.html import render_board
    from genbench.results import load_run
    from genbench.score_samples import score

    d = load_digits()
    arrays = {"split": split_replay(d), "exact": exact_test_replay(d), "gauss": fitted_gaussian(d)}
    dirs = {}
    for name, x in arrays.items():
        np.save(tmp_path / f"{name}.npy", x)
        result = score(tmp_path / f"{name}.npy", task="digits", out=tmp_path / "runs", name=name, baselines=False)
        dirs[name] = tmp_path / "runs" / result.run_id
    raw = json.loads((dirs["exact"] / "run.json").read_text())
    assert raw["jobs"][0]["quality"]["precision"]["params"]["replayed"] is True
    assert raw["jobs"][0]["quality"]["precision"]["params"]["flag"].startswith(REPLAY)
    split_q = json.loads((dirs["split"] / "run.json").read_text())["jobs"][0]["quality"]
    assert split_q["copy-rate"]["params"]["copies"] == "training" and split_q["copy-rate-test"]["params"]["copies"] == "test"

    board = leaderboard.build([load_run(p) for p in dirs.values()])
    (table,) = board.tables
    rows = {r.model: r for r in table.rows}
    assert rows["gauss"].rank == (1, 1) and not rows["gauss"].flags  # the genuine model ranks first
    assert rows["split"].rank is None and rows["split"].copies == "copies training and test data"
    assert rows["split"].not_ranked.startswith("copies training and test data")
    assert rows["exact"].rank is None and rows["exact"].replayed == REPLAY and REPLAY in rows["exact"].not_ranked

    md = CliRunner().invoke(cli, ["leaderboard", *map(str, dirs.values())]).output
    assert "`split` **⚠ copies training and test data" in md
    assert f"`exact` **⚠ copies test data; ⚠ {REPLAY}**" in md
    assert f"- ⚠ exact: precision: {REPLAY}" in md
    assert f"exact: not ranked (–): it copies test data; it is {REPLAY}, so it is no competitor" in md
    assert "split: not ranked (–): it copies training and test data" in md
    out = CliRunner().invoke(cli, ["leaderboard", *map(str, dirs.values()), "--json"]).output
    by = {r["model"]: r for t in json.loads(out)["tables"] for r in t["rows"]}
    assert by["gauss"]["rank"] == "1" and by["split"]["rank"] is None and by["exact"]["rank"] is None
    assert REPLAY in by["exact"]["not_ranked"] and any(f.startswith(f"precision: {REPLAY}") for f in by["exact"]["flags"])
    csv = CliRunner().invoke(cli, ["leaderboard", *map(str, dirs.values()), "--format", "csv"]).output
    assert REPLAY in csv and "copies training and test data" in csv
    html = render_board(board)
    assert f"⚠ {REPLAY}" in html and "⚠ copies training and test data" in html


def test_the_split_replay_baseline_is_a_flagged_reference_row(tmp_path):
    import genbench

    run = genbench.run(["baseline-split-replay"], tasks=["ring8"], profile="smoke", out=tmp_path, timing=False,
                       executor="inline", cache=False)
    (job,) = run.jobs
    assert job.status == "ok", job.error
    q = job.quality
    assert 0.35 < q["copy-rate"].value < 0.65 and 0.35 < q["copy-rate-test"].value < 0.65
    assert q["copy-rate"].params["copies"] == "training" and q["copy-rate-test"].params["copies"] == "test"
    report = (tmp_path / run.run_id / "report.md").read_text()
    assert "`baseline-split-replay` (replayed training and test data) **⚠ copies training and test data**" in report
    # not beside every model a run names (it runs with --all or by name), nor beside every scored array
    import types

    import genbench as gb
    from genbench.plugins import make_plugin_manager
    from genbench.runner import plan

    @gb.hookimpl
    def genbench_register_models(register):
        register(gb.ModelSpec("some-model", "test", ("points",), "fakes:TinyModel", "a model"))

    host = make_plugin_manager([("author", types.SimpleNamespace(genbench_register_models=genbench_register_models))],
                               entry_points=False)
    beside = {j.model.name for j in plan(host, ["some-model"], tasks=["ring8"])}
    assert {"baseline-gaussian", "baseline-train-copy"} <= beside and "baseline-split-replay" not in beside
    assert "baseline-split-replay" in {j.model.name for j in plan(host, all_models=True, tasks=["ring8"])}


def test_a_replay_flag_in_one_seed_of_three_stays_on_the_mean():
    """As a copier in one seed copies, a number better than real data in one seed keeps the row out of the ranking."""
    from genbench.aggregate import aggregate_metric
    from genbench.types import MetricValue, SeedResult

    def seed(i, value, params):
        mv = MetricValue(value, "", True, n=500, floor=0.93, floor_interval=(0.90, 0.96), params=params)
        return SeedResult(seed=i, status="ok", quality={"precision": mv})

    flagged = {"k": 3, "flag": f"{REPLAY} (precision 1 above ...)", "replayed": True}
    mean = aggregate_metric("precision", [seed(0, 0.93, {"k": 3}), seed(1, 1.0, flagged), seed(2, 0.92, {"k": 3})])
    assert mean.params["replayed"] is True and mean.params["flag"].startswith(f"seed 1: {REPLAY}")
    clean = aggregate_metric("precision", [seed(0, 0.93, {"k": 3}), seed(1, 0.94, {"k": 3})])
    assert "replayed" not in clean.params and "flag" not in clean.params
