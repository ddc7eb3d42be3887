"""What a third-party plugin author meets: the scaffold, the conformance kit, check-plugin, and the docs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from genbench.cli import cli
from genbench.testing import check_model, check_plugin

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def kit_host():
    from fakes import FakePlugin, NoHookPlugin

    from genbench.plugins import make_plugin_manager

    return make_plugin_manager(extra_plugins=[("fakes", FakePlugin), ("nohook", NoHookPlugin)], entry_points=False)


@pytest.mark.parametrize("name", ["tiny-ok", "tiny-cached"])
def test_a_conforming_model_has_no_problems(kit_host, name):
    assert check_model(name, host=kit_host, task="digits") == []


@pytest.mark.parametrize("name, check, words", [
    ("tiny-wrong-role", "train/export", ["Graph role 'samples' is not one of"]),
    ("tiny-wrong-shape", "onnx", ["output 'x'", "rank 2"]),
    ("tiny-nondeterministic", "determinism", ["seed", "differ", "config.seed"]),
    ("tiny-not-a-model", "class", ["subclass"]),
    ("tiny-wrong-restore", "cache", ["load_state_dict", "does not match", "disagrees with torch_module"]),
    ("tiny-raising-state", "cache", ["state_dict() raised", "boom in state_dict"]),
    ("tiny-pickled-state", "cache", ["weights_only", "return only tensors"]),
])
def test_the_kit_names_each_problem_and_what_to_change(kit_host, name, check, words):
    problems = check_model(name, host=kit_host, task="digits")
    assert [p.check for p in problems] == [check], problems
    for w in words:
        assert w in problems[0].message, problems[0].message


def test_a_missing_hook_is_reported_for_the_plugin(kit_host):
    problems = check_plugin("nohook", host=kit_host)
    assert problems and problems[0].check == "plugin validate" and "implements no genbench hook" in problems[0].message
    assert "@genbench.hookimpl" in problems[0].message


def test_unknown_plugin_suggests_a_name(kit_host):
    (p,) = check_plugin("tiny-okk", host=kit_host)
    assert "Did you mean 'tiny-ok'" in p.message


@pytest.mark.parametrize("family, model", [("gan", "demo-gan"), ("vae", "demo-vae"), ("ar", "demo-ar"),
                                           ("diffusion", "demo-diffusion"), ("flow", "demo-flow")])
def test_new_plugin_writes_a_package_that_conforms(tmp_path, family, model):
    r = CliRunner().invoke(cli, ["new-plugin", "demo", "--family", family, "--dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    root = tmp_path / "genbench-demo"
    assert (root / "pyproject.toml").read_text().count('demo = "genbench_demo"') == 1
    for f in ("genbench_demo/__init__.py", "genbench_demo/model.py", "tests/test_conformance.py", "README.md"):
        assert (root / f).is_file()
    # load the generated plugin in-process, as its entry point would, and run the kit on it
    sys.path.insert(0, str(root))
    try:
        import importlib

        for mod in [m for m in sys.modules if m.startswith("genbench_demo")]:
            del sys.modules[mod]
        plugin = importlib.import_module("genbench_demo")
        from genbench.plugins import make_plugin_manager

        host = make_plugin_manager(extra_plugins=[("demo", plugin)], entry_points=False)
        assert check_plugin("demo", host=host) == []
        assert model in host.registry.models
    finally:
        sys.path.remove(str(root))
    assert CliRunner().invoke(cli, ["new-plugin", "demo", "--dir", str(tmp_path)]).exit_code == 1  # no overwrite
    assert "Invalid plugin name" in CliRunner().invoke(cli, ["new-plugin", "../x", "--dir", str(tmp_path)]).output


def test_every_python_example_in_the_plugin_tutorial_runs(tmp_path):
    text = (ROOT / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        code = block.replace("...", "pass") if "def train(self" in block else block
        subprocess.run([sys.executable, "-c", "import genbench, torch\n" + code], check=True, cwd=tmp_path,
                       capture_output=True, timeout=120)


@pytest.mark.integration
def test_check_plugin_command_on_an_installed_plugin():
    r = CliRunner().invoke(cli, ["check-plugin", "gan"])
    assert r.exit_code == 0, r.output
    assert "conforms" in r.output


@pytest.mark.integration
def test_the_example_external_plugin_is_installed_and_benchmarked_beside_the_built_ins(tmp_path):
    """CI installs examples/genbench-example with pip (not editable): genbench must find and run it."""
    from importlib import metadata

    dist = metadata.distribution("genbench-example")
    assert "site-packages" in str(dist.locate_file("genbench_example")), "installed as a real package, not a path"
    import genbench

    result = genbench.run(["example-gan", "gan-mlp"], tasks=["digits"], profile="smoke", out=tmp_path, device="cpu",
                          timing=False, baselines=False)
    jobs = {j.model: j for j in result.jobs}
    assert jobs["example-gan"].status == "ok" and jobs["example-gan"].plugin == "genbench-example"
    assert jobs["gan-mlp"].status == "ok" and "fd" in jobs["example-gan"].quality


# --------------------------------------------------------------------------- rough edges found by writing a plugin


def _host_with(*specs, more=()):
    import types

    import genbench
    from genbench.plugins import make_plugin_manager

    @genbench.hookimpl
    def genbench_register_models(register):
        for spec in specs:
            register(spec())  # made inside the hook, as a plugin makes them

    plugin = types.SimpleNamespace(genbench_register_models=genbench_register_models)
    return make_plugin_manager([("author", plugin), *more], entry_points=False)


def test_a_model_may_name_the_tasks_it_runs_on(tmp_path):
    from genbench import ModelSpec
    from genbench.runner import plan

    host = _host_with(lambda: ModelSpec("ring-only", "test", ("ring8",), "fakes:TinyModel", "ring8 only"),
                      lambda: ModelSpec("mixed", "test", ("image", "ring8"), "fakes:TinyModel", "images and ring8"))
    jobs = plan(host, ["ring-only"], baselines=False)
    assert [(j.task.name, j.skip_reason) for j in jobs] == [("ring8", None)]  # never grid25, the other points task
    named = plan(host, ["ring-only"], tasks=["grid25", "ring8"], baselines=False)
    assert [(j.task.name, j.skip_reason) for j in named] == [("grid25", "model supports ring8; 'grid25' is a points "
                                                                        "task"), ("ring8", None)]
    mixed = {j.task.name for j in plan(host, ["mixed"], baselines=False) if j.skip_reason is None}
    assert {"digits", "ring8"} <= mixed and "grid25" not in mixed and "text" not in mixed
    assert host.warnings == []


def test_one_bad_spec_in_a_hook_does_not_drop_the_others():
    from genbench import DatasetSpec, ModelSpec
    from genbench.errors import SpecError

    host = _host_with(lambda: ModelSpec("first-ok", "test", ("image",), "fakes:TinyModel", "fine"),
                      lambda: ModelSpec("Not A Name", "test", ("image",), "fakes:TinyModel", "bad"),
                      lambda: ModelSpec("second-ok", "test", ("imgae",), "fakes:TinyModel", "a typo in its task"),
                      lambda: ModelSpec("third-ok", "test", ("image",), "no colon", "bad class path"))
    assert {"first-ok", "second-ok"} <= set(host.registry.models.names())
    assert "third-ok" not in host.registry.models
    messages = [f.message for f in host.failures if f.plugin == "author"]
    assert len(messages) == 2 and "Invalid model name 'Not A Name'" in messages[0] and "cls 'no colon'" in messages[1]
    (warning,) = host.warnings
    assert "model 'second-ok'" in warning and "'imgae'" in warning and "Did you mean 'image'" in warning
    with pytest.raises(SpecError):  # outside a hook a bad spec still raises where it is made
        ModelSpec("Not A Name", "test", ("image",), "fakes:TinyModel", "bad")
    with pytest.raises(SpecError):
        DatasetSpec("ok", "audio", "pkg:load", "x")


def test_check_plugin_runs_a_named_task_model_on_its_task():
    from genbench import ModelSpec
    from genbench.testing import model_checks

    host = _host_with(lambda: ModelSpec("ring-only", "test", ("ring8",), "fakes:TinyModel", "ring8 only"))
    checks = model_checks("ring-only", host=host)
    assert checks[2].check == "task" and checks[2].message == "checked on task 'ring8'"
    wrong = model_checks("ring-only", host=host, task="grid25")
    assert wrong[2].status == "failed" and "supports ring8 and 'grid25' is a points task" in wrong[2].message
    assert "check it on one of: ring8" in wrong[2].message


def test_export_torch_module_makes_axis_0_of_every_input_the_batch_by_default(tmp_path):
    import numpy as np
    import onnx
    import torch

    from genbench import export_torch_module
    from genbench.runtime import make_session

    class Two(torch.nn.Module):
        def forward(self, z, u):
            return torch.tanh(z @ torch.ones(3, 2)) + u

    path = export_torch_module(Two(), (torch.randn(4, 3), torch.rand(4, 2)), tmp_path / "g.onnx",
                               input_names=["z", "u"], output_names=["x"])
    graph = onnx.load(str(path)).graph
    dims = {v.name: v.type.tensor_type.shape.dim for v in [*graph.input, *graph.output]}
    assert all(dims[name][0].dim_param == "batch" for name in ("z", "u", "x"))
    assert [d.dim_value for d in dims["z"][1:]] == [3]  # only axis 0 is symbolic
    out = make_session(path).run(None, {"z": np.zeros((7, 3), np.float32), "u": np.ones((7, 2), np.float32)})
    assert out[0].shape == (7, 2)


def test_new_plugin_prints_a_command_that_installs_the_folder_it_wrote(tmp_path, monkeypatch):
    import shlex

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["new-plugin", "demo"])
    assert r.exit_code == 0, r.output
    command = r.output.splitlines()[1].strip()
    assert command == "pip install -e './genbench-demo[test]' && genbench check-plugin demo"
    # pip reads './genbench-demo[test]' as the folder (a bare 'genbench-demo' would be a name on the index):
    # installing that argument, not editable, into a target directory gives the plugin's package
    target = tmp_path / "target"
    argument = shlex.split(command)[3]
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(target), argument], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (target / "genbench_demo" / "model.py").is_file()
    eps = (next(target.glob("genbench_demo-*.dist-info")) / "entry_points.txt").read_text()
    assert "[genbench]" in eps and "demo = genbench_demo" in eps
    elsewhere = CliRunner().invoke(cli, ["new-plugin", "other", "--dir", str(tmp_path / "sub dir")])
    assert f"pip install -e '{tmp_path / 'sub dir' / 'genbench-other'}[test]'" in elsewhere.output
