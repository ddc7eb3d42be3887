"""Result/contract dataclasses: validation, to_dict/from_dict round trips, run.json reading and writing."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from genbench.errors import ResultsError, SpecError
from genbench.results import SCHEMA, load_run, write_run
from genbench.types import (GraphSpec, JobError, JobResult, MetricValue, OnnxBundle, PerfRecord, RunResult, TensorSpec,
                            TrainSummary)


def make_run() -> RunResult:
    summary = TrainSummary(steps=30, seconds=1.5, loss_history={"d": [1.0, 0.75, 0.5], "g": [2.0, 1.5, 1.25]},
                           log_every=10)
    ok = JobResult(
        model="gan-mlp", family="gan", plugin="genbench-gan", plugin_version="0.1.0", task="digits", device="cpu",
        status="ok", train=summary.to_dict(), export={"graphs": ["sample"], "opset": 20},
        quality={"fd": MetricValue(12.5, "", False, n=450, extractor="digits-cnn", floor=1.25, std=0.5)},
        performance=(
            PerfRecord(runtime="onnxruntime", provider="CPUExecutionProvider", device="cpu", batch_size=64, threads=2,
                       iterations=100, seconds=0.25, latency_ms={"p50": 2.5, "p90": 3.0}, throughput_per_s=25600.0,
                       valid=True, background_cpu_cores=0.1),
            PerfRecord(runtime="torch", provider="eager", device="cpu", batch_size=1, threads=2, iterations=5,
                       seconds=0.01, latency_ms={"p50": 2.0}, throughput_per_s=500.0, valid=False,
                       invalid_reason="too few iterations", noisy=True),
        ),
        files={"samples": "samples/gan-mlp-digits.png"}, seconds=4.0,
    )
    failed = JobResult(
        model="vae-conv", family="vae", plugin="genbench-vae", plugin_version="0.2.0", task="mnist", device="cpu",
        status="failed", error=JobError(phase="export", type="BundleError", message="output 'x' has NaNs"),
        seconds=0.5,
    )
    return RunResult(
        schema=SCHEMA, run_id="20240101-000000-abcd", genbench_version="0.1.0", started_at="2024-01-01T00:00:00Z",
        finished_at="2024-01-01T00:01:00Z", command="genbench run --models gan-mlp",
        config={"models": ["gan-mlp", "vae-conv"], "seed": 0, "profile": "smoke"},
        environment={"python": "3.12", "cpu_count": 2},
        jobs=(ok, failed),
        plugin_failures=({"plugin": "x", "distribution": "x", "phase": "import", "message": "ImportError: no"},),
    )


# --------------------------------------------------------------------------- round trips


def test_run_result_round_trips_through_json():
    run = make_run()
    data = json.loads(json.dumps(run.to_dict(), allow_nan=False))
    back = RunResult.from_dict(data)
    assert back.to_dict() == run.to_dict()
    assert back == run
    ok, failed = back.jobs
    assert isinstance(ok.quality["fd"], MetricValue) and ok.quality["fd"].floor == 1.25
    assert all(isinstance(p, PerfRecord) for p in ok.performance) and isinstance(ok.performance, tuple)
    assert ok.performance[1].invalid_reason == "too few iterations"
    assert ok.train["final_loss"] == {"d": 0.5, "g": 1.25}
    assert ok.error is None
    assert isinstance(failed.error, JobError) and failed.error.type == "BundleError"
    assert back.failed == [failed]


def test_train_summary_round_trip_and_final_loss():
    s = TrainSummary(steps=3, seconds=0.5, loss_history={"loss": [3.0, 2.0, 1.0], "empty": []}, log_every=2)
    assert s.final_loss == {"loss": 1.0}
    d = json.loads(json.dumps(s.to_dict()))
    assert d["final_loss"] == {"loss": 1.0}
    assert TrainSummary.from_dict(d) == s


def test_non_finite_floats_become_none():
    mv = MetricValue(float("nan"), "", False, std=float("inf"))
    assert mv.to_dict()["value"] is None and mv.to_dict()["std"] is None
    s = TrainSummary(steps=1, seconds=1.0, loss_history={"loss": [1.0, float("nan")]})
    assert s.to_dict()["loss_history"]["loss"] == [1.0, None]
    json.dumps(s.to_dict(), allow_nan=False)  # must not raise


def test_onnx_bundle_round_trip(tmp_path):
    graph = GraphSpec(
        role="sample", path="sample.onnx",
        inputs=[TensorSpec("z", ("batch", 64), source="normal")],
        outputs=[TensorSpec("x", ("batch", 1, 8, 8), low=0.0, high=1.0)],
    )
    bundle = OnnxBundle(str(tmp_path), [graph])
    assert isinstance(bundle.directory, Path) and isinstance(bundle.graphs, tuple)
    assert bundle.path("sample") == tmp_path / "sample.onnx"
    back = OnnxBundle.from_dict(json.loads(json.dumps(bundle.to_dict())))
    assert back == bundle
    assert back.graph("sample").inputs[0].shape == ("batch", 64)
    with pytest.raises(SpecError, match="logits"):
        bundle.graph("logits")


# --------------------------------------------------------------------------- TensorSpec / GraphSpec / OnnxBundle


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dtype": "float128"},
        {"dtype": "int"},
        {"source": "gaussian"},
        {"source": "tokens"},
        {"source": "tokens", "vocab": 0},
        {"shape": (0, 3)},
        {"shape": ("batch", -1)},
        {"shape": ("", 3)},
        {"name": ""},
    ],
    ids=str,
)
def test_tensor_spec_validation(kwargs):
    fields = {"name": "z", "shape": ("batch", 8)}
    fields.update(kwargs)
    with pytest.raises(SpecError):
        TensorSpec(**fields)


def test_tensor_spec_valid_and_concrete_shape():
    t = TensorSpec("tokens", ["batch", "seq", 4], dtype="int64", source="tokens", vocab=100)
    assert t.shape == ("batch", "seq", 4)
    assert t.concrete_shape({"batch": 16, "seq": 32}) == (16, 32, 4)
    assert TensorSpec("x", (2, 3)).concrete_shape({}) == (2, 3)


def _io():
    return [TensorSpec("z", ("batch", 4), source="normal")], [TensorSpec("x", ("batch", 4))]


def test_graph_spec_role_validation():
    inputs, outputs = _io()
    for role in ("sample", "logits", "likelihood", "denoise", "elbo"):
        assert GraphSpec(role, f"{role}.onnx", inputs, outputs).role == role
    # elbo is the likelihood role's older name: the graph keeps its name, a bundle finds it by either
    old = GraphSpec("elbo", "elbo.onnx", inputs, outputs)
    assert old.canonical_role == "likelihood"
    bundle = OnnxBundle(Path("."), (old,))
    assert bundle.graph("elbo") is bundle.graph("likelihood") is old
    with pytest.raises(SpecError, match="each role may appear once"):
        OnnxBundle(Path("."), (old, GraphSpec("likelihood", "l.onnx", inputs, outputs)))
    with pytest.raises(SpecError, match="decode"):
        GraphSpec("decode", "d.onnx", inputs, outputs)
    with pytest.raises(SpecError):
        GraphSpec("sample", "s.onnx", [], outputs)
    with pytest.raises(SpecError):
        GraphSpec("sample", "s.onnx", inputs, [])
    with pytest.raises(SpecError, match="source"):
        GraphSpec("sample", "s.onnx", [TensorSpec("z", ("batch", 4))], outputs)
    with pytest.raises(SpecError):
        GraphSpec("sample", "s.onnx", [{"name": "z"}], outputs)


def test_onnx_bundle_rejects_duplicate_roles(tmp_path):
    inputs, outputs = _io()
    g1 = GraphSpec("sample", "a.onnx", inputs, outputs)
    g2 = GraphSpec("sample", "b.onnx", inputs, outputs)
    with pytest.raises(SpecError, match="once"):
        OnnxBundle(tmp_path, (g1, g2))
    assert len(OnnxBundle(tmp_path, (g1, GraphSpec("logits", "c.onnx", inputs, outputs))).graphs) == 2


# --------------------------------------------------------------------------- write_run / load_run


def test_write_run_is_atomic_and_loads_back(tmp_path):
    run = make_run()
    path = write_run(run, tmp_path / "run-1")
    assert path == tmp_path / "run-1" / "run.json"
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.json"]  # no .tmp left behind
    assert load_run(path) == run
    assert load_run(path.parent) == run  # a run directory works too
    # overwriting also leaves nothing behind
    write_run(run, path.parent)
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.json"]


def test_failed_replace_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    run = make_run()
    path = write_run(run, tmp_path)
    before = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_run(RunResult.from_dict({**run.to_dict(), "run_id": "other"}), tmp_path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_write_run_with_nan_metric_reads_back_as_none(tmp_path):
    run = make_run()
    job = run.jobs[0]
    nan_job = JobResult.from_dict({**job.to_dict(), "quality": {"fd": MetricValue(math.nan, "", False).to_dict()}})
    nan_run = RunResult.from_dict({**run.to_dict(), "jobs": [nan_job.to_dict()]})
    back = load_run(write_run(nan_run, tmp_path))
    assert back.jobs[0].quality["fd"].value is None


def test_load_run_truncated_file(tmp_path):
    path = write_run(make_run(), tmp_path)
    text = path.read_bytes()
    path.write_bytes(text[: len(text) // 2])
    truncated = path.read_bytes()
    with pytest.raises(ResultsError) as info:
        load_run(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == truncated  # left unchanged


def test_load_run_wrong_schema(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({**make_run().to_dict(), "schema": "genbench.run/3"}))
    with pytest.raises(ResultsError, match="genbench.run/3") as info:
        load_run(path)
    assert str(path) in str(info.value)
    path.write_text(json.dumps([1, 2, 3]))
    with pytest.raises(ResultsError, match="list"):
        load_run(path)


def test_load_run_missing_file_and_missing_field(tmp_path):
    with pytest.raises(ResultsError, match="No results file"):
        load_run(tmp_path / "nope")
    with pytest.raises(ResultsError):
        load_run(tmp_path)  # a directory without run.json
    data = make_run().to_dict()
    del data["run_id"]
    (tmp_path / "run.json").write_text(json.dumps(data))
    with pytest.raises(ResultsError, match="schema"):
        load_run(tmp_path)


def test_load_run_non_utf8(tmp_path):
    (tmp_path / "run.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ResultsError, match="corrupt"):
        load_run(tmp_path)


@pytest.mark.parametrize("job_patch", [{"error": "boom"}, {"quality": [1.0]}], ids=["error-str", "quality-list"])
def test_load_run_malformed_job_entry(tmp_path, job_patch):
    data = make_run().to_dict()
    data["jobs"][0].update(job_patch)
    (tmp_path / "run.json").write_text(json.dumps(data))
    with pytest.raises(ResultsError):
        load_run(tmp_path)
