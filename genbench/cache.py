"""The model cache: trained weights and validated ONNX graphs, reused by later runs.

An entry is keyed by everything that decides what training produces: the model, its plugin's version
and source code, the task's training data, the profile, steps, seed, device, torch threads and the
versions of torch, onnx and genbench. Each entry is a directory::

    <cache>/models/<key>/manifest.json   the key's fields, the train summary, the bundle's specs,
                                         and the sha256 and size of every file below
    <cache>/models/<key>/weights.pt      GenerativeModel.state_dict(), read with torch.load(weights_only=True)
    <cache>/models/<key>/bundle/...      the exported graphs, exactly as validated

Entries are written to a temporary directory and renamed into place, so a reader sees a whole entry
or none. Nothing in an entry is trusted: a file whose hash or size differs from the manifest, a
manifest for another key, weights that ``weights_only`` refuses, a restore that raises, or a restored
model that no longer matches its graphs (the harness re-validates every restored bundle) each discard
the entry, and the model is trained again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import one_line
from .types import OnnxBundle

FORMAT = 1
CACHE_ENV = "GENBENCH_CACHE_DIR"
MANIFEST = "manifest.json"
WEIGHTS = "weights.pt"
BUNDLE = "bundle"


class CacheCorrupt(Exception):
    """An entry that must not be used; the message says what was wrong with it."""


def default_cache_dir() -> Path:
    """``$GENBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/genbench``, else ``~/.cache/genbench``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "genbench"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_fingerprint(class_path: str) -> str:
    """sha256 over the ``.py`` files of the package that defines ``class_path`` ("pkg.mod:Class").

    A plugin edited in place (an editable install) keeps its version number; its code hash changes.
    """
    top = class_path.split(":", 1)[0].split(".", 1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "unknown"
    if spec.submodule_search_locations:
        files = sorted(p for loc in spec.submodule_search_locations for p in Path(loc).rglob("*.py")
                       if "__pycache__" not in p.parts)
        root = Path(next(iter(spec.submodule_search_locations)))
    elif spec.origin and os.path.isfile(spec.origin):
        files, root = [Path(spec.origin)], Path(spec.origin).parent
    else:
        return "unknown"
    h = hashlib.sha256()
    for path in files:
        h.update(os.path.relpath(path, root).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def data_fingerprint(data: Any) -> str:
    """sha256 of what a plugin's ``train`` sees: the training array and its description."""
    import numpy as np

    x = np.ascontiguousarray(data.x)
    h = hashlib.sha256()
    h.update(json.dumps([data.task, data.kind, list(data.shape), list(x.shape), str(x.dtype),
                         list(data.value_range), data.levels, data.vocab]).encode())
    h.update(memoryview(x).cast("B"))
    if data.labels is not None:
        h.update(memoryview(np.ascontiguousarray(data.labels)).cast("B"))
    return h.hexdigest()


def cache_key(spec: Any, data: Any, config: Any, device: str) -> tuple[str, dict[str, Any]]:
    """The entry's key (hex digest) and the fields it hashes, which the manifest keeps for people."""
    import onnx
    import torch

    from . import __version__
    from .export import EXPORTER_ENV

    fields = {
        "format": FORMAT, "model": spec.name, "class": spec.cls, "plugin": spec.plugin,
        "plugin_version": spec.plugin_version, "code": source_fingerprint(spec.cls),
        "task": data.task, "data": data_fingerprint(data),
        "profile": config.profile, "steps": config.steps, "seed": config.seed, "device": device,
        "train_threads": config.train_threads, "torch": torch.__version__, "onnx": onnx.__version__,
        "genbench": __version__, "exporter": os.environ.get(EXPORTER_ENV, "torchscript"),
        "python": "%d.%d" % sys.version_info[:2],
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest(), fields


@dataclass(frozen=True)
class CachedModel:
    """An entry whose files matched its manifest: the weights (loaded safely) and where the graphs are."""

    path: Path
    state: Any
    train: Mapping[str, Any]
    bundle: OnnxBundle  # graphs inside the entry; copy them before use
    created_at: str


class ModelCache:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()
        self.models = self.root / "models"

    def entry_dir(self, key: str) -> Path:
        return self.models / key

    # ------------------------------------------------------------------ read

    def load(self, key: str) -> CachedModel | None:
        """The entry for ``key``, ``None`` if there is none; :class:`CacheCorrupt` if it must not be used."""
        path = self.entry_dir(key)
        if not path.is_dir():
            return None
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise CacheCorrupt(f"unreadable {MANIFEST} ({type(exc).__name__})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("key") != key:
            raise CacheCorrupt(f"{MANIFEST} is not this entry's (format or key differs)")
        files = manifest.get("files")
        if not isinstance(files, dict) or WEIGHTS not in files:
            raise CacheCorrupt(f"{MANIFEST} lists no {WEIGHTS}")
        outside = [name for name in files if path.resolve() not in (path / name).resolve().parents]
        if outside:
            raise CacheCorrupt(f"{MANIFEST} names a file outside the entry: {outside[0]!r}")
        for name, meta in files.items():
            file = path / name
            if not file.is_file():
                raise CacheCorrupt(f"{name} is missing")
            if not isinstance(meta, dict) or file.stat().st_size != meta.get("bytes") or _sha256_file(file) != meta.get("sha256"):
                raise CacheCorrupt(f"{name} does not match its sha256 in {MANIFEST}")
        import torch

        try:  # weights_only: tensors and plain containers; a pickled object is refused, never run
            state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any refusal means: do not trust this entry
            raise CacheCorrupt(f"{WEIGHTS} was refused by torch.load(weights_only=True): {one_line(exc)}") from None
        try:
            bundle = OnnxBundle.from_dict({**manifest["bundle"], "directory": str(path / BUNDLE)})
            for graph in bundle.graphs:
                if f"{BUNDLE}/{Path(graph.path).as_posix()}" not in files:
                    raise CacheCorrupt(f"graph {graph.path!r} is not among the entry's files")
        except CacheCorrupt:
            raise
        except Exception as exc:  # noqa: BLE001
            raise CacheCorrupt(f"the bundle in {MANIFEST} is malformed ({exc})") from None
        return CachedModel(path, state, manifest.get("train") or {}, bundle, str(manifest.get("created_at")))

    # ------------------------------------------------------------------ write

    def store(self, key: str, fields: Mapping[str, Any], state: Any, bundle: OnnxBundle,
              train: Mapping[str, Any]) -> Path:
        """Write an entry atomically (a whole entry or none); an existing entry for ``key`` is kept."""
        import torch

        self.models.mkdir(parents=True, exist_ok=True)
        tmp = self.models / f".tmp-{key[:16]}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            torch.save(state, tmp / WEIGHTS)
            try:  # what cannot be read back safely is not kept
                torch.load(tmp / WEIGHTS, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - torch's message is pages long; say what to do instead
                raise ValueError("state_dict() holds objects that torch.load(weights_only=True) refuses; return only "
                                 "tensors, numbers, strings and dicts, lists or tuples of them") from None
            shutil.copytree(bundle.directory, tmp / BUNDLE)
            files = {p.relative_to(tmp).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256_file(p)}
                     for p in sorted(tmp.rglob("*")) if p.is_file()}
            relative = {**bundle.to_dict(), "directory": "."}
            manifest = {"format": FORMAT, "key": key, "fields": dict(fields), "train": dict(train),
                        "bundle": relative, "files": files,
                        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, allow_nan=False))
            target = self.entry_dir(key)
            try:
                os.rename(tmp, target)  # atomic; fails if another process stored the same key first
            except OSError:
                if not target.is_dir():
                    raise
            return target
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def discard(self, key: str) -> None:
        """Remove an entry (moved aside first, so a half-removed entry is never read)."""
        path = self.entry_dir(key)
        if not path.exists():
            return
        trash = self.models / f".trash-{key[:16]}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(path, trash)
        except OSError:
            trash = path
        shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------------ manage

    def entries(self) -> list[dict[str, Any]]:
        """One dict per entry (newest first): key, model, task, profile, steps, seed, device, bytes, created_at."""
        out = []
        for path in sorted(self.models.glob("*")) if self.models.is_dir() else ():
            if path.name.startswith(".") or not path.is_dir():
                continue
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            try:
                manifest = json.loads((path / MANIFEST).read_text())
                fields = manifest.get("fields", {})
            except (OSError, ValueError, AttributeError):
                manifest, fields = {}, {}
            out.append({"key": path.name, **{k: fields.get(k) for k in ("model", "task", "profile", "steps", "seed",
                                                                          "device", "plugin_version")},
                        "bytes": size, "created_at": manifest.get("created_at"),
                        "readable": bool(manifest)})
        return sorted(out, key=lambda e: e["created_at"] or "", reverse=True)

    def clear(self, model: str | None = None) -> tuple[int, int]:
        """Remove every entry (or ``model``'s); returns (entries removed, bytes freed)."""
        removed = freed = 0
        for entry in self.entries():
            if model is None or entry["model"] == model:
                self.discard(entry["key"])
                removed, freed = removed + 1, freed + entry["bytes"]
        if model is None and self.models.is_dir():  # leftovers of interrupted writes
            for path in self.models.glob(".*"):
                shutil.rmtree(path, ignore_errors=True)
        return removed, freed
