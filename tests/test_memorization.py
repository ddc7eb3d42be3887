"""Memorisation (C_T, copy rates) and samples-as-data (train on synthetic) on arrays with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from genbench.config import RunConfig
from genbench.data.points import RING8_CENTERS, RING8_SIGMA, ring8
from genbench.harness import load_task_state
from genbench.metrics.memorization import (CT_FLAG, CopyRate, CopyRateAgainstTest, DataCopyingCT, cell_count,
                                           copy_rate, copy_threshold, data_copying_test, kmeans_cells,
                                           mann_whitney_z, nearest_distances)
from genbench.metrics.synthetic import (TrainOnSyntheticAccuracy, augmentation_gain, binomial_stderr,
                                        classifier_accuracy, real_subset)
from genbench.types import DatasetSpec

SPECS = {"digits": DatasetSpec("digits", "image", "genbench.data.digits:load_digits", "digits"),
         "ring8": DatasetSpec("ring8", "points", "genbench.data.points:load_ring8", "ring8")}


@pytest.fixture(scope="module")
def tasks():
    return {name: load_task_state(spec, RunConfig(profile="smoke")) for name, spec in SPECS.items()}


def _score(state, samples, *metrics):
    """The metrics' values for ``samples``, computed by the harness exactly as in a job."""
    from genbench.harness import score
    from genbench.types import MetricSpec

    specs = [(MetricSpec(name, ("image", "points"), "x.y:z", "", True, "test"), m) for name, m in metrics]
    values, errors = score(state, samples, specs, 0, None, RunConfig(profile="smoke"))
    assert not errors
    return values


def _memorization(state, samples):
    return _score(state, samples, ("ct", DataCopyingCT()), ("rate", CopyRate()), ("test", CopyRateAgainstTest()))


def _flag(mv):
    return (mv.params or {}).get("flag")


# --------------------------------------------------------------------------- the statistic itself


def test_mann_whitney_z_matches_a_brute_force_u_and_the_reference_formula():
    rng = np.random.default_rng(0)
    g, h = rng.exponential(1.0, 40), rng.exponential(1.3, 55)
    g[:5] = h[:5]  # ties count one half
    u = sum(float(a > b) + 0.5 * float(a == b) for a in g for b in h)
    m, n = len(g), len(h)
    expected = (u - (n * m / 2 - 0.5)) / math.sqrt(n * m * (n + m + 1) / 12)
    assert mann_whitney_z(g, h) == pytest.approx(expected, rel=1e-12)
    assert mannwhitneyu(g, h).statistic == pytest.approx(u)


def _reference_ct(train, held_out, generated, centers, train_cells, tau):
    """Meehan et al.'s C_T, transcribed from the paper with brute-force distances: Z_U per cell on distances to
    the cell's training points, weighted by the held-out mass of the cells where Q_m has more than tau."""
    def assign(x):
        return np.argmin(((x[:, None, :] - centers[None]) ** 2).sum(-1), 1)

    def nn(x, ref):
        return np.sqrt(((x[:, None, :] - ref[None]) ** 2).sum(-1)).min(1)

    pc, qc = assign(held_out), assign(generated)
    num = den = 0.0
    for c in range(len(centers)):
        t, p, q = train[train_cells == c], held_out[pc == c], generated[qc == c]
        if len(q) / len(generated) <= tau or len(p) == 0:
            continue
        lq, lp = nn(q, t), nn(p, t)
        u = sum(float(a > b) + 0.5 * float(a == b) for a in lq for b in lp)
        z = (u - (len(lp) * len(lq) / 2 - 0.5)) / math.sqrt(len(lp) * len(lq) * (len(lp) + len(lq) + 1) / 12)
        w = len(p) / len(held_out)
        num, den = num + w * z, den + w
    return num / den


def test_ct_agrees_with_an_independent_transcription_of_the_paper():
    train, _ = ring8(600, 1)
    held_out, _ = ring8(200, 2)
    generated = train[:150] + 0.002 * np.random.default_rng(3).standard_normal((150, 2)).astype(np.float32)
    centers, cells = kmeans_cells(train, 4, seed=0)
    mine = data_copying_test(train, held_out, generated, 4, centers=centers, train_cells=cells)
    ref = _reference_ct(train.astype(np.float64), held_out.astype(np.float64), generated.astype(np.float64),
                        centers, cells, 20 / 150)
    assert mine.value == pytest.approx(ref, rel=1e-10)
    assert mine.used.sum() >= 2


def test_ct_reads_copies_as_copying_fresh_data_as_zero_and_blur_as_underfitting():
    train, _ = ring8(2000, 1)
    held_out, _ = ring8(1000, 2)
    fresh, _ = ring8(1000, 3)
    rng = np.random.default_rng(4)
    copies = train[rng.integers(0, len(train), 1000)]
    modes = rng.integers(0, 8, 1000)
    blurred = RING8_CENTERS[modes] + 4 * RING8_SIGMA * rng.standard_normal((1000, 2))
    k = cell_count(len(held_out), 1000)
    assert k == 20
    values = {name: data_copying_test(train, held_out, x, k).value
              for name, x in (("fresh", fresh), ("copies", copies), ("blurred", blurred))}
    assert abs(values["fresh"]) < 2
    assert values["copies"] < -5 < CT_FLAG  # U = 0 in every cell: about -sqrt(3nm/(n+m)) per cell
    assert values["blurred"] > 5


def test_copy_rate_is_five_percent_for_held_out_data_and_one_for_copies():
    train, _ = ring8(3000, 1)
    a, _ = ring8(1000, 2)
    b, _ = ring8(1000, 3)
    threshold = copy_threshold(a, train)
    assert np.mean(nearest_distances(a, train) < threshold) == pytest.approx(0.05, abs=0.001)
    assert copy_rate(b, train, threshold) == pytest.approx(0.05, abs=0.02)
    assert copy_rate(train[:500], train, threshold) == 1.0
    assert nearest_distances(train[:3], train) == pytest.approx(np.zeros(3))


# --------------------------------------------------------------------------- the metrics on real tasks


def test_train_copy_is_flagged_and_held_out_samplers_are_not_on_points(tasks):
    state = tasks["ring8"]
    d = state.dataset
    copies = _memorization(state, d.train_x[np.random.default_rng(1).integers(0, len(d.train_x), 500)])
    assert copies["ct"].value < CT_FLAG and "copies training data" in _flag(copies["ct"])
    assert copies["rate"].value == 1.0 and _flag(copies["rate"])
    assert copies["test"].value < 0.15 and _flag(copies["test"]) is None
    fresh = _memorization(state, ring8(500, 99)[0])  # drawn from the true mixture: held-out data
    assert not any(_flag(v) for v in fresh.values())
    assert abs(fresh["ct"].value) < 3 and fresh["rate"].value < 0.12 and fresh["test"].value < 0.12
    # the floors are what held-out data gets: near 0 for C_T, near 5% for the rates
    assert abs(fresh["ct"].floor) < 2 and 0.02 < fresh["rate"].floor < 0.08 and 0.02 < fresh["test"].floor < 0.08
    assert fresh["ct"].params["cells"] == cell_count(len(d.test_x) // 2, 500)
    # the floors are of half the test split, not of the 500 samples: each says its own size
    assert {v.params["floor_n"] for v in fresh.values()} == {len(d.test_x) // 2} and fresh["rate"].n == 500
    assert fresh["rate"].params["stderr_of"] == "500 samples (binomial)"


def test_the_train_copy_baseline_job_is_flagged_in_an_ordinary_run(tmp_path):
    import genbench

    run = genbench.run(["baseline-train-copy"], tasks=["ring8"], profile="smoke", out=tmp_path, timing=False,
                       executor="inline", cache=False)
    quality = run.jobs[0].quality
    assert "copies training data" in quality["copy-ct"].params["flag"]
    assert quality["copy-rate"].value == 1.0 and quality["copy-rate"].params["flag"]
    assert quality["copy-ct"].params["copies"] == quality["copy-rate"].params["copies"] == "training"
    assert quality["copy-ct"].key["profile"] == "smoke" and quality["copy-ct"].floor is not None
    assert (quality["copy-ct"].higher_is_better, quality["copy-ct"].target) == (None, 0.0)  # two-sided
    report = (tmp_path / run.run_id / "report.md").read_text()
    assert "`baseline-train-copy` (replayed training data) **⚠ copies training data**" in report
    assert "copy-ct (z) →0" in report


def test_scored_training_points_are_marked_as_copies_and_not_ranked_while_fresh_draws_are(tmp_path):
    """The outside tester's case on a fast task: the training split handed to genbench score as samples."""
    import json

    from click.testing import CliRunner

    from genbench.cli import cli
    from genbench.data.points import load_ring8
    from genbench.score_samples import score

    d = load_ring8()
    np.save(tmp_path / "train.npy", d.train_x[:2000])
    np.save(tmp_path / "fresh.npy", ring8(2000, np.random.default_rng(7))[0])
    dirs = []
    for name in ("train", "fresh"):
        result = score(tmp_path / f"{name}.npy", task="ring8", out=tmp_path / "runs", name=name, baselines=False)
        dirs.append(str(tmp_path / "runs" / result.run_id))
    report = (tmp_path / "runs" / Path(dirs[0]).name / "report.md").read_text()
    assert "| – | `train` **⚠ copies training data** |" in report and "train: not ranked (–)" in report
    out = CliRunner().invoke(cli, ["leaderboard", *dirs, "--json"])
    rows = {r["model"]: r for t in json.loads(out.output)["tables"] for r in t["rows"]}
    assert rows["train"]["rank"] is None and rows["train"]["not_ranked"] == "copies training data"
    assert rows["train"]["flags"] and rows["fresh"]["flags"] == [] and rows["fresh"]["rank"] == "1"


def test_digits_train_copy_is_flagged_and_test_images_in_a_graph_are_caught(tasks):
    state = tasks["digits"]
    d = state.dataset
    copies = _memorization(state, d.train_x[:500])
    assert copies["ct"].value < CT_FLAG and _flag(copies["ct"]) and _flag(copies["rate"])
    assert copies["ct"].extractor == state.extractor.id
    embedded = _memorization(state, d.test_x)  # a graph that replays the held-out split
    assert _flag(embedded["ct"]) is None and _flag(embedded["rate"]) is None
    assert embedded["test"].value == 1.0 and "copies test data" in _flag(embedded["test"])
    noise = _memorization(state, np.random.default_rng(0).uniform(0, 1, (500, 1, 8, 8)).astype(np.float32))
    assert noise["ct"].value > 3 and not any(_flag(v) for v in noise.values())


def test_concentrated_samples_are_flagged_by_ct_with_the_caveat_the_test_split_supports(tasks):
    """Samples shrunk onto the modes are closer to training data than held-out data is, and C_T (faithfully)
    says so; but they are as close to the test split, and the flag says that too; the copy rate does not flag."""
    rng = np.random.default_rng(5)
    modes = rng.integers(0, 8, 500)
    shrunk = (RING8_CENTERS[modes] + 0.3 * RING8_SIGMA * rng.standard_normal((500, 2))).astype(np.float32)
    m = _memorization(tasks["ring8"], shrunk)
    assert m["ct"].value < CT_FLAG and "concentrated samples rather than copies" in _flag(m["ct"])
    assert _flag(m["rate"]) is None


# --------------------------------------------------------------------------- train on synthetic


def test_classifier_accuracy_is_sklearn_logistic_regression_and_handles_one_class():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (200, 1, 4, 4)), rng.integers(0, 3, 200)
    x[np.arange(200), 0, 0, y] += 1.0
    t, ty = rng.uniform(0, 1, (100, 1, 4, 4)), rng.integers(0, 3, 100)
    t[np.arange(100), 0, 0, ty] += 1.0
    clf = LogisticRegression(C=1.0, tol=1e-8, max_iter=10000).fit(x.reshape(200, -1), y)
    expected = np.mean(clf.predict(t.reshape(100, -1)) == ty)
    assert classifier_accuracy(x, y, t, ty) == pytest.approx(expected)
    assert classifier_accuracy(x, np.full(200, 2), t, ty) == pytest.approx(np.mean(ty == 2))
    assert binomial_stderr(0.9, 100) == pytest.approx(0.03)


def test_the_tstr_classifier_is_fitted_to_its_optimum_not_stopped_short():
    """At scikit-learn's default tol (1e-4) lbfgs stopped 71 iterations in on digits, its weights 0.5% short of
    the optimum, and tstr came out ±1 test image between runs. The fit must sit at the optimum: within 1e-4 of
    a fit run to 1e-10, and the same whatever order the training rows come in."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from genbench.metrics.synthetic import CLASSIFIER_MAX_ITER, fit_classifier

    x, y = load_digits(return_X_y=True)
    x, y = x[:800].reshape(800, 1, 8, 8), y[:800]
    clf = fit_classifier(x, y, (0.0, 16.0))
    assert clf.n_iter_.max() < CLASSIFIER_MAX_ITER  # converged, not capped
    best = LogisticRegression(C=1.0, tol=1e-10, max_iter=20000).fit(x.reshape(800, -1) / 16.0, y)
    scale = np.abs(best.coef_).max()
    assert np.abs(clf.coef_ - best.coef_).max() < 1e-4 * scale
    order = np.random.default_rng(1).permutation(800)
    again = fit_classifier(x[order], y[order], (0.0, 16.0))
    assert np.abs(again.coef_ - clf.coef_).max() < 1e-4 * scale


def test_replayed_training_images_score_within_noise_of_the_real_data_figure(tasks):
    state = tasks["digits"]
    d = state.dataset
    for n in (500, len(d.train_x)):
        replay = d.train_x[real_subset(d.train_y, len(d.train_x), n)]
        mv = _score(state, replay, ("tstr", TrainOnSyntheticAccuracy()))["tstr"]
        assert mv.n == n and mv.params["test"] == len(d.test_y)
        # its standard error is over the test images, not over the n samples, and says so
        assert mv.params["stderr_of"] == f"{len(d.test_y)} real test images (binomial)"
        assert mv.stderr == pytest.approx(binomial_stderr(mv.value, len(d.test_y)))
        assert abs(mv.value - mv.floor) < 2 * mv.stderr, (n, mv.value, mv.floor, mv.stderr)
    noise = np.random.default_rng(0).uniform(0, 1, (500, 1, 8, 8)).astype(np.float32)
    assert _score(state, noise, ("tstr", TrainOnSyntheticAccuracy()))["tstr"].value < 0.5


def test_augmentation_gain_helps_few_real_images_and_says_its_spread(tasks):
    state = tasks["digits"]
    d = state.dataset
    extra = d.train_x[-400:]
    labels = state.extractor(extra)[1].argmax(1)
    g = augmentation_gain(d.train_x[:-400], d.train_y[:-400], extra, labels, d.test_x, d.test_y, 10, seeds=range(3))
    assert len(g["gain"]) == 3 and g["generated"] == 400
    assert g["gain_mean"] > 0.1 and g["gain_stderr"] is not None
    assert g["gain_mean"] == pytest.approx(np.mean(np.array(g["augmented"]) - np.array(g["real"])))
