"""Speed numbers that hold: per-sample cost, best batch, memory, and the GPU paths (covered here with fakes,
since no GPU is needed to run the tests)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

import genbench
from genbench.config import get_profile
from genbench.perf import TimingPolicy
from genbench.reports import perf_summary
from genbench.timing import measure_performance
from genbench.types import JobResult, PerfRecord
from speed_fakes import ConstantCostARModel, FakeSession, SpeedPlugin, TorchFailsAtBatch64Model, node_event

QUICK = TimingPolicy(warmup=2, warmup_seconds=0.5, min_iterations=20, min_seconds=0.3, max_seconds=2.0, rounds=2,
                     target_ci=None)


def _profile(**changes):
    return replace(get_profile("smoke"), timing=QUICK, latency_iterations=20, generate_timing=replace(
        QUICK, min_iterations=5), generate_call_budget_s=5.0, **changes)


def _image_task(shape=(1, 4, 4)):
    return SimpleNamespace(kind="image", shape=shape, test_x=None, vocab=None)


def _find(records, scenario, runtime, batch):
    return next(r for r in records if r.scenario == scenario and r.runtime == runtime and r.batch_size == batch)


class _Clocked:
    """Wraps a session or a module so that each graph call advances a fake clock by ``cost`` seconds: the
    timing code then sees every call cost exactly that, and nothing else cost anything."""

    def __init__(self, inner, clock, cost):
        self._inner, self._clock, self._cost = inner, clock, cost

    def run(self, *args, **kwargs):
        self._clock.now += self._cost
        return self._inner.run(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        self._clock.now += self._cost
        return self._inner(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_per_sample_cost_of_an_ar_model_is_its_steps_times_its_forward_cost(tmp_path, monkeypatch):
    """One 4×4 image of an autoregressive model is 16 logits-graph calls after BOS: on a clock where each
    graph call costs 1 ms and nothing else costs anything, one generated sample costs exactly 16 forward
    calls, in both runtimes. (The same on the real clock, where the sampling loop's own work adds a little,
    is benchmarks/test_generate_cost.py.)"""
    import genbench.perf as perf
    import genbench.timing as timing

    from test_timing import FakeClock

    clock = FakeClock()
    monkeypatch.setattr(perf.time, "perf_counter", clock)
    real_make_session = timing.make_session
    monkeypatch.setattr(timing, "make_session", lambda *a, **k: _Clocked(real_make_session(*a, **k), clock, 1e-3))
    model = ConstantCostARModel()
    bundle = model.export_onnx(tmp_path / "bundle")
    records, _, warnings, _ = measure_performance(bundle, lambda role: _Clocked(model.torch_module(role), clock, 1e-3),
                                                  "cpu", _profile(batch_sizes=(1, 64)), 1, 0, _image_task())
    assert not warnings
    for runtime in ("onnxruntime", "torch-eager"):
        for batch in (1, 64):
            forward = _find(records, "forward", runtime, batch)
            generate = _find(records, "generate", runtime, batch)
            assert forward.latency_ms["p50"] == pytest.approx(1.0, rel=1e-9)
            assert generate.latency_ms["p50"] == pytest.approx(16 * forward.latency_ms["p50"], rel=1e-9)
            assert generate.throughput_per_s == pytest.approx(batch / 16e-3, rel=1e-9)  # samples per second
            assert generate.steps == 16 and generate.unit == "samples/s" and "16 tokens after BOS" in generate.note
    job = JobResult(model="m", family="ar", plugin="p", plugin_version="1", task="t", device="cpu", status="ok",
                    performance=tuple(records))
    p = perf_summary(job)
    assert p["unit"] == "samples/s" and p["scenario"] == "generate"
    assert p["ort_p50_ms_b1"] == pytest.approx(16.0) and p["ort_best_throughput"] == pytest.approx(64 / 16e-3)


def test_a_sample_graph_generates_one_sample_per_row_of_one_call(tmp_path):
    from fakes import TinyModel

    from genbench.types import TrainConfig

    model = TinyModel()
    model.train(None, TrainConfig(), lambda *a: None)
    records, raw, _, _ = measure_performance(model.export_onnx(tmp_path / "b"), model.torch_module, "cpu",
                                             _profile(), 1, 0, _image_task((1, 8, 8)))
    for runtime in ("onnxruntime", "torch-eager"):
        for batch in (1, 64):
            forward, generate = _find(records, "forward", runtime, batch), _find(records, "generate", runtime, batch)
            assert generate.latency_ms == forward.latency_ms and generate.steps == 1  # the same measurement
            assert generate.unit == "samples/s" and forward.unit == "items/s"
            assert generate.gflops_per_s == forward.gflops_per_s  # the same FLOPs per sample: its share of the peak
            assert raw[f"sample/generate/{runtime}/b{batch}"] == raw[f"sample/forward/{runtime}/b{batch}"]
    ort = _find(records, "forward", "onnxruntime", 1)
    assert ort.math_mode == "fp32" and ort.provider == "CPUExecutionProvider"
    assert ort.providers_used == {"CPUExecutionProvider": 3}  # read back from the session's own profile
    assert ort.clock.startswith("host") and ort.device_time_ms is None
    assert set(ort.figure_validity) == {"p50", "p90", "p95", "p99", "throughput"} and ort.stop_reason == "minimums"


def _record(batch, throughput, *, valid=True, noisy=False, runtime="onnxruntime", p99=True):
    return PerfRecord(runtime=runtime, provider="CPUExecutionProvider", device="cpu", batch_size=batch, threads=1,
                      iterations=100, seconds=1.0, latency_ms={"p50": batch * 1e3 / throughput, "p99": 9.0},
                      throughput_per_s=throughput, valid=valid, noisy=noisy, scenario="generate", unit="samples/s",
                      figure_validity={"p50": True, "p90": True, "p95": True, "p99": p99, "throughput": valid},
                      graph="sample")


def _job(*records):
    return JobResult(model="m", family="gan", plugin="p", plugin_version="1", task="t", device="cpu", status="ok",
                     performance=records)


def test_the_best_batch_is_chosen_among_valid_quiet_records():
    job = _job(_record(1, 100.0, p99=False), _record(64, 5000.0, valid=False), _record(256, 3000.0),
               _record(1024, 9000.0, noisy=True))
    p = perf_summary(job)
    assert p["ort_best_batch"] == 256 and p["ort_best_throughput"] == 3000.0  # not the invalid 64, not the noisy 1024
    assert p["valid"] is True and p["noisy"] is False
    assert p["ort_p99_ms_b1"] is None and p["ort_p50_ms_b1"] == 10.0  # a p99 without its 1,000 calls is withheld
    flagged = perf_summary(_job(_record(1, 100.0, valid=False), _record(64, 900.0, noisy=True)))
    assert flagged["ort_best_batch"] == 64 and flagged["valid"] is False and flagged["noisy"] is True


def test_runs_without_generate_records_fall_back_only_where_the_definition_is_the_same():
    forward_sample = replace(_record(1, 100.0), scenario="forward", unit="items/s")
    assert perf_summary(_job(forward_sample))["ort_best_throughput"] == 100.0  # a sample graph: one call, B samples
    assert perf_summary(_job(forward_sample))["unit"] == "samples/s"
    logits_only = perf_summary(_job(replace(forward_sample, graph="logits")))
    assert logits_only["ort_best_throughput"] is None and "no per-sample timing" in logits_only["note"]
    details = perf_summary(_job(replace(forward_sample, graph="logits")), "logits", "forward")
    assert details["ort_best_throughput"] == 100.0 and details["unit"] == "items/s"


def test_one_runtime_failing_loses_only_its_own_records(tmp_path):
    from genbench.types import TrainConfig

    model = TorchFailsAtBatch64Model()
    model.train(None, TrainConfig(), lambda *a: None)
    records, _, warnings, _ = measure_performance(model.export_onnx(tmp_path / "b"), model.torch_module, "cpu",
                                                  _profile(), 1, 0, _image_task((1, 8, 8)))
    got = {(r.scenario, r.runtime, r.batch_size) for r in records}
    assert {("forward", "onnxruntime", 1), ("forward", "onnxruntime", 64), ("generate", "onnxruntime", 64)} <= got
    assert ("forward", "torch-eager", 1) in got and ("forward", "torch-eager", 64) not in got
    (warning,) = warnings
    assert "torch-eager failed on graph 'sample' (forward at batch 64)" in warning and "out of memory" in warning


@pytest.mark.parametrize("executor", ["process", "inline"])
def test_peak_rss_of_a_job_that_allocates_before_timing(tmp_path, executor):
    """The model allocates 600 MiB while training, in the build stage: the job's peak shows it, the timing
    loops' own peak does not (they add their sessions and graphs to the process's resident memory, some 100
    MiB, so the margin is 400). The timing stage times the program torch.export captured, never retraining:
    in its own process (the process executor) the 600 MiB never appear; inline, that process trained."""
    from fakes import FakePlugin

    from genbench.plugins import make_plugin_manager

    host = make_plugin_manager(extra_plugins=[("fakes", FakePlugin), ("speed", SpeedPlugin)], entry_points=False)
    result = genbench.run(["tiny-hungry"], tasks=["digits"], host=host, out=tmp_path, baselines=False, device="cpu",
                          profile="smoke", executor=executor)
    (job,) = result.jobs
    assert job.status == "ok" and job.timing["torch_module"].startswith("the program torch.export captured")
    mem = job.memory
    assert mem["peak_rss_timing_scope"] == "timing loops only (peak reset before them)"
    assert mem["peak_rss_mb_build"] >= 600
    assert mem["peak_rss_mb"] >= mem["peak_rss_mb_timing"] + 400
    assert mem["peak_rss_mb"] == max(mem["peak_rss_mb_build"], mem["peak_rss_mb_timing_process"])
    if executor == "process":
        assert mem["peak_rss_mb_timing_process"] < mem["peak_rss_mb_build"] - 300, mem
    else:
        assert mem["peak_rss_mb_timing_process"] >= mem["peak_rss_mb_timing"] + 400, mem


def test_peak_rss_fallbacks_use_each_platforms_unit(monkeypatch):
    import resource

    from genbench.perf import _peak_rss_fallback_mb

    monkeypatch.setattr(resource, "getrusage", lambda who: SimpleNamespace(ru_maxrss=512 * 2**20))
    assert _peak_rss_fallback_mb("darwin") == 512.0  # bytes on macOS
    assert _peak_rss_fallback_mb("linux") == 512 * 1024.0  # KiB elsewhere


# --------------------------------------------------------------------------- GPU paths, on fakes


def test_provider_read_back_counts_the_nodes_each_provider_really_ran():
    from genbench.runtime import count_node_providers, dominant_provider

    events = [node_event("a", "TensorrtExecutionProvider"), node_event("b", "CUDAExecutionProvider"),
              node_event("c", "CUDAExecutionProvider"), node_event("c", "CUDAExecutionProvider"),
              {"cat": "Session", "name": "model_run"}, "junk", {"cat": "Node", "name": "x", "args": {}}]
    used = count_node_providers(events)
    assert used == {"TensorrtExecutionProvider": 1, "CUDAExecutionProvider": 2}
    assert dominant_provider(used) == "CUDAExecutionProvider"
    assert dominant_provider({"TensorrtExecutionProvider": 2, "CUDAExecutionProvider": 2}) == "TensorrtExecutionProvider"
    assert dominant_provider({}) is None


def _tiny_graph(tmp_path):
    from fakes import _weights, write_graph

    from genbench.types import GraphSpec, TensorSpec

    write_graph(tmp_path / "g.onnx", _weights())
    return GraphSpec("sample", "g.onnx", (TensorSpec("z", ("batch", 4), source="normal"),),
                     (TensorSpec("x", ("batch", 1, 8, 8)),))


@pytest.mark.parametrize("ran", ["TensorrtExecutionProvider", "CUDAExecutionProvider"])
def test_a_tensorrt_session_is_timed_only_if_tensorrt_really_ran(tmp_path, monkeypatch, ran):
    """As with onnxruntime-gpu whose TensorRT libraries are missing: the session falls back to CUDA. Its
    profile says so, and it is not timed under TensorRT's name (the CUDA provider is timed already)."""
    import genbench.runtime as runtime
    import genbench.timing as timing

    graph = _tiny_graph(tmp_path)
    real = runtime.make_session(tmp_path / "g.onnx")
    events = [node_event(n, ran) for n in ("MatMul_0", "Sigmoid_1", "Reshape_2")]
    asked = {}

    def fake_make_session(path, device, threads, **kwargs):
        asked.update(kwargs)
        return FakeSession(real, events, tmp_path)

    monkeypatch.setattr(timing, "make_session", fake_make_session)
    monkeypatch.setattr(runtime, "tensorrt_available", lambda: True)
    monkeypatch.setenv("GENBENCH_CACHE_DIR", str(tmp_path / "cache"))
    rec = timing._Recorder("cuda", 1, 1)
    s = timing._open_tensorrt(tmp_path / "g.onnx", "cuda", 1, {"z": np.zeros((1, 4), np.float32)}, graph,
                              get_profile("default"), rec, tmp_path)
    assert asked["tensorrt"] is True and asked["profile_dir"] == tmp_path
    assert asked["tensorrt_options"]["trt_engine_cache_path"] == str(tmp_path / "cache" / "tensorrt")
    if ran == "TensorrtExecutionProvider":
        assert s.provider == ran and s.used == {ran: 3} and not rec.warnings
    else:
        assert s is None and "TensorRT not timed on graph 'sample'" in rec.warnings[0]
        assert "CUDAExecutionProvider" in rec.warnings[0]
    assert timing._open_tensorrt(tmp_path / "g.onnx", "cpu", 1, {}, graph, get_profile("default"), rec,
                                 tmp_path) is None  # never on CPU


def test_a_session_that_cannot_be_made_loses_only_its_runtime(tmp_path):
    import genbench.timing as timing

    rec = timing._Recorder("cuda", 1, 1)
    graph = SimpleNamespace(role="sample", outputs=())
    assert timing._open_session(tmp_path / "missing.onnx", "cpu", 1, {}, graph, rec, tmp_path, tensorrt=True) is None
    assert ("sample", "onnxruntime-tensorrt") in rec.dead and "creating its session" in rec.warnings[0]


def test_one_math_mode_for_both_runtimes_on_cuda():
    import torch

    from genbench.runtime import apply_math_mode, math_mode, providers_for

    assert providers_for("cpu") == ["CPUExecutionProvider"]
    assert providers_for("cuda") == [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]
    trt = providers_for("cuda", tensorrt=True, tensorrt_options={"trt_fp16_enable": "False"})
    assert trt[0] == ("TensorrtExecutionProvider", {"trt_fp16_enable": "False"}) and trt[1][1] == {"use_tf32": "0"}
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        apply_math_mode("cpu")
        assert torch.backends.cudnn.allow_tf32 is True  # CPU runs leave torch as it was
        apply_math_mode("cuda")
        assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is False
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    assert math_mode("cpu") == "fp32"
    assert "TF32 off" in math_mode("cuda", "onnxruntime") and "use_tf32=0" in math_mode("cuda", "torch-eager")
    assert "TensorRT may use TF32" in math_mode("cuda", "onnxruntime-tensorrt")


def test_tensorrt_gets_an_engine_cache_and_profile_shapes_over_every_timed_size(tmp_path):
    from genbench.runtime import tensorrt_options
    from genbench.types import GraphSpec, TensorSpec

    sample = GraphSpec("sample", "g.onnx", (TensorSpec("z", ("batch", 100), source="normal"),),
                       (TensorSpec("x", ("batch", 1, 8, 8)),))
    opts = tensorrt_options(sample, (1, 64, 1024), tmp_path)
    assert opts["trt_engine_cache_enable"] == "True" and opts["trt_engine_cache_path"] == str(tmp_path)
    assert (opts["trt_profile_min_shapes"], opts["trt_profile_opt_shapes"], opts["trt_profile_max_shapes"]) == \
        ("z:1x100", "z:1024x100", "z:1024x100")
    assert opts["trt_fp16_enable"] == "False"
    logits = GraphSpec("logits", "l.onnx", (TensorSpec("tokens", ("batch", "seq"), dtype="int64", source="tokens",
                                                       vocab=18),), (TensorSpec("logits", ("batch", "seq", 17)),),
                       attrs={"context_length": 65})
    lo = tensorrt_options(logits, (1, 64), tmp_path)
    assert lo["trt_profile_min_shapes"] == "tokens:1x1" and lo["trt_profile_max_shapes"] == "tokens:64x65"


def test_cuda_is_accepted_only_after_a_probe_really_ran_on_it(monkeypatch):
    """Here the CUDA provider is listed (as with onnxruntime-gpu whose CUDA libraries do not load) and torch
    claims a GPU: the probe session runs on the CPU provider, so auto falls back and says why."""
    import onnxruntime
    import torch

    from genbench.errors import ConfigError
    from genbench.runtime import choose_device

    assert choose_device("cpu") == ("cpu", None)
    dev, note = choose_device("auto")  # this machine: no GPU at all
    assert dev == "cpu" and "fell back to CPU" in note
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real = onnxruntime.get_available_providers()
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    dev, note = choose_device("auto")
    assert dev == "cpu" and "ran on CPUExecutionProvider instead" in note
    with pytest.raises(ConfigError, match="Device 'cuda' asked for, but a probe session"):
        choose_device("cuda")
    assert choose_device("auto", problem=lambda: None) == ("cuda", None)
    with pytest.raises(ConfigError, match="Invalid device"):
        choose_device("tpu")


def test_gpu_memory_separates_onnx_runtimes_arena_from_torchs_cache():
    from genbench.timing import GpuMemory

    used = iter([1000.0, 1700.0])
    reserved = iter([200.0, 300.0])
    gpu = GpuMemory(lambda: next(used), lambda: next(reserved), lambda: 123.0, "fake")
    before, after = gpu.snapshot(), gpu.snapshot()
    assert GpuMemory.onnxruntime_delta(before, after) == 600.0  # 700 more in use, 100 of them torch's
    assert gpu.figures(600.0) == {"gpu_peak_allocated_mb": 123.0, "onnxruntime_device_mb": 600.0,
                                  "gpu_memory_source": "fake"}
    cpu = GpuMemory.start("cpu")
    assert cpu.snapshot() is None and cpu.figures(None) == {}


@pytest.mark.integration
def test_quality_is_the_same_whatever_the_number_of_parallel_jobs(tmp_path):
    """Real plugins, built two at a time and then one at a time (no cache): every quality number equal."""
    runs = [genbench.run(["gan-mlp", "ar-points"], tasks=["ring8"], out=tmp_path / str(jobs),
                         profile="smoke", steps=20, device="cpu", timing=False, baselines=False, jobs=jobs,
                         cache=False) for jobs in (2, 1)]
    values = [{(j.model, k): v.value for j in r.jobs for k, v in j.quality.items()} for r in runs]
    assert values[0] == values[1] and len(values[0]) >= 8


def test_a_generate_call_the_budget_lets_in_always_gets_the_calls_a_figure_needs(tmp_path, monkeypatch):
    """In smoke, ar-pixel's 0.07 s sample passed the 0.1 s call budget, yet 3 calls did not fit its 0.2 s cap, so
    it got no per-sample figure at all. Each built-in profile now holds three budgets' worth of calls, and a
    budget is never more than a third of its cap (a profile of the user's own)."""
    import genbench.perf as perf
    import genbench.timing as timing
    from genbench.config import PROFILES
    from genbench.perf import MIN_THROUGHPUT_CALLS
    from genbench.timing import call_budget

    from test_timing import FakeClock

    for profile in PROFILES.values():
        assert call_budget(profile.generate_call_budget_s, profile.generate_timing) == \
            pytest.approx(profile.generate_call_budget_s)
        assert call_budget(profile.forward_call_budget_s, profile.timing) == pytest.approx(profile.forward_call_budget_s)
    assert call_budget(1.0, replace(QUICK, max_seconds=2.0)) == pytest.approx(2.0 / 3)
    clock = FakeClock()
    monkeypatch.setattr(perf.time, "perf_counter", clock)
    cost = 0.07 / 16  # one 4×4 sample: 16 graph calls, 0.07 s in all
    real_make_session = timing.make_session
    monkeypatch.setattr(timing, "make_session", lambda *a, **k: _Clocked(real_make_session(*a, **k), clock, cost))
    model = ConstantCostARModel()
    records, _, warnings, _ = measure_performance(model.export_onnx(tmp_path / "bundle"),
                                                  lambda role: _Clocked(model.torch_module(role), clock, cost),
                                                  "cpu", get_profile("smoke"), 1, 0, _image_task())
    for runtime in ("onnxruntime", "torch-eager"):
        one = _find(records, "generate", runtime, 1)
        assert one.latency_ms["p50"] == pytest.approx(70.0, rel=1e-6) and one.iterations >= MIN_THROUGHPUT_CALLS, one
        assert one.figure_validity["throughput"], one
    assert not [w for w in warnings if "not timed" in w and "generate at batch 1" in w], warnings


def test_the_timed_line_says_what_there_is_when_there_is_no_per_sample_figure():
    from genbench.runner import _timing_line

    forward = PerfRecord("onnxruntime", "CPUExecutionProvider", "cpu", 1, 1, 100, 0.1, {"p50": 1.0}, 1000.0, True,
                         graph="logits")
    generate = replace(forward, scenario="generate", unit="samples/s", steps=64, latency_ms={"p50": 64.0},
                       throughput_per_s=15.6)

    def line(*records):
        return _timing_line(JobResult(model="ar-pixel", family="ar", plugin="p", plugin_version="1", task="digits",
                                      device="cpu", status="ok", performance=records, timing={"status": "done"}))

    assert line(forward) == ("  timed   ar-pixel on digits: no per-sample figure (1 forward-pass records, in "
                             "report.md's details; the job's warnings say why) (done)")
    assert line(forward, generate) == "  timed   ar-pixel on digits: ORT p50 64 ms/sample @b1 (done)"
    assert "no timing record" in line()
