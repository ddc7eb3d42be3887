"""Fault injection: purpose-built bad plugins, each failing only its own job with a clear message.

(Process-level faults — hangs, segfaults, os._exit, sys.exit, children a job leaves — are in
test_isolation.py; bad graphs in test_validation.py, test_likelihood.py and test_text.py; corrupt results in
test_resume.py. Hostile users and environments: interrupts, SIGKILL and concurrent --resume in
test_interrupts.py; bad options, unwritable paths and a full disk in test_bad_options.py; plugin imports that
hang or crash, names that are not one line, check-plugin's coverage in test_hostile_plugins.py; task loaders
that hang or inflate, a shadowing ./genbench in test_task_data_limits.py; bad cache entries and restores that
hang in test_cache_hostile.py.)
"""

import json

import pytest

import genbench
from genbench.errors import SpecError


def _run(host, models, tmp_path, **kw):
    return genbench.run(models, tasks=["digits"], profile="smoke", host=host, out=tmp_path, baselines=False,
                        device="cpu", timing=False, **kw)


@pytest.mark.parametrize("model, phase, words", [
    ("tiny-raises-export", "export", ["ValueError: boom in export"]),
    ("tiny-raises-torch", "validate", ["RuntimeError: boom in torch_module"]),
    ("tiny-nan-loss", "train", ["Training diverged", "non-finite"]),
    ("tiny-wrong-return", "train", ["expected genbench.TrainSummary"]),
])
def test_plugin_faults_in_each_phase(fake_host, tmp_path, model, phase, words):
    result = _run(fake_host, [model, "tiny-ok"], tmp_path)
    bad = next(j for j in result.jobs if j.model == model)
    assert bad.status == "failed" and bad.error.phase == phase, bad.error
    for w in words:
        assert w in bad.error.message
    assert next(j for j in result.jobs if j.model == "tiny-ok").status == "ok"


def test_a_graph_over_the_size_cap_is_refused(fake_host, tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_MAX_GRAPH_MB", "0.0001")  # the 1 KiB tiny graph is 'far too large' now
    job = _run(fake_host, ["tiny-ok"], tmp_path, executor="inline").jobs[0]
    assert job.status == "failed" and job.error.phase == "validate"
    assert "over the" in job.error.message and "GENBENCH_MAX_GRAPH_MB" in job.error.message


def test_hostile_names_never_become_paths(tmp_path):
    from fakes import HostileNamesPlugin

    from genbench.plugins import make_plugin_manager

    host = make_plugin_manager(extra_plugins=[("hostile", HostileNamesPlugin)], entry_points=False)
    assert "../../evil" not in host.registry.models
    assert any("Invalid model name" in f.message for f in host.failures)
    with pytest.raises(SpecError):
        genbench.ModelSpec("/abs/path", "gan", ("image",), "a.b:C", "x")


def test_a_raising_metric_records_its_own_error_and_every_other_metric_stands(tmp_path):
    from fakes import FakePlugin, RaisingMetricPlugin

    from genbench.plugins import make_plugin_manager

    host = make_plugin_manager(extra_plugins=[("fakes", FakePlugin), ("m", RaisingMetricPlugin)], entry_points=False)
    result = _run(host, ["tiny-ok"], tmp_path)
    job = result.jobs[0]
    assert job.status == "ok"
    broken = [name for name, mv in job.quality.items() if mv.error]
    assert len(broken) == 1 and "metric blew up" in job.quality[broken[0]].error
    assert job.quality[broken[0]].value is None
    assert job.quality["fd"].value is not None and job.quality["precision"].value is not None
    assert any("metric blew up" in w for w in job.warnings)
    saved = json.loads((tmp_path / result.run_id / "run.json").read_text())["jobs"][0]
    assert saved["status"] == "ok" and "metric blew up" in saved["quality"][broken[0]]["error"]
