"""The model cache as a unit uses it, by genbench alone: a sound entry's files are copied into the unit
directory before any build process would start (a cache hit runs no plugin code at all), and a bundle is
stored only by the score process, after it validated it.

``info`` becomes the seed result's ``cache`` field. ``info["status"]``: ``hit`` (restored, not trained),
``stored`` (trained, then cached), ``rebuilt`` (an entry was found but refused, with ``reason``; trained
again and stored), ``unsupported`` (the model's ``state_dict`` returns ``None``), or ``not-stored`` (with
``reason``: the cache could not be written). An entry another user owns, or that others may write (or under
such a folder), is refused with ``status`` ``rebuilt``, ``ignored`` true and the ``reason``: the model is
trained again, and the entry is neither removed nor replaced.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import one_line
from ..types import ModelSpec
from .common import STATE_FILE, training_data, write_manifest


@dataclass
class CacheUse:
    """One unit's view of the model cache: its key and fields (computed by genbench from the spec, the
    training data and the versions), and what happened (``info``)."""

    root: Path
    key: str
    fields: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"root": str(self.root), "key": self.key, "fields": self.fields, "info": self.info}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CacheUse":
        return cls(Path(d["root"]), d["key"], dict(d["fields"]), dict(d["info"]))


def cache_use(spec: ModelSpec, dataset: Any, config: Any, device: str) -> CacheUse | None:
    from ..cache import cache_key, default_cache_dir
    from ..onnx_model import OnnxFileSpec

    if not config.cache or isinstance(spec, OnnxFileSpec):
        return None
    key, fields = cache_key(spec, training_data(dataset, config), config, device)
    return CacheUse(Path(config.cache_dir or default_cache_dir()).expanduser(), key, fields, {"key": key[:16]})


def restore(use: CacheUse | None, unit_dir: Path, config: Any = None) -> dict[str, Any] | None:
    """Copy a sound entry's bundle, programs, parity outputs and weights into ``unit_dir`` and write its build
    manifest; the build summary of the hit, or None (no entry, or one that was refused and discarded: an entry
    stored by a run without timing holds no torch programs, and a run that times torch builds afresh)."""
    if use is None:
        return None
    from ..cache import CacheCorrupt, CacheUnsafe, ModelCache

    cache = ModelCache(use.root)
    try:
        entry = cache.load(use.key)
    except CacheUnsafe as exc:  # perhaps another user's: ignored, never removed
        use.info.update(status="rebuilt", reason=f"cache entry {use.key[:16]} refused and ignored: {exc}", ignored=True)
        return None
    except CacheCorrupt as exc:
        return _refuse(use, cache, str(exc))
    except OSError as exc:  # an unreadable cache is a miss, not a failed job
        use.info.update(status="unreadable", reason=one_line(exc))
        return None
    except Exception as exc:  # noqa: BLE001 - a malformed entry, in a way load() did not foresee
        return _refuse(use, cache, one_line(exc))
    if entry is None:
        return None
    import time

    t0 = time.perf_counter()
    try:
        directory = unit_dir / "bundle"
        if directory.exists():
            shutil.rmtree(directory)
        shutil.copytree(entry.bundle.directory, directory)
        shutil.copyfile(entry.path / "weights.pt", unit_dir / STATE_FILE)
        from ..types import OnnxBundle

        bundle = OnnxBundle(directory, entry.bundle.graphs)
        capture = _read_capture(directory)
        if getattr(config, "timing", False) and any((c or {}).get("skipped") for c in capture.values()):
            shutil.rmtree(directory, ignore_errors=True)
            return _refuse(use, cache, "it was stored by a run that did not time torch, and holds no torch programs")
        write_manifest(unit_dir, bundle, train={**entry.train, "cached": True}, capture=capture, warnings=[],
                       state=STATE_FILE)
    except Exception as exc:  # noqa: BLE001 - cached files: a failure means retrain
        shutil.rmtree(unit_dir / "bundle", ignore_errors=True)
        return _refuse(use, cache, f"restoring it failed: {one_line(exc)}")
    use.info.update(status="hit", created_at=entry.created_at)
    seconds = time.perf_counter() - t0
    return {"status": "built", "seconds": seconds, "phase_seconds": {"restore": seconds}}


def _read_capture(directory: Path) -> dict[str, Any]:
    import json

    from ..runtime.programs import ARTEFACTS, CAPTURE

    path = directory / ARTEFACTS / CAPTURE
    return json.loads(path.read_text()) if path.is_file() else {}


def _refuse(use: CacheUse, cache: Any, reason: str) -> None:
    cache.discard(use.key)
    use.info.update(status="rebuilt", reason=f"cache entry {use.key[:16]} refused: {reason}")
    return None


def store(use: CacheUse | None, unit_dir: Path, bundle: Any, train: Mapping[str, Any] | None,
          state_problem: str | None = None) -> None:
    """After validation, in the score process: the validated bundle (with its programs and parity outputs)
    and the weights the build process saved (read with ``weights_only=True``) become an entry.
    ``state_problem``: why the build process could not save the weights (the entry is then ``not-stored``)."""
    if use is None or use.info.get("status") == "hit" or use.info.get("ignored"):
        return  # a hit is stored already; an ignored entry is left as it is (it may be another user's)
    state_file = unit_dir / STATE_FILE
    if not state_file.is_file():
        if state_problem:
            use.info.update(status="not-stored", reason=str(state_problem)[:300])
        else:
            use.info.setdefault("status", "unsupported")
        return
    from ..cache import ModelCache

    try:
        import torch

        try:
            state = torch.load(state_file, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - torch's message is pages long; say what to do instead
            raise ValueError("state_dict() holds objects that torch.load(weights_only=True) refuses; return only "
                             "tensors, numbers, strings and dicts, lists or tuples of them") from None
        ModelCache(use.root).store(use.key, use.fields, state, bundle, dict(train or {}))
    except Exception as exc:  # noqa: BLE001 - a cache that cannot be written never fails the job
        use.info.update(status="not-stored", reason=one_line(exc))
        return
    use.info.setdefault("status", "stored")


def refused_after_validation(use: CacheUse | None, result: Any) -> bool:
    """A restored entry whose bundle the score process refused (a graph swapped for another, programs that no
    longer match): discard it and say so; True when the unit should be built afresh."""
    if use is None or use.info.get("status") != "hit" or getattr(result, "status", None) != "failed":
        return False
    error = getattr(result, "error", None)
    if error is None or error.phase not in ("validate", "restore"):
        return False
    from ..cache import ModelCache

    ModelCache(use.root).discard(use.key)
    use.info.clear()
    use.info.update(key=use.key[:16], status="rebuilt",
                    reason=f"cache entry {use.key[:16]} refused: its bundle failed validation ({error.message[:200]})")
    return True
