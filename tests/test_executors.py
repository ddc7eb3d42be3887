"""The same jobs through every executor: inline, a process per job (and --jobs 2), and Ray."""

import pytest

import genbench

MODELS = ["gan-mlp", "baseline-gaussian", "baseline-train-copy"]


def _quality(result):
    return {(j.model, j.task): {k: v.value for k, v in j.quality.items()} for j in result.jobs}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return genbench.run(MODELS, tasks=["digits"], profile="smoke", steps=20, out=tmp_path_factory.mktemp("ref"),
                        device="cpu", executor="inline")


@pytest.mark.integration
def test_parallel_local_jobs_equal_a_sequential_run(reference, tmp_path):
    result = genbench.run(MODELS, tasks=["digits"], profile="smoke", steps=20, out=tmp_path, device="cpu", jobs=2)
    assert result.environment["jobs"] == 2 and not result.failed
    assert _close(_quality(result), _quality(reference))


@pytest.mark.integration
def test_ray_smoke_run_equals_a_local_run_and_records_nodes(reference, tmp_path):
    import ray  # in the test extra
    try:
        result = genbench.run(MODELS, tasks=["digits"], profile="smoke", steps=20, out=tmp_path, device="cpu",
                              executor="ray")
    finally:
        ray.shutdown()
    assert result.environment["executor"] == "ray" and not result.failed
    assert all(j.node for j in result.jobs)
    assert _close(_quality(result), _quality(reference))
    assert any(j.performance for j in result.jobs)  # gan-mlp was timed under the timing resource


def _close(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].keys() == b[key].keys(), key
        for m in a[key]:
            assert a[key][m] == pytest.approx(b[key][m], rel=1e-6, abs=1e-9), (key, m)
    return True
