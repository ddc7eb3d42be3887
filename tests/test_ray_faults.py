"""The Ray executor keeps the process executor's promises (issue #31): infrastructure faults are retried and
never recorded as the model's failure, timeouts count from a unit's start, a dead address is one line, and
each result names the node that made it.

The fault tests drive :func:`genbench.executors.ray_executor.run_units` on a local Ray instance with the remote
body replaced by a closure (pickled by value) that crashes its own worker, hangs, or answers at once; the
two-node test (slow) removes a real node while a unit runs on it."""

import os
import time

import pytest

import genbench
from genbench.errors import ConfigError

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    from genbench.executors.ray_executor import TIMING_RESOURCE

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, resources={TIMING_RESOURCE: 1}, include_dashboard=False,
             log_to_driver=False)
    yield
    ray.shutdown()


def _units(fake_host, tmp_path, n=1):
    from genbench.config import RunConfig
    from genbench.executors import BuildUnit, JobSpec

    config = RunConfig(profile="smoke", device="cpu", timing=False)
    return [BuildUnit(JobSpec(fake_host.registry.model("tiny-ok"), fake_host.registry.dataset("digits"), config,
                              "cpu", tmp_path / "jobs" / f"tiny-ok__digits__cpu{i}", ()), i) for i in range(n)]


def _collect(units, monkeypatch, body, **kw):
    from genbench.executors import ray_executor

    monkeypatch.setattr(ray_executor, "_run_remote", body)
    results, started = [], []
    ray_executor.run_units(units, None, kw.pop("timeout", None), lambda u, r: results.append((u, r)),
                           on_start=started.append, **kw)
    return results, started


def test_a_dead_address_is_one_line_before_any_run_directory(fake_host, tmp_path, monkeypatch):
    """ray.init retried a dead address for minutes; $RAY_ADDRESS set gave a traceback."""
    from genbench.executors.ray_executor import check_address

    with pytest.raises(ConfigError, match=r"^No Ray cluster answers at 127\.0\.0\.1:1 \(.*within 5 s\): start it"):
        check_address("127.0.0.1:1")
    with pytest.raises(ConfigError, match=r"--address 'nowhere' is not HOST:PORT"):
        check_address("nowhere")
    with pytest.raises(ConfigError, match=r"--address '127.0.0.1:99999' is not HOST:PORT"):
        check_address("127.0.0.1:99999")  # was "Connection refused"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as info:
        genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path / "runs",
                     executor="ray", timing=False, baselines=False, device="cpu")
    assert "\n" not in str(info.value) and "127.0.0.1:1" in str(info.value)
    assert not (tmp_path / "runs").exists() and time.monotonic() - t0 < 120


def test_a_worker_lost_mid_unit_runs_the_unit_again_and_it_is_not_the_models_failure(fake_host, tmp_path,
                                                                                        monkeypatch, local_ray):
    marker = str(tmp_path / "first-try")

    def crashes_once(unit):
        import os as _os
        import time as _time

        from genbench.types import SeedResult

        yield {"started": _time.time(), "hostname": "host-a", "node_id": "f" * 56, "cores": 1}
        if not _os.path.exists(marker):
            open(marker, "w").close()
            _os._exit(1)  # the worker process dies: Ray's WorkerCrashedError
        yield SeedResult(seed=unit.seed, status="ok").to_dict()

    (unit,) = _units(fake_host, tmp_path)
    results, started = _collect([unit], monkeypatch, crashes_once)
    # two tries ran; the first's start report may be lost with its worker (it died right after sending it)
    assert os.path.exists(marker) and started in ([unit], [unit, unit])
    ((u, result),) = results
    assert result.status == "ok" and result.error is None
    assert result.node == "host-a (Ray node ffffffffffffffff)"  # two nodes may share a host name


def test_a_unit_lost_on_every_try_stays_to_do_and_the_run_says_how_to_finish(fake_host, tmp_path, monkeypatch,
                                                                              local_ray):
    from genbench.executors.ray_executor import INFRA_TRIES, ClusterLost

    tries = tmp_path / "tries"
    tries.mkdir()

    def always_crashes(unit):
        import os as _os
        import time as _time

        yield {"started": _time.time(), "hostname": "h", "node_id": "0" * 56, "cores": 1}
        open(_os.path.join(str(tries), str(_time.monotonic_ns())), "w").close()
        _os._exit(1)

    with pytest.raises(ClusterLost, match=rf"was lost to the Ray cluster {INFRA_TRIES} times .*not the model's failure"):
        _collect(_units(fake_host, tmp_path), monkeypatch, always_crashes)
    assert len(list(tries.iterdir())) == INFRA_TRIES


def test_the_timeout_counts_from_a_units_start_not_from_its_submission(fake_host, tmp_path, monkeypatch, local_ray):
    """Five queued jobs that never started were cancelled as "Timeout": a queued unit must wait its turn."""
    from genbench.executors import ray_executor

    monkeypatch.setattr(ray_executor, "BACKSTOP_S", 0.0)

    def first_hangs(unit):
        import time as _time

        from genbench.types import SeedResult

        yield {"started": _time.time(), "hostname": "h", "node_id": "1" * 56, "cores": 1}
        if unit.seed == 0:
            _time.sleep(600)  # stopped answering: the driver's backstop cancels it
        yield SeedResult(seed=unit.seed, status="ok").to_dict()

    units = _units(fake_host, tmp_path, n=2)
    results, started = _collect(units, monkeypatch, first_hangs, timeout=5.0, one_at_a_time=True)
    by_seed = {u.seed: r for u, r in results}
    assert by_seed[0].status == "failed" and by_seed[0].error.type == "Timeout"
    assert "after it started on h (Ray node 1111111111111111)" in by_seed[0].error.message
    assert by_seed[1].status == "ok"  # queued for over 5 s behind the first, and never timed out for it


def test_resume_may_move_a_run_to_another_executor(fake_host, tmp_path):
    """A run a lost cluster stopped finishes with --executor process; the move is recorded. (Here a run of the
    process executor moves to inline: run()'s default, process, is not told apart from an omitted option.)"""
    import json

    from genbench.results import load_run

    first = genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                         executor="process", jobs=1, timing=False, baselines=False, device="cpu")
    run_dir = tmp_path / first.run_id
    data = json.loads((run_dir / "run.json").read_text())
    data["finished_at"] = None
    job = data["jobs"][0]
    job.update(status="pending", quality={}, seed_results=[])
    (run_dir / "run.json").write_text(json.dumps(data))
    done = genbench.run(resume=run_dir, executor="inline", host=fake_host)
    assert done.jobs[0].status == "ok"
    (moved,) = load_run(run_dir).config["resumed_on"]
    assert moved["executor"] == "inline" and moved["address"] is None
    assert done.jobs[0].seed_results[0].computed_by == "inline"  # it really ran on the new executor


@pytest.mark.slow
def test_a_node_removed_mid_unit_on_a_two_node_cluster_is_retried_on_another(fake_host, tmp_path, monkeypatch):
    """A real cluster (ray.cluster_utils): the head runs nothing, one worker node; the node is removed while
    a unit runs there, a second node joins, and the unit is run again there, not failed."""
    from ray.cluster_utils import Cluster

    from genbench.executors import ray_executor

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    first = cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        monkeypatch.setenv("RAY_ADDRESS", cluster.address)
        flag = tmp_path / "started-once"

        def slow(unit):
            import os as _os
            import platform
            import time as _time

            import ray as _ray

            from genbench.types import SeedResult

            yield {"started": _time.time(), "hostname": platform.node(),
                   "node_id": _ray.get_runtime_context().get_node_id(), "cores": 1}
            if not _os.path.exists(str(flag)):
                open(str(flag), "w").close()
                _time.sleep(600)
            yield SeedResult(seed=unit.seed, status="ok").to_dict()

        monkeypatch.setattr(ray_executor, "_run_remote", slow)
        results, started = [], []

        def on_start(unit):
            started.append(unit)
            if len(started) == 1:
                cluster.remove_node(first)
                cluster.add_node(num_cpus=1)

        (unit,) = _units(fake_host, tmp_path)
        unit.job.job_dir.parent.mkdir(parents=True, exist_ok=True)
        ray_executor.run_units([unit], cluster.address, None, lambda u, r: results.append(r), on_start=on_start)
        assert len(started) == 2 and [r.status for r in results] == ["ok"]
        assert "Ray node" in results[0].node
    finally:
        ray.shutdown()
        cluster.shutdown()

