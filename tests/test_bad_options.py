"""Bad options and paths are refused up front in one line (exit 1, no traceback, nothing written); a full disk
stops the run with a clear message, the last run.json intact and the rest resumable; --resume refuses options
that contradict the run it finishes."""

import errno
import json
import os

import pytest
from click.testing import CliRunner

import genbench
from genbench.cli import cli
from genbench.errors import ConfigError, OutputError, RunInterrupted

BAD_RUN_OPTIONS = [
    (["--timeout", "inf"], "--timeout"), (["--timeout", "nan"], "--timeout"), (["--timeout", "1e10"], "--timeout"),
    (["--timeout", "0"], "--timeout"), (["--timeout", "soon"], "--timeout"),
    (["--seed", "-1"], "--seed"), (["--seed", "1e23"], "--seed"), (["--seed", "4294967296"], "--seed"),
    (["--max-memory", "inf"], "--max-memory"), (["--max-memory", "nan"], "--max-memory"),
    (["--max-memory", "-2"], "--max-memory"),
    (["--seeds", "1e3"], "--seeds"), (["--seeds", "²"], "--seeds"), (["--seeds", "0,0"], "--seeds"),
    (["--seeds", "0,,1"], "--seeds"), (["--seeds", "9" * 5000], "--seeds"), (["--seeds", "-1"], "--seeds"),
    (["--jobs", "0"], "--jobs"), (["--jobs", "1e3"], "--jobs"), (["--jobs", "100000"], "--jobs"),
    (["--threads", "0"], "--threads"), (["--train-threads", "-2"], "--train-threads"),
    (["--steps", "-1"], "--steps"), (["--steps", "1e30"], "--steps"),
    (["--seed", "3", "--seeds", "0,1"], "seed"),
    (["--out", "/proc/genbench-cannot-be-made"], "--out"),
    (["--data-dir", "/nonexistent-genbench-data"], "--data-dir"),
    # choices: one line and exit 1 like every other bad value, not click's usage block and exit 2
    (["--device", "gpu"], "--device 'gpu': use auto, cpu or cuda"),
    (["--executor", "foo"], "--executor 'foo': use process, inline or ray"),
    (["--features", "inceptionn"], "--features 'inceptionn': use default, inception or default,inception"),
    (["--fid-n", "100"], "--fid-n 100 sets the n of fid"),
    (["--out", ""], "--out is empty"),
    (["--address", "ray://head:10001"], "--address 'ray://head:10001' needs --executor ray"),
    (["--meta", "a=b"], "--meta needs --onnx FILE"),
    (["--role", "sample", "--name", "x"], "--role/--name need --onnx FILE"),
    (["--task", "digit"], "Unknown task 'digit'"),
]


@pytest.mark.parametrize("options, named", BAD_RUN_OPTIONS, ids=[" ".join(o)[:30] for o, _ in BAD_RUN_OPTIONS])
def test_a_bad_run_option_is_one_line_and_nothing_runs(tmp_path, monkeypatch, options, named):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["run", "baseline-gaussian", "--task", "ring8", "--profile", "smoke", *options])
    assert r.exit_code == 1, r.output
    assert r.output.count("\n") == 1 and r.output.startswith("error: ") and named in r.output, r.output
    assert "Traceback" not in r.output and not list(tmp_path.iterdir())  # no results directory was made


@pytest.mark.parametrize("words, named", [(["gam-mlp"], "Unknown model 'gam-mlp'"),
                                          (["baseline-gaussian", "--task", "digit"], "Unknown task 'digit'"),
                                          (["baseline-gaussian", "--device", "cuda"], "no CUDA GPU")])
def test_a_refused_plan_leaves_no_out_folder(tmp_path, monkeypatch, words, named):
    """--out is made only once the models, tasks and device hold."""
    from genbench import runtime
    from genbench.errors import ConfigError

    def no_gpu(device):
        if device == "cuda":
            raise ConfigError("Device 'cuda' asked for, but torch sees no CUDA GPU; use --device cpu.")
        return "cpu", None

    monkeypatch.setattr(runtime, "choose_device", no_gpu)  # as on a machine without a GPU
    r = CliRunner().invoke(cli, ["run", *words, "--profile", "smoke", "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and named in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_choice_options_keep_their_choices_in_the_help():
    r = CliRunner().invoke(cli, ["run", "--help"])
    assert "[auto|cpu|cuda]" in r.output and "[process|inline|ray]" in r.output and "default|inception|default,inception" in r.output


def test_an_out_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("a file")
    r = CliRunner().invoke(cli, ["run", "baseline-gaussian", "--out", str(tmp_path / "taken")])
    assert r.exit_code == 1 and r.output.startswith("error: Cannot use --out") and r.output.count("\n") == 1, r.output


@pytest.mark.parametrize("kwargs", [{"timeout": float("inf")}, {"timeout": float("nan")}, {"max_memory": float("inf")},
                                    {"seed": -1}, {"seeds": [0, 2**32]}, {"jobs": 0}, {"threads": 0}, {"steps": 1.5},
                                    {"timing": "no"}, {"device": "tpu"}])
def test_the_api_checks_the_same_options(fake_host, tmp_path, kwargs):
    with pytest.raises(ConfigError):
        genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())


def test_an_output_file_that_cannot_be_created_is_one_line(tmp_path):
    from genbench.results import atomic_write_text

    (tmp_path / "file").write_text("x")
    for target in (tmp_path / "file" / "out.md", tmp_path / "dir-is-there"):
        if target.name == "dir-is-there":
            target.mkdir()
        with pytest.raises(OutputError, match=f"Cannot write {target}") as info:
            atomic_write_text(target, "text")
        assert isinstance(info.value, OSError) and info.value.errno is not None
    r = CliRunner().invoke(cli, ["leaderboard", str(tmp_path), "-o", str(tmp_path / "file" / "board.md")])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "error:" in r.output, r.output


@pytest.fixture
def full_disk(monkeypatch):
    """ENOSPC from the atomic writer's fsync once ``arm()`` is called (as a disk that fills up mid-run)."""
    state = {"armed": False, "failed": 0}
    real = os.fsync

    def fsync(fd):
        if state["armed"]:
            state["failed"] += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr("genbench.results.os.fsync", fsync)
    return state


def test_a_full_disk_stops_the_run_keeps_the_last_run_json_and_resume_finishes(fake_host, tmp_path, full_disk):
    lines = []

    def echo(line):
        lines.append(line)
        if line.lstrip().startswith("built"):  # the disk fills up once the first unit is saved
            full_disk["armed"] = True

    with pytest.raises(RunInterrupted) as info:
        genbench.run(["tiny-ok", "tiny-cached", "tiny-elbo"], tasks=["digits"], profile="smoke", host=fake_host,
                     out=tmp_path, baselines=False, device="cpu", timing=False, jobs=1, echo=echo)
    message = str(info.value)
    assert "\n" not in message and "No space left on device" in message and "genbench run --resume" in message
    assert full_disk["failed"] >= 1
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".run.json")) == []  # no temp file left
    saved = genbench.load_run(run_dir)  # the last complete write, intact
    assert [(j.model, j.status) for j in saved.jobs] == [("tiny-ok", "ok"), ("tiny-cached", "pending"),
                                                        ("tiny-elbo", "pending")]
    assert saved.finished_at is None and not (run_dir / ".data").exists()

    full_disk["armed"] = False
    done = genbench.run(resume=run_dir, host=fake_host)
    assert [(j.model, j.status) for j in done.jobs] == [("tiny-ok", "ok"), ("tiny-cached", "ok"), ("tiny-elbo", "ok")]
    assert done.jobs[0].to_dict() == saved.jobs[0].to_dict()  # not redone


def test_a_job_that_meets_a_full_disk_is_left_to_do_not_failed(fake_host, tmp_path):
    with pytest.raises(RunInterrupted, match="No space left on device"):
        genbench.run(["tiny-no-space"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                     baselines=False, device="cpu", timing=False, executor="inline")
    (run_json,) = tmp_path.glob("*/run.json")
    assert json.loads(run_json.read_text())["jobs"][0]["status"] == "pending"


@pytest.fixture
def small_run(fake_host, tmp_path):
    result = genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                          baselines=False, device="cpu", timing=False)
    return tmp_path / result.run_id


def test_resume_refuses_options_that_contradict_the_run(small_run):
    before = (small_run / "run.json").read_text()
    r = CliRunner().invoke(cli, ["run", "--resume", str(small_run), "--profile", "default", "--seed", "3",
                                 "--task", "text", "--no-timing", "--timeout", "30", "--all", "--steps", "5"])
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    # each written as the flags a user types, never as Python values ("--all True", "stored steps None")
    for words in ("--profile default contradicts the stored run (started with --profile smoke)",
                  "--seed 3 contradicts the stored run (started with --seed 0)",
                  "--task text contradicts the stored run (started with --task digits)",
                  "--timeout 30 contradicts the stored run (started with --timeout 3600)",
                  "--all contradicts the stored run (started without --all)",
                  "--steps 5 contradicts the stored run (started without --steps)", "only --jobs, --executor and --address may change"):
        assert words in r.output, r.output
    assert "True" not in r.output and "None" not in r.output and "False" not in r.output, r.output
    assert "--no-timing" not in r.output  # the run was made with timing=False: that agrees
    with pytest.raises(ConfigError, match=r"--max-memory 2 contradicts the stored run \(started without --max-memory\)"):
        genbench.run(resume=small_run, max_memory=2)
    assert (small_run / "run.json").read_text() == before


def test_resume_names_a_switch_the_stored_run_was_started_with(fake_host, tmp_path):
    run_dir = tmp_path / genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                                      baselines=False, device="cpu", timing=True, executor="inline",
                                      steps=0).run_id
    with pytest.raises(ConfigError) as info:
        genbench.run(resume=run_dir, timing=False, cache=False)
    assert "--no-timing contradicts the stored run (started without --no-timing)" in str(info.value)
    assert "--no-cache contradicts the stored run (started without --no-cache)" in str(info.value)


def test_resume_accepts_options_that_agree_and_jobs(small_run, fake_host):
    done = genbench.run(["tiny-ok"], resume=small_run, tasks=["digits"], profile="smoke", executor="process", jobs=1,
                        timing=False, baselines=False, device="cpu", host=fake_host)
    assert done.jobs[0].status == "ok"


def test_resume_takes_the_same_models_in_any_order(fake_host, tmp_path):
    result = genbench.run(["tiny-ok", "tiny-cached"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                          baselines=False, device="cpu", timing=False, executor="inline")
    r = CliRunner().invoke(cli, ["run", "--resume", str(tmp_path / result.run_id), "tiny-cached", "tiny-ok", "tiny-ok"])
    assert r.exit_code == 0 and "contradict" not in r.output, r.output


def test_resuming_a_finished_run_says_there_is_nothing_to_do_and_changes_nothing(small_run, fake_host):
    before = (small_run / "run.json").read_text()
    lines = []
    done = genbench.run(resume=small_run, host=fake_host, echo=lines.append)
    assert lines == [f"nothing to resume: run {done.run_id} finished at {done.finished_at}, every job has its result "
                     f"({small_run / 'run.json'})"]
    assert "resumed_at" not in done.config and done.jobs[0].status == "ok"
    assert (small_run / "run.json").read_text() == before  # no resume recorded
