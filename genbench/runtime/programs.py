"""A plugin's torch module as an exported program: captured where plugin code runs, run where it never does.

The build process (plugin code) captures each ``torch_module(role)`` with :func:`torch.export.export` and
saves it as a ``.pt2`` file beside the graphs (:func:`capture`), with the module's outputs on inputs genbench
chose (the *parity* file). Score and time processes (genbench only) load the program with
:func:`load_program`, which never unpickles: an exported program is a graph of registered operators and
its tensors, and a ``.pt2`` whose archive asks for a pickle (``weights_only=False``, opaque objects) is
refused. A program that calls an operator only a plugin registers cannot load where no plugin code was
imported, and is refused too: its torch figures are then made by the plugin's own process, and say so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..errors import BundleError, one_line
from ..types import GraphSpec

#: the folder of a bundle where genbench keeps what it made from the plugin's modules (never the plugin's)
ARTEFACTS = ".genbench"
CAPTURE = "capture.json"
MAX_PROGRAM_BYTES = 1 << 30


def program_name(role: str) -> str:
    return f"{role}.pt2"


def parity_name(role: str) -> str:
    return f"parity-{role}.npz"


def _as_tuple(out: Any) -> tuple[Any, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def run_module(module: Any, graph: GraphSpec, feeds: Mapping[str, np.ndarray], device: str = "cpu") -> list[np.ndarray]:
    """``module`` on ``feeds`` (numpy, by the graph's input names), outputs as float or integer numpy arrays."""
    import torch

    where = "cuda" if device == "cuda" else "cpu"
    with torch.inference_mode():
        out = module(*[torch.from_numpy(np.ascontiguousarray(feeds[t.name])).to(where) for t in graph.inputs])
    return [o.detach().cpu().numpy() if not o.is_floating_point() else o.detach().float().cpu().numpy()
            for o in _as_tuple(out)]


def capture(module: Any, graph: GraphSpec, feeds: Mapping[str, np.ndarray], path: Path) -> str | None:
    """Export ``module`` with :func:`torch.export.export` (every symbolic axis of the graph's inputs dynamic)
    and save it at ``path``; None, or why it could not be captured (one line)."""
    import torch
    from torch.export import Dim

    args = tuple(torch.from_numpy(np.ascontiguousarray(feeds[t.name])) for t in graph.inputs)
    dynamic = tuple({axis: Dim.AUTO for axis, d in enumerate(t.shape) if isinstance(d, str)} for t in graph.inputs)
    try:
        with _quiet():
            program = torch.export.export(module, args, dynamic_shapes=dynamic, strict=False)
        tmp = path.with_name(path.stem + ".tmp.pt2")
        torch.export.save(program, tmp)
        tmp.replace(path)
    except Exception as exc:  # noqa: BLE001 - plugin code and torch's exporter: any failure is "not captured"
        path.unlink(missing_ok=True)
        return f"torch.export could not capture torch_module('{graph.role}'): {one_line(exc)[:300]}"
    return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import logging
    import warnings

    log = logging.getLogger("torch")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _refuse_pickles(path: Path) -> None:
    """A ``.pt2`` archive whose weights or constants are pickled (or opaque objects) is refused unread."""
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".json") and ("weights_config" in name or "constants_config" in name):
                    config = json.loads(archive.read(name))
                    for meta in (config.get("config") or {}).values():
                        if isinstance(meta, dict) and meta.get("use_pickle"):
                            raise BundleError(f"{path.name}: the exported program holds pickled data "
                                              f"({name}); genbench reads only plain tensors.")
                        if isinstance(meta, dict) and str(meta.get("path_name", "")).startswith("custom_obj"):
                            raise BundleError(f"{path.name}: the exported program holds an opaque object; genbench "
                                              "reads only plain tensors.")
    except zipfile.BadZipFile:
        raise BundleError(f"{path.name} is not an exported program (not a .pt2 archive)") from None


def load_program(path: Path, device: str = "cpu") -> Any:
    """The callable module of the exported program at ``path``, loaded without unpickling anything: torch's
    loader is made to read tensors with ``weights_only=True`` and to refuse pickles outright. Raises
    :class:`BundleError` (one line) for a file that cannot be loaded that way."""
    import pickle

    import torch

    if path.stat().st_size > MAX_PROGRAM_BYTES:
        raise BundleError(f"{path.name} is over {MAX_PROGRAM_BYTES >> 20} MiB")
    _refuse_pickles(path)
    real_load, real_loads, real_obj = torch.load, pickle.loads, torch._C._pickle_load_obj

    def safe_load(f: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return real_load(f, *args, **kwargs)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise BundleError(f"{path.name}: the exported program asks to unpickle an object; refused")

    torch.load, pickle.loads, torch._C._pickle_load_obj = safe_load, refuse, refuse  # type: ignore[assignment]
    try:
        with _quiet():
            program = torch.export.load(str(path))
        module = program.module()
    except BundleError:
        raise
    except Exception as exc:  # noqa: BLE001 - a file made by plugin code
        raise BundleError(f"{path.name} cannot be loaded without the plugin's code ({one_line(exc)[:200]})") from None
    finally:
        torch.load, pickle.loads, torch._C._pickle_load_obj = real_load, real_loads, real_obj  # type: ignore[assignment]
    if device == "cuda":
        module = module.to("cuda")
    return module


def parameter_count(module: Any) -> int | None:
    try:
        return int(sum(p.numel() for p in module.parameters()))
    except Exception:  # noqa: BLE001 - a module without parameters() has no count
        return None


def save_parity(path: Path, feeds: Mapping[str, np.ndarray], outputs: Sequence[np.ndarray]) -> None:
    arrays = {f"in:{k}": np.asarray(v) for k, v in feeds.items()}
    arrays.update({f"out:{i}": np.asarray(o) for i, o in enumerate(outputs)})
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_parity(path: Path, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The plugin module's saved outputs, after checking that they were made from exactly ``feeds`` (the
    inputs genbench draws for the parity check)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            for k, v in feeds.items():
                if f"in:{k}" not in names or not np.array_equal(z[f"in:{k}"], v):
                    raise BundleError(f"{path.name}: the saved torch outputs were not made from genbench's parity "
                                      f"inputs (input '{k}' differs)")
            outs = [z[f"out:{i}"] for i in range(sum(n.startswith("out:") for n in names))]
    except BundleError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise BundleError(f"{path.name} cannot be read ({one_line(exc)})") from None
    return outs


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
