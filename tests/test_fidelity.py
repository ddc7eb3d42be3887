"""The optional Inception (torch-fidelity) feature space: offline, every missing piece is one clear line."""

import pytest

import genbench
from genbench.errors import GenbenchError
from genbench.features.fidelity import WEIGHTS_FILE, InceptionExtractor, find_weights


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("GENBENCH_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(GenbenchError) as err:
        find_weights()
    msg = str(err.value)
    assert WEIGHTS_FILE in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg and "--inception-weights" in msg
    assert "\n" not in msg


def test_weights_are_found_by_path_env_or_hub_cache(tmp_path, monkeypatch):
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / WEIGHTS_FILE).write_bytes(b"w")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert find_weights() == hub / WEIGHTS_FILE
    other = tmp_path / "mine.pth"
    other.write_bytes(b"w")
    assert find_weights(other) == other
    monkeypatch.setenv("GENBENCH_INCEPTION_WEIGHTS", str(other))
    assert find_weights() == other


def test_without_torch_fidelity_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    for name in ("torch_fidelity", "torch_fidelity.feature_extractor_inceptionv3"):
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    weights = tmp_path / WEIGHTS_FILE
    weights.write_bytes(b"w")
    with pytest.raises(GenbenchError, match=r"pip install 'genbench\[fidelity\]'"):
        InceptionExtractor(weights)


def test_a_run_with_unavailable_inception_fails_image_jobs_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    result = genbench.run(["baseline-gaussian"], tasks=["digits"], profile="smoke", out=tmp_path, device="cpu",
                          timing=False, features="inception", executor="inline")
    job = result.jobs[0]
    assert job.status == "failed" and job.error.phase == "data" and WEIGHTS_FILE in job.error.message
