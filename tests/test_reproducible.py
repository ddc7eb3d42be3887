"""Same seed, same machine: the same quality numbers."""

import pytest

import genbench


@pytest.mark.integration
def test_same_seed_gives_the_same_fd(tmp_path):
    runs = [genbench.run(["gan-mlp"], tasks=["digits"], profile="smoke", steps=50, baselines=False, out=tmp_path,
                         device="cpu", seed=7, timing=False, cache=False) for _ in range(2)]  # trained twice
    fds = [r.jobs[0].quality["fd"].value for r in runs]
    assert runs[0].jobs[0].status == "ok"
    assert fds[0] == pytest.approx(fds[1], abs=1e-6)
    other = genbench.run(["gan-mlp"], tasks=["digits"], profile="smoke", steps=50, baselines=False, out=tmp_path,
                         device="cpu", seed=8, timing=False, cache=False)
    assert other.jobs[0].quality["fd"].value != pytest.approx(fds[0], abs=1e-6)
