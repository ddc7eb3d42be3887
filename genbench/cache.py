"""The model cache: trained weights and validated ONNX graphs, reused by later runs.

An entry is keyed by everything that decides what training produces: the model, its plugin's version
and source code, the task's training data, the profile, steps, seed, device, torch threads and the
versions of torch, onnx and genbench. Each entry is a directory::

    <cache>/models/<key>/manifest.json   the key's fields, the train summary, the bundle's specs,
                                         and the sha256 and size of every file below
    <cache>/models/<key>/weights.pt      GenerativeModel.state_dict(), read with torch.load(weights_only=True)
    <cache>/models/<key>/bundle/...      the exported graphs, exactly as validated

Entries are written to a temporary directory and renamed into place, so a reader sees a whole entry
or none. Nothing in an entry is trusted: a manifest that does not match its shipped JSON Schema
(``genbench.cache-manifest/1``) or names another key, a file whose hash or size differs from the manifest,
weights that ``weights_only`` refuses, a restore that raises, hangs or kills its process, or a restored
model that no longer matches its graphs (the harness re-validates every restored bundle) each discard
the entry, and the model is trained again. ``cache list`` and ``cache clear`` list such an entry as
unreadable, with the reason, and go on.
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

from contextlib import contextmanager
from typing import Iterator

from .errors import GenbenchError, one_line
from .schemas import register, validate
from .types import OnnxBundle

FORMAT = 1
CACHE_ENV = "GENBENCH_CACHE_DIR"
MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "genbench.cache-manifest/1"
MAX_MANIFEST_BYTES = 16 * 2**20
WEIGHTS = "weights.pt"
BUNDLE = "bundle"
#: ``<entry>/.restoring-<pid>`` exists while process ``pid`` restores the entry (see ModelCache.restoring)
RESTORING = ".restoring-"

register(MANIFEST_SCHEMA, "cache-manifest-1.schema.json")


class CacheCorrupt(Exception):
    """An entry that must not be used; the message says what was wrong with it."""


class CacheUnsafe(CacheCorrupt):
    """An entry, or a folder above it, that another user owns or that others may write: it is ignored (never
    read, never removed: it may be another user's), as ssh ignores a key file others could have written."""


#: owners whose files a cache may hold: this user and root (as ssh allows)
def _trusted_owners() -> set[int]:
    return {os.getuid(), 0} if hasattr(os, "getuid") else set()


def _owner_name(uid: int) -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def unsafe_reason(path: Path, *, owners: set[int] | None = None) -> str | None:
    """Why ``path`` must not be trusted, in a few words, or None: it is a symbolic link, another user owns it,
    or its group or others may write it (``chmod go-w`` fixes that)."""
    if not hasattr(os, "getuid"):  # pragma: no cover - Windows: no POSIX owners and modes
        return None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    import stat

    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link"
    if st.st_uid not in (owners if owners is not None else _trusted_owners()):
        return f"{path} is owned by {_owner_name(st.st_uid)}, not by this user"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "its group and others" if st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IWOTH else \
            "its group" if st.st_mode & stat.S_IWGRP else "others"
        return f"{path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):o}; chmod go-w it)"
    return None


def check_safe(root: Path, *paths: Path, tree: Path | None = None) -> None:
    """:class:`CacheUnsafe` unless the cache ``root``, each of ``paths`` (folders and files below it) and, with
    ``tree``, everything inside ``tree`` is owned by this user (or root) and writable by no one else."""
    for path in (root, *paths):
        why = unsafe_reason(path)
        if why:
            raise CacheUnsafe(why)
    if tree is not None and tree.is_dir() and not tree.is_symlink():
        for folder, dirs, files in os.walk(tree):
            for name in (*dirs, *files):
                why = unsafe_reason(Path(folder) / name)
                if why:
                    raise CacheUnsafe(why)


def make_private(path: Path) -> None:
    """Take group and other write permission off ``path`` and, if a folder, everything in it (what genbench
    writes into a cache must pass :func:`check_safe`, whatever the umask)."""
    paths = [path]
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            paths += [Path(folder) / name for name in (*dirs, *files)]
    for p in paths:
        make_private_one(p)


def cache_folder(path: Path) -> Path:
    """``path`` made (with its parents) for the cache; each folder genbench makes is writable by no one else."""
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    for made in missing:
        make_private_one(made)
    return path


def make_private_one(path: Path) -> None:
    import stat

    try:
        st = os.lstat(path)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o022:
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o022)
    except OSError:
        pass


def read_manifest(path: Path) -> dict[str, Any]:
    """An entry's manifest: strict JSON, size-capped and checked against its shipped schema, or
    :class:`CacheCorrupt` saying (in one line) what is wrong with it."""
    from .results import read_json

    try:
        manifest = read_json(path / MANIFEST, what="cache manifest", max_bytes=MAX_MANIFEST_BYTES)
        validate(manifest, MANIFEST_SCHEMA, MANIFEST)
    except GenbenchError as exc:
        raise CacheCorrupt(str(exc)) from None
    return manifest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        check_safe(self.root, self.models, path, tree=path)  # another user's, or one others could have written
        for marker in path.glob(RESTORING + "*"):
            pid = marker.name[len(RESTORING):]
            if not pid.isdigit() or not _alive(int(pid)):
                raise CacheCorrupt(f"a restore of this entry (by process {pid}) never finished: it hung or crashed")
        manifest = read_manifest(path)
        if manifest["key"] != key:
            raise CacheCorrupt(f"{MANIFEST} is not this entry's (its key differs)")
        files = manifest["files"]
        outside = [name for name in files if path.resolve() not in (path / name).resolve().parents]
        if outside:
            raise CacheCorrupt(f"{MANIFEST} names a file outside the entry: {outside[0]!r}")
        for name, meta in files.items():
            file = path / name
            if not file.is_file():
                raise CacheCorrupt(f"{name!r} is missing")
            if file.stat().st_size != meta["bytes"] or _sha256_file(file) != meta["sha256"]:
                raise CacheCorrupt(f"{name!r} does not match its sha256 in {MANIFEST}")
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
        return CachedModel(path, state, manifest["train"], bundle, manifest["created_at"])

    @contextmanager
    def restoring(self, key: str) -> Iterator[None]:
        """Mark entry ``key`` as being restored by this process while the block runs. If the process hangs or
        dies inside the block, the marker stays: the parent evicts the entry (:meth:`evict_restoring`), and
        so does the next :meth:`load` once the process is gone."""
        marker = self.entry_dir(key) / f"{RESTORING}{os.getpid()}"
        try:
            marker.touch(mode=0o600)  # writable by no one else, as everything in an entry must be
        except OSError:  # a read-only cache: nothing could evict the entry anyway
            marker = None
        try:
            yield
        finally:
            if marker is not None:
                marker.unlink(missing_ok=True)

    def evict_restoring(self, pid: int) -> str | None:
        """Evict the entry process ``pid`` was restoring when it hung or died; its key, or None."""
        for marker in self.models.glob(f"*/{RESTORING}{pid}") if self.models.is_dir() else ():
            key = marker.parent.name
            self.discard(key)
            return key
        return None

    # ------------------------------------------------------------------ write

    def store(self, key: str, fields: Mapping[str, Any], state: Any, bundle: OnnxBundle,
              train: Mapping[str, Any]) -> Path:
        """Write an entry atomically (a whole entry or none); an existing entry for ``key`` is kept."""
        import torch

        cache_folder(self.models)
        check_safe(self.root, self.models)  # an entry written there would be refused on read
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
            make_private(tmp)  # whatever the umask: an entry others could write would be refused on read
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
        """One dict per entry (newest first): key, model, task, profile, steps, seed, device, bytes, created_at;
        ``readable`` False (with ``problem``, one line) for an entry whose manifest is missing, corrupt or
        does not match its schema: such entries are listed, never used."""
        out = []
        for path in sorted(self.models.glob("*")) if self.models.is_dir() else ():
            if path.name.startswith(".") or not path.is_dir() or path.is_symlink():
                continue
            entry: dict[str, Any] = {"key": path.name, "bytes": _size(path), "created_at": None, "readable": True,
                                     "problem": None, "foreign": _foreign(path)}
            try:
                check_safe(self.root, self.models, path, tree=path)
                manifest = read_manifest(path)
                if manifest["key"] != path.name:
                    raise CacheCorrupt(f"{MANIFEST} names another key")
            except CacheUnsafe as exc:
                entry.update(readable=False, problem=f"refused (never used): {exc}")
                manifest = {"fields": {}}
            except CacheCorrupt as exc:
                entry.update(readable=False, problem=str(exc))
                manifest = {"fields": {}}
            fields = manifest["fields"]
            entry.update({k: fields.get(k) for k in ("model", "task", "profile", "steps", "seed", "device",
                                                      "plugin_version")}, created_at=manifest.get("created_at"))
            out.append(entry)
        return sorted(out, key=lambda e: e["created_at"] or "", reverse=True)

    def clear(self, model: str | None = None) -> tuple[int, int]:
        """Remove every entry, unreadable ones included (or only ``model``'s readable entries); returns
        (entries removed, bytes freed)."""
        removed = freed = 0
        for entry in self.entries():
            if _foreign(self.entry_dir(entry["key"])):  # another user's: not ours to remove
                continue
            if model is None or (entry["readable"] and entry["model"] == model):
                self.discard(entry["key"])
                removed, freed = removed + 1, freed + entry["bytes"]
        if model is None and self.models.is_dir():  # leftovers of interrupted writes, and whatever else is there
            for path in self.models.iterdir():
                if _foreign(path):
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        return removed, freed


def _foreign(path: Path) -> bool:
    """Whether another user (not root) owns ``path``."""
    try:
        return hasattr(os, "getuid") and os.lstat(path).st_uid not in _trusted_owners()
    except OSError:
        return False


def _size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            pass
    return total
