"""``genbench new-plugin NAME``: a ready plugin package (pyproject with the entry point, the hook, a model
that trains and exports, and its conformance test)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from string import Template

from .errors import ConfigError

FAMILIES = {"gan": "image", "vae": "image", "ar": "text", "diffusion": "image", "flow": "image"}
TEMPLATES = Path(__file__).with_name("templates")


def new_plugin(name: str, family: str = "gan", directory: str | Path = ".") -> Path:
    """Write ``<directory>/genbench-<name>/`` and return its path; refuses to overwrite."""
    if not re.fullmatch(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*", name or ""):
        raise ConfigError(f"Invalid plugin name {name!r}: use lower-case letters, digits and single dashes, starting "
                          "with a letter (for example 'mygan').")
    if family not in FAMILIES:
        raise ConfigError(f"Invalid family {family!r}: use one of {', '.join(FAMILIES)}.")
    root = Path(directory) / f"genbench-{name}"
    if root.exists():
        raise ConfigError(f"{root} already exists; choose another name or directory.")
    module = "genbench_" + name.replace("-", "_")
    values = {"name": name, "module": module, "family": family, "task_kind": FAMILIES[family],
              "model": f"{name}-{family}" if not name.endswith(family) else f"{name}-small",
              "class_name": "".join(p.capitalize() for p in name.split("-")) + family.upper()}
    files = {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        f"{module}/__init__.py": "init.py.tmpl",
        f"{module}/model.py": f"model_{family}.py.tmpl",
        "tests/test_conformance.py": "test_conformance.py.tmpl",
    }
    for target, template in files.items():
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template((TEMPLATES / template).read_text()).substitute(values))
    return root


def install_command(root: Path, name: str) -> str:
    """The shell command that installs the package at ``root`` (editable, with its test extra) and checks it.

    A bare relative name would make pip look the name up on the package index (``pip install genbench-x``
    installs someone else's ``genbench-x``); ``./genbench-x`` is the folder."""
    where = str(root)
    if not root.is_absolute() and not where.startswith(("./", "../")):
        where = f"./{where}"
    return f"pip install -e {shlex.quote(where + '[test]')} && genbench check-plugin {shlex.quote(name)}"
