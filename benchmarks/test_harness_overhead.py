"""Harness overhead: genbench's timing loop against a bare ``session.run`` loop, same session, one run.

genbench's measured throughput must stay within 3% of what the bare loop achieves. The two are
interleaved several times and the median ratio is kept, so a burst of background load hits both.
Run: ``pytest benchmarks/test_harness_overhead.py --benchmark-enable``.
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes import _weights, write_graph  # noqa: E402

from genbench.perf import TimingPolicy, latency_stats, measure_interleaved  # noqa: E402
from genbench.runtime import make_session  # noqa: E402

BLOCK = 2_000  # calls per block; bare and genbench blocks alternate so drift and bursts hit both
BLOCKS = 30


def _bare_seconds(run, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        run()
    return time.perf_counter() - t0


def test_genbench_loop_is_within_3_percent_of_a_bare_loop(benchmark, tmp_path):
    path = tmp_path / "g.onnx"
    write_graph(path, _weights())  # a small graph: per-call overhead shows most here
    session = make_session(path, "cpu", threads=1)
    feeds = {"z": np.random.default_rng(0).standard_normal((1, 4)).astype(np.float32)}
    run = lambda: session.run(["x"], feeds)  # noqa: E731
    policy = TimingPolicy(warmup=1, min_iterations=BLOCK, min_seconds=0.0, max_seconds=60.0, rounds=1)
    _bare_seconds(run, 500)  # warm both paths up
    bare_total = ours_total = 0.0
    per_block = []
    for _ in range(BLOCKS):
        bare = _bare_seconds(run, BLOCK)
        samples = measure_interleaved({"ort": run}, policy)["ort"].samples
        ours = len(samples) / latency_stats(np.asarray(samples), 1)["throughput_per_s"]  # = sum of latencies
        bare_total += bare
        ours_total += ours * BLOCK / len(samples)
        per_block.append(bare / (ours * BLOCK / len(samples)))
    ratio = bare_total / ours_total  # genbench's throughput over the bare loop's
    benchmark.extra_info.update({"ratio": ratio, "per_block_median": statistics.median(per_block)})
    benchmark.pedantic(_bare_seconds, args=(run, BLOCK), rounds=5, iterations=1)
    print(f"genbench/bare throughput ratio: {ratio:.4f} (per-block median {statistics.median(per_block):.4f})")
    assert 0.97 <= ratio <= 1.03, f"genbench's loop measures {ratio:.3f} of the bare loop's throughput"
