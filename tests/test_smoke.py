"""The CI smoke test: the whole product, real plugins, smoke profile."""

import json

import pytest

import genbench


@pytest.mark.integration
def test_smoke_run_all(tmp_path):
    result = genbench.run(all=True, profile="smoke", out=tmp_path, device="cpu", command="test")
    run_dir = tmp_path / result.run_id
    data = json.loads((run_dir / "run.json").read_text())
    assert data["schema"] == "genbench.run/2" and data["finished_at"]
    for key in ("python", "torch", "onnxruntime", "platform", "cpu", "cpu_count", "gpus", "git_commit"):
        assert key in data["environment"]
    jobs = {(j["model"], j["task"]): j for j in data["jobs"]}
    assert jobs[("gan-mlp", "digits")]["status"] == "ok", jobs[("gan-mlp", "digits")]["error"]
    assert not result.failed
    gan = jobs[("gan-mlp", "digits")]
    assert gan["plugin"] == "genbench-gan" and gan["train"]["steps"] == 300
    fd = gan["quality"]["fd"]
    assert fd["extractor"].startswith("digits-cnn@sha256:") and fd["higher_is_better"] is False
    copy = jobs[("baseline-train-copy", "digits")]["quality"]["fd"]
    gauss = jobs[("baseline-gaussian", "digits")]["quality"]["fd"]
    # replayed training images sit near the train/test floor (within twice the top of its spread over training
    # subsets); a fitted Gaussian is far worse
    assert copy["floor"] == fd["floor"] == gauss["floor"] and copy["floor_interval"] == fd["floor_interval"]
    assert copy["floor_interval"][0] < copy["floor"] < copy["floor_interval"][1]
    assert copy["value"] < 2 * copy["floor_interval"][1] < gauss["value"]
    q = {m: jobs[(m, "digits")]["quality"] for m in ("baseline-train-copy", "baseline-gaussian")}
    assert q["baseline-train-copy"]["precision"]["value"] > 0.8 and q["baseline-train-copy"]["modes"]["value"] == 10
    assert q["baseline-gaussian"]["recall"]["value"] < q["baseline-train-copy"]["recall"]["value"]
    assert q["baseline-train-copy"]["kid"]["value"] < q["baseline-gaussian"]["kid"]["value"]
    assert q["baseline-train-copy"]["class-kl"]["value"] < q["baseline-gaussian"]["class-kl"]["value"]
    perf = gan["performance"]
    assert {(p["runtime"], p["batch_size"]) for p in perf} == {(r, b) for r in ("onnxruntime", "torch-eager") for b in (1, 64)}
    assert all(p["threads"] >= 1 and p["throughput_per_s"] > 0 for p in perf)
    for model in ("gan-mlp", "baseline-gaussian", "baseline-train-copy"):
        assert (run_dir / jobs[(model, "digits")]["files"]["samples_png"]).is_file()
    # mnist is absent here: skipped with the reason, not failed
    assert jobs[("gan-mlp", "mnist")]["status"] == "skipped" and "MNIST" in jobs[("gan-mlp", "mnist")]["reason"]
    report = (run_dir / "report.md").read_text()
    assert "gan-mlp" in report and "fd ↓" in report and "floor" in report
    assert genbench.load_run(run_dir).to_dict() == data
