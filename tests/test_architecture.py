"""The package's shape: no import cycle hides behind function-local imports, and the layers hold.

The import-linter contract (``.importlinter``) names genbench's layers, bottom to top; a module that imports
one above it (at module level or inside a function: grimp sees both) breaks the contract. And every module
imports on its own, first, in a fresh interpreter: an import cycle that function-local imports hid would
fail here the moment one of them moved to the top of its file."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules():
    for path in sorted((ROOT / "genbench").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__":
            yield ".".join(parts)


def test_the_layers_contract_is_kept():
    from importlinter.cli import lint_imports

    assert (ROOT / ".importlinter").is_file()
    assert lint_imports(config_filename=str(ROOT / ".importlinter")) == 0  # 0: every contract kept


def test_every_module_imports_first_in_a_fresh_interpreter():
    """Each module imported alone, before anything else of genbench, in a process of its own."""
    modules = list(_modules())
    assert len(modules) > 50
    script = "\n".join([
        "import importlib, subprocess, sys",
        "bad = []",
        "for m in sys.argv[1:]:",
        "    p = subprocess.run([sys.executable, '-c', f'import {m}'], capture_output=True, text=True)",
        "    if p.returncode: bad.append(m + ': ' + (p.stderr.strip().splitlines() or ['?'])[-1])",
        "print('\\n'.join(bad))",
        "sys.exit(1 if bad else 0)",
    ])
    p = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True, text=True, cwd=ROOT,
                       timeout=1800)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("pair", [("genbench.harness", "genbench.runner"), ("genbench.runner", "genbench.harness"),
                                  ("genbench.timing", "genbench.executors.local"),
                                  ("genbench.onnx_model", "genbench.score_samples")])
def test_modules_that_once_formed_a_cycle_import_in_either_order(pair):
    code = f"import {pair[0]}, {pair[1]}"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stderr


def test_a_plugin_authors_import_genbench_loads_no_runner_executor_or_report_code():
    code = ("import sys, genbench; from genbench import GenerativeModel, ModelSpec, TrainSummary, hookimpl, "
            "export_torch_module; print(sorted(m for m in sys.modules if m.startswith('genbench')))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stderr
    loaded = eval(p.stdout)  # a list of module names, printed by the line above
    assert "genbench.model" in loaded
    assert not [m for m in loaded if m.split(".")[1:2] and m.split(".")[1] in ("runner", "executors", "reports",
                                                                                "harness", "timing", "stages")]
