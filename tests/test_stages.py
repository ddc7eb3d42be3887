"""The two stages of a run (build and score in parallel, then timing alone), training seeds, the
comparability key on every quality number, and run.json schema /2 (with /1 still readable)."""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pytest

import genbench
from genbench.aggregate import t_interval
from genbench.comparability import UNKNOWN, differing, key_of, make_key, profile_key
from genbench.errors import ResultsError


def _run(host, models, tmp_path, **kw):
    kw.setdefault("profile", "smoke")
    return genbench.run(models, tasks=["digits"], host=host, out=tmp_path, baselines=False, device="cpu", **kw)


def test_timing_never_overlaps_any_other_work(fake_host, tmp_path, monkeypatch):
    """Every unit's interval, recorded in the scheduler: no timing unit overlaps another unit of any kind."""
    import genbench.executors.local as local

    intervals, lock, real = [], threading.Lock(), local.run_in_process

    def recording(unit, timeout, stop=None, on_message=None):
        t0 = time.monotonic()
        try:
            return real(unit, timeout, stop, on_message)
        finally:
            with lock:
                intervals.append((unit.kind, unit.job.model.name, t0, time.monotonic()))

    monkeypatch.setattr(local, "run_in_process", recording)
    result = _run(fake_host, ["tiny-ok", "tiny-cached", "tiny-elbo"], tmp_path, jobs=2)
    assert not result.failed and all(j.timing["status"] == "done" for j in result.jobs)
    builds = [i for i in intervals if i[0] == "build"]
    timings = [i for i in intervals if i[0] == "timing"]
    assert len(builds) == 3 and len(timings) == 3
    # the builds did overlap (two at a time), the timings overlap nothing
    assert any(a[2] < b[3] and b[2] < a[3] for a in builds for b in builds if a is not b)
    for t in timings:
        for other in intervals:
            if other is not t:
                assert not (t[2] < other[3] and other[2] < t[3]), (t, other)
    assert all(p.alone for j in result.jobs for p in j.performance)
    assert all(j.timing["alone"] for j in result.jobs)


def test_seeds_give_mean_std_and_a_t_interval_and_time_once(fake_host, tmp_path):
    result = _run(fake_host, ["tiny-ok"], tmp_path, seeds=[0, 1, 2], jobs=2)
    (job,) = result.jobs
    assert job.status == "ok" and job.seeds == (0, 1, 2)
    assert [r.seed for r in sorted(job.seed_results, key=lambda r: r.seed)] == [0, 1, 2]
    fd = job.quality["fd"]
    values = [r.quality["fd"].value for r in sorted(job.seed_results, key=lambda r: r.seed)]
    assert list(fd.per_seed) == values and len(set(values)) == 3  # the seeds trained different models
    assert fd.value == pytest.approx(np.mean(values), rel=1e-12)
    assert fd.seed_std == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    from scipy import stats

    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert fd.ci95 == pytest.approx((lo, hi), rel=1e-9)
    assert fd.key["seeds"] == 3 and fd.key["n"] == fd.n
    # timing ran once, on the graphs of the first seed
    assert job.timing["status"] == "done" and job.timing["seed"] == 0
    assert {p.batch_size for p in job.performance} == {1, 64}
    saved = json.loads((tmp_path / result.run_id / "run.json").read_text())
    assert saved["config"]["seeds"] == [0, 1, 2] and len(saved["jobs"][0]["seed_results"]) == 3


def test_parallel_build_stage_gives_the_numbers_of_a_serial_run(fake_host, tmp_path):
    a = _run(fake_host, ["tiny-ok", "tiny-elbo", "tiny-cached"], tmp_path / "a", jobs=2, timing=False)
    b = _run(fake_host, ["tiny-ok", "tiny-elbo", "tiny-cached"], tmp_path / "b", jobs=1, timing=False,
             cache=False)
    qa = {j.model: {k: v.value for k, v in j.quality.items()} for j in a.jobs}
    qb = {j.model: {k: v.value for k, v in j.quality.items()} for j in b.jobs}
    assert qa == qb  # exactly: build-stage sessions are single-threaded, whatever runs beside them


def test_resume_of_a_run_whose_timing_is_pending_runs_only_the_timing(fake_host, tmp_path, monkeypatch):
    import genbench.executors.local as local

    first = _run(fake_host, ["tiny-ok"], tmp_path)
    run_json = tmp_path / first.run_id / "run.json"
    data = json.loads(run_json.read_text())
    job = data["jobs"][0]  # as an interrupted run leaves it: built, timing pending
    job.update(status="pending", performance=[], timing={"status": "pending"})
    run_json.write_text(json.dumps(data))
    kinds, real = [], local.run_in_process
    monkeypatch.setattr(local, "run_in_process", lambda unit, timeout, stop=None, on_message=None: (
        kinds.append(unit.kind), real(unit, timeout, stop, on_message))[1])
    resumed = genbench.run(resume=tmp_path / first.run_id, host=fake_host)
    assert kinds == ["timing"]
    (job,) = resumed.jobs
    assert job.status == "ok" and job.performance and job.timing["status"] == "done"
    assert job.quality["fd"].value == first.jobs[0].quality["fd"].value


def test_every_quality_number_carries_its_comparability_key(fake_host, tmp_path):
    result = _run(fake_host, ["tiny-elbo"], tmp_path, timing=False)
    (job,) = result.jobs
    data_hash = None
    for name, mv in job.quality.items():
        assert set(mv.key) == {"task", "data", "extractor", "n", "variant", "bound", "profile", "seeds", "seed_ids"}, name
        assert mv.key["task"] == "digits" and mv.key["profile"] == "smoke" and mv.key["seeds"] == 1
        assert list(mv.key["seed_ids"]) == [0]
        assert mv.key["n"] == mv.n
        data_hash = data_hash or mv.key["data"]
        assert mv.key["data"] == data_hash and len(data_hash) == 64
    assert job.quality["fd"].key["extractor"].startswith("digits-cnn@sha256:")
    assert job.quality["bpd"].key["variant"] == "binarized" and job.quality["bpd"].key["bound"] == "elbo"
    assert job.quality["fd"].key["variant"] is None and job.quality["fd"].key["bound"] is None


def test_a_sample_graph_fed_the_test_split_is_refused(fake_host, tmp_path):
    result = _run(fake_host, ["tiny-test-data", "tiny-ok"], tmp_path, timing=False)
    bad = next(j for j in result.jobs if j.model == "tiny-test-data")
    assert bad.status == "failed" and bad.error.phase == "validate"
    assert "source 'data'" in bad.error.message and "test split" in bad.error.message
    assert not bad.quality  # it never scored
    assert next(j for j in result.jobs if j.model == "tiny-ok").status == "ok"


def test_a_version_1_run_loads_with_what_it_lacks_marked_unknown(tmp_path):
    v1 = {"schema": "genbench.run/1", "run_id": "old", "genbench_version": "0.1.0", "started_at": "2026-11-01",
          "finished_at": "2026-11-01", "command": "genbench run --all", "config": {"profile": "default", "seed": 0},
          "environment": {}, "jobs": [{
              "model": "gan-mlp", "family": "gan", "plugin": "genbench-gan", "plugin_version": "0.1.0",
              "task": "digits", "device": "cpu", "status": "ok",
              "quality": {"fd": {"value": 42.6, "unit": "", "higher_is_better": False, "n": 1347,
                                 "extractor": "digits-cnn@sha256:abc", "floor": 2.41}}}]}
    (tmp_path / "run.json").write_text(json.dumps(v1))
    run = genbench.load_run(tmp_path)
    (job,) = run.jobs
    assert job.seeds == (0,) and job.seed_results == ()
    key = key_of(job.quality["fd"], job.task)
    assert key["task"] == "digits" and key["n"] == 1347 and key["extractor"] == "digits-cnn@sha256:abc"
    assert key["data"] == UNKNOWN and key["profile"] == UNKNOWN and key["seeds"] == UNKNOWN


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["jobs"][0]["quality"]["fd"].update(value="42"), "jobs/0/quality/fd/value"),
    (lambda d: d["jobs"][0].update(status="weird"), "jobs/0/status"),
    (lambda d: d["jobs"][0].update(model="gan-mlp\n| injected |"), "jobs/0/model"),
    (lambda d: d.update(jobs={"a": 1}), "jobs"),
    (lambda d: d["jobs"][0]["performance"].append({"runtime": "x"}), "jobs/0/performance/0"),
])
def test_a_run_json_that_breaks_its_schema_is_one_clear_line(tmp_path, mutate, field):
    data = {"schema": "genbench.run/2", "run_id": "r", "genbench_version": "0.1.0", "started_at": "s",
            "finished_at": None, "command": "c", "config": {}, "environment": {}, "jobs": [{
                "model": "gan-mlp", "family": "gan", "plugin": "p", "plugin_version": "1", "task": "digits",
                "device": "cpu", "status": "ok", "performance": [],
                "quality": {"fd": {"value": 1.0, "unit": "", "higher_is_better": False}}}]}
    genbench.load_run(_write(tmp_path, data))  # the unmutated file loads
    mutate(data)
    with pytest.raises(ResultsError) as info:
        genbench.load_run(_write(tmp_path, data))
    message = str(info.value)
    assert "\n" not in message and f"field {field}" in message and "genbench.run/2" in message


def test_bare_nan_in_a_run_json_is_refused(tmp_path):
    (tmp_path / "run.json").write_text('{"schema": "genbench.run/2", "x": NaN}')
    with pytest.raises(ResultsError, match="corrupt"):
        genbench.load_run(tmp_path)


def _write(tmp_path, data):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return tmp_path


def test_comparability_key_fields_and_differences():
    a = make_key(task="digits", data="d" * 64, extractor="cnn@sha256:1", n=500, params={"bound": "iwae",
                 "variant": "binarized"}, profile=profile_key("smoke"), seeds=1)
    assert a == {"task": "digits", "data": "d" * 64, "extractor": "cnn@sha256:1", "n": 500, "variant": "binarized",
                 "bound": "iwae", "profile": "smoke", "seeds": 1}
    b = {**a, "n": 1347, "profile": profile_key("default", steps=0)}
    assert differing(a, b) == ["n", "profile"] and differing(a, dict(a)) == []
    assert b["profile"] == "default, steps=0"


def test_t_interval_matches_scipy():
    from scipy import stats

    values = [3.1, 2.7, 3.9, 3.3]
    mean, std, (lo, hi) = t_interval(values)
    assert mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values, ddof=1))
    assert (lo, hi) == pytest.approx(stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values)))
    assert t_interval([2.0]) == (2.0, None, None)


def test_usable_cores_reads_the_cgroup_quota(tmp_path):
    from genbench.perf.cores import usable_cores

    unlimited = tmp_path / "a"
    unlimited.mkdir()
    (unlimited / "cpu.max").write_text("max 100000\n")
    assert usable_cores(unlimited) == min(len(__import__("os").sched_getaffinity(0)), 10**6)
    half = tmp_path / "b"
    half.mkdir()
    (half / "cpu.max").write_text("50000 100000\n")
    assert usable_cores(half) == 1
    v1 = tmp_path / "c" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("150000")
    (v1 / "cpu.cfs_period_us").write_text("100000")
    assert usable_cores(tmp_path / "c") == min(2, len(__import__("os").sched_getaffinity(0)))
    assert math.isfinite(usable_cores())


def test_build_units_start_longest_first_from_past_times(fake_host, tmp_path, monkeypatch):
    """LPT: the unit that took longest last time on this machine starts first, so that it does not run alone at
    the end while the other cores idle; a unit with no past time gets a guess by family."""
    import os

    import genbench.executors.worker as worker
    from genbench.runner import _COLD_GUESS, _expected_seconds

    cache = tmp_path / "cache"
    cache.mkdir()
    past = {"tiny-ok|digits|smoke|cpu|trained": 1.0, "tiny-elbo|digits|smoke|cpu|trained": 500.0}
    (cache / "history.json").write_text(json.dumps({"format": 1, "seconds": past}))
    monkeypatch.setenv("GENBENCH_CACHE_DIR", str(cache))
    order, real = [], worker.execute

    def recording(unit, *a, **kw):
        order.append((unit.kind, unit.job.model.name))
        return real(unit, *a, **kw)

    monkeypatch.setattr(worker, "execute", recording)
    result = _run(fake_host, ["tiny-ok", "tiny-elbo"], tmp_path / "out", executor="inline", timing=False)
    assert not result.failed and os.fspath(cache) == os.environ["GENBENCH_CACHE_DIR"]
    assert [m for kind, m in order if kind == "build"] == ["tiny-elbo", "tiny-ok"]

    class Unit:  # the guess without a past time: autoregressive before VAE before GAN before baselines
        def __init__(self, family):
            self.job = type("J", (), {"model": type("M", (), {"family": family})()})()

    guesses = [_expected_seconds(Unit(f), "trained", None) for f in ("ar", "vae", "gan", "baseline")]
    assert guesses == sorted(guesses, reverse=True) and guesses[0] == _COLD_GUESS["ar"]
    assert _expected_seconds(Unit("ar"), "cached", None) == 1.0 and _expected_seconds(Unit("ar"), "trained", 7.0) == 7.0
