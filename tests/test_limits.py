"""genbench limits: training-data variants, the study runner, its results file, statements and reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

import genbench
from genbench.comparability import profile_key
from genbench.config import RunConfig
from genbench.data.digits import load_digits
from genbench.data.text import load_text
from genbench.data.variants import TEXT_BLOCK, TrainingVariant, stratified_order
from genbench.errors import ConfigError, ResultsError
from genbench.limits import (LimitsResult, limits, load_limits, make_statements, mean_difference, paired_better,
                             relative_change)


# --------------------------------------------------------------------------- variants


def test_subsets_are_nested_and_stratified():
    d = load_digits().training_data()
    counts = np.bincount(d.labels)
    previous = None
    for f in (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0):
        v = TrainingVariant(f).apply(d, seed=3)
        assert len(v.x) == max(1, round(f * len(d.x)))
        rows = {r.tobytes() for r in v.x}
        if previous is not None:
            assert previous <= rows  # each subset inside the next larger one
        previous = rows
        share = np.bincount(v.labels, minlength=10)
        assert np.all(np.abs(share - counts * len(v.x) / len(d.x)) <= 1.0 + 1e-9)
    other = TrainingVariant(1 / 16).apply(d, seed=4)
    assert {r.tobytes() for r in other.x} != {r.tobytes() for r in TrainingVariant(1 / 16).apply(d, seed=3).x}


def test_stratified_order_keeps_every_prefix_in_proportion():
    labels = np.repeat(np.arange(3), [100, 50, 10])
    order = stratified_order(labels, len(labels), np.random.default_rng(0))
    assert sorted(order) == list(range(len(labels)))
    for k in (8, 16, 40, 80, 160):
        share = np.bincount(labels[order[:k]], minlength=3)
        assert np.all(np.abs(share - np.array([100, 50, 10]) * k / 160) <= 1.0 + 1e-9), (k, share)


def test_corruption_replaces_exactly_its_share_with_noise_on_the_pixel_grid_and_zero_changes_nothing():
    d = load_digits().training_data()
    assert TrainingVariant(corruption=0.0).apply(d, 0) is d  # 0%: the very training split, bit for bit
    for p in (0.1, 0.3, 0.5):
        v = TrainingVariant(corruption=p).apply(d, 0)
        changed = np.any(v.x != d.x, axis=(1, 2, 3))
        assert changed.sum() <= round(p * len(d.x)) and changed.sum() >= round(p * len(d.x)) - 2
        assert np.array_equal(v.labels, d.labels) and not v.x.flags.writeable
        assert np.allclose(v.x * 16, np.round(v.x * 16)) and v.x.min() >= 0 and v.x.max() <= 1
    ten, thirty = (np.any(TrainingVariant(corruption=p).apply(d, 0).x != d.x, axis=(1, 2, 3)) for p in (0.1, 0.3))
    assert np.all(thirty[ten])  # 10% corrupted lies inside 30%
    assert TrainingVariant(1 / 4, 0.5).describe(d, 0)["corrupted"] == round(0.5 * round(len(d.x) / 4))


def test_text_variants_keep_blocks_in_order_and_replace_blocks_with_random_bytes():
    d = load_text().training_data()
    half = TrainingVariant(0.5).apply(d, 0)
    blocks = -(-len(d.x) // TEXT_BLOCK)
    assert abs(len(half.x) - round(blocks / 2) * TEXT_BLOCK) < TEXT_BLOCK and half.labels is None
    first = bytes(half.x[:TEXT_BLOCK])
    assert first in bytes(d.x)
    noisy = TrainingVariant(corruption=0.3).apply(d, 0)
    assert len(noisy.x) == len(d.x)
    differing = sum(bytes(noisy.x[i:i + TEXT_BLOCK]) != bytes(d.x[i:i + TEXT_BLOCK])
                    for i in range(0, len(d.x), TEXT_BLOCK))
    assert differing == round(0.3 * blocks)


def test_variant_settings_are_checked_recorded_and_keyed():
    with pytest.raises(ConfigError, match="training fraction"):
        RunConfig(train_fraction=0.0)
    with pytest.raises(ConfigError, match="corruption"):
        RunConfig(train_corruption=1.0)
    assert RunConfig(train_fraction=0.25).to_dict()["train_fraction"] == 0.25
    assert profile_key("default", None, TrainingVariant(1 / 16).label()) == "default, train 1/16"
    assert profile_key("smoke", 150, TrainingVariant(corruption=0.3).label()) == "smoke, steps=150, 30% corrupted"
    assert profile_key("default") == "default" and TrainingVariant().label() is None


# --------------------------------------------------------------------------- statistics of the statements


def test_paired_better_and_intervals():
    assert paired_better([1.0, 2.0, 3.0], [2.0, 3.1, 4.0], higher_is_better=False)[0]
    assert not paired_better([1.0, 2.0, 3.0], [2.0, 3.1, 4.0], higher_is_better=True)[0]
    assert paired_better([5.0], [4.0], True) == (True, None)
    from scipy import stats

    a, b = [1.0, 2.0, 4.0], [2.0, 2.5, 6.0]
    d = np.subtract(b, a)
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert mean_difference(a, b) == pytest.approx((d.mean(), d.mean() - half, d.mean() + half))
    assert relative_change(a, b)[0] == pytest.approx(d.mean() / np.mean(a))
    assert relative_change([0.0, 0.0], [1.0, 1.0]) is None
    welch = stats.ttest_ind([2.0, 2.5, 6.0, 1.0], a, equal_var=False)
    diff, lo, hi = mean_difference(a, [2.0, 2.5, 6.0, 1.0])
    assert (lo + hi) / 2 == pytest.approx(diff) and lo < diff < hi and welch.pvalue > 0.05


# --------------------------------------------------------------------------- the study


@pytest.fixture(scope="module")
def points_host():
    from fakes_limits import LimitsPlugin

    from genbench.plugins import make_plugin_manager

    return make_plugin_manager(extra_plugins=[("limits-fakes", LimitsPlugin)], entry_points=False)


GRID = dict(quantity=(1 / 4,), corruption=(0.5,), compute=(0.5, 2.0))


@pytest.fixture(scope="module")
def study(points_host, tmp_path_factory):
    """A smoke study of the tiny points model, inline: 5 point runs of 2 seeds (about 10 s), shared by the
    tests below, which must not change its files."""
    tmp_path = tmp_path_factory.mktemp("study")
    return limits(["tiny-points"], task="ring8", profile="smoke", out=tmp_path / "limits", seeds=(0, 1),
                  executor="inline", cache=False, host=points_host, **GRID), tmp_path


def test_smoke_study_writes_a_valid_limits_file_with_every_point(study):
    from fakes_limits import FLOPS_PER_STEP

    from genbench.schemas import validate

    result, tmp_path = study
    directory = tmp_path / "limits" / result.limits_id
    data = json.loads((directory / "limits.json").read_text())
    validate(data, "genbench.limits/1")
    assert load_limits(directory) == result and result.finished_at is not None and not result.failed
    assert set(result.runs) == {"reference", "quantity-0.25", "quality-0.5", "compute-tiny-points-0.5",
                                "compute-tiny-points-2"}
    assert result.baseline == "baseline-gaussian" and result.headline["metric"] == "high-quality"
    quantity = result.curve("quantity", "tiny-points")
    assert [p.train_examples for p in quantity] == [2500, 10000]
    assert [p.run for p in quantity] == [result.runs["quantity-0.25"], result.runs["reference"]]
    assert [p.shared for p in quantity] == [None, "reference"]
    assert [p.x for p in result.curve("quality", "baseline-gaussian")] == [0.0, 0.5]
    assert result.curve("compute", "baseline-gaussian") == []
    compute = result.curve("compute", "tiny-points")
    assert [p.steps for p in compute] == [4, None, 16] and [p.steps_reported for p in compute][2] == (16, 16)
    assert result.axes["compute"]["reference_steps"] == {"tiny-points": 8}
    # FLOPs: a known count, 128 per step
    assert result.flops["tiny-points"]["per_step"] == FLOPS_PER_STEP
    assert [p.flops for p in compute] == [4 * FLOPS_PER_STEP, 8 * FLOPS_PER_STEP, 16 * FLOPS_PER_STEP]
    # the scored n and the floor are the same at every point
    for metric in ("high-quality", "copy-ct"):
        assert len({(p.quality[metric]["n"], p.quality[metric]["floor"]) for p in result.points}) == 1
    # a subset point is keyed apart from the reference: its numbers are not the full-data ones
    sub = next(p for p in quantity if p.x == 0.25)
    assert sub.quality["high-quality"]["key"]["profile"] == "smoke, train 1/4"
    assert next(p for p in result.points if p.axis == "quality" and p.x == 0.5).quality["knn-kl"]["key"]["profile"] \
        == "smoke, 50% corrupted"
    # what the plugin trained on is recorded with each seed
    from genbench.results import load_run

    run = load_run(directory / result.runs["quantity-0.25"])
    assert run.config["train_fraction"] == 0.25
    assert run.jobs[0].seed_results[0].train["data"]["examples"] == 2500
    texts = " ".join(s["text"] for s in result.statements)
    assert "baseline-gaussian" in texts and "Doubling tiny-points's training steps from S = 8 to 16" in texts
    for name in ("limits.md", "limits-quantity.png", "limits-quality.png", "limits-compute.png"):
        assert (directory / name).stat().st_size > 100
    md = (directory / "limits.md").read_text()
    assert "## Data quantity" in md and "2,500 (1/4)" in md and "| copy-ct →0 | copy-rate ↓ |" in md
    assert "2 training seeds per point" in md


def test_zero_corruption_point_reproduces_an_ordinary_run_exactly(study, points_host, tmp_path):
    result, _ = study
    ordinary = genbench.run(["tiny-points", "baseline-gaussian"], tasks=["ring8"], profile="smoke", seeds=[0, 1],
                            out=tmp_path / "runs", baselines=False, timing=False, executor="inline", cache=False,
                            host=points_host)
    for model in ("tiny-points", "baseline-gaussian"):
        zero = next(p for p in result.curve("quality", model) if p.x == 0.0)
        job = next(j for j in ordinary.jobs if j.model == model)
        assert zero.shared == "reference" and set(zero.quality) == set(job.quality)
        for name, mv in job.quality.items():
            assert zero.quality[name]["per_seed"] == list(mv.per_seed), (model, name)
            assert zero.quality[name]["key"] == dict(mv.key), (model, name)


def test_resume_runs_only_the_missing_points(study, points_host, tmp_path):
    import shutil

    result, study_path = study
    directory = tmp_path / result.limits_id
    shutil.copytree(study_path / "limits" / result.limits_id, directory)  # point runs are named relative to it
    data = json.loads((directory / "limits.json").read_text())
    del data["runs"]["quality-0.5"]
    data["finished_at"] = None
    (directory / "limits.json").write_text(json.dumps(data))
    before = set((directory / "runs").iterdir())
    again = limits([], task="", resume=directory, host=points_host)
    new = set((directory / "runs").iterdir()) - before
    assert len(new) == 1 and again.runs["quality-0.5"] == f"runs/{new.pop().name}"
    assert again.finished_at is not None and len(again.points) == len(result.points)
    assert again.runs["reference"] == result.runs["reference"]


def test_statements_say_how_many_examples_a_model_needs():
    def point(x, model, values, n):
        return {"axis": "quantity", "x": x, "model": model, "role": "baseline" if model == "b" else "model",
                "status": "ok", "train_examples": n,
                "quality": {"fd": {"value": float(np.mean(values)), "unit": "", "higher_is_better": False,
                                   "per_seed": values}}}

    pts = [point(0.25, "m", [50.0, 52.0, 51.0], 100), point(0.25, "b", [40.0, 41.0, 40.5], 100),
           point(0.5, "m", [30.0, 31.0, 29.0], 200), point(0.5, "b", [40.0, 40.2, 40.4], 200),
           point(1.0, "m", [20.0, 21.0, 19.5], 400), point(1.0, "b", [40.0, 40.1, 40.3], 400)]
    result = LimitsResult.from_dict({
        "schema": "genbench.limits/1", "limits_id": "x", "genbench_version": "0", "started_at": "", "finished_at": None,
        "command": "", "task": "digits", "task_kind": "image", "profile": "smoke", "seeds": [0, 1, 2], "device": "cpu",
        "models": ["m"], "baseline": "b", "n_train": 400, "headline": {"metric": "fd", "higher_is_better": False},
        "axes": {"quantity": {"values": [0.25, 0.5, 1.0]}, "quality": {"values": [0.0]}, "compute": {"values": [1.0]}},
        "settings": {}, "environment": {}, "runs": {}, "points": pts})
    needed = next(s for s in make_statements(result) if s.get("needed"))
    assert needed["needed"] == 200
    assert "needs more than 100 and at most 200 training images to beat b on fd" in needed["text"]


def test_limits_refuses_bad_input_in_one_line(points_host, tmp_path):
    with pytest.raises(ConfigError, match="cannot run on 'digits'"):
        limits(["tiny-points"], task="digits", host=points_host, out=tmp_path)
    with pytest.raises(ConfigError, match="--fractions value 2"):
        limits(["tiny-points"], task="ring8", quantity=(2.0,), host=points_host, out=tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "limits.json").write_text(json.dumps({"schema": "genbench.limits/1", "task": 3}))
    with pytest.raises(ResultsError, match="does not match schema genbench.limits/1"):
        load_limits(tmp_path / "bad")


def test_cli_limits_needs_a_task_and_parses_fractions():
    from click.testing import CliRunner

    from genbench.cli import cli
    from genbench.limits import parse_values

    out = CliRunner().invoke(cli, ["limits", "gan-mlp"])
    assert out.exit_code == 1 and "--task" in out.output
    assert parse_values("1/16,0.5", "--fractions", ()) == (0.0625, 0.5)
    with pytest.raises(ConfigError, match="--compute"):
        parse_values("x", "--compute", ())
    out = CliRunner().invoke(cli, ["limits", "gan-mlp", "--task", "ring8", "--fractions", "2"])
    assert out.exit_code == 1 and "Invalid --fractions value 2" in out.output


@pytest.mark.slow
@pytest.mark.integration
def test_cli_smoke_study_of_the_real_gan_covers_every_point(tmp_path):
    """The full default grid on a real plugin (its entry point), process isolation, through the command line."""
    from click.testing import CliRunner

    from genbench.cli import cli
    from genbench.schemas import validate

    out = CliRunner().invoke(cli, ["limits", "gan-mlp", "--task", "ring8", "--profile", "smoke", "--out", str(tmp_path),
                                   "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    validate(data, "genbench.limits/1")
    assert len(data["runs"]) == 1 + 4 + 3 + 3 and data["axes"]["compute"]["reference_steps"] == {"gan-mlp": 300}
    assert data["flops"]["gan-mlp"]["per_step"] > 0 and data["finished_at"]
    assert all(p["status"] == "ok" for p in data["points"])
    assert load_limits(tmp_path / data["limits_id"]).to_dict() == data


# --------------------------------------------------------------------------- a user's mistakes and interruptions


SMALL = dict(task="ring8", profile="smoke", seeds=(0,), executor="inline", cache=False, quantity=(1 / 4,),
             corruption=(), compute=())


def test_bad_input_is_refused_before_anything_is_written(points_host, tmp_path):
    out = tmp_path / "out"
    cases = [(dict(quantity=(1e-9,)), "--fractions value 1e-09: it keeps 1 of the 10,000 training examples, and a point "
                                      "needs at least 8: one per class"),
             (dict(compute=(1e6,)), "--compute value 1e+06: use values above 0 and at most 16"),
             (dict(out="/dev/null/x"), "Cannot use --out /dev/null/x: /dev/null is not a directory"),
             (dict(models=["tiny-decliner"]), "Nothing to study: tiny-decliner declines 'ring8': it is a test model")]
    for change, message in cases:
        args = {**SMALL, "out": out, "host": points_host, "models": ["tiny-points"], **change}
        with pytest.raises(ConfigError) as info:
            limits(args.pop("models"), **args)
        assert message in str(info.value) and "\n" not in str(info.value)
        assert not out.exists()
    from genbench.errors import DataUnavailableError

    with pytest.raises(DataUnavailableError, match="MNIST files not found"):
        limits(["baseline-gaussian"], **{**SMALL, "task": "mnist"}, data_dir=tmp_path, out=out, host=points_host)
    assert not out.exists()


def test_the_minimum_a_quantity_point_keeps_is_one_per_class():
    from genbench.limits import _check_fractions

    d = load_digits()  # 1,347 training images of 10 classes: 1/135 keeps 10, 1/140 keeps 10, 1/150 keeps 9
    _check_fractions([10 / 1347], d, "image")
    with pytest.raises(ConfigError, match="keeps 9 of the 1,347 training examples, and a point needs at least 10"):
        _check_fractions([9 / 1347], d, "image")
    text = load_text()
    with pytest.raises(ConfigError, match="blocks of 256 bytes, and a point needs at least 2: two for the baseline"):
        _check_fractions([1e-9], text, "text")


def test_duplicates_run_once_with_a_note(points_host, tmp_path):
    from genbench.limits import _axis

    notes = []
    assert _axis([1 / 16, 0.0625, 0.5], 1.0, lambda v: True, "--fractions", "", notes.append) == [0.0625, 0.5, 1.0]
    assert notes == ["note: --fractions: 0.0625 given more than once; each runs once"]


def test_an_interrupted_study_says_how_to_resume_it_and_resume_finishes_the_stopped_point(points_host, tmp_path,
                                                                                          monkeypatch):
    """Stopped while a point runs (the runner's RunInterrupted, as Ctrl-C or SIGTERM end it), then by SIGTERM
    outside any run: each time one line that names 'genbench limits --resume', never 'genbench run --resume';
    the stopped point's run is the study's and --resume finishes it instead of leaving it behind."""
    import os
    import signal
    import time

    import genbench.limits as lim
    import genbench.runner as runner
    from genbench.errors import RunInterrupted

    real, calls = runner.run_jobs, []

    def stop_the_second_point(result, run_dir, *args, **kwargs):
        calls.append(run_dir)
        if len(calls) == 2:
            raise RunInterrupted("Interrupted (SIGTERM): …; finish the run with: genbench run --resume …", None,
                                 run_dir, "SIGTERM")
        return real(result, run_dir, *args, **kwargs)

    monkeypatch.setattr(runner, "run_jobs", stop_the_second_point)
    with pytest.raises(RunInterrupted) as info:
        limits(["tiny-points"], **SMALL, out=tmp_path, host=points_host)
    (directory,) = tmp_path.iterdir()
    assert str(info.value) == (f"Interrupted (SIGTERM) during point quantity-0.25: every finished point is kept in "
                               f"{directory / 'limits.json'}; finish the study with: genbench limits --resume {directory}")
    runs = json.loads((directory / "limits.json").read_text())["runs"]
    assert {p.name for p in (directory / "runs").iterdir()} == {v.split("/")[1] for v in runs.values()}  # no orphan
    monkeypatch.setattr(runner, "run_jobs", real)

    def sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)

    monkeypatch.setattr(lim, "_augmentation", sigterm)
    with pytest.raises(RunInterrupted, match=r"^Interrupted \(SIGTERM\) during the augmentation gain: .*--resume"):
        limits([], resume=directory, host=points_host)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the study's handler is gone with it
    monkeypatch.undo()

    done = limits([], resume=directory, host=points_host, jobs=1)
    assert done.finished_at and done.runs == runs and not done.failed
    assert {p.name for p in (directory / "runs").iterdir()} == {v.split("/")[1] for v in runs.values()}
    # a finished study is left as it is
    before = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    messages = []
    again = limits([], resume=directory, host=points_host, echo=messages.append)
    assert again == done and {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == before
    assert messages == [f"limits {done.limits_id} finished at {done.finished_at}: nothing to resume "
                        f"({directory / 'limits.json'})"]


def test_resume_refuses_options_that_contradict_the_stored_study(study, points_host):
    result, tmp_path = study
    directory = tmp_path / "limits" / result.limits_id
    with pytest.raises(ConfigError) as info:
        limits([], resume=directory, host=points_host, seeds=(5,), quantity=(0.5,), jobs=1)
    assert ("--seeds 5 contradicts its stored seeds 0,1; --fractions 0.5 contradicts its stored fractions 0.25,1. "
            "Drop them") in str(info.value)
    assert "only --jobs may change" in str(info.value)
    # the command line checks what was typed, even an option's default value (the API sees only non-defaults,
    # unless given options=)
    from click.testing import CliRunner

    from genbench.cli import cli

    out = CliRunner().invoke(cli, ["limits", "--resume", str(directory), "--profile", "default"])
    assert out.exit_code == 1 and "--profile default contradicts its stored profile smoke" in out.output


def test_cli_limits_checks_numbers_as_genbench_run_does():
    from click.testing import CliRunner

    from genbench.cli import cli

    for option, value, message in (("--timeout", "0", "Invalid --timeout 0.0"), ("--timeout", "abc", "give a number"),
                                   ("--timeout", "inf", "Invalid --timeout inf"), ("--jobs", "0", "Invalid --jobs 0"),
                                   ("--jobs", "abc", "give a whole number"), ("--jobs", "100000", "from 1 to 1024")):
        out = CliRunner().invoke(cli, ["limits", "gan-mlp", "--task", "ring8", option, value])
        run = CliRunner().invoke(cli, ["run", "gan-mlp", "--task", "ring8", option, value])
        assert (out.exit_code, run.exit_code) == (1, 1) and message in out.output and message in run.output, option
        assert out.output.startswith("error: ") and len(out.output.strip().splitlines()) == 1


def test_statements_say_what_the_test_found_with_its_p_values():
    def point(x, model, values, n, axis="quantity"):
        return {"axis": axis, "x": x, "model": model, "role": "baseline" if model == "b" else "model",
                "status": "ok", "train_examples": n,
                "quality": {"fd": {"value": float(np.mean(values)), "unit": "", "higher_is_better": False,
                                   "per_seed": values}}}

    pts = [point(0.5, "m", [50.0, 44.0], 1), point(0.5, "b", [40.0, 41.0], 1),
           point(1.0, "m", [39.0, 42.0], 2), point(1.0, "b", [40.0, 40.5], 2)]
    result = LimitsResult.from_dict({
        "schema": "genbench.limits/1", "limits_id": "x", "genbench_version": "0", "started_at": "", "finished_at": None,
        "command": "", "task": "ring8", "task_kind": "points", "profile": "smoke", "seeds": [0, 1], "device": "cpu",
        "models": ["m"], "baseline": "b", "n_train": 2, "headline": {"metric": "fd", "higher_is_better": False},
        "axes": {"quantity": {"values": [0.5, 1.0]}, "quality": {"values": [0.0]}, "compute": {"values": [1.0]}},
        "settings": {}, "environment": {}, "runs": {}, "points": pts,
        "augmentation": [{"model": "m", "role": "model", "k": 1, "generated": 500, "training_seeds": 1,
                          "classifier_seeds": 1, "real_accuracy": 0.6, "augmented_accuracy": 0.3, "gain": -0.313,
                          "gain_stderr": 0.014}]})
    texts = [s["text"] for s in make_statements(result)]
    p_big = paired_better([39.0, 42.0], [40.0, 40.5], False)[1]
    p_small = paired_better([50.0, 44.0], [40.0, 41.0], False)[1]
    assert texts[0].startswith("m's fd (lower is better) goes from 47 ± 38 with 1 training point to")
    assert ("m is not significantly better than b on fd at any training-set size up to 2 training points" in texts[1]
            and "one-sided paired t-test of m better than b over 2 seeds at each size: p < 0.05 passes; no size "
            f"passes: p = {p_small:.2g} at 1, {p_big:.2g} at 2)." in texts[1]), texts[1]
    assert "p < 0.05 at each size" not in texts[1]
    assert "from 60.0% to 30.0% (-31.3 pp ± 1.4 pp standard error over 1 classifier draw × 1 training seed)" in texts[2]
