"""report.md and results.csv of one run: the leaderboard's rules (floors per row at that row's n, references apart,
splits by key), and results files treated as data (files only from inside the run directory, text escaped)."""

import csv
import io
import json
import re

from click.testing import CliRunner

from genbench.cli import cli
from genbench.comparability import make_key
from genbench.reports import csv as results_csv
from genbench.reports import md_text
from genbench.reports import markdown
from genbench.results import write_run
from genbench.types import JobError, JobResult, MetricValue, RunResult


def mv(value, metric="fd", n=500, floor=None, **kw):
    key = make_key(task="digits", data="d" * 64, extractor="digits-cnn@sha256:" + "a" * 64, n=n, params=None,
                   profile="default", seeds=1)
    return MetricValue(value, "", metric in ("precision",), n=n, floor=floor, key=key, extractor=key["extractor"], **kw)


def job(model, quality, **kw):
    return JobResult(model=model, family="baseline" if model.startswith("baseline") else "gan", plugin="p",
                     plugin_version="1", task="digits", device="cpu", status=kw.pop("status", "ok"), quality=quality,
                     **kw)


def run(jobs, **kw):
    return RunResult(schema="genbench.run/2", run_id="r1", genbench_version="0.1.0", started_at="2026-01-01",
                     finished_at="2026-01-01", command=kw.pop("command", "genbench run --all"),
                     config={"profile": "default"}, environment=kw.pop("environment", {"cpu": "x", "cpu_count": 2}),
                     jobs=tuple(jobs))


def test_report_shows_each_rows_floor_at_its_n_and_references_apart():
    # autoregressive samplers may be scored at a smaller n: their own column, their own floor
    r = run([job("gan-mlp", {"fd": mv(42.6, floor=2.41, n=1347)}), job("vae-mlp", {"fd": mv(57.8, floor=2.41, n=1347)}),
             job("ar-pixel", {"fd": mv(19.9, floor=7.2, n=500)}),
             job("baseline-train-copy", {"fd": mv(4.88, floor=2.41, n=1347)}),
             job("gan-conv", {}, status="failed", error=JobError("train", "RuntimeError", "CUDA | <b>boom</b>"))])
    md = markdown.render(r)
    header = next(ln for ln in md.splitlines() if ln.startswith("| #"))
    assert "fd \\[n scored 1347\\] ↓ · n 1347" in header and "fd \\[n scored 500\\] ↓ · n 500" in header
    rows = {ln.split(" | ")[1]: ln for ln in md.splitlines() if ln.startswith("| ")}
    assert "| 1 | `gan-mlp` | gan | 42.6 · floor 2.41 | – |" in rows["`gan-mlp`"]
    # ar-pixel, scored at another n, is never ranked in the column of n = 1347
    assert rows["`ar-pixel`"].startswith("| – | `ar-pixel` | gan | – | 19.9 · floor 7.2 |")
    assert rows["`baseline-train-copy` (replayed training data)"].startswith("| ref |")
    assert "| ref | real data at n (floor) | – | 2.41 | 7.2 |" in md
    assert "| `gan-conv` | gan | failed (train): CUDA \\| \\<b\\>boom\\</b\\> |" in md


def test_report_reads_named_files_only_inside_the_run_directory(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    run_dir = tmp_path / "run"
    (run_dir / "jobs").mkdir(parents=True)
    (run_dir / "jobs/link.txt").symlink_to(secret)
    (run_dir / "jobs/ok.txt").write_text("a sample \x1b[2J\x1b[31mred\x07 ``` fence\nsecond line\n")
    (run_dir / "jobs/ok.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    r = run([job("gan-mlp", {"fd": mv(1.0)}, files={"samples_txt": "jobs/link.txt", "samples_png": str(secret)}),
             job("vae-mlp", {"fd": mv(2.0)}, files={"samples_txt": "jobs/ok.txt", "samples_png": "jobs/ok.png"}),
             job("ar-pixel", {"fd": mv(3.0)}, files={"samples_txt": "../secret.txt"})])
    write_run(r, run_dir)
    result = CliRunner().invoke(cli, ["report", str(run_dir)], catch_exceptions=False)
    assert result.exit_code == 0
    md = (run_dir / "report.md").read_text()
    assert "TOPSECRET" not in md
    assert "**gan-mlp**: sample text skipped (jobs/link.txt not read: it lies outside the run directory)" in md
    assert "**ar-pixel**: sample text skipped (../secret.txt not read: it lies outside the run directory)" in md
    assert f"**gan-mlp**: sample grid skipped ({md_text(secret)} not read: it lies outside the run directory)" in md
    assert "![samples of vae-mlp on digits](jobs/ok.png)" in md
    assert "\x1b" not in md and "\x07" not in md and "a sample \\x1b[2J\\x1b[31mred\\x07 ``` fence\nsecond line" in md
    assert "````text\n" in md  # the fence is longer than any backtick run in the text


def test_each_rows_samples_say_where_they_came_from(tmp_path):
    """A score report's heading said its samples were "drawn by genbench from the exported ONNX graph"."""
    run_dir = tmp_path / "run"
    (run_dir / "jobs").mkdir(parents=True)
    (run_dir / "jobs/ok.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    files = {"samples_png": "jobs/ok.png"}
    r = run([JobResult(model="mine", family="samples", plugin="genbench-score", plugin_version="1", task="digits",
                       device="cpu", status="ok", quality={"fd": mv(9.0)}, files=files),
             job("baseline-gaussian", {"fd": mv(170.0)}, files=files), job("gan-mlp", {"fd": mv(1.0)}, files=files)])
    md = markdown.render(r, run_dir)
    assert "### Samples\n" in md and "exported ONNX graph)\n" not in md.split("### Samples")[1].split("\n")[0]
    assert "**mine** (samples supplied to genbench score, not drawn by genbench)" in md
    assert "**baseline-gaussian** (a reference row: drawn by genbench from the task's data, no graph)" in md
    assert "**gan-mlp** (drawn by genbench from the exported ONNX graphs)" in md


def test_report_escapes_every_field_for_markdown():
    r = run([job("gan-mlp", {"fd": mv(1.0), "x|y\n# h": mv(2.0)},
                 warnings=("<img src=x onerror=alert(1)>\n# Injected",))],
            command="genbench run `x` | y\n# Injected", environment={"cpu": "<b>cpu</b>", "cpu_count": "| 2 |",
                                                                   "gpus": 3, "matmul_gflops": "fast"})
    md = markdown.render(r)
    assert "\n# Injected" not in md and not re.search(r"(?<!\\)<", md.replace("``genbench run `x` | y", ""))
    assert "- warning, `gan-mlp`: \\<img src=x onerror=alert(1)\\> \\# Injected" in md
    assert "- command: ``genbench run `x` | y # Injected``" in md
    assert "- environment: \\<b\\>cpu\\</b\\> (\\| 2 \\| CPUs), GPUs: none" in md
    header = next(ln for ln in md.splitlines() if ln.startswith("| #"))
    row = next(ln for ln in md.splitlines() if ln.startswith("| 1 |"))
    assert "x\\|y \\# h" in header and row.count(" | ") == header.count(" | ")


def test_results_csv_splits_by_key_and_no_cell_starts_a_formula():
    r = run([job("gan-mlp", {"fd": mv(-870.5, floor=-900.0)}, status="ok", warnings=()),
             job("vae-mlp", {"fd": mv(12.0, n=100, floor=3.0)}),
             job("bad", {}, status="failed", error=JobError("=cmd|' /C calc'!A0", "E", "+SUM(1)"))])
    rows = list(csv.DictReader(io.StringIO(results_csv.render(r))))
    assert rows[0]["fd [n scored 500]"] == "-870.5" and rows[0]["fd [n scored 500]_floor"] == "-900.0"
    assert rows[1]["fd [n scored 100]"] == "12.0" and rows[1]["fd [n scored 100]_n"] == "100"
    assert rows[2]["error"] == "'=cmd|' /C calc'!A0: +SUM(1)"
    assert rows[0]["fd [n scored 500]_unit"] == "squared distance in the digits-cnn feature space"
    assert json.loads(json.dumps(rows))  # plain strings, readable as they are
    # what the numbers are comparable on, per row: profile, data hash, feature extractor
    assert (rows[0]["profile"], rows[0]["data_sha256"], rows[0]["extractors"]) == (
        "default", "d" * 64, "digits-cnn@sha256:" + "a" * 64)
    assert (rows[2]["profile"], rows[2]["data_sha256"], rows[2]["extractors"]) == ("default", "", "")  # no metrics


def test_header_says_when_the_gemm_ceiling_was_not_measured_and_never_once_it_was():
    md = markdown.render(run([job("gan-mlp", {"fd": mv(42.6)})]))  # a --no-timing run measures no ceiling
    assert "- GEMM ceiling: not measured" in md and "None threads" not in md and "– GFLOP/s" not in md
    md = markdown.render(run([job("gan-mlp", {"fd": mv(42.6)})],
                             environment={"matmul_gflops": {"ceiling": 123.45, "threads": 2}}))
    assert "- GEMM ceiling (float32 matmul, best of 1024², torch and ONNX Runtime, 2 threads): 123.5 GFLOP/s" in md
    exceeded = {"ceiling": 101.0, "threads": 2, "sizes": [1024, 2048, 4096], "remeasured": {"ceiling": 101.0},
                "note": "vae on digits: elbo b1024 achieved 120.0 GFLOP/s, above the GEMM ceiling measured twice"}
    md = markdown.render(run([job("gan-mlp", {"fd": mv(42.6)})], environment={"matmul_gflops": exceeded}))
    assert "not measured" not in md.split("- GEMM ceiling", 1)[1].splitlines()[0]
    assert "best of 1024², 2048², 4096²" in md and "101.0 GFLOP/s after re-measuring it" in md
    # a run written when an exceeded ceiling was withdrawn (ceiling: null) states the value it measured
    md = markdown.render(run([job("gan-mlp", {"fd": mv(42.6)})],
                             environment={"matmul_gflops": {"ceiling": None, "measured_ceiling": 99.5, "threads": 2}}))
    assert "GEMM ceiling: not measured" not in md and "99.5 GFLOP/s" in md


def test_results_csv_keeps_notes_out_of_the_error_column():
    r = run([job("baseline-gaussian", {"fd": mv(170.0)}, reason="baselines are quality references; not timed"),
             job("bad", {}, status="failed", error=JobError("train", "E", "boom")),
             job("ar-pixel", {}, status="skipped", reason="declines 28x28 images on CPU")])
    rows = list(csv.DictReader(io.StringIO(results_csv.render(r))))
    assert [(r["status"], r["error"], r["note"]) for r in rows] == [
        ("ok", "", "baselines are quality references; not timed"), ("failed", "train: boom", ""),
        ("skipped", "", "declines 28x28 images on CPU")]


# --------------------------------------------------------------------------- speed: one unit per column


def perf(runtime, batch, p50_ms, per_s, scenario="forward", graph="sample", noisy=False, valid=True, steps=None):
    from genbench.types import PerfRecord

    return PerfRecord(runtime, "CPUExecutionProvider", "cpu", batch, 2, 1000, 1.0, {"p50": p50_ms}, per_s, valid,
                      noisy=noisy, graph=graph, scenario=scenario,
                      unit="samples/s" if scenario == "generate" else "items/s", steps=steps,
                      figure_validity={"p50": valid, "throughput": valid}, alone=True)


def speed_run():
    gan = (perf("onnxruntime", 1, 0.005, 200_000.0), perf("onnxruntime", 64, 0.3, 203_708.0),
           perf("onnxruntime", 1, 0.005, 200_000.0, "generate", steps=1),
           perf("onnxruntime", 64, 0.3, 203_708.0, "generate", steps=1))
    ar = (perf("onnxruntime", 1, 1.0, 1_000.0, graph="logits"), perf("onnxruntime", 64, 66.0, 971.0, graph="logits"))
    return run([job("gan-mlp", {"fd": mv(40.0)}, performance=gan, timing={"status": "done"}),
                job("ar-pixel", {"fd": mv(20.0)}, performance=ar, timing={"status": "done"})],
               environment={"cpu": "x", "cpu_count": 2, "stage_seconds": {"build_seconds": 10.0, "timing_seconds": 5.0}})


def test_speed_per_sample_and_forward_passes_are_never_one_column():
    """ar-pixel had only forward records (one logits pass: 971 items/s at batch 64): it must not stand beside
    gan-mlp's 203,708 generated samples/s in one column."""
    md = markdown.render(speed_run())
    head, forward = md.split("### Speed per generated sample")[1].split("#### Details: forward passes")
    assert "| ORT ms/sample @b1 ↓ |" in head and "| ORT samples/s (best batch) ↑ |" in head
    assert "`gan-mlp` | one call of the sample graph | 0.005 |" in head and "203,708 (b64)" in head
    assert "ar-pixel" not in head  # no per-sample figure: no row, rather than a forward pass passed off as one
    assert "| ORT items/s (best batch) ↑ |" in forward and "samples/s" not in forward.split("\n\n")[1]
    assert "| `ar-pixel` | `logits` | 1.000 | – | – | 1,000 (b1) |" in forward
    assert "| `gan-mlp` | `sample` |" in forward
    legend = md.strip().splitlines()[-1]
    assert "too few samples for the p99" not in legend and "figure_validity" in legend and "(noisy)" in legend


def test_a_run_that_timed_nothing_says_nothing_about_timing():
    r = run([job("gan-mlp", {"fd": mv(40.0)}, timing={"status": "off", "reason": "timing switched off (--no-timing)"},
                 phase_seconds={"train": 3.0})],
            environment={"cpu": "x", "cpu_count": 2, "stage_seconds": {"build_seconds": 4.0, "timing_seconds": 0.0}})
    md = markdown.render(r)
    assert "build-and-score stage 4 s" in md
    assert "timing stage" not in md and "Timings:" not in md and "Speed" not in md
    from dataclasses import replace

    timed = speed_run()
    timed = markdown.render(replace(timed, jobs=tuple(replace(j, phase_seconds={"timing": 1.0}) for j in timed.jobs)))
    assert "timing stage 5 s (one job at a time, alone" in timed and "Timings:" in timed


def test_a_metric_not_defined_by_design_is_said_so_on_the_console_and_a_header_has_no_n_none():
    """An outside tester: reverse-kl with no high-quality sample printed "failed" (run.json says not defined), and
    a metric without n made the header "fd-inf ↓ · n None"."""
    from genbench.reports.leaderboard import Column, column_header
    from genbench.runner import quality_summary

    line = quality_summary({"reverse-kl": MetricValue(None, "nats", False, error="not defined: no sample is good"),
                            "fd": mv(4.0, floor=2.0)})
    assert "reverse-kl not defined" in line and "failed" not in line
    header = column_header(Column("fd-inf", {}, "fd-inf", (), False, "", "", ""))
    assert header == "fd-inf ↓" and "None" not in header
