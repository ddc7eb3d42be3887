"""A leaderboard with everything the HTML page shows, written as results files: several families, reference
rows, floors, three training seeds, per-sample timings of ONNX Runtime and torch eager, loss histories, a
copying flag, more metric columns than fit a laptop screen, and a ``genbench limits`` study; a plugin name and
a statement carry a script tag, which must stay text.

Shared by the page's structure tests (tests/test_html_report.py) and the headless-browser test
(tests/test_html_browser.py).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from genbench.comparability import make_key
from genbench.limits import LimitsResult, write_limits
from genbench.results import write_run
from genbench.types import JobResult, MetricValue, PerfRecord, RunResult

DATA = "d" * 64
EXTRACTOR = "digits-cnn@sha256:" + "a" * 64
SEEDS = 3
N = 1347
HOSTILE = "<script>alert('x')</script>"
COPY_FLAG = "copies training data (C_T = -11.4 < -3: samples closer to it than held-out data are)"
#: metric: (higher is better, unit); more than fit the main columns, so some are behind "Show … more columns"
METRICS = {"fd": (False, ""), "kid": (False, ""), "precision": (True, ""), "recall": (True, ""),
           "density": (True, ""), "coverage": (True, ""), "class-kl": (False, "nats"),
           "classifier-score": (True, ""), "copy-ct": (True, "z"), "copy-rate": (False, "")}
#: model: (family, fd, ORT samples/s at batch 64 or None for no timing)
MODELS = {"gan-mlp": ("gan", 42.6, 3.6e6), "example-gan": ("gan", 80.4, 4.6e6), "vae-mlp": ("vae", 57.9, 6.0e5),
          "vae-conv": ("vae", 56.2, 1.6e5), "ar-pixel": ("ar", 19.9, 177.0), "gan-lite": ("gan", 45.0, 1e6),
          "baseline-train-copy": ("baseline", 4.9, None), "baseline-gaussian": ("baseline", 174.9, None)}
LOSSES = {"gan": ("g", "d"), "vae": ("loss", "recon", "kl"), "ar": ("loss",), "baseline": ()}


def _metric(metric: str, value: float, model: str) -> MetricValue:
    higher, unit = METRICS[metric]
    key = make_key(task="digits", data=DATA, extractor=EXTRACTOR, n=N, params=None, profile="default", seeds=SEEDS)
    sd = abs(value) * 0.04 + 0.01
    per_seed = (value - sd, value, value + sd)
    params = {"flag": COPY_FLAG} if metric == "copy-ct" and model == "baseline-train-copy" else None
    floors = {"fd": 2.413, "kid": -1298.0, "precision": 0.927, "recall": 0.896, "density": 1.021, "coverage": 0.998,
              "class-kl": 0.0012, "classifier-score": 9.71, "copy-ct": 0.74, "copy-rate": 0.058}
    return MetricValue(value, unit, higher, n=N, extractor=EXTRACTOR, floor=floors[metric], key=key, params=params,
                       per_seed=per_seed, seed_std=sd, ci95=(value - 2.48 * sd, value + 2.48 * sd))


def _perf(throughput: float) -> tuple[PerfRecord, ...]:
    """Per-sample (generate) records of both runtimes at batches 1, 8 and 64; torch eager 3 times slower."""
    out = []
    for runtime, slower in (("onnxruntime", 1.0), ("torch-eager", 3.0)):
        for batch in (1, 8, 64):
            per_sample_ms = slower * 1e3 / throughput * (1 + 4 / batch)
            out.append(PerfRecord(runtime, "CPUExecutionProvider", "cpu", batch, 2, 200, 0.5,
                                  {"p50": per_sample_ms * batch, "p90": per_sample_ms * batch * 1.1,
                                   "p99": per_sample_ms * batch * 1.3}, batch * 1e3 / (per_sample_ms * batch), True,
                                  graph="sample", scenario="generate", unit="samples/s"))
    return tuple(out)


def _job(model: str, family: str, fd: float, throughput: float | None) -> JobResult:
    spread = {m: i for i, m in enumerate(METRICS)}
    quality = {m: _metric(m, fd if m == "fd" else (fd * 100 if m == "kid" else 0.3 + 0.05 * spread[m] + fd / 500), model)
               for m in METRICS}
    steps = 20
    train = {"steps": 1000, "log_every": 50,
             "loss_history": {name: [2.0 / (1 + k / 5) + 0.1 * i for k in range(steps)]
                              for i, name in enumerate(LOSSES[family])}} if LOSSES[family] else {}
    plugin = HOSTILE if model == "gan-lite" else f"genbench-{family}"  # text from a results file is data
    return JobResult(model=model, family=family, plugin=plugin, plugin_version="0.1.0", task="digits",
                     device="cpu", status="ok", quality=quality, performance=_perf(throughput) if throughput else (),
                     train=train, seeds=tuple(range(SEEDS)), files={"samples_png": f"jobs/{_slug(model)}/samples.png"})


def _slug(model: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "-" else "_" for ch in model)


def board_run() -> RunResult:
    jobs = tuple(_job(m, *spec) for m, spec in MODELS.items())
    return RunResult(schema="genbench.run/2", run_id="2026-11-29T10-00-00-abcdef", genbench_version="0.1.0",
                     started_at="2026-11-29T10:00:00+00:00", finished_at="2026-11-29T10:30:00+00:00",
                     command="genbench run --all --seeds 0,1,2", config={"profile": "default"},
                     environment={"cpu": "AMD EPYC", "cpu_count": 2, "gpus": [], "torch": "2.13", "onnxruntime": "1.23",
                                  "git_commit": "c0ffee" * 7}, jobs=jobs)


def png(width: int, height: int, shade: int) -> bytes:
    """A plain grey PNG (stdlib only), for the sample grids."""
    raw = b"".join(b"\x00" + bytes([shade]) * width for _ in range(height))
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_board_run(directory: Path) -> Path:
    """The run and a sample grid per model, as ``genbench run`` leaves them."""
    run = board_run()
    write_run(run, directory)
    for i, job in enumerate(run.jobs):
        path = directory / job.files["samples_png"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png(56, 56, 40 + 20 * i))
    return directory


def limits_study(models: tuple[str, ...] = ("gan-mlp",)) -> LimitsResult:
    """A finished study of ``models`` against baseline-gaussian on digits: three axes, copy metrics at the
    reference point, one statement and an augmentation row."""
    points = []
    grids = {"quantity": (0.25, 0.5, 1.0), "quality": (0.0, 0.3), "compute": (0.5, 1.0, 2.0)}
    for axis, xs in grids.items():
        for x in xs:
            for model, role in [(m, "model") for m in models] + [("baseline-gaussian", "baseline")]:
                if axis == "compute" and role == "baseline":
                    continue
                fd = (60.0 if role == "model" else 180.0) / (x if axis != "quality" else 1 - x)
                quality = {m: _metric(m, fd if m == "fd" else 0.5, model).to_dict() for m in ("fd", "copy-ct")}
                points.append({"axis": axis, "x": x, "model": model, "role": role, "status": "ok",
                               "train_examples": int(1347 * x) if axis == "quantity" else 1347,
                               "corruption": x if axis == "quality" else 0.0,
                               "steps": int(1000 * x) if axis == "compute" else None,
                               "steps_reported": [int(1000 * x)] * 3 if axis == "compute" else [1000] * 3,
                               "train_seconds": 10.0 * x, "flops": 2e8 * x if axis == "compute" else None,
                               "quality": quality})
    return LimitsResult.from_dict({
        "schema": "genbench.limits/1", "limits_id": "2026-11-29T11-00-00-study", "genbench_version": "0.1.0",
        "started_at": "2026-11-29T11:00:00+00:00", "finished_at": "2026-11-29T11:20:00+00:00",
        "command": "genbench limits gan-mlp --task digits", "task": "digits", "task_kind": "image",
        "profile": "default", "seeds": [0, 1, 2], "device": "cpu", "models": list(models),
        "baseline": "baseline-gaussian", "n_train": 1347, "headline": {"metric": "fd", "unit": "", "higher_is_better": False},
        "axes": {"quantity": {"values": list(grids["quantity"]), "subsets": "nested and stratified"},
                 "quality": {"values": list(grids["quality"]), "noise": "uniform pixels"},
                 "compute": {"values": list(grids["compute"]), "reference_steps": {m: 1000 for m in models}}},
        "settings": {}, "environment": {}, "runs": {}, "points": points,
        "statements": [{"axis": "quantity", "model": models[0], "metric": "fd", "x": 0.25,
                        "text": f"{models[0]} beats baseline-gaussian on fd at every size tried {HOSTILE}"}],
        "augmentation": [{"model": models[0], "role": "model", "k": 10, "generated": 1347, "training_seeds": 3,
                          "classifier_seeds": 5, "real_accuracy": 0.61, "augmented_accuracy": 0.89, "gain": 0.28,
                          "gain_stderr": 0.014}]})


def write_limits_study(directory: Path, models: tuple[str, ...] = ("gan-mlp",)) -> Path:
    """:func:`limits_study` as ``genbench limits`` writes it (schema-checked ``limits.json``)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_limits(limits_study(models), directory)
    return directory


def write_board_page(root: Path) -> tuple[Path, Path, Path]:
    """The run and the study written under ``root`` and the page ``genbench leaderboard --format html --limits``
    makes of them: (run directory, study directory, page)."""
    from click.testing import CliRunner

    from genbench.cli import cli

    run_dir, study_dir, page = write_board_run(root / "run"), write_limits_study(root / "study"), root / "board.html"
    r = CliRunner().invoke(cli, ["leaderboard", str(run_dir), "--format", "html", "--limits", str(study_dir),
                                 "-o", str(page)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return run_dir, study_dir, page
