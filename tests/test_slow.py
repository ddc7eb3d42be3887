"""Long end-to-end checks: `tox -e slow` (or `pytest -m slow`)."""

import pytest

import genbench


@pytest.mark.slow
def test_default_profile_gan_is_far_better_than_untrained(tmp_path):
    trained = genbench.run(["gan-mlp"], tasks=["digits"], profile="default", out=tmp_path, device="cpu")
    untrained = genbench.run(["gan-mlp"], tasks=["digits"], profile="default", out=tmp_path, device="cpu", steps=0,
                             baselines=False)
    jobs = {j.model: j for j in trained.jobs}
    fd = jobs["gan-mlp"].quality["fd"]
    fd0 = untrained.jobs[0].quality["fd"]
    assert jobs["gan-mlp"].status == "ok" and untrained.jobs[0].status == "ok"
    assert fd.value < fd0.value / 10
    assert fd.value < jobs["baseline-gaussian"].quality["fd"].value
    assert fd.floor <= jobs["baseline-train-copy"].quality["fd"].value * 1.5
