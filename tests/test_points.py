"""Tasks ring8 and grid25 through the whole pipeline: data, ONNX sampling and the mode metrics."""

import math

import numpy as np
import pytest

import genbench
from genbench.data.points import load_grid25, load_ring8


def test_point_tasks_are_fixed_and_match_their_definition():
    a, b = load_ring8(), load_ring8()
    np.testing.assert_array_equal(a.train_x, b.train_x)
    assert a.kind == "points" and a.shape == (2,) and len(a.meta["centers"]) == 8 and a.meta["sigma"] == 0.01
    radii = np.linalg.norm(a.test_x, axis=1)
    assert abs(radii.mean() - 1.0) < 0.01 and np.all(np.abs(a.test_x) < a.value_range[1])
    g = load_grid25()
    assert len(g.meta["centers"]) == 25 and np.bincount(g.train_y, minlength=25).min() > 300


@pytest.mark.integration
def test_replayed_data_covers_every_mode_and_a_gaussian_does_not(tmp_path):
    result = genbench.run(["baseline-train-copy", "baseline-gaussian"], tasks=["ring8"], profile="smoke", out=tmp_path,
                          device="cpu", timing=False)
    q = {j.model: j.quality for j in result.jobs}
    copy, gauss = q["baseline-train-copy"], q["baseline-gaussian"]
    assert copy["modes-covered"].value == 8 and copy["high-quality"].value > 0.97
    assert copy["high-quality"].floor == pytest.approx(1 - np.exp(-4.5), abs=0.01)
    assert gauss["high-quality"].value < 0.05 and gauss["knn-kl"].value > copy["knn-kl"].value + 1
    assert abs(copy["knn-kl"].value) < 0.3


@pytest.mark.integration
def test_every_family_runs_on_points_with_a_continuous_nll(tmp_path):
    result = genbench.run(["gan-mlp", "vae-mlp", "ar-points"], tasks=["grid25"], profile="smoke", steps=50, out=tmp_path,
                          device="cpu", timing=False, baselines=False)
    jobs = {j.model: j for j in result.jobs}
    assert all(j.status == "ok" for j in jobs.values()), [j.error for j in result.jobs]
    ar = jobs["ar-points"].quality["nll"]  # binned coordinates read as a piecewise-uniform density
    assert np.isfinite(ar.value) and ar.params["bound"] == "exact" and "piecewise-uniform" in ar.params["data"]
    nll = jobs["vae-mlp"].quality["nll"]
    assert np.isfinite(nll.value) and nll.params["data"] == "continuous" and nll.unit == "nats/point"
    # a continuous density: bits per coordinate, with that stated in the unit
    bpd = jobs["vae-mlp"].quality["bpd"]
    assert bpd.unit == "bits/dim (continuous density)"
    assert bpd.value == pytest.approx(nll.value / (2 * math.log(2)), rel=1e-9)
    for j in jobs.values():
        assert 0 <= j.quality["modes-covered"].value <= 25 and "knn-kl" in j.quality
