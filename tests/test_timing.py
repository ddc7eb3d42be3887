import numpy as np
import pytest

from genbench.perf import TimingPolicy, latency_stats, measure_interleaved, required_samples


def test_required_samples_leaves_ten_beyond_the_percentile():
    assert required_samples(99) == 1000
    assert required_samples(90) == 100
    assert required_samples(50) == 20


def test_latency_stats_on_known_samples():
    s = np.arange(1, 1001) / 1000.0  # 1 ms .. 1000 ms
    st = latency_stats(s, batch_size=4)
    assert st["latency_ms"]["p50"] == pytest.approx(np.percentile(s * 1e3, 50))
    assert st["latency_ms"]["p99"] == pytest.approx(np.percentile(s * 1e3, 99))
    assert st["latency_ms"]["mean"] == pytest.approx(500.5)
    assert st["throughput_per_s"] == pytest.approx(4 * 1000 / s.sum())
    assert st["valid"] is True and st["invalid_reason"] is None


def test_too_few_samples_are_marked_invalid():
    st = latency_stats(np.full(999, 1e-3), batch_size=1)
    assert st["valid"] is False
    assert "999 samples" in st["invalid_reason"] and "p99" in st["invalid_reason"]
    assert latency_stats(np.array([]), 1)["valid"] is False


def test_interleaved_loop_meets_both_minimums_and_excludes_warmup():
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn():
            calls[name] += 1
        return fn

    policy = TimingPolicy(warmup=7, min_iterations=40, min_seconds=0.02, max_seconds=5.0, rounds=2)
    out = measure_interleaved({"a": make("a"), "b": make("b")}, policy)
    for name in ("a", "b"):
        n = len(out[name].samples)
        assert n >= 40
        assert sum(out[name].samples) > 0
        assert calls[name] == n + 7  # warm-up calls are made but not recorded


def test_hard_cap_stops_a_slow_callable():
    import time

    policy = TimingPolicy(warmup=0, min_iterations=10_000, min_seconds=0.0, max_seconds=0.05, rounds=1)
    out = measure_interleaved({"slow": lambda: time.sleep(0.01)}, policy)
    assert len(out["slow"].samples) < 100
    assert not latency_stats(np.array(out["slow"].samples), 1)["valid"]


def test_warmup_is_bounded_in_time_but_makes_at_least_one_call():
    import time

    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.02)

    policy = TimingPolicy(warmup=1000, warmup_seconds=0.05, min_iterations=1, min_seconds=0.0, max_seconds=1.0, rounds=1)
    out = measure_interleaved({"slow": slow}, policy)
    warm = len(calls) - len(out["slow"].samples)
    assert 1 <= warm <= 5
    policy = TimingPolicy(warmup=0, warmup_seconds=0.0, min_iterations=1, min_seconds=0.0, max_seconds=1.0, rounds=1)
    calls.clear()
    out = measure_interleaved({"slow": slow}, policy)
    assert len(calls) - len(out["slow"].samples) == 1


def test_graph_flops_counts_matmul_and_conv_exactly(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from fakes import _weights, write_graph
    from genbench.perf.flops import graph_flops

    path = tmp_path / "g.onnx"
    write_graph(path, _weights())  # z[B,4] @ W[4,64]
    assert graph_flops(path, {"batch": 1}) == 2 * 4 * 64
    assert graph_flops(path, {"batch": 10}) == 10 * 2 * 4 * 64
    assert graph_flops(path, {}) is None  # a symbolic axis without a size
    w = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "W")
    g = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])], "c",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8, 5, 5])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    m.ir_version = 10
    onnx.save(m, str(tmp_path / "c.onnx"))
    assert graph_flops(tmp_path / "c.onnx", {"batch": 2}) == 2 * (2 * 8 * 5 * 5) * (3 * 3 * 3)


def test_matmul_ceiling_is_measured_for_both_runtimes():
    from genbench.perf.flops import matmul_ceiling_gflops

    c = matmul_ceiling_gflops(1, n=256, seconds=0.05)
    assert c["ceiling"] == max(c["torch"], c["onnxruntime"]) > 0.1 and c["threads"] == 1


def test_self_timed_callables_report_their_own_clock():
    """How CUDA-event timings enter the statistics: the callable's own elapsed time, not the host clock's."""
    policy = TimingPolicy(warmup=1, min_iterations=10, min_seconds=0.0, max_seconds=1.0, rounds=1)
    out = measure_interleaved({"dev": lambda: 0.25, "host": lambda: 0.25}, policy, self_timed=frozenset({"dev"}))
    assert out["dev"].samples == [0.25] * len(out["dev"].samples) and len(out["dev"].samples) >= 10
    assert max(out["host"].samples) < 0.01
