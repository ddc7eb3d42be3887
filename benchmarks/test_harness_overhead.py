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

CALLS = 20_000
REPEATS = 5


def _bare_throughput(run, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        run()
    return calls / (time.perf_counter() - t0)


def test_genbench_loop_is_within_3_percent_of_a_bare_loop(benchmark, tmp_path):
    path = tmp_path / "g.onnx"
    write_graph(path, _weights())  # a small graph: per-call overhead shows most here
    session = make_session(path, "cpu", threads=1)
    feeds = {"z": np.random.default_rng(0).standard_normal((1, 4)).astype(np.float32)}
    run = lambda: session.run(["x"], feeds)  # noqa: E731
    policy = TimingPolicy(warmup=100, min_iterations=CALLS, min_seconds=0.0, max_seconds=60.0, rounds=1)
    ratios = []
    for _ in range(REPEATS):
        bare = _bare_throughput(run, CALLS)
        ours = latency_stats(np.asarray(measure_interleaved({"ort": run}, policy)["ort"].samples), 1)["throughput_per_s"]
        ratios.append(ours / bare)
    ratio = statistics.median(ratios)
    benchmark.extra_info.update({"median_ratio": ratio, "ratios": ratios})
    benchmark.pedantic(_bare_throughput, args=(run, 2000), rounds=5, iterations=1)
    print(f"genbench/bare throughput ratio: median {ratio:.4f} of {[round(r, 4) for r in ratios]}")
    assert 0.97 <= ratio <= 1.03, f"genbench's loop measures {ratio:.3f} of the bare loop's throughput"
