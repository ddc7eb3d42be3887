"""``genbench score`` / ``genbench.score``: samples made elsewhere, scored by a run's own metric code."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import genbench
from genbench.cli import cli
from genbench.data.digits import load_digits
from genbench.metrics.builtin import _subset
from genbench.metrics.text_ngrams import byte_ngram_counts, byte_ngram_divergence, jensen_shannon_bits


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def host():
    from genbench.plugins import make_plugin_manager

    return make_plugin_manager(entry_points=False)


# --------------------------------------------------------------------------- the text measure, by hand


def H(p):
    p = np.asarray([v for v in p if v > 0], dtype=float)
    return float(-(p * np.log2(p)).sum())


def test_byte_ngram_divergence_matches_a_hand_computation():
    # order 1: P = (a 2/3, b 1/3), Q = (a 1/3, b 2/3), M = (1/2, 1/2): JSD = 1 - H(1/3, 2/3)
    # order 2: P = {aa, ab} halves, Q = {ab, bb} halves, M = (1/4, 1/2, 1/4): JSD = 1.5 - 1 = 0.5
    jsd1 = 1 - H([1 / 3, 2 / 3])
    value, per_order = byte_ngram_divergence(np.frombuffer(b"aab", np.uint8), np.frombuffer(b"abb", np.uint8),
                                             orders=(1, 2))
    assert per_order[1] == pytest.approx(jsd1, abs=1e-12) and jsd1 == pytest.approx(0.081704, abs=1e-6)
    assert per_order[2] == pytest.approx(0.5, abs=1e-12)
    assert value == pytest.approx((jsd1 + 0.5) / 2, abs=1e-12)


def test_ngrams_stay_inside_their_segment_and_jsd_is_bounded():
    codes, counts = byte_ngram_counts(np.array([[97, 98], [98, 97]], np.uint8), 2)  # "ab", "ba": no "bb"
    assert sorted(codes.tolist()) == [97 * 256 + 98, 98 * 256 + 97] and counts.tolist() == [1, 1]
    same = byte_ngram_counts(np.frombuffer(b"hello world", np.uint8), 3)
    other = byte_ngram_counts(np.frombuffer(b"XYZXYZXYZ", np.uint8), 3)
    assert jensen_shannon_bits(same, same) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon_bits(same, other) == pytest.approx(1.0, abs=1e-12)  # disjoint supports: 1 bit


# --------------------------------------------------------------------------- arrays


def test_a_replayed_training_subset_scores_its_floor_beside_the_baselines(digits, tmp_path):
    n = 300
    replay = digits.train_x[_subset(len(digits.train_x), n)]  # exactly the floor's training subset
    np.save(tmp_path / "replay.npy", replay)
    result = genbench.score(str(tmp_path / "replay.npy"), task="digits", out=tmp_path / "runs", host=host())
    run = genbench.load_run(next((tmp_path / "runs").iterdir()))  # schema-validated on reading
    assert run.to_dict() == result.to_dict()
    row = run.jobs[0]
    assert (row.model, row.family, row.status, row.train, row.export) == ("replay", "samples", "ok", None, None)
    assert row.timing == {"status": "off", "reason": "samples supplied: no model to time"}
    assert row.performance == ()
    for name in ("kid", "precision", "recall", "density", "coverage"):
        assert row.quality[name].value == pytest.approx(row.quality[name].floor, abs=1e-9), name
    fd = row.quality["fd"]  # the FD floor is the mean over 5 training subsets: one of them lands in its interval
    assert fd.floor_interval[0] <= fd.value <= fd.floor_interval[1] and "5 training subsets" in fd.floor_of
    assert fd.n == n and fd.key["n"] == n and fd.key["task"] == "digits" and fd.floor > 0
    assert run.config["samples"]["n"] == n and run.config["samples"]["format"] == "npy"
    baselines = {j.model: j for j in run.jobs[1:]}
    assert set(baselines) == {"baseline-gaussian", "baseline-train-copy"}
    for j in baselines.values():
        assert j.status == "ok" and j.quality["fd"].n == n and j.quality["fd"].floor == pytest.approx(fd.floor)
        assert j.timing["status"] == "off"
    assert baselines["baseline-gaussian"].quality["fd"].value > 10 * fd.value
    assert (tmp_path / "runs" / run.run_id / "report.md").read_text().count("`replay`") >= 1


def test_npz_and_image_layouts_and_uint8_give_the_same_numbers(digits, tmp_path):
    x = np.round(digits.test_x[:120] * 255) / 255  # exactly representable as uint8
    np.save(tmp_path / "a.npy", x.astype(np.float32))
    np.savez(tmp_path / "b.npz", x[:, 0].astype(np.float32))  # [N, H, W], the one array of the file
    np.savez(tmp_path / "c.npz", other=np.zeros(3), samples=np.round(x * 255).astype(np.uint8))
    fds = []
    for name in ("a.npy", "b.npz", "c.npz"):
        r = genbench.score(tmp_path / name, task="digits", out=tmp_path / "runs", baselines=False, host=host())
        assert [j.model for j in r.jobs] == [name.split(".")[0]]
        fds.append(r.jobs[0].quality["fd"].value)
    assert fds[0] == pytest.approx(fds[1], abs=1e-9) and fds[0] == pytest.approx(fds[2], abs=1e-5)
    assert r.config["samples"]["mapped"] == "uint8 0-255 mapped to [0, 1]"


def test_points_arrays_score_the_mixture_metrics(tmp_path):
    from genbench.data.points import load_ring8

    data = load_ring8()
    r = genbench.score(data.test_x[:500], task="ring8", out=tmp_path, baselines=False, host=host(), name="held-out")
    row = r.jobs[0]
    assert row.model == "held-out" and row.quality["modes-covered"].value == 8
    assert row.quality["high-quality"].value > 0.95 and row.quality["knn-kl"].n == 500


def test_the_documented_png_recipe_reads_back_to_the_nearest_level(digits, tmp_path):
    """docs/score.md's recipe used to be plt.imsave(cmap='gray'), a colour map that moved pixels by 1/255."""
    import re
    from pathlib import Path

    import PIL.Image  # noqa: F401 - the recipe's name for it

    from genbench.score_samples import PNG_RECIPE, load_samples

    docs = (Path(__file__).resolve().parents[1] / "docs" / "score.md").read_text(encoding="utf-8")
    assert PNG_RECIPE in docs and "write each image `x` in [0, 1] with `" + PNG_RECIPE + "`" in docs
    folder = tmp_path / "pngs"
    folder.mkdir()
    x = digits.test_x[:60]
    for i, img in enumerate(x):
        exec(PNG_RECIPE, {"PIL": PIL, "np": np, "x": img[0], "path": folder / f"{i:03d}.png"})
    loaded, _ = load_samples(folder, digits)
    assert np.array_equal(loaded, np.round(x * 255).astype(np.float32) / 255)  # exactly the nearest 8-bit level
    assert np.abs(loaded - x).max() <= 0.5 / 255 + 1e-6
    assert re.search(r"moves pixels by up to 1/255", docs)


def test_a_png_folder_is_read_as_greyscale_images_of_the_task(digits, tmp_path, builtins_only):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = tmp_path / "pngs"
    folder.mkdir()
    x = digits.test_x[:60]
    for i, img in enumerate(x):
        plt.imsave(folder / f"{i:03d}.png", img[0], cmap="gray", vmin=0, vmax=1)
    (folder / "notes.txt").write_text("ignored")
    from genbench.score_samples import load_samples

    loaded, info = load_samples(folder, digits)
    assert loaded.shape == (60, 1, 8, 8) and info["format"] == "png"
    assert np.abs(loaded - x).max() <= 1 / 255 + 1e-6  # 8-bit PNG levels
    r = invoke("score", folder, "--task", "digits", "--out", tmp_path / "runs", "--no-baselines")
    assert r.exit_code == 0, r.output
    assert "scored  pngs: fd" in r.output and "(floor" in r.output
    run = genbench.load_run(next((tmp_path / "runs").iterdir()))
    assert run.command.startswith("genbench score") and run.jobs[0].quality["fd"].n == 60
    # the console line shows every metric the row has, as a run's does (not three of thirteen)
    (line,) = [line for line in r.stdout.splitlines() if line.startswith("  scored  pngs: ")]
    assert len(run.jobs[0].quality) >= 10
    for name, metric in run.jobs[0].quality.items():
        if metric.value is not None:
            assert f" {name} {metric.value:.4g}" in line or f" {name} failed" in line, (name, line)
        else:  # said for what it is: failed, not computed (too few samples, no classifier) or not defined
            assert any(f" {name} {how}" in line for how in ("failed", "not computed", "not defined")), (name, line)


# --------------------------------------------------------------------------- text


def test_text_samples_get_the_ngram_measure_beside_the_ngram_baselines(tmp_path, builtins_only):
    from genbench.data.text import load_text
    from genbench.metrics.text_ngrams import floor_chunk

    data = load_text()
    real = floor_chunk(data.train_x, (1, 3000))  # the floor's own training chunk: scores the floor exactly
    (tmp_path / "gen.txt").write_bytes(bytes(real[0]))
    r = invoke("score", tmp_path / "gen.txt", "--task", "text", "--out", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    run = genbench.load_run(next((tmp_path / "runs").iterdir()))
    rows = {j.model: j for j in run.jobs}
    assert set(rows) == {"gen", "baseline-unigram", "baseline-bigram"}
    jsd = rows["gen"].quality["byte-ngram-jsd"]
    assert jsd.value == pytest.approx(jsd.floor, abs=1e-12) and jsd.n == 3000 and "bpb" not in rows["gen"].quality
    by_hand, _ = byte_ngram_divergence(real, data.test_x)
    assert jsd.value == pytest.approx(by_hand, abs=1e-12)
    uni, bi = (rows[m].quality for m in ("baseline-unigram", "baseline-bigram"))
    assert uni["byte-ngram-jsd"].n == bi["byte-ngram-jsd"].n == 3000 and "bpb" in uni
    # a bigram model's text is closer to real text than a unigram model's, and neither reaches the floor
    assert jsd.floor < bi["byte-ngram-jsd"].value < uni["byte-ngram-jsd"].value


# --------------------------------------------------------------------------- bad input: one line, exit 1


def _bad_inputs(tmp_path, digits):
    x = digits.test_x[:100]
    nan = x.copy()
    nan[3, 0, 2, 2] = np.nan
    cases = {
        "shape.npy": (np.zeros((100, 3, 8, 8), np.float32), "has shape [100, 3, 8, 8]; task 'digits' takes [N, 1, 8, 8]"),
        "nan.npy": (nan, "1 non-finite values (NaN/inf) in 1 samples"),
        "tanh.npy": (x * 2 - 1, "outside task 'digits's range [0, 1]: a tanh output? rescale with (x + 1) / 2"),
        "ints.npy": (np.zeros((100, 1, 8, 8), np.int64), "has dtype int64"),
        "few.npy": (x[:10], "holds 10 samples; give at least 50"),
    }
    for name, (array, _) in cases.items():
        np.save(tmp_path / name, array)
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    cases["broken.npy"] = (None, "Cannot read")
    (tmp_path / "empty").mkdir()
    cases["empty"] = (None, "holds no .png files")
    cases["missing.npy"] = (None, "does not exist")
    (tmp_path / "samples.txt").write_text("hello")
    cases["samples.txt"] = (None, "give an .npy or .npz array")
    (tmp_path / "text.npy").write_text("hello")  # not pickled data: not an .npy file at all
    cases["text.npy"] = (None, "text.npy is not a valid .npy file (no .npy header); write it with np.save.")
    (tmp_path / "text.npz").write_text("hello")
    cases["text.npz"] = (None, "text.npz is not a valid .npz file (not a zip archive); write it with np.savez.")
    # just outside [0, 1] (rounding, an overshoot): clip, not the 0-255 hint; real 0-255 floats: divide by 255
    np.save(tmp_path / "overshoot.npy", np.clip(x, 0.001, 1.0) + 0.001)
    cases["overshoot.npy"] = (None, "outside task 'digits's range [0, 1]: slightly outside; clip them to the range "
                                    "(np.clip(x, 0, 1))")
    np.save(tmp_path / "bytes.npy", x * 255)
    cases["bytes.npy"] = (None, "0-255 pixel values? divide by 255")
    return {name: words for name, (_, words) in cases.items()}


def test_bad_samples_fail_in_one_line_and_leave_no_run(digits, tmp_path, builtins_only):
    for name, words in _bad_inputs(tmp_path, digits).items():
        r = invoke("score", tmp_path / name, "--task", "digits", "--out", tmp_path / "runs")
        lines = r.output.strip().splitlines()
        assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), (name, r.output)
        assert words in lines[0], (name, lines[0])
    assert not (tmp_path / "runs").exists()


def test_short_text_and_a_colour_png_are_refused(digits, tmp_path, builtins_only):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "short.txt").write_bytes(b"too short")
    r = invoke("score", tmp_path / "short.txt", "--task", "text", "--out", tmp_path)
    assert r.exit_code == 1 and "has 9 bytes; give at least 100" in r.output
    folder = tmp_path / "colour"
    folder.mkdir()
    plt.imsave(folder / "0.png", digits.test_x[0, 0])  # viridis: a colour image
    r = invoke("score", folder, "--task", "digits", "--out", tmp_path)
    assert r.exit_code == 1 and "is a colour image" in r.output and "PIL.Image.fromarray(np.round(np.clip(x, 0, 1) * 255)" in r.output


def test_a_str_is_a_path_and_text_in_a_str_is_refused_saying_pass_bytes(tmp_path):
    from genbench.errors import ConfigError, DataError

    for text in ("some generated text", "some generated text " * 50, "line one\nline two"):
        with pytest.raises(ValueError, match=r"is not a file: a str is read as a path; to score text held in a str, "
                                             r"pass its bytes \(text.encode\('utf-8'\)\)") as caught:
            genbench.score(text, task="text", out=tmp_path, host=host())
        assert isinstance(caught.value, ConfigError) and "\n" not in str(caught.value)
    with pytest.raises(DataError, match="does not exist"):  # an image task: no OSError either
        genbench.score("x" * 5000 + ".npy", task="digits", out=tmp_path, host=host())
    assert list(tmp_path.iterdir()) == []


def test_more_samples_than_the_training_split_are_capped_and_said(digits, tmp_path):
    x = np.concatenate([digits.test_x] * 4)[:1400]  # digits has 1,347 training images
    r = genbench.score(x, task="digits", out=tmp_path, baselines=False, host=host())
    row = r.jobs[0]
    assert row.quality["fd"].n == 1347 and r.config["samples"]["supplied"] == 1400
    assert any("scored the first 1,347 of 1,400 samples" in w for w in row.warnings)
    assert math.isfinite(row.quality["fd"].value)
    assert json.loads((tmp_path / r.run_id / "run.json").read_text())["schema"] == "genbench.run/2"


def test_a_row_whose_every_metric_fails_is_failed_with_exit_1(digits, tmp_path, builtins_only, monkeypatch):
    import genbench.metrics.builtin as builtin
    import genbench.metrics.memorization as memorization
    import genbench.metrics.synthetic as synthetic

    def broken(self, ctx):
        raise RuntimeError("extractor weights missing")

    for cls in (builtin.FrechetDistance, builtin.KernelInceptionDistance, builtin._PairMetric, builtin.ModesCovered,
                builtin.ClassHistogramKL, builtin.ClassifierScore, memorization.DataCopyingCT, memorization.CopyRate,
                synthetic.TrainOnSyntheticAccuracy):
        monkeypatch.setattr(cls, "__call__", broken)
    np.save(tmp_path / "x.npy", digits.test_x[:60])
    r = invoke("score", tmp_path / "x.npy", "--task", "digits", "--no-baselines", "--out", tmp_path / "runs")
    assert r.exit_code == 1 and "FAILED  x in quality:" in r.output and "extractor weights missing" in r.output
    run = genbench.load_run(next((tmp_path / "runs").iterdir()))
    assert run.jobs[0].status == "failed" and run.jobs[0].error.phase == "quality"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_score_says_so_in_one_line_and_leaves_no_half_written_run(digits, tmp_path, signum):
    """Ctrl-C or SIGTERM while the samples are scored: exit 1, one line, and no run directory whose run.json has
    no rows and no finished_at (score has nothing to resume)."""
    np.save(tmp_path / "x.npy", digits.test_x[:60])
    script = tmp_path / "score.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        import genbench.harness as harness
        from genbench.cli import main

        def held(*args, **kwargs):  # the metrics take a while: the signal comes while they run
            print("scoring", flush=True)
            time.sleep(60)

        harness.score = held
        main(["score", {str(tmp_path / "x.npy")!r}, "--task", "digits", "--out", {str(tmp_path / "runs")!r}])
    """))
    env = {**os.environ, "GENBENCH_DISABLE_PLUGINS": "gan,vae,autoregressive,example"}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout.readline().strip().endswith("with baselines")  # the run directory is made
        assert proc.stdout.readline().strip() == "scoring"
        assert len(list((tmp_path / "runs").iterdir())) == 1
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    name = signal.Signals(signum).name
    assert proc.returncode == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: Interrupted ({name}): genbench score keeps no partial run; "
                                                   "its unfinished run directory "), err
    assert lines[0].endswith(" was removed. Run it again.") and "Aborted" not in err
    assert list((tmp_path / "runs").iterdir()) == []


def test_class_metrics_floors_are_a_training_subset_of_the_same_n(tmp_path, builtins_only):
    """modes and class-kl showed no floor, and classifier-score's was the test split's own score labelled "real
    data at n": each is now a fixed training subset of the samples' n, scored the same way (checked here
    against the classifier head's outputs recomputed apart, with scipy's KL)."""
    from scipy.special import rel_entr

    from genbench.config import RunConfig
    from genbench.harness import load_task_state
    from genbench.metrics.builtin import _subset
    from genbench.plugins import make_plugin_manager

    state = load_task_state(make_plugin_manager().registry.dataset("digits"), RunConfig(profile="default"))
    d = state.dataset
    n = 300
    r = genbench.score(d.test_x[:n], task="digits", out=tmp_path, baselines=False, name="held-out")
    q = r.jobs[0].quality

    def classes(x):
        logits = state.extractor(x)[1]
        p = np.exp(logits - logits.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    train = classes(d.train_x[_subset(len(d.train_x), n)])
    test = np.bincount(classes(d.test_x).argmax(1), minlength=10) / len(d.test_x)
    hist = np.bincount(train.argmax(1), minlength=10) / n
    marginal = train.mean(0)
    score = float(np.exp(np.mean(np.sum(rel_entr(train, marginal), axis=1))))
    assert q["modes"].floor == len(np.unique(train.argmax(1)))
    assert q["class-kl"].floor == pytest.approx(float(np.sum(rel_entr(hist, test))), rel=1e-6)
    assert q["classifier-score"].floor == pytest.approx(score, rel=1e-5)
    assert all("training subset of the same n" in q[m].note for m in ("modes", "class-kl", "classifier-score"))
