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


@pytest.mark.parametrize("family, model", [("gan", "demo-gan"), ("vae", "demo-vae"), ("ar", "demo-ar")])
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
