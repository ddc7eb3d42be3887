"""Bundle validation and job isolation: bad graphs fail their own job with a clear message."""

import json

import pytest

import genbench


def _run(host, models, tmp_path):
    return genbench.run(models, tasks=["digits"], profile="smoke", host=host, out=tmp_path, baselines=False,
                        device="cpu")


def _job(result, model):
    return next(j for j in result.jobs if j.model == model)


def test_good_fake_model_passes_every_check(fake_host, tmp_path):
    result = _run(fake_host, ["tiny-ok"], tmp_path)
    job = _job(result, "tiny-ok")
    assert job.status == "ok", job.error
    graph = job.export["graphs"]["sample"]
    assert graph["parity_max_abs_diff"] < 1e-5
    assert graph["checked_batch_sizes"] == [1, 3, 8]
    assert job.quality["fd"].value > 0 and job.quality["fd"].floor > 0
    assert {p.runtime for p in job.performance} == {"onnxruntime", "torch-eager"}
    assert {p.batch_size for p in job.performance} == {1, 64}  # the smoke sweep


@pytest.mark.parametrize("model, phase, words", [
    ("tiny-wrong-shape", "validate", ["output 'x'", "rank 2", "[batch, 1, 8, 8]"]),
    ("tiny-nan", "validate", ["non-finite"]),
    ("tiny-parity", "validate", ["disagrees with torch_module", "max abs difference"]),
    ("tiny-fixed-batch", "validate", ["fixed to 4", "symbolic"]),
    ("tiny-raises", "train", ["RuntimeError: boom in train"]),
    ("tiny-not-a-model", "load", ["not a subclass of genbench.GenerativeModel"]),
])
def test_bad_model_fails_its_own_job_with_a_clear_message(fake_host, tmp_path, model, phase, words):
    result = _run(fake_host, [model, "tiny-ok"], tmp_path)
    job = _job(result, model)
    assert job.status == "failed"
    assert job.error.phase == phase
    for w in words:
        assert w in job.error.message, job.error.message
    assert "\n" not in job.error.message
    # the other job of the run is untouched, and the failure is on disk
    assert _job(result, "tiny-ok").status == "ok"
    saved = json.loads((tmp_path / result.run_id / "run.json").read_text())
    assert {j["model"]: j["status"] for j in saved["jobs"]} == {model: "failed", "tiny-ok": "ok"}
    assert job.files["error"] == f"jobs/{model}__digits__cpu/seed-0/error.txt"
    assert (tmp_path / result.run_id / job.files["error"]).is_file()


def test_graph_path_escaping_the_bundle_is_refused(tmp_path):
    from genbench.errors import BundleError
    from genbench.runtime.validate import graph_path

    bundle = genbench.OnnxBundle(tmp_path / "b", (genbench.GraphSpec(
        "sample", "../evil.onnx", (genbench.TensorSpec("z", ("batch", 4), source="normal"),),
        (genbench.TensorSpec("x", ("batch", 64)),)),))
    (tmp_path / "evil.onnx").write_bytes(b"x")
    with pytest.raises(BundleError, match="leaves the bundle directory"):
        graph_path(bundle, bundle.graphs[0])


def test_oversized_graph_is_refused_before_a_session(tmp_path):
    from fakes import _weights, write_graph

    from genbench.errors import BundleError
    from genbench.runtime.validate import check_graph_file

    path = tmp_path / "g.onnx"
    write_graph(path, _weights())
    spec = genbench.GraphSpec("sample", "g.onnx", (genbench.TensorSpec("z", ("batch", 4), source="normal"),),
                              (genbench.TensorSpec("x", ("batch", 1, 8, 8)),))
    with pytest.raises(BundleError, match="over the"):
        check_graph_file(path, spec, max_bytes=100)


def test_checker_rejects_a_corrupt_graph(tmp_path):
    from genbench.errors import BundleError
    from genbench.runtime.validate import check_graph_file

    path = tmp_path / "g.onnx"
    path.write_bytes(b"not an onnx file")
    spec = genbench.GraphSpec("sample", "g.onnx", (genbench.TensorSpec("z", ("batch", 4), source="normal"),),
                              (genbench.TensorSpec("x", ("batch", 64)),))
    with pytest.raises(BundleError, match="onnx.checker"):
        check_graph_file(path, spec)


@pytest.mark.parametrize("model, phase, words", [
    ("tiny-nan-range", "export", ["TensorSpec 'x': low nan must be a finite number"]),
    ("tiny-wide-range", "validate", ["declared in [-1, 1], outside task 'digits's value range [0, 1]",
                                     "(a tanh output?"]),
    ("tiny-colour", "validate", ["declared [batch, 3, 8, 8]; task 'digits' takes samples [batch, 1, 8, 8]"]),
    ("tiny-unbounded", "validate", ["has values in [", "outside task 'digits's value range [0, 1]"]),
])
def test_a_plugin_graph_whose_range_or_shape_does_not_fit_the_task_fails_its_own_job(fake_host, tmp_path, model,
                                                                                     phase, words):
    """The range check a NaN bound switched off, a range wider than the task's, a shape that is not the task's, and
    values outside the task's range that nothing declared: each fails the plugin's job before a number is made."""
    result = genbench.run([model, "tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                          baselines=False, device="cpu", timing=False)
    job = _job(result, model)
    assert (job.status, job.error.phase) == ("failed", phase), job.error
    for w in words:
        assert w in job.error.message, job.error.message
    assert job.quality == {} and _job(result, "tiny-ok").status == "ok"


def test_tensor_ranges_are_finite_ordered_plain_floats():
    import numpy as np

    from genbench.errors import SpecError

    for low, high in ((float("nan"), 1.0), (0.0, float("inf")), (True, 1.0), ("0", 1.0), (1.0, 0.0)):
        with pytest.raises(SpecError, match="finite number|is above high"):
            genbench.TensorSpec("x", ("batch", 2), low=low, high=high)
    spec = genbench.TensorSpec("x", ("batch", 2), low=np.float32(0), high=1)
    assert (spec.low, spec.high) == (0.0, 1.0) and type(spec.low) is float and type(spec.high) is float
    assert genbench.TensorSpec("x", ("batch", 2)).low is None  # None: no bound


def test_a_plugin_job_whose_every_metric_fails_is_failed_with_the_first_error(fake_host, tmp_path, monkeypatch):
    import genbench.harness as harness
    from genbench.types import MetricValue

    def nothing(task, samples, metrics, seed, likelihood, config, *rest, **kw):
        return ({"fd": MetricValue(None, "", False, error="RuntimeError: extractor weights missing"),
                 "kid": MetricValue(None, "", False, error="ValueError: shapes differ")},
                {"fd": "RuntimeError: extractor weights missing", "kid": "ValueError: shapes differ"})

    monkeypatch.setattr(harness, "score", nothing)
    result = genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                          baselines=False, device="cpu", timing=False, executor="inline")
    (job,) = result.jobs
    assert (job.status, job.error.phase, job.error.type) == ("failed", "quality", "MetricError")
    assert job.error.message == "every quality metric failed; the first, 'fd': RuntimeError: extractor weights missing"
    assert job.seed_results[0].quality["fd"].error and result.failed  # the metrics' own errors are kept
