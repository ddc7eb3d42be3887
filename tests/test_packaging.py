"""What a user installs: the built wheel works outside this checkout, dependencies are what genbench imports,
the license file matches the declared license, the public API has real signatures, and genbench.testing needs
pytest only inside pytest."""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import genbench

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_license_file_is_the_apache_2_0_text_the_metadata_declares():
    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_bytes()
    assert text.lstrip().startswith(b"Apache License\n                           Version 2.0, January 2004")
    # the unmodified text from apache.org (the same bytes as onnx's and ml_dtypes' LICENSE files)
    assert hashlib.md5(text).hexdigest() == "3b83ef96387f14655fc854ddc3c6bd57"


def _third_party_imports() -> set[str]:
    """Top-level modules genbench's code imports that are neither the standard library nor genbench."""
    found = set()
    for path in (ROOT / "genbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "genbench"}


def test_runtime_dependencies_are_what_genbench_imports():
    from importlib import metadata

    from packaging.requirements import Requirement

    project = _pyproject()["project"]
    declared = {Requirement(r).name.lower() for r in project["dependencies"]}
    extras = {Requirement(r).name.lower() for rs in project["optional-dependencies"].values() for r in rs}
    assert not {"pytest", "pytest-benchmark"} & declared and {"pytest", "pytest-benchmark"} <= extras
    providers = metadata.packages_distributions()
    imported = {providers[m][0].lower() for m in _third_party_imports() if m in providers}
    optional = {"ray", "pytest", "tomli"}  # imported only where the extra (or Python < 3.11) is
    # py-cpuinfo (module cpuinfo, under whichever distribution provides it here): tried for the machine identity
    # only where /proc/cpuinfo is missing, and done without where it is not installed
    optional |= {d.lower() for d in providers.get("cpuinfo", [])}
    assert imported - optional <= declared, imported - optional - declared
    # every declared dependency is imported, but onnxscript (torch.onnx's dynamo exporter imports it for genbench)
    assert declared - imported - {"tomli"} == {"onnxscript"}, declared - imported
    assert "tomli>=1.1; python_version < '3.11'" in project["dependencies"]


def test_genbench_run_is_the_real_function_with_its_signature():
    from genbench import runner

    assert genbench.run is runner.run and "run" in dir(genbench)
    params = inspect.signature(genbench.run).parameters
    assert not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params.values())
    assert {"models", "all", "tasks", "profile", "seeds", "jobs", "settings", "progress", "resume"} <= set(params)
    assert params["profile"].default is None and params["timing"].default is True
    from genbench import score, run_onnx, load_run  # noqa: F401 - the other lazily imported functions

    assert genbench.score.__module__ == "genbench.score_samples" and genbench.load_run.__module__ == "genbench.results"
    with pytest.raises(AttributeError):
        genbench.no_such_thing  # noqa: B018


def test_the_testing_kit_imports_pytest_only_for_pytest(tmp_path):
    code = "import genbench.testing, sys; assert 'pytest' not in sys.modules; print(genbench.testing.check_model)"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
    # the pytest plugin (entry point pytest11) still offers its fixture
    (tmp_path / "test_kit.py").write_text(textwrap.dedent("""
        from genbench.testing import assert_conforms

        def test_fixture(genbench_conformance):
            assert genbench_conformance is assert_conforms
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_kit.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-2000:]


#: what the new environment must not see: genbench itself (checkout or editable install), its plugins, pytest
HIDDEN = ("genbench", "__editable__", "_pytest", "pytest", "py.py", "_hypothesis_pytestplugin", "pip", "_distutils_hack",
          "distutils-precedence.pth")


def test_the_built_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    """Builds the wheel (not editable) and installs it, without its dependencies, into a new virtual environment
    that sees this interpreter's installed packages except genbench, its plugins and pytest (a directory of links
    to them). Proves: the wheel holds what genbench needs at run time (schemas, templates, the feature extractor,
    py.typed, the console script), the declared dependencies are installed and satisfied here, and `genbench
    list` runs without pytest. It does not prove that pip can fetch the dependencies from an index (offline)."""
    wheels = tmp_path / "wheels"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "-w", str(wheels), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = wheels.glob("genbench-*.whl")

    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=300)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(HIDDEN) and not entry.name.endswith(".pth"):
            (deps / entry.name).symlink_to(entry)
    (site / "deps.pth").write_text(f"{deps}\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                           "--quiet", str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]

    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    check = textwrap.dedent("""
        import importlib.util, json
        from importlib import metadata, resources
        from packaging.requirements import Requirement
        import genbench
        missing = []
        for line in metadata.requires("genbench"):
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                if metadata.version(req.name) not in req.specifier:
                    missing.append(line)
            except metadata.PackageNotFoundError:
                missing.append(line)
        package = resources.files("genbench")
        print(json.dumps({"file": genbench.__file__, "pytest": importlib.util.find_spec("pytest") is not None,
                          "missing": missing, "typed": package.joinpath("py.typed").is_file(),
                          "assets": sorted(p.name for p in package.joinpath("features", "assets").iterdir()),
                          "templates": len(list(package.joinpath("templates").iterdir())),
                          "schemas": len(list(package.joinpath("schemas").glob("*.schema.json")))}))
    """)
    proc = subprocess.run([str(python), "-c", check], cwd=tmp_path, env=environ, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    facts = json.loads(proc.stdout)
    assert facts["file"].startswith(str(site)) and not facts["pytest"] and facts["missing"] == []
    assert facts["typed"] and any(a.endswith(".onnx") for a in facts["assets"]) and facts["templates"] >= 7
    assert facts["schemas"] == len(list((ROOT / "genbench" / "schemas").glob("*.schema.json")))

    proc = subprocess.run([str(env_dir / "bin" / "genbench"), "list", "--json"], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listing = json.loads(proc.stdout)
    from genbench.schemas import validate

    validate(listing, "genbench.list/1", "genbench list --json")
    assert {m["name"] for m in listing["models"]} == {"baseline-gaussian", "baseline-train-copy", "baseline-split-replay",
                                                      "baseline-unigram", "baseline-bigram"}  # no plugin is installed there
    assert {"digits", "text", "ring8", "grid25"} <= {t["name"] for t in listing["tasks"]}


def test_the_readme_names_every_runtime_dependency():
    """README's 'genbench itself needs ...' sentence lists what pip will install: each runtime dependency."""
    import re

    from packaging.requirements import Requirement

    readme = " ".join((ROOT / "README.md").read_text().split())
    (sentence,) = re.findall(r"genbench itself needs (.*?)\)\.", readme)
    for requirement in _pyproject()["project"]["dependencies"]:
        assert Requirement(requirement).name in sentence, requirement
