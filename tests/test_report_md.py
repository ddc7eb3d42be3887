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


def test_header_says_when_the_matmul_ceiling_was_not_measured():
    md = markdown.render(run([job("gan-mlp", {"fd": mv(42.6)})]))  # a --no-timing run measures no ceiling
    assert "- matmul ceiling: not measured" in md and "None threads" not in md and "– GFLOP/s" not in md
    md = markdown.render(run([job("gan-mlp", {"fd": mv(42.6)})],
                             environment={"matmul_gflops": {"ceiling": 123.45, "threads": 2}}))
    assert "- matmul ceiling (float32 1024², 2 threads): 123.5 GFLOP/s" in md


def test_results_csv_keeps_notes_out_of_the_error_column():
    r = run([job("baseline-gaussian", {"fd": mv(170.0)}, reason="baselines are quality references; not timed"),
             job("bad", {}, status="failed", error=JobError("train", "E", "boom")),
             job("ar-pixel", {}, status="skipped", reason="declines 28x28 images on CPU")])
    rows = list(csv.DictReader(io.StringIO(results_csv.render(r))))
    assert [(r["status"], r["error"], r["note"]) for r in rows] == [
        ("ok", "", "baselines are quality references; not timed"), ("failed", "train: boom", ""),
        ("skipped", "", "declines 28x28 images on CPU")]
