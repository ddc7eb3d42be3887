"""Speed figures name their machine (#28 items 1-2): the identity read from /proc/cpuinfo, the measured clock and
FLOP per cycle (and their fallbacks), the physical peak, every record's shares of both limits, a record above the
peak flagged and never published, and speed figures of two machines kept apart in the leaderboard and compare.
All with fakes: nothing here depends on how fast anything runs."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import fakes_board
from genbench.perf.machine import (annotate, describe, flop_per_cycle_from_flags, identity_of, machine_identity,
                                   measure_clock, parse_cpuinfo, physical_peak)
from genbench.reports import perf_summary, safe_perf_summary
from genbench.types import PerfRecord

ZEN = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
stepping\t: 1
cpu MHz\t\t: 2596.126
flags\t\t: fpu sse sse2 fma avx avx2 avx512f avx512_bf16 avx512vl

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
stepping\t: 1
cpu MHz\t\t: 3700.000
flags\t\t: fpu sse sse2 fma avx avx2 avx512f avx512_bf16 avx512vl
"""
SAPPHIRE = ZEN.replace("AuthenticAMD", "GenuineIntel").replace("cpu family\t: 26", "cpu family\t: 6").replace(
    "model\t\t: 2", "model\t\t: 143").replace("avx512vl", "avx512vl amx_tile amx_bf16 amx_int8")
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid sve
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
CPU revision\t: 1
"""


def test_identity_is_read_from_cpuinfo_and_holds_whatever_the_clock():
    cpu = parse_cpuinfo(ZEN)
    assert (cpu["vendor"], cpu["family"], cpu["model"], cpu["stepping"]) == ("AuthenticAMD", 26, 2, 1)
    assert cpu["model_name"] == "AMD EPYC" and cpu["cpu_mhz"] == pytest.approx(2596.126)  # the first processor's
    assert cpu["flags"] == ["avx", "avx2", "avx512_bf16", "avx512f", "fma"]  # only the flags that set the rate
    m = machine_identity(ZEN, cores=2, gpus=[])
    assert m["cores"] == 2 and len(m["identity"]) == 12
    # the clock moves with turbo and load: the identity does not
    assert machine_identity(ZEN.replace("2596.126", "3700.000"), cores=2, gpus=[])["identity"] == m["identity"]
    others = [machine_identity(SAPPHIRE, cores=2, gpus=[]), machine_identity(ZEN, cores=4, gpus=[]),
              machine_identity(ZEN.replace("stepping\t: 1", "stepping\t: 0", 1), cores=2, gpus=[]),
              machine_identity(ZEN, cores=2, gpus=[{"name": "NVIDIA H100", "driver": "550.1", "clock_mhz": 1980}])]
    assert len({m["identity"], *(o["identity"] for o in others)}) == 5
    assert {"amx_bf16", "amx_int8", "amx_tile"} <= set(parse_cpuinfo(SAPPHIRE)["flags"])
    # a GPU is named by its name: its driver and clock are recorded, but the same card is the same machine
    gpu = [{"name": "NVIDIA H100", "driver": "999", "clock_mhz": 1000}]
    assert machine_identity(ZEN, cores=2, gpus=gpu)["identity"] == others[-1]["identity"]
    assert describe(m) == f"AMD EPYC (family 26 model 2 stepping 1, avx512f, 2 cores) [{m['identity']}]"
    assert describe(None) == "an unrecorded machine" and describe({"identity": "x", "flags": 7}).endswith("[x]")


def test_arm_cpuinfo_gives_its_implementer_part_and_revision():
    cpu = parse_cpuinfo(ARM)
    assert (cpu["vendor"], cpu["family"], cpu["model"], cpu["stepping"]) == ("0x41", 8, 0xD40, 1)
    assert cpu["flags"] == ["asimd", "sve"] and cpu["cpu_mhz"] is None
    assert identity_of({**cpu, "cores": 4, "gpus": []}) != identity_of({**cpu, "cores": 8, "gpus": []})


def _fake(stdout, code=0):
    calls = []

    def runner(argv):
        calls.append(argv)
        return code, stdout
    return runner, calls


def test_the_microbenchmark_gives_clock_and_flop_per_cycle_and_a_peak():
    m = machine_identity(ZEN, cores=2, gpus=[])
    m["arch"] = "x86_64"
    runner, calls = _fake(json.dumps({"clock_hz": 3.67e9, "flop_per_cycle_ymm": 31.2, "flop_per_cycle_zmm": 30.9}))
    got = measure_clock(m, runner=runner)
    assert got["method"] == "microbenchmark" and got["clock_ghz"] == pytest.approx(3.67)
    assert got["flop_per_cycle"] == 32.0 and got["flop_per_cycle_measured"] == pytest.approx(31.2)  # a power of two
    assert calls[0][-1] == "1"  # avx512f: the zmm chains are tried too
    peak = physical_peak(got, threads=2, cores=2)
    assert peak["gflops_per_s"] == pytest.approx(3.67 * 32 * 2) and peak["threads"] == 2  # 234.9, as the issue read
    assert physical_peak(got, threads=8, cores=2)["threads"] == 2  # never more threads than usable cores
    assert physical_peak({"clock_ghz": None, "flop_per_cycle": 32.0}, 2) is None and physical_peak(None, 2) is None


def test_a_failed_microbenchmark_falls_back_to_cpuinfo_and_flags_and_says_so():
    m = {**machine_identity(ZEN, cores=2, gpus=[]), "arch": "x86_64"}
    crashed, _ = _fake("", code=-11)  # SIGSEGV in the child: the run goes on
    got = measure_clock(m, runner=crashed)
    assert got["method"] == "cpuinfo and flags" and "exited with -11" in got["error"]
    assert got["clock_ghz"] == pytest.approx(2.596126) and got["flop_per_cycle"] == 64.0
    garbage, _ = _fake("not json")
    assert measure_clock(m, runner=garbage)["method"] == "cpuinfo and flags"
    never, calls = _fake("{}")
    arm = {**machine_identity(ARM, cores=4, gpus=[]), "arch": "aarch64"}
    got = measure_clock(arm, runner=never)
    assert not calls and got["method"] == "cpuinfo and flags" and got["clock_ghz"] is None
    assert got["flop_per_cycle"] == 16.0 and "no x86-64" in got["error"]
    assert flop_per_cycle_from_flags(["sse2"]) is None and flop_per_cycle_from_flags(["avx2", "fma"]) == 32.0


def test_the_real_microbenchmark_runs_in_a_child_and_is_measured_once_per_process():
    m = machine_identity()
    first = measure_clock(m, seconds=0.2)
    assert first["method"] in ("microbenchmark", "cpuinfo and flags")
    if first["method"] == "microbenchmark":  # x86-64 with AVX2 and FMA, as the machines this runs on
        assert 0.2 < first["clock_ghz"] < 10 and 2 < first["flop_per_cycle"] < 300  # loose: a loaded machine reads low
    assert measure_clock(m, seconds=0.2) == first  # cached: a run measures once, not once per job


def _record(gflops, batch=64, **kw):
    return PerfRecord("onnxruntime", "CPUExecutionProvider", "cpu", batch, 2, 100, 1.0, {"p50": 1.0}, 1e3 * batch,
                      True, graph="sample", scenario="generate", unit="samples/s", gflops_per_s=gflops,
                      figure_validity={"p50": True, "throughput": True}, **kw)


def test_a_record_above_the_physical_peak_is_flagged_and_never_published():
    fine, wrong, none = annotate([_record(100.0), _record(300.0, batch=128), _record(None, batch=1)],
                                 "m1", peak=234.9, ceiling=180.0)
    assert fine.machine == wrong.machine == none.machine == "m1"
    assert fine.share_of_peak == pytest.approx(100 / 234.9) and fine.share_of_ceiling == pytest.approx(100 / 180)
    assert fine.measurement_error is None and fine.valid
    assert wrong.measurement_error and "physical peak" in wrong.measurement_error and not wrong.valid
    assert wrong.figure_validity["throughput"] is False and "measurement error" in wrong.invalid_reason
    assert none.share_of_peak is None and none.measurement_error is None
    job = replace(fakes_board.board_run().jobs[0], performance=(fine, wrong, none))
    p = perf_summary(job)  # the record above the peak is not a candidate: the best batch is the one that can be right
    assert p["ort_best_batch"] == 64 and p["ort_best_share_of_peak"] == pytest.approx(100 / 234.9)
    assert p["measurement_errors"] == [wrong.measurement_error] and p["machines"] == ["m1"]
    only_wrong = replace(job, performance=(wrong,))
    assert safe_perf_summary(only_wrong)["ort_best_throughput"] is None  # never published
    # a record stamped by an earlier session keeps its machine
    assert annotate([_record(1.0, machine="m0")], "m1", None, None)[0].machine == "m0"


def _stamped(run, machines):
    jobs = []
    for j in run.jobs:
        m = machines.get(j.model)
        recs = annotate(tuple(replace(p, gflops_per_s=p.throughput_per_s * 1e-5) for p in j.performance), m, 234.9,
                        180.0) if j.performance else ()
        jobs.append(replace(j, performance=tuple(recs)))
    return replace(run, jobs=tuple(jobs))


def _env(identity):
    return {"machine": {"identity": identity, "vendor": "AuthenticAMD", "family": 26, "model": 2, "stepping": 1,
                        "model_name": "AMD EPYC", "flags": ["avx2", "avx512f", "fma"], "cores": 2,
                        "clock_ghz": 3.67, "flop_per_cycle": 32.0, "method": "microbenchmark"},
            "physical_peak": {"gflops_per_s": 234.9, "clock_ghz": 3.67, "flop_per_cycle": 32.0, "threads": 2},
            "matmul_gflops": {"ceiling": 180.0, "threads": 2}}


def test_the_leaderboard_names_the_machine_and_the_share_of_its_peak_under_one_table():
    from genbench.reports.board_markdown import render_markdown

    run = fakes_board.board_run()
    run = _stamped(replace(run, environment={**run.environment, **_env("aaaaaaaaaaaa")}),
                   {m: "aaaaaaaaaaaa" for m in fakes_board.MODELS})
    md = render_markdown([run])
    head = md.split("<details>", 1)[0]
    assert head.count("- Speed measured on AMD EPYC (family 26 model 2 stepping 1, avx512f, 2 cores) "
                      "\\[aaaaaaaaaaaa\\]; physical peak 235 GFLOP/s (3.67 GHz × 32 FLOP/cycle × 2 threads); GEMM "
                      "ceiling 180 GFLOP/s") == 1
    row = next(line for line in head.splitlines() if line.startswith("| ") and "`gan-mlp`" in line)
    assert len(row.split(" | ")) == 8 and "% peak)" in row.split(" | ")[-1]  # still 8 columns
    assert "[A]" not in head


def test_speed_figures_of_two_machines_stay_apart_in_the_leaderboard():
    from genbench.reports.board_markdown import render_markdown
    from genbench.reports.html import render as render_html

    run = fakes_board.board_run()
    run = replace(run, environment={**run.environment, **_env("aaaaaaaaaaaa")})
    fast = {m: "bbbbbbbbbbbb" for m in ("gan-mlp", "example-gan")}
    run = _stamped(run, {m: fast.get(m, "aaaaaaaaaaaa") for m in fakes_board.MODELS})
    md = render_markdown([run])
    head = md.split("<details>", 1)[0]
    assert "Speed figures come from 2 machines and are not comparable across them" in head
    lines = {m: next(line for line in head.splitlines() if line.startswith("| ") and f"`{m}`" in line)
             for m in ("gan-mlp", "vae-mlp")}
    assert lines["gan-mlp"].endswith("[B] |") and lines["vae-mlp"].endswith("[A] |")
    assert "\\[A\\] AMD EPYC" in head and "\\[B\\] machine bbbbbbbbbbbb: gan-mlp, example-gan" in head
    html = render_html([run])
    assert "Speed figures come from 2 machines and are not comparable across them" in html
    assert "no Pareto front is drawn" in html  # speeds of two machines are never ranked against each other


def test_compare_and_the_gate_refuse_speed_rows_across_machines(tmp_path):
    from genbench.reports.compare import compare_runs, gate, machines_apart

    base = fakes_board.board_run()
    base = _stamped(replace(base, environment={**base.environment, **_env("aaaaaaaaaaaa")}),
                    {m: "aaaaaaaaaaaa" for m in fakes_board.MODELS})
    fresh = fakes_board.board_run()
    new = _stamped(replace(fresh, run_id="new", environment={**fresh.environment, **_env("bbbbbbbbbbbb")}),
                   {m: "bbbbbbbbbbbb" for m in fakes_board.MODELS})
    rows = [r for r in compare_runs(base, new) if r.metric in ("latency", "throughput") and r.model == "gan-mlp"]
    assert rows and all(r.verdict == "not comparable" and "different machines" in r.why for r in rows)
    failures, errors, _ = gate(rows, base, new, {"throughput": (0.1, True)})
    assert any("not comparable" in e for e in errors) and not failures
    same = compare_runs(base, base)
    assert all(r.verdict != "not comparable" for r in same if r.metric in ("latency", "throughput"))
    assert machines_apart([], []) is None and machines_apart(["a"], []) and machines_apart(["a"], ["a"]) is None


def test_the_runner_stamps_every_record_against_the_runs_limits():
    from genbench.runner import _against_limits
    from genbench.types import TimingResult

    timing = TimingResult("done", performance=(_record(100.0), _record(500.0, batch=8)))
    out = _against_limits(timing, _env("cccccccccccc"))
    assert [p.machine for p in out.performance] == ["cccccccccccc"] * 2
    assert out.performance[0].share_of_ceiling == pytest.approx(100 / 180.0)
    assert out.performance[1].measurement_error and not out.performance[1].valid
    # a run written when an exceeded ceiling was withdrawn still gives shares of the value it measured
    old = {**_env("c"), "matmul_gflops": {"ceiling": None, "measured_ceiling": 200.0}}
    assert _against_limits(timing, old).performance[0].share_of_ceiling == pytest.approx(0.5)


def test_a_stamped_run_matches_the_schema(tmp_path):
    from genbench.results import load_run, write_run

    run = fakes_board.board_run()
    run = _stamped(replace(run, environment={**run.environment, **_env("aaaaaaaaaaaa")}),
                   {m: "aaaaaaaaaaaa" for m in fakes_board.MODELS})
    write_run(run, tmp_path)
    back = load_run(tmp_path / "run.json")  # schema-checked on load
    assert back.jobs[0].performance[0].machine == "aaaaaaaaaaaa"
    assert back.environment["physical_peak"]["gflops_per_s"] == 234.9


def test_a_run_records_its_machine_and_limits_and_stamps_every_record(fake_host, tmp_path):
    """End to end, small: the run's environment names the machine and both limits; every timing record carries
    the identity and, with FLOPs, its shares; report.md states the machine, the peak and the ceiling."""
    import genbench

    result = genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                          baselines=False, device="cpu", executor="process", jobs=1)
    env = result.environment
    identity = env["machine"]["identity"]
    assert identity == machine_identity()["identity"] and env["machine"]["method"] in ("microbenchmark",
                                                                                      "cpuinfo and flags")
    (job,) = result.jobs
    assert job.performance and all(p.machine == identity for p in job.performance)
    peak = (env.get("physical_peak") or {}).get("gflops_per_s")
    ceiling = env["matmul_gflops"]["ceiling"]
    assert ceiling and env["matmul_gflops"]["sizes"]  # measured, and kept whatever the graphs reached
    for p in job.performance:
        if p.gflops_per_s and peak and not p.measurement_error:
            assert p.share_of_peak == pytest.approx(p.gflops_per_s / peak) and p.share_of_peak <= 1
        if p.gflops_per_s:
            assert p.share_of_ceiling == pytest.approx(p.gflops_per_s / ceiling)
    report = (tmp_path / result.run_id / "report.md").read_text()
    assert f"\\[{identity}\\]" in report and "- GEMM ceiling (float32 matmul" in report
    assert "GEMM ceiling: not measured" not in report


def test_flop_per_cycle_is_the_nearest_power_of_two_and_never_above_the_flags():
    from genbench.perf.machine import _nominal

    assert _nominal(54.8, 64.0) == 64.0 and _nominal(65.8, 64.0) == 64.0  # loaded, or its clock read low
    assert _nominal(33.5, 64.0) == 32.0  # a core that splits 512-bit FMAs in two (Zen 4)
    assert _nominal(120.0, 64.0) == 64.0  # never above what the flags allow
    peak = 234.9
    at, just, over = annotate([_record(peak * 1.03), _record(peak * 1.02, batch=8), _record(peak * 1.2, batch=16)],
                              "m", peak, None)
    assert at.measurement_error is None and just.measurement_error is None  # within the clock's own margin
    assert over.measurement_error is not None


def test_gpus_are_named_with_driver_and_clock_where_cuda_is_there(monkeypatch):
    import subprocess
    import types

    import torch

    from genbench.perf import machine

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (9, 0))
    seen = []

    def smi(argv, **kw):
        seen.append(argv)
        return types.SimpleNamespace(returncode=0, stdout="550.54.15, 1980\n")
    monkeypatch.setattr(subprocess, "run", smi)
    (gpu,) = machine.gpu_identity()
    assert gpu["name"] == "NVIDIA H100 80GB HBM3" and gpu["driver"] == "550.54.15" and gpu["clock_mhz"] == 1980.0
    assert gpu["capability"] == "9.0" and seen and seen[0][0] == "nvidia-smi"
    m = machine_identity(ZEN, cores=2)
    assert m["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3" and describe(m).endswith(
        f"+ NVIDIA H100 80GB HBM3 [{m['identity']}]")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(OSError("no nvidia-smi")))
    assert machine.gpu_identity()[0]["driver"] is None  # the name stays; what could not be read is None
