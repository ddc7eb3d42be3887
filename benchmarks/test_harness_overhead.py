"""Harness overhead: what genbench reports against a bare loop over the same session, side by side.

genbench's side is the harness's own call path: the callable :func:`genbench.timing.ort_call` builds for the
timing stage, timed by :func:`genbench.perf.measure_interleaved`, each call's outputs freed inside the timed
region (the callable's result is dropped before the clock is read). The bare side is
``for _ in range(n): session.run(names, feeds)`` under one clock read, outputs freed inside the loop too.
Blocks of the two alternate, so that drift and bursts of background load hit both; the median of the
per-block ratios is kept.

* On a graph of at least 1 ms per call, genbench's per-call latency must be within ±2% of the bare loop's.
* On the smallest graph (a 4×64 matmul, a few µs per call), the difference is reported in µs per call.
* The saved pytest-benchmark baseline times genbench's own loop around a call that does nothing, so
  ``tox -e bench`` tracks genbench's overhead, not ONNX Runtime's speed.

Run: ``pytest benchmarks/test_harness_overhead.py --benchmark-enable -s``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes import _weights, write_graph  # noqa: E402

from genbench.perf import TimingPolicy, measure_interleaved  # noqa: E402
from genbench.runtime import make_session  # noqa: E402
from genbench.timing import ort_call  # noqa: E402
from genbench.types import GraphSpec, TensorSpec  # noqa: E402

PAIRS = 61  # alternating bare/genbench block pairs
LOOP_CALLS = 20_000  # no-op calls per round of the baseline benchmark


def _block_policy(calls: int) -> TimingPolicy:
    return TimingPolicy(warmup=1, warmup_seconds=0.0, min_iterations=calls, min_seconds=0.0, max_seconds=600.0,
                        rounds=1, target_ci=None)


def _heavy_graph(path: Path) -> GraphSpec:
    """x [B, 512] → two 512×512 matmuls with tanh: a few ms per call at batch 256 on one thread."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((512, 512)) / 23).astype(np.float32), f"W{i}") for i in (1, 2)]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h1"]), helper.make_node("Tanh", ["h1"], ["a1"]),
             helper.make_node("MatMul", ["a1", "W2"], ["y"])]
    graph = helper.make_graph(nodes, "heavy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 512])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 512])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return GraphSpec("sample", path.name, (TensorSpec("x", ("batch", 512), source="normal"),),
                     (TensorSpec("y", ("batch", 512)),))


def _small_graph(path: Path) -> GraphSpec:
    write_graph(path, _weights())
    return GraphSpec("sample", path.name, (TensorSpec("z", ("batch", 4), source="normal"),),
                     (TensorSpec("x", ("batch", 1, 8, 8)),))


def compare(path: Path, spec: GraphSpec, batch: int, block: int) -> dict[str, float]:
    """Alternating blocks of the bare loop and genbench's path, in pairs: the median of the pairs' ratios of
    per-call seconds (genbench over bare; a pair is measured back to back, so slow drift cancels), their
    quartiles, the ratio of the two sides' medians, and the median difference in µs per call."""
    session = make_session(path, "cpu", threads=1)
    feeds = {spec.inputs[0].name: np.random.default_rng(0).standard_normal((batch, spec.inputs[0].shape[1]))
             .astype(np.float32)}
    names = [o.name for o in spec.outputs]
    call, _ = ort_call(session, spec, feeds, "cpu")  # exactly what the timing stage times

    def bare() -> float:
        t0 = time.perf_counter()
        for _ in range(block):
            session.run(names, feeds)
        return (time.perf_counter() - t0) / block

    def ours() -> float:
        m = measure_interleaved({"onnxruntime": call}, _block_policy(block))["onnxruntime"]
        return float(np.mean(m.samples))  # what genbench reports: its throughput is 1 / this

    bare()
    ours()  # warm both paths
    ratios, diffs, bares = [], [], []
    for i in range(PAIRS):
        if i % 2 == 0:
            a = bare()
            b = ours()
        else:
            b = ours()
            a = bare()
        ratios.append(b / a)
        diffs.append(b - a)
        bares.append(a)
    oursb = [a + d for a, d in zip(bares, diffs)]
    q = statistics.quantiles(ratios, n=4)
    return {"ratio": statistics.median(ratios), "ratio_of_medians": statistics.median(oursb) / statistics.median(bares),
            "ratio_q1": q[0], "ratio_q3": q[2], "overhead_us_per_call": statistics.median(diffs) * 1e6,
            "bare_ms_per_call": statistics.median(bares) * 1e3}


def _say(label: str, out: dict[str, float]) -> None:
    print(f"\n{label}: bare {out['bare_ms_per_call'] * 1e3:.2f} µs/call; genbench/bare per-call latency "
          f"{out['ratio']:.4f} (median of {PAIRS} pairs; IQR {out['ratio_q1']:.4f}..{out['ratio_q3']:.4f}; ratio of "
          f"medians {out['ratio_of_medians']:.4f}); genbench reports {out['overhead_us_per_call']:+.3f} µs/call more")


def test_genbench_is_within_2_percent_of_a_bare_loop_on_a_1ms_graph(tmp_path):
    spec = _heavy_graph(tmp_path / "heavy.onnx")
    out = compare(tmp_path / "heavy.onnx", spec, batch=256, block=10)
    _say("1 ms+ graph", out)
    assert out["bare_ms_per_call"] >= 1.0, "the heavy graph must take at least 1 ms per call"
    assert 0.98 <= out["ratio"] <= 1.02, f"genbench's per-call latency is {out['ratio']:.4f} of the bare loop's"


def test_overhead_per_call_on_the_smallest_graph(tmp_path):
    spec = _small_graph(tmp_path / "small.onnx")
    out = compare(tmp_path / "small.onnx", spec, batch=1, block=2_000)
    _say("smallest graph", out)
    assert abs(out["overhead_us_per_call"]) < 2.0, "genbench's loop adds more than 2 µs per call"


def test_genbench_loop_overhead_baseline(benchmark):
    """The saved baseline: genbench's timing loop around a call that does nothing (LOOP_CALLS calls)."""
    policy = _block_policy(LOOP_CALLS)
    noop = {"noop": lambda: None}
    benchmark.extra_info["calls_per_round"] = LOOP_CALLS
    out = benchmark.pedantic(measure_interleaved, args=(noop, policy), rounds=5, iterations=1)
    assert len(out["noop"].samples) == LOOP_CALLS
    per_call_us = benchmark.stats.stats.median / LOOP_CALLS * 1e6
    benchmark.extra_info["loop_us_per_call"] = per_call_us
    print(f"\ngenbench's loop: {per_call_us:.3f} µs per call around a no-op")
