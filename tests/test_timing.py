import numpy as np
import pytest

from genbench.perf import TimingPolicy, latency_stats, measure_interleaved, median_interval, required_samples


def test_required_samples_leaves_ten_beyond_the_percentile():
    assert required_samples(99) == 1000
    assert required_samples(90) == 100
    assert required_samples(50) == 20


def test_latency_stats_on_known_samples():
    s = np.arange(1, 1001) / 1000.0  # 1 ms .. 1000 ms
    st = latency_stats(s, items_per_call=4)
    assert st["latency_ms"]["p50"] == pytest.approx(np.percentile(s * 1e3, 50))
    assert st["latency_ms"]["p99"] == pytest.approx(np.percentile(s * 1e3, 99))
    assert st["latency_ms"]["mean"] == pytest.approx(500.5)
    assert st["throughput_per_s"] == pytest.approx(4 * 1000 / s.sum())
    assert st["valid"] is True and st["invalid_reason"] is None


def test_each_figure_is_judged_on_its_own():
    st = latency_stats(np.full(999, 1e-3), items_per_call=1)
    assert st["figure_validity"] == {"p50": True, "p90": True, "p95": True, "p99": False, "throughput": True}
    assert st["valid"] is True  # the headline pair (p50, throughput) stands; p99 alone does not
    assert "p99: 999 samples, needs 1000" in st["invalid_reason"]
    few = latency_stats(np.full(19, 1e-3), 1)
    assert few["figure_validity"]["p50"] is False and few["valid"] is False
    short = latency_stats(np.full(100, 1e-3), 1, min_seconds=0.5)  # 0.1 s of calls: too short for a throughput
    assert short["figure_validity"]["throughput"] is False and short["figure_validity"]["p90"] is True
    assert not short["valid"] and "throughput" in short["invalid_reason"]
    assert latency_stats(np.full(3, 1.0), 1, min_seconds=0.5)["figure_validity"]["throughput"] is True
    assert latency_stats(np.array([]), 1)["valid"] is False


def test_median_interval_is_the_binomial_order_statistics():
    from scipy.stats import binom

    s = np.arange(100, dtype=float)[::-1]  # unsorted on purpose
    assert median_interval(s) == (39.0, 60.0)  # x(40) and x(61) of 100, the textbook 95% interval
    assert 1 - 2 * binom.cdf(39, 100, 0.5) >= 0.95
    assert median_interval(np.arange(5.0)) is None  # no 95% interval from 5 samples
    assert median_interval(np.arange(6.0)) == (0.0, 5.0)


class FakeClock:
    """perf_counter for measure_interleaved: each call of a timed callable advances it by what it says."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def call(self, seconds):
        def fn():
            self.now += seconds() if callable(seconds) else seconds
        return fn


def test_timing_stops_early_once_the_median_is_tight(monkeypatch):
    import genbench.perf as perf

    clock = FakeClock()
    monkeypatch.setattr(perf.time, "perf_counter", clock)
    policy = TimingPolicy(warmup=1, min_iterations=50, min_seconds=0.1, max_seconds=10.0, rounds=2, target_ci=0.01)
    rng = np.random.default_rng(0)
    out = measure_interleaved({"steady": clock.call(1e-3),
                               "jittery": clock.call(lambda: 1e-3 * np.exp(rng.normal()))}, policy)
    steady, jittery = out["steady"], out["jittery"]
    # the steady one stops at its minimums (0.1 s = 100 calls); the jittery one (lognormal, sigma 1) could not
    # get within ±1% by its 10 s cap (about ±2.4% at 10,000 calls): it stops at a third of the cap, saying so
    assert len(steady.samples) == 100 and steady.stop_reason.startswith("median within")
    assert jittery.stop_reason.startswith("stopped early: median within ±") and "short of ±1%" in jittery.stop_reason
    assert 10.0 / 3 <= sum(jittery.samples) < 3.6
    # one that the projection says can get there by its cap runs on (and, here, does get there)
    mild = measure_interleaved({"m": clock.call(lambda: 1e-3 * np.exp(0.2 * rng.normal()))}, policy)["m"]
    assert mild.stop_reason.startswith("median within") and sum(mild.samples) > 10.0 / 3
    untargeted = measure_interleaved({"j": clock.call(lambda: 1e-3 * rng.choice([1.0, 1.5]))},
                                     TimingPolicy(warmup=1, min_iterations=50, min_seconds=0.1, max_seconds=10.0,
                                                  rounds=2, target_ci=None))
    assert untargeted["j"].stop_reason == "minimums" and sum(untargeted["j"].samples) < 0.2


def test_a_runtime_that_raises_loses_only_its_own_measurement():
    calls = {"n": 0}

    def breaks_later():
        calls["n"] += 1
        if calls["n"] > 30:
            raise RuntimeError("engine build failed")

    policy = TimingPolicy(warmup=2, min_iterations=100, min_seconds=0.0, max_seconds=1.0, rounds=2, target_ci=None)
    out = measure_interleaved({"ok": lambda: None, "bad": breaks_later, "dead": lambda: 1 / 0}, policy)
    assert out["bad"].error == "RuntimeError: engine build failed" and out["bad"].stop_reason == "error"
    assert out["dead"].error.startswith("ZeroDivisionError") and not out["dead"].samples
    assert len(out["ok"].samples) >= 100 and out["ok"].error is None


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
    from genbench.runtime.flops import graph_flops

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


def test_matmul_ceiling_takes_the_best_of_alternating_bursts_over_its_sizes_and_records_the_load():
    from genbench.runtime.flops import DEFAULT_CEILING_SIZES, matmul_ceiling_gflops

    assert [n for n, _ in DEFAULT_CEILING_SIZES] == [1024, 2048, 4096]  # the sizes a run measures
    c = matmul_ceiling_gflops(1, sizes=((64, 2), (128, 1)), seconds=0.01)
    assert c["threads"] == 1 and c["sizes"] == [64, 128]
    for runtime in ("torch", "onnxruntime"):
        assert {k: len(v) for k, v in c["bursts"][runtime].items()} == {"64": 2, "128": 1}
        assert c[runtime] == max(max(v) for v in c["bursts"][runtime].values()) > 0
        assert c["best_n"][runtime] in (64, 128)
    assert c["ceiling"] == max(c["torch"], c["onnxruntime"])
    assert "background_cpu_cores" in c and isinstance(c["noisy"], bool) and c["seconds"] > 0
    assert c["skipped"] == []
    # a size whose one call would take longer than the bound is left out, and named
    bounded = matmul_ceiling_gflops(1, sizes=((64, 1), (128, 1)), seconds=0.01, max_call_s=1e-12)
    assert bounded["sizes"] == [64] and bounded["skipped"] == [128] and set(bounded["bursts"]["torch"]) == {"64"}


def test_a_graph_above_the_ceiling_remeasures_it_and_the_final_value_stays():
    from genbench.runtime.flops import ceiling_value, settle_ceiling

    ceiling = {"torch": 90.0, "onnxruntime": 100.0, "ceiling": 100.0}
    calls = []

    def remeasure(result):
        return lambda: calls.append(1) or result

    assert settle_ceiling(ceiling, [("a", 99.0)], remeasure({})) == ceiling and not calls  # below: as it was
    raised = settle_ceiling(ceiling, [("gan/sample b64", 150.0)], remeasure({"torch": 160.0, "onnxruntime": 120.0}))
    assert raised["ceiling"] == 160.0 and raised["torch"] == 160.0 and len(calls) == 1  # measured low under load
    still = settle_ceiling(ceiling, [("vae/elbo b1024", 352.0)], remeasure({"torch": 95.0, "onnxruntime": 101.0}))
    assert still["ceiling"] == 101.0 and ceiling_value(still) == 101.0  # the final value, never withdrawn
    assert still["exceeded"] == {"by": "vae/elbo b1024", "gflops_per_s": 352.0} and "352.0" in still["note"]
    assert "101.0" in still["note"]
    assert settle_ceiling(None, [("a", 1.0)], remeasure({})) is None
    # a run written when an exceeded ceiling was withdrawn still reads as its measured value
    assert ceiling_value({"ceiling": None, "measured_ceiling": 101.0}) == 101.0 and ceiling_value(None) is None


def test_the_host_clock_times_every_runtime_and_a_device_clock_is_read_apart():
    """The callable and its synchronisation are inside the timed region; ``after`` (reading CUDA events,
    say) is outside it, so a slow device-clock reader never inflates the host figure."""
    import time

    device_times = []
    policy = TimingPolicy(warmup=1, min_iterations=5, min_seconds=0.0, max_seconds=1.0, rounds=1, target_ci=None)
    out = measure_interleaved({"dev": lambda: None}, policy, sync={"dev": lambda: time.sleep(0.002)},
                              after={"dev": lambda: (time.sleep(0.02), device_times.append(0.5))})
    samples = out["dev"].samples
    assert len(samples) >= 5 and min(samples) >= 0.002 and max(samples) < 0.015
    assert len(device_times) == len(samples) + 1  # the warm-up call's reading too


def test_a_callable_whose_one_call_is_over_the_cap_is_not_timed(monkeypatch):
    import genbench.perf as perf

    clock = FakeClock()
    monkeypatch.setattr(perf.time, "perf_counter", clock)
    policy = TimingPolicy(warmup=3, min_iterations=20, min_seconds=0.1, max_seconds=8.0, rounds=2, target_ci=None)
    out = measure_interleaved({"slow": clock.call(2.7), "fast": clock.call(1e-3), "ok": clock.call(2.6)}, policy)
    assert out["slow"].samples == [] and out["slow"].first_call_s == 2.7 and out["slow"].error is None
    assert out["slow"].stop_reason == ("not timed: a warm call took 2.7 s; 3 calls, the fewest a figure needs, "
                                       "would be over max_seconds (8 s)")
    assert len(out["fast"].samples) >= 20 and len(out["ok"].samples) >= 3  # 3 × 2.6 s fit in 8 s


def test_a_slow_cold_first_call_does_not_keep_a_fast_callable_from_being_timed(monkeypatch):
    """torch eager's first autoregressive sampling loop took 0.86 s (cold), its later ones 0.03 s: judged on the
    cold call alone, it got no per-sample figure in a 0.3 s cap."""
    import genbench.perf as perf

    clock = FakeClock()
    monkeypatch.setattr(perf.time, "perf_counter", clock)
    costs = iter([0.86] + [0.03] * 1000)
    policy = TimingPolicy(warmup=1, warmup_seconds=0.1, min_iterations=3, min_seconds=0.05, max_seconds=0.3, rounds=1,
                          target_ci=None)
    out = measure_interleaved({"torch": clock.call(lambda: next(costs))}, policy)["torch"]
    assert out.first_call_s == 0.86 and out.stop_reason == "minimums" and out.samples == pytest.approx([0.03] * 3)



def test_background_load_is_read_on_this_processs_cores_and_never_exceeds_them(tmp_path, monkeypatch):
    """A record said 3.54 background cores on a 2-CPU machine: 10 ms ticks over rounds of a few ms. The reading
    counts only the CPUs this process may run on, adds the rounds up before dividing, and stays within
    [0, those cores]."""
    import builtins
    import os

    from genbench import perf
    from genbench.perf import CpuMonitor, Measurement, clamp_cores

    assert clamp_cores(3.54, {0, 1}) == 2.0 and clamp_cores(-0.4, {0, 1}) == 0.0 and clamp_cores(0.7, {0, 1}) == 0.7
    m = Measurement(background_seconds=(0.05, 0.01))  # 5 ticks of others' work over 10 ms of rounds
    assert m.background_cores == min(5.0, len(os.sched_getaffinity(0)))
    # /proc/stat of a 4-CPU machine where this process may run on CPUs 1 and 3 only: CPUs 0 and 2 are busy
    stats = iter([
        "cpu  400 0 0 400 0 0 0 0\ncpu0 100 0 0 100 0\ncpu1 100 0 0 100 0\ncpu2 100 0 0 100 0\ncpu3 100 0 0 100 0\n"
        "intr 1\n",
        "cpu  900 0 0 500 0 0 0 0\ncpu0 300 0 0 100 0\ncpu1 150 0 0 150 0\ncpu2 300 0 0 100 0\ncpu3 150 0 0 150 0\n"
        "intr 1\n"])
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/stat":
            target = tmp_path / "stat"
            target.write_text(next(stats))
            return real_open(target, *args, **kwargs)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(perf.os, "sched_getaffinity", lambda pid: {1, 3})
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(perf.os, "times", lambda: os.times_result((0.0, 0.0, 0.0, 0.0, 0.0)))
    clock = iter([0.0, 1.0])
    monkeypatch.setattr(perf.time, "perf_counter", lambda: next(clock))
    monitor = CpuMonitor()
    assert monitor.cores == {1, 3}
    # CPUs 1 and 3: 50 + 50 ticks busy = 1.0 s over 1 s: one core; the whole machine's 500 ticks would say 5
    assert monitor.background_cores() == pytest.approx(1.0 * 100 / os.sysconf("SC_CLK_TCK"))


def test_a_likelihood_or_logits_graphs_forward_pass_is_timed_only_up_to_the_detail_batch():
    from dataclasses import replace

    from genbench.config import get_profile
    from genbench.timing import forward_batches
    from genbench.types import GraphSpec, TensorSpec

    def graph(role, source="data"):
        x = TensorSpec("x", ("batch", 4), dtype="int64", source=source, vocab=8) if source == "tokens" else \
            TensorSpec("x", ("batch", 4), source=source)
        return GraphSpec(role, "g.onnx", (x,),
                         (TensorSpec("y", ("batch",)),))

    default = get_profile("default")
    assert default.batch_sizes == (1, 64, 1024)
    assert forward_batches(default, graph("elbo")) == (1, 64)  # the old name of likelihood
    assert forward_batches(default, graph("likelihood")) == (1, 64)
    assert forward_batches(default, graph("logits", "tokens")) == (1, 64)
    assert forward_batches(default, graph("sample", "normal")) == (1, 64, 1024)  # the headline: the whole sweep
    assert forward_batches(replace(default, detail_max_batch=None), graph("elbo")) == (1, 64, 1024)
    assert forward_batches(replace(default, detail_max_batch=0), graph("elbo")) == (1,)  # at least the first
