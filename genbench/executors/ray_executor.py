"""Run units as Ray tasks on a cluster (``--executor ray [--address ADDR]``), plugins unchanged.

Stage 1 (build and score) submits every unit at once; each asks for one CPU (``train_threads``) and one
GPU for CUDA jobs, and the cluster runs them side by side. Stage 2 (timing) starts when stage 1 is over
and submits one unit at a time, each also asking for the custom resource ``genbench_timing`` (start
every node with ``--resources='{"genbench_timing": 1}'``; a local instance started by genbench declares
it itself), so no two timings and no build work of this run overlap. Results stream back to the
driver, which writes them exactly as the local executor does.

What the process executor promises holds on Ray too:

* **One process per unit.** A Ray task never runs a unit in its own (reused) worker process: it forks the
  unit's build process (plugin code, sandboxed where bubblewrap runs) and its genbench-only score or time
  process from a fresh server, exactly as ``--executor process`` does, with ``--max-memory``, output capture
  and the unit's time limit. A plugin's global state dies with its unit.
* **Timeouts from the unit's start.** Each task first reports where and when it started (a streaming
  generator's first item); the unit's own process enforces ``--timeout`` from there, and the driver's
  backstop counts from that report too, never from submission: a unit still queued is never timed out.
* **Infrastructure faults are not the model's.** A lost node, a crashed worker or a dead raylet
  (:data:`INFRASTRUCTURE`) makes the unit run again, up to :data:`INFRA_TRIES` times in all; after that the
  unit stays to do and the run stops in one line saying how to finish it (``genbench run --resume DIR``,
  which may switch to ``--executor process`` or another ``--address``). A lost cluster does the same for
  every unit not finished.
* **Storage.** The units read and write the run directory, so every node must see it (shared storage).
  Before any unit is submitted to a cluster, a probe pinned to each alive node reads a token the driver
  wrote there; a node that cannot is refused in one line.
* **Provenance.** Each unit's result names the host and the Ray node ID that ran it (``node``), and the
  timing record's ``node`` and ``threads`` say where it was timed.
* **Connecting.** ``--address`` (else ``$RAY_ADDRESS``) is checked with a 5 s TCP connect before
  ``ray.init``, which otherwise retries for minutes; failure is one line.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import ConfigError, GenbenchError
from ..types import JobError
from . import BuildUnit, TimingUnit

TIMING_RESOURCE = "genbench_timing"
#: tries in all for a unit whose task was lost to the infrastructure (a node, a worker, a raylet)
INFRA_TRIES = 3
#: how long the driver waits for a unit's result past ``--timeout`` from its start, before it cancels it (the
#: unit's own process enforces the timeout; this is a backstop for a task that stopped answering)
BACKSTOP_S = 300.0
CONNECT_TIMEOUT_S = 5.0


class ClusterLost(GenbenchError):
    """The Ray cluster, or a unit's tries, were lost to the infrastructure: the run stops, keeping every
    finished unit, and ``genbench run --resume`` finishes it (on Ray, or with ``--executor process``)."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("The Ray executor needs Ray: pip install 'genbench[ray]' (or pip install ray).") from None
    return ray


def infrastructure_errors() -> tuple[type[BaseException], ...]:
    """Ray's exceptions for work lost to the infrastructure rather than raised by the unit."""
    import ray.exceptions as rx

    names = ("NodeDiedError", "WorkerCrashedError", "LocalRayletDiedError", "ObjectLostError", "OwnerDiedError",
             "ObjectReconstructionFailedError", "ObjectFetchTimedOutError", "RaySystemError", "ActorDiedError",
             "ActorUnavailableError", "RayChannelError")
    return tuple(getattr(rx, n) for n in names if isinstance(getattr(rx, n, None), type))


def _run_remote(unit: BuildUnit | TimingUnit):
    """On a Ray worker: first where and when the unit starts, then its result. The unit runs in processes of
    its own, exactly as the process executor runs it (a build process for plugin code, sandboxed where bwrap
    can run; genbench-only score and time processes), never in this reused worker process."""
    import platform

    import ray

    from ..perf.cores import usable_cores

    yield {"started": time.time(), "hostname": platform.node(), "node_id": ray.get_runtime_context().get_node_id(),
           "cores": usable_cores()}
    from .local import run_in_process, start_server

    start_server()
    yield run_in_process(unit, unit.job.config.timeout).to_dict()


def _probe(path: str, token: str) -> tuple[str, bool]:
    """On one node: its host name, and whether it reads ``token`` from ``path`` (the driver wrote it)."""
    import platform

    try:
        return platform.node(), Path(path).read_text(encoding="utf-8") == token
    except OSError:
        return platform.node(), False


def check_address(address: str) -> None:
    """Refuse, in one line, a cluster address nothing answers at (``ray.init`` would retry for minutes)."""
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, as `ray start --head` "
                          "prints); give the head node's address.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"No Ray cluster answers at {address} ({exc.strerror or type(exc).__name__} within "
                          f"{CONNECT_TIMEOUT_S:g} s): start it with `ray start --head`, or fix --address / "
                          "$RAY_ADDRESS.") from None


def connect(address: str | None) -> bool:
    """Connect to the cluster at ``address`` (else ``$RAY_ADDRESS``), or start a local instance with this
    machine's usable cores and one timing slot. Returns whether it is a cluster genbench did not start."""
    ray = _ray()
    if ray.is_initialized():
        return bool(address or os.environ.get("RAY_ADDRESS"))
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address != "local":
        if address != "auto":
            check_address(address)
        try:
            ray.init(address=address, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ...
            raise ConfigError(f"Cannot join the Ray cluster at {address}: {' '.join(str(exc).split())[:200]}") \
                from None
        return True
    from ..perf.cores import usable_cores

    ray.init(address="local", num_cpus=usable_cores(), resources={TIMING_RESOURCE: 1}, include_dashboard=False,
             log_to_driver=False)
    return False


def check_shared_storage(run_dir: Path) -> None:
    """Every alive node must read the run directory the driver writes (the units read and write it)."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    probe_file = Path(run_dir) / f".ray-probe-{token[:12]}"
    probe_file.write_text(token, encoding="utf-8")
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        remote = ray.remote(num_cpus=0, max_retries=1)(_probe)
        refs = [remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(probe_file), token) for n in nodes]
        blind = []
        for node, ref in zip(nodes, refs):
            try:
                host, ok = ray.get(ref, timeout=120)
            except Exception:  # noqa: BLE001 - a node that cannot run the probe cannot run units either
                host, ok = node.get("NodeManagerHostname", "?"), False
            if not ok:
                blind.append(f"{host} (Ray node {node['NodeID'][:12]})")
        if blind:
            raise ConfigError(f"The run directory {run_dir} is not visible on {', '.join(blind)}: genbench's Ray "
                              "units read and write it there; put --out on storage every node shares (e.g. NFS).")
    finally:
        probe_file.unlink(missing_ok=True)


class _Task:
    def __init__(self, unit: BuildUnit | TimingUnit, gen: Any, tries: int) -> None:
        self.unit, self.gen, self.tries = unit, gen, tries
        self.submitted = time.monotonic()
        self.started: float | None = None  # monotonic, on the driver, when the start report arrived
        self.where: dict[str, Any] | None = None


def run_units(units: Iterable[BuildUnit | TimingUnit], address: str | None, timeout: float | None,
              on_result: Callable[[BuildUnit | TimingUnit, Any], None], one_at_a_time: bool = False,
              stop: threading.Event | None = None, on_start: Callable[[BuildUnit | TimingUnit], None] | None = None,
              ) -> None:
    """Submit the units (all at once, or ``one_at_a_time``), then hand each result to ``on_result`` (and tell
    ``on_start`` when each starts on a node). Once ``stop`` is set, nothing more is submitted and the tasks
    still running are cancelled (they stay to do). Raises :class:`ClusterLost` when a unit's tries or the
    cluster itself are lost to the infrastructure (what finished was handed over)."""
    ray = _ray()
    queue = list(units)
    if not queue:
        return
    cluster = connect(address)
    if cluster:
        check_shared_storage(queue[0].job.run_dir)
    has_timing = ray.cluster_resources().get(TIMING_RESOURCE, 0) >= 1
    remote = ray.remote(num_returns="streaming", max_retries=0)(_run_remote)
    lost = infrastructure_errors()
    pending: dict[Any, _Task] = {}

    def submit(unit: BuildUnit | TimingUnit, tries: int = 1) -> None:
        resources = {TIMING_RESOURCE: 1} if has_timing and unit.kind == "timing" else {}
        gen = remote.options(num_cpus=unit.job.config.train_threads, num_gpus=1 if unit.job.device == "cuda" else 0,
                             resources=resources).remote(unit)
        pending[gen] = _Task(unit, gen, tries)

    try:
        while queue or pending:
            if stop is not None and stop.is_set():
                return  # what still runs is cancelled below
            while queue and (not one_at_a_time or not pending):
                submit(queue.pop(0))
            try:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            except lost as exc:
                raise _cluster_lost(exc, pending) from None
            for gen in done:
                task = pending[gen]
                try:
                    item = ray.get(next(gen))
                except StopIteration:
                    pending.pop(gen)
                    continue
                except lost as exc:  # the node, worker or raylet went: run the unit again elsewhere
                    pending.pop(gen)
                    if task.tries >= INFRA_TRIES:
                        raise ClusterLost(
                            f"{task.unit.label} was lost to the Ray cluster {task.tries} times "
                            f"({_why(exc)}); it is not the model's failure.") from None
                    submit(task.unit, task.tries + 1)
                    continue
                except Exception as exc:  # noqa: BLE001 - genbench's own code raised on the worker
                    pending.pop(gen)
                    on_result(task.unit, task.unit.failed(JobError("ray", type(exc).__name__, _why(exc)),
                                                          _since(task)))
                    continue
                if task.where is None:  # the start report
                    task.where, task.started = dict(item), time.monotonic()
                    if on_start is not None:
                        on_start(task.unit)
                    continue
                pending.pop(gen)
                on_result(task.unit, _placed(task.unit.result_from_dict(item), task.where))
            if timeout is not None:
                now = time.monotonic()
                for gen, task in list(pending.items()):
                    if task.started is not None and now - task.started > timeout + BACKSTOP_S:
                        ray.cancel(gen, force=True)
                        pending.pop(gen)
                        on_result(task.unit, task.unit.failed(JobError(
                            "ray", "Timeout", f"no result {timeout + BACKSTOP_S:g} s after it started on "
                            f"{_node_text(task.where)} (--timeout {timeout:g} s); the task was cancelled."),
                            now - task.started))
    finally:  # stopping, or a full disk on the driver: nothing of this run goes on running
        for gen in pending:
            try:
                ray.cancel(gen, force=True)
            except Exception:  # noqa: BLE001 - a lost cluster cancels nothing
                pass


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:300]


def _since(task: _Task) -> float:
    return time.monotonic() - (task.started if task.started is not None else task.submitted)


def _cluster_lost(exc: BaseException, pending: dict[Any, _Task]) -> ClusterLost:
    return ClusterLost(f"The Ray cluster was lost ({_why(exc)[:160]}); {len(pending)} running units are left to do, "
                       "not failed.")


def _node_text(where: dict[str, Any] | None) -> str:
    if not where:
        return "the cluster"
    return f"{where.get('hostname')} (Ray node {str(where.get('node_id'))[:16]})"


def _placed(result: Any, where: dict[str, Any] | None) -> Any:
    """``result`` with where it ran: the host and the Ray node ID (two nodes may share a host name), and for
    a timing the node and the cores it was timed on."""
    from dataclasses import replace

    from ..types import SeedResult, TimingResult

    if not where:
        return result
    if isinstance(result, SeedResult):
        return replace(result, node=_node_text(where))
    if isinstance(result, TimingResult):
        return replace(result, info={**dict(result.info), "node": _node_text(where), "ray_node_id": where.get("node_id"),
                                     "node_cores": where.get("cores")})
    return result
