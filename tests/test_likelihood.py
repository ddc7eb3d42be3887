"""NLL / bits-per-dim from elbo graphs, and the checks on what an elbo graph may return."""

import math

import numpy as np
import pytest

import genbench
from genbench.runtime import binarize


def _run(host, models, tmp_path):
    return genbench.run(models, tasks=["digits"], profile="smoke", host=host, out=tmp_path, baselines=False,
                        device="cpu", timing=False)


def test_nll_and_bpd_from_an_elbo_graph_match_a_hand_computation(fake_host, tmp_path):
    from genbench.data.digits import load_digits

    job = _run(fake_host, ["tiny-elbo"], tmp_path).jobs[0]
    assert job.status == "ok", job.error
    xb = binarize(load_digits().test_x)
    expected = xb.reshape(len(xb), -1).sum(1) + 1.0  # the toy graph's -elbo
    nll, bpd = job.quality["nll"], job.quality["bpd"]
    assert nll.value == pytest.approx(expected.mean(), rel=1e-6)
    assert nll.stderr == pytest.approx(expected.std(ddof=1) / math.sqrt(len(expected)), rel=1e-6)
    assert bpd.value == pytest.approx(expected.mean() / (64 * math.log(2)), rel=1e-6)
    assert nll.n == bpd.n == 450 and nll.unit == "nats/example" and bpd.unit == "bits/dim"
    assert nll.params["data"].startswith("binarized") and nll.params["importance_samples"] == 1
    assert nll.params["bound"] == "elbo" and "upper bound" in nll.note


def test_binarization_is_fixed_and_unbiased():
    x = np.full((200, 1, 8, 8), 0.3, np.float32)
    a, b = binarize(x), binarize(x)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 1.0}
    assert a.mean() == pytest.approx(0.3, abs=0.01)
    assert binarize(np.zeros((3, 4))).sum() == 0 and binarize(np.ones((3, 4))).sum() == 12


@pytest.mark.parametrize("model, words", [
    ("tiny-elbo-positive", ["positive log-likelihood bound", "binary data"]),
    ("tiny-elbo-shape", ["elbo", "[batch]"]),
])
def test_bad_elbo_graph_fails_its_own_job(fake_host, tmp_path, model, words):
    result = _run(fake_host, [model, "tiny-ok"], tmp_path)
    job = next(j for j in result.jobs if j.model == model)
    assert job.status == "failed" and job.error.phase == "validate"
    for w in words:
        assert w in job.error.message, job.error.message
    assert next(j for j in result.jobs if j.model == "tiny-ok").status == "ok"
