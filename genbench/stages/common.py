"""What the build and score stages share: seeding, the training data a plugin sees, the build manifest."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import BundleError, PluginError
from ..types import OnnxBundle

#: what a build process leaves in its unit directory for the score process: the bundle's specs (as the plugin
#: declared them), what genbench captured from its torch modules, and the training summary
BUILD_MANIFEST = "build.json"
MAX_MANIFEST_BYTES = 8 * 2**20
#: the plugin's ``state_dict()``, for the model cache and for torch timing of a module torch.export could not capture
STATE_FILE = "state.pt"


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_data(dataset: Any, config: Any) -> Any:
    """What the plugin trains on: the training split, or the variant ``genbench limits`` asked for
    (a subset or corrupted examples, drawn from the training seed); the scored data never changes."""
    return config.training_variant().apply(dataset.training_data(), config.seed)


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed (a MemoryError, or a native library's words for it)."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or any(s in text for s in ("can't allocate memory", "cannot allocate memory",
                                                                     "bad_alloc", "bad allocation", "out of memory",
                                                                     "failed to map segment"))


def write_manifest(unit_dir: Path, bundle: OnnxBundle, **fields: Any) -> Path:
    d = bundle.to_dict()
    d["directory"] = os.path.relpath(Path(bundle.directory).resolve(), unit_dir.resolve())
    path = unit_dir / BUILD_MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"format": 1, "bundle": d, **fields}, allow_nan=False))
    tmp.replace(path)
    return path


def read_manifest(unit_dir: Path) -> tuple[OnnxBundle, dict[str, Any]]:
    """The build manifest a build process wrote (untrusted: strict JSON, size-capped, every path inside the
    unit directory): the bundle, and the other fields."""
    from ..results import read_json
    from ..runtime.validate import graph_path

    manifest = read_json(unit_dir / BUILD_MANIFEST, what="build manifest", max_bytes=MAX_MANIFEST_BYTES)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("bundle"), dict):
        raise PluginError(f"{unit_dir / BUILD_MANIFEST} is not a build manifest")
    d = manifest["bundle"]
    try:
        bundle = OnnxBundle.from_dict({**d, "directory": unit_dir / str(d.get("directory", "bundle"))})
    except Exception as exc:  # noqa: BLE001
        raise BundleError(f"the bundle export_onnx returned is malformed: {exc}") from None
    root = unit_dir.resolve()
    if root != bundle.directory.resolve() and root not in bundle.directory.resolve().parents:
        raise PluginError(f"{unit_dir / BUILD_MANIFEST} names a bundle outside its job directory.")
    for graph in bundle.graphs:
        graph_path(bundle, graph)  # inside the bundle directory, and there
    return bundle, manifest


def contained(unit_dir: Path, relative: Any) -> Path | None:
    """``unit_dir / relative`` if it is a file inside ``unit_dir`` (a path a build process named), else None."""
    if not isinstance(relative, str) or not relative:
        return None
    path = (unit_dir / relative).resolve()
    root = unit_dir.resolve()
    return path if root in path.parents and path.is_file() else None


def plain(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, dict) else None
