"""The command line, through click's CliRunner (same code as the installed script)."""

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from genbench.cli import cli


@pytest.fixture
def fake_entry_points(monkeypatch):
    """Make the fake test plugin discoverable exactly as an installed entry point would be."""
    import fakes

    import genbench.plugins as plugins

    ep = SimpleNamespace(name="fakes", dist=SimpleNamespace(name="genbench-fakes", version="9.9"), load=lambda: fakes.FakePlugin)
    broken = SimpleNamespace(name="broken", dist=None, load=lambda: (_ for _ in ()).throw(ImportError("no module named x")))
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [ep, broken] if group == "genbench" else [])


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_help_and_version():
    r = invoke("--help")
    assert r.exit_code == 0 and "run" in r.output and "plugins" in r.output
    import genbench

    assert genbench.__version__ in invoke("--version").output


def test_list_shows_models_tasks_metrics_reporters(fake_entry_points):
    r = invoke("list")
    assert r.exit_code == 0
    for word in ("tiny-ok", "baseline-gaussian", "digits", "mnist", "fd", "markdown", "genbench-fakes 9.9"):
        assert word in r.output


def test_plugins_reports_a_broken_plugin_and_keeps_the_rest(fake_entry_points):
    r = invoke("plugins")
    assert r.exit_code == 0
    assert "genbench-fakes 9.9" in r.output and "model:tiny-ok" in r.output
    assert "broken" in r.output and "import" in r.output and "no module named x" in r.output


def test_plugins_can_be_disabled_by_env(fake_entry_points, monkeypatch):
    monkeypatch.setenv("GENBENCH_DISABLE_PLUGINS", "fakes")
    r = invoke("list")
    assert "tiny-ok" not in r.output
    assert "disabled" in invoke("plugins").output


def test_unknown_model_is_one_line_with_a_suggestion(fake_entry_points, tmp_path):
    r = invoke("run", "tiny-ko", "--out", str(tmp_path))
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert lines == [lines[0]] and "Unknown model 'tiny-ko'" in lines[0] and "Did you mean 'tiny-ok'" in lines[0]
    assert "Traceback" not in r.output


def test_unknown_task_and_missing_selection(tmp_path):
    r = invoke("run", "--all", "--task", "digitz", "--out", str(tmp_path))
    assert r.exit_code == 1 and "Unknown task 'digitz'" in r.output and "digits" in r.output
    r = invoke("run", "--out", str(tmp_path))
    assert r.exit_code == 1 and "--all" in r.output


def test_explicit_mnist_without_files_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.delenv("GENBENCH_DATA", raising=False)
    r = invoke("run", "baseline-gaussian", "--task", "mnist", "--out", str(tmp_path), "--device", "cpu")
    assert r.exit_code == 1
    assert "train-images-idx3-ubyte" in r.output and "--data-dir" in r.output


def test_invalid_option_values_are_rejected(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no settings file: 'huge' is no profile
    r = invoke("run", "--all", "--profile", "huge")
    assert r.exit_code == 1 and "Unknown profile 'huge'" in r.output and not list(tmp_path.iterdir())
    assert invoke("run", "--all", "--steps", "-1").exit_code == 1  # one line: "error: Invalid --steps -1: ..."
    r = invoke("run", "--all", "--device", "tpu")  # a bad choice is one line and exit 1, like any bad value
    assert r.exit_code == 1 and r.output == "error: Invalid --device 'tpu': use auto, cpu or cuda.\n", r.output


def test_run_exits_nonzero_when_a_job_fails_and_report_rebuilds(fake_entry_points, tmp_path):
    r = invoke("run", "tiny-ok", "tiny-nan", "--task", "digits", "--profile", "smoke", "--out", str(tmp_path),
               "--device", "cpu", "--no-baselines")
    assert r.exit_code == 1, r.output
    assert "1 ok, 1 failed" in r.output and "non-finite" in r.output
    (run_dir,) = list(tmp_path.iterdir())
    data = json.loads((run_dir / "run.json").read_text())
    assert data["schema"] == "genbench.run/2"
    assert data["command"].startswith("genbench run tiny-ok tiny-nan --task digits --profile smoke")
    (run_dir / "report.md").unlink()
    r = invoke("report", str(run_dir))
    assert r.exit_code == 0 and (run_dir / "report.md").is_file() and (run_dir / "results.csv").is_file()


def test_report_of_a_corrupt_run_is_a_clear_error(tmp_path):
    (tmp_path / "run.json").write_text('{"schema": "genbench.run/2", "jobs": [')
    r = invoke("report", str(tmp_path))
    assert r.exit_code == 1 and "corrupt or truncated" in r.output
    assert (tmp_path / "run.json").read_text() == '{"schema": "genbench.run/2", "jobs": ['


def test_python_dash_m_and_console_script_run(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "genbench", "run", "nope", "--out", str(tmp_path)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip().startswith("error: Unknown model 'nope'")
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_named_task_without_its_data_is_an_error_before_anything_is_written(fake_entry_points, tmp_path,
                                                                            monkeypatch):
    monkeypatch.delenv("GENBENCH_DATA", raising=False)
    r = CliRunner().invoke(cli, ["run", "tiny-ok", "--task", "mnist", "--out", str(tmp_path), "--device", "cpu"])
    assert r.exit_code == 1 and "jobs" not in r.stdout  # no "2 jobs" first
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]  # (and a progress line)
    assert len(errors) == 1 and errors[0].startswith("error: MNIST files not found")
    assert list(tmp_path.iterdir()) == []  # no run directory, no run.json without jobs


def test_the_console_line_shows_every_metric_as_the_reports_do():
    from genbench.runner import quality_summary
    from genbench.types import MetricValue

    quality = {"reverse-kl": MetricValue(0.5, "nats", False, floor=0.01), "nll": MetricValue(2.1, "nats", False),
               "kid": MetricValue(None, "", False, error="ValueError: boom"), "fd": MetricValue(40.0, "", False, floor=2.0),
               "coverage": MetricValue(0.7, "", True, floor=0.99)}
    assert quality_summary(quality) == ("fd 40 (floor 2), kid failed, coverage 0.7 (floor 0.99), nll 2.1, "
                                  "reverse-kl 0.5 (floor 0.01)")


def test_the_reproduce_command_spells_out_every_option_that_changes_a_result_or_a_failure(monkeypatch):
    """Parsed back by genbench run itself, the command gives the very options of the run it reproduces."""
    import shlex

    from genbench.cli import _reproduce, run_cmd

    monkeypatch.delenv("GENBENCH_SANDBOX", raising=False)  # the suite's default; a mode set there is shown (below)
    assert "--sandbox" not in _reproduce({"models": ("gan-mlp",)})
    monkeypatch.setenv("GENBENCH_SANDBOX", " none ")
    assert _reproduce({"models": ("gan-mlp",)}).endswith("--sandbox none")
    monkeypatch.delenv("GENBENCH_SANDBOX")

    options = dict(models=("gan-mlp", "vae-mlp"), all=False, tasks=("digits", "ring8"), profile="smoke", seed=None,
                   seeds=(0, 1), device="cpu", data_dir="/data dir", text_file="corpus.txt", steps=5, threads=2,
                   train_threads=3, baselines=False, timing=False, timeout=10.0, executor="inline", jobs=2,
                   address=None, features="inception", inception_weights="w.pth", cache=False, cache_dir="/c",
                   max_memory=0.2, out="runs")
    command = _reproduce(options)
    assert command == ("genbench run gan-mlp vae-mlp --task digits --task ring8 --profile smoke --seeds 0,1 --device "
                       "cpu --steps 5 --data-dir '/data dir' --text-file corpus.txt --features inception "
                       "--inception-weights w.pth --threads 2 --train-threads 3 --jobs 2 --executor inline "
                       "--timeout 10 --max-memory 0.2 --no-baselines --no-timing --no-cache")
    words = shlex.split(command)
    params = run_cmd.make_context("run", words[2:]).params
    back = {"models": params["models"], "tasks": params["tasks"], "profile": params["profile"],
            "seeds": tuple(int(s) for s in params["seeds"].split(",")), "device": params["device"],
            "data_dir": str(params["data_dir"]), "text_file": str(params["text_file"]), "steps": params["steps"],
            "threads": params["threads"], "train_threads": params["train_threads"],
            "baselines": not params["no_baselines"], "timing": not params["no_timing"], "timeout": params["timeout"],
            "executor": params["isolation"], "jobs": params["jobs"], "features": params["features"],
            "inception_weights": str(params["inception_weights"]), "cache": not params["no_cache"],
            "max_memory": params["max_memory"]}
    assert back == {k: options[k] for k in back}
    # defaults stay out; the address only with Ray
    assert _reproduce({"models": ("gan-mlp",), "timeout": 3600.0, "executor": "process", "train_threads": 1,
                       "features": "default", "cache": True}) == \
        "genbench run gan-mlp --profile default --seed 0 --device auto"
    assert "--executor ray --address ray://head:10001" in _reproduce({"all": True, "executor": "ray",
                                                                      "address": "ray://head:10001"})


def test_python_m_genbench_schemas_has_help_and_one_line_errors():
    import subprocess
    import sys

    def schemas(*args):
        return subprocess.run([sys.executable, "-m", "genbench.schemas", *args], capture_output=True, text=True,
                              timeout=60)

    r = schemas("--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: python -m genbench.schemas") and not r.stderr
    r = schemas("genbench.nope/1")
    assert r.returncode == 1 and r.stdout == "" and len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith("error: No shipped schema named 'genbench.nope/1'; known: ")
    r = schemas()
    assert r.returncode == 0 and "genbench.run/2" in r.stdout.splitlines()
    assert json.loads(schemas("genbench.run/2").stdout)["title"].startswith("genbench run.json")
