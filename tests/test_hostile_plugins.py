"""Hostile plugins at the boundary: imports that hang, crash, exit or allocate without end fail as plugins and
never stall the host; names and texts are exactly one line of allowed characters; check-plugin runs a model only
on tasks it supports and draws as many samples as a run does."""

import sys
import textwrap
import time
from importlib import metadata

import pytest

import genbench
from genbench.errors import SpecError
from genbench.plugins import make_plugin_manager
from genbench.testing import check_model, check_plugin

PLUGIN_MODULES = {
    "probe_good": """
        import genbench
        from genbench import ModelSpec

        @genbench.hookimpl
        def genbench_register_models(register):
            register(ModelSpec("probe-ok", "test", ("image",), "fakes:TinyModel", "a plugin that imports fine"))
    """,
    "probe_chatty": """
        import os, sys
        print("null")
        os.write(1, b'"a fake verdict"\\n')  # straight to file descriptor 1
        import genbench
        from genbench import ModelSpec

        @genbench.hookimpl
        def genbench_register_models(register):
            register(ModelSpec("probe-chatty", "test", ("image",), "fakes:TinyModel", "prints while imported"))
    """,
    "probe_sleepy": "import time\ntime.sleep(3600)\n",
    "probe_crashy": "import ctypes\nctypes.string_at(0)\n",
    "probe_exity": "import os\nos._exit(7)\n",
    "probe_hoggy": "hog = bytearray(8 * 2**30)\n",
    "probe_raising": "raise RuntimeError('first line\\nsecond line \\x1b[2J')\n",
}


@pytest.fixture
def hostile_entry_points(tmp_path, monkeypatch):
    """Entry points of group 'genbench' for the modules above, and no others."""
    for name, source in PLUGIN_MODULES.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [metadata.EntryPoint(name.split("_", 1)[1], name, "genbench") for name in PLUGIN_MODULES]
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: eps if group == "genbench" else [])
    monkeypatch.setenv("GENBENCH_PLUGIN_TIMEOUT", "3")
    yield
    for name in PLUGIN_MODULES:
        sys.modules.pop(name, None)


def test_plugin_imports_that_hang_crash_exit_or_hog_fail_as_plugins(hostile_entry_points):
    t0 = time.monotonic()
    host = make_plugin_manager()
    elapsed = time.monotonic() - t0
    failures = {f.plugin: f for f in host.failures}
    assert sorted(failures) == ["crashy", "exity", "hoggy", "raising", "sleepy"], failures
    assert all(f.phase == "import" for f in failures.values())
    assert "did not finish within 3 s" in failures["sleepy"].message
    assert "GENBENCH_PLUGIN_TIMEOUT" in failures["sleepy"].message
    assert "SIGSEGV" in failures["crashy"].message and "exit code 7" in failures["exity"].message
    assert "MemoryError" in failures["hoggy"].message
    raising = failures["raising"].message
    assert raising == "RuntimeError: first line" and str(failures["raising"]).count("\n") == 0
    assert {"probe-ok", "probe-chatty"} <= set(host.registry.models.names())
    for module in ("probe_sleepy", "probe_crashy", "probe_exity", "probe_hoggy"):
        assert module not in sys.modules  # never imported into genbench itself
    assert elapsed < 60, elapsed  # the hanging import cost its time limit, not for ever


def test_genbench_list_goes_on_past_a_hanging_plugin(hostile_entry_points):
    from click.testing import CliRunner

    from genbench.cli import cli

    r = CliRunner().invoke(cli, ["list"])
    assert r.exit_code == 0 and "probe-ok" in r.output
    assert "plugin 'sleepy' (sleepy) failed to import: its import did not finish within 3 s" in r.output


def test_a_name_with_a_trailing_newline_never_registers_beside_the_real_one():
    from fakes import FakePlugin, NewlineNamePlugin

    host = make_plugin_manager(extra_plugins=[("fakes", FakePlugin), ("newline", NewlineNamePlugin)],
                               entry_points=False)
    assert host.registry.models.names().count("tiny-ok") == 1
    assert host.registry.model("tiny-ok").plugin == "fakes"
    assert not [n for n in host.registry.models.names() if "\n" in n or n == "tiny-sneaky"]
    failures = [f for f in host.failures if f.plugin == "newline"]
    assert len(failures) == 2 and all("Invalid model name 'tiny-ok\\n'" in f.message for f in failures), failures
    assert all("\n" not in str(f) for f in failures)


@pytest.mark.integration
def test_a_plugin_cannot_register_a_second_gan_mlp_beside_the_real_one():
    class Impostor:
        @staticmethod
        @genbench.hookimpl
        def genbench_register_models(register):
            register(genbench.ModelSpec("gan-mlp\n", "gan", ("image",), "fakes:TinyModel", "impostor"))

    host = make_plugin_manager(extra_plugins=[("impostor", Impostor)])
    assert host.registry.models.names().count("gan-mlp") == 1
    assert host.registry.model("gan-mlp").plugin == "genbench-gan"
    assert any(f.plugin == "impostor" and "Invalid model name 'gan-mlp\\n'" in f.message for f in host.failures)


@pytest.mark.parametrize("field, value", [
    ("name", "gan-mlp\n"), ("name", "gan-mlp\r"), ("name", "gan\u2010mlp"), ("name", "Gan-mlp"),
    ("family", "gan\n"), ("description", "two\nlines"), ("description", "clear \x1b[2J screen"),
    ("description", "right-to-left \u202e override"), ("description", "tab\there"), ("description", "x" * 301),
    ("cls", "fakes:TinyModel\n"),
])
def test_model_spec_fields_are_one_line_of_allowed_characters(field, value):
    fields = dict(name="gan-mlp", family="gan", tasks=("image",), cls="fakes:TinyModel", description="fine")
    with pytest.raises(SpecError):
        genbench.ModelSpec(**{**fields, field: value})


@pytest.mark.parametrize("spec", [
    lambda: genbench.DatasetSpec("digits\n", "image", "fakes:load", "task"),
    lambda: genbench.DatasetSpec("digits2", "image", "fakes:load", "two\nlines"),
    lambda: genbench.MetricSpec("fd\n", ("image",), "fakes:m", "", False, "metric"),
    lambda: genbench.MetricSpec("fd2", ("image",), "fakes:m", "nats\n", False, "metric"),
    lambda: genbench.MetricSpec("fd3", ("image",), "fakes:m", "\x1b[31m", False, "metric"),
    lambda: genbench.MetricSpec("fd4", ("image",), "fakes:m", "", False, "\x00"),
    lambda: genbench.ReporterSpec("md\n", "fakes:w", "reporter"),
    lambda: genbench.ReporterSpec("md2", "fakes:w", "line\u2028separator"),
])
def test_every_spec_name_and_text_is_one_line(spec):
    with pytest.raises(SpecError):
        spec()


def test_check_plugin_runs_a_model_only_on_tasks_it_supports(fake_host):
    (problem,) = check_model("tiny-ok", host=fake_host, task="text")
    assert problem.check == "task" and "supports image tasks and 'text' is a text task" in problem.message
    assert "digits" in problem.message  # where it can be checked
    assert check_model("text-uniform", host=fake_host) == []  # its own kind found without --task
    (problem,) = check_plugin("text-fakes", host=fake_host, task="digits")
    assert problem.check == "task" and "none of the plugin's models supports image tasks" in problem.message


def test_check_plugin_draws_as_many_samples_as_a_run_and_catches_rare_nans(fake_host, tmp_path):
    """The sample graph emits NaN for about 1 noise draw in 160: too rare for validation's few batches."""
    from genbench.runtime.validate import validate_bundle

    from fakes import SometimesNaNModel

    model = SometimesNaNModel()
    model.train(None, genbench.TrainConfig(seed=0, device="cpu", profile="smoke", steps=None), lambda *a: None)
    bundle = model.export_onnx(tmp_path / "bundle")
    from genbench.data.digits import load_digits

    data = load_digits()
    validate_bundle(bundle, model.torch_module, data=data.test_x, seed=0, dataset=data)  # passes: NaN is rare

    (problem,) = check_model("tiny-sometimes-nan", host=fake_host, task="digits")
    assert problem.check == "samples" and "non-finite values" in problem.message
    job = genbench.run(["tiny-sometimes-nan"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                       baselines=False, device="cpu", timing=False, executor="inline").jobs[0]
    assert job.status == "failed" and job.error.phase == "sample" and "non-finite" in job.error.message
