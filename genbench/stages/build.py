"""The build stage, the only place plugin code runs: instantiate, train, export, capture, save.

:func:`build` runs in a build process (sandboxed where bwrap can run). It returns nothing anyone scores: it
leaves files in its unit directory (the graphs, ``.genbench/`` with the captured programs and parity
outputs, ``state.pt`` and ``build.json``) and a small summary for the run's display. Everything it wrote is
untrusted, and checked by the score process that reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import GenbenchError, PluginError, TaskDeclined, one_line
from ..model import GenerativeModel, Progress
from ..registry import load_object
from ..runtime.programs import (ARTEFACTS, CAPTURE, capture, parameter_count, parity_name, program_name,
                                run_module, save_parity)
from ..runtime.validate import parity_feeds
from ..types import ModelSpec, OnnxBundle, TrainConfig, TrainSummary
from .common import STATE_FILE, out_of_memory, seed_everything, training_data, write_manifest


def instantiate(spec: ModelSpec) -> GenerativeModel:
    from ..onnx_model import OnnxFileSpec, SuppliedGraphs

    if isinstance(spec, OnnxFileSpec):
        return SuppliedGraphs(spec)
    cls = load_object(spec.cls, owner=f"model '{spec.name}'")
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        raise PluginError(f"Model '{spec.name}': {spec.cls} is not a subclass of genbench.GenerativeModel.")
    return cls()


def supplied(model: Any) -> bool:
    """Graphs a user brought as ONNX files (``genbench run --onnx``): no training, no torch module."""
    from ..onnx_model import SuppliedGraphs

    return isinstance(model, SuppliedGraphs)


def train(model: GenerativeModel, dataset: Any, config: Any, device: str, progress: Progress) -> dict:
    import torch

    seed_everything(config.seed)
    tc = TrainConfig(seed=config.seed, device=device, profile=config.profile, steps=config.steps)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.train_threads)
    from ..baselines import SplitReplayBaseline

    if type(model) is SplitReplayBaseline:  # the built-in reference that replays both splits, and no plugin
        model.held_out = dataset.test_x
    t0 = time.perf_counter()
    try:
        summary = model.train(training_data(dataset, config), tc, progress)
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - t0
    if not isinstance(summary, TrainSummary):
        raise PluginError(f"train() returned {type(summary).__name__}, expected genbench.TrainSummary.")
    for name, values in summary.loss_history.items():
        if len(values) and not np.all(np.isfinite(np.asarray(values, dtype=float))):
            raise PluginError(f"Training diverged: loss '{name}' has non-finite values.")
    variant = config.training_variant()
    recorded = {} if variant.identity else {"data": variant.describe(dataset.training_data(), config.seed)}
    return {**summary.to_dict(), "wall_seconds": wall, "threads": config.train_threads, **recorded}


def capture_modules(model: GenerativeModel, bundle: OnnxBundle, seed: int, dataset: Any,
                    device: str, programs: bool = True) -> dict[str, dict[str, Any]]:
    """For every graph: the plugin's module run on genbench's parity inputs (outputs saved) and, with
    ``programs`` (a run that times torch), captured with ``torch.export`` (saved as a program), in
    ``<bundle>/.genbench/``; per role what was made, or why not. Without ``programs`` an entry says
    ``"program": None, "skipped": True``: nothing needs it, and ``torch.export`` costs seconds per graph."""
    out_dir = Path(bundle.directory) / ARTEFACTS
    out_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, dict[str, Any]] = {}
    for graph in bundle.graphs:
        entry: dict[str, Any] = {"program": None, "parity": None, "error": None, "parameters": None}
        info[graph.role] = entry
        try:
            module = model.torch_module(graph.role)
        except Exception as exc:  # noqa: BLE001 - plugin code: the score process refuses the bundle for it
            entry["error"] = f"torch_module('{graph.role}') raised {one_line(exc)}"
            continue
        if module is None:
            entry["error"] = f"torch_module('{graph.role}') returned None"
            continue
        entry["parameters"] = parameter_count(module)
        feeds = parity_feeds(graph, seed, getattr(dataset, "train_x", None))
        try:
            outputs = run_module(module, graph, feeds, device)
        except Exception as exc:  # noqa: BLE001
            entry["error"] = f"torch_module('{graph.role}') fails on genbench's parity inputs: {one_line(exc)}"
            continue
        save_parity(out_dir / parity_name(graph.role), feeds, outputs)
        entry["parity"] = f"{ARTEFACTS}/{parity_name(graph.role)}"
        if not programs:
            entry["skipped"] = True
            continue
        small = {k: v[:3] for k, v in feeds.items()}  # an example batch of 3: a size-1 axis can be specialised away
        problem = capture(module.eval() if hasattr(module, "eval") else module, graph, small,
                          out_dir / program_name(graph.role))
        if problem is None:
            entry["program"] = f"{ARTEFACTS}/{program_name(graph.role)}"
        else:
            entry["error"] = problem
    (out_dir / CAPTURE).write_text(json.dumps(info))
    return info


def save_state(model: GenerativeModel, unit_dir: Path) -> str | None:
    """Write the model's ``state_dict()`` (for the model cache, and for a torch timing made by the plugin's own
    process); returns a warning, or None."""
    import torch

    try:
        state = model.state_dict()
    except Exception as exc:  # noqa: BLE001 - plugin code
        return f"state_dict() raised ({one_line(exc)}); the model is not cached"
    if state is None:
        return None
    tmp = unit_dir / (STATE_FILE + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, unit_dir / STATE_FILE)
    except Exception as exc:  # noqa: BLE001
        tmp.unlink(missing_ok=True)
        return f"the model's state could not be saved ({one_line(exc)}); the model is not cached"
    return None


def build(spec: ModelSpec, dataset: Any, config: Any, device: str, unit_dir: Path, progress: Progress,
          on_phase: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train and export one seed's model into ``unit_dir``; the summary (``status`` built, skipped or failed)."""
    from ..features.reference import plugin_code_runs_here

    plugin_code_runs_here()  # plugin code runs in this process from here on: it stores no reference
    t0 = time.perf_counter()
    unit_dir.mkdir(parents=True, exist_ok=True)
    phase, mark = "load", time.perf_counter()
    phase_seconds: dict[str, float] = {}
    warnings: list[str] = []

    def enter(name: str) -> None:
        nonlocal phase, mark
        now = time.perf_counter()
        phase_seconds[phase] = phase_seconds.get(phase, 0.0) + now - mark
        phase, mark = name, now
        if on_phase is not None:
            on_phase(name)

    trained = None
    try:
        model = instantiate(spec)
        enter("train")
        trained = None if supplied(model) else train(model, dataset, config, device, progress)
        enter("export")
        bundle = model.export_onnx(unit_dir / "bundle")
        if not isinstance(bundle, OnnxBundle):
            raise PluginError(f"export_onnx returned {type(bundle).__name__}, expected genbench.OnnxBundle.")
        root = (unit_dir / "bundle").resolve()
        if Path(bundle.directory).resolve() != root:
            raise PluginError(f"export_onnx returned a bundle in {bundle.directory}, not in the directory it was "
                              "given; write the graphs there.")
        enter("capture")
        captured = {} if supplied(model) else capture_modules(model, bundle, config.seed, dataset, device,
                                                                    programs=bool(config.timing))
        state_problem = None if supplied(model) else save_state(model, unit_dir)
        enter("done")
        write_manifest(unit_dir, bundle, train=trained, capture=captured, warnings=warnings,
                       state=STATE_FILE if (unit_dir / STATE_FILE).is_file() else None, state_problem=state_problem)
    except BaseException as exc:  # noqa: BLE001 - untrusted plugin code; the run must go on
        if isinstance(exc, KeyboardInterrupt):
            raise
        failed_in = phase
        enter("done")
        if isinstance(exc, TaskDeclined):
            return {"status": "skipped", "reason": (str(exc).strip().splitlines() or [""])[0],
                    "seconds": time.perf_counter() - t0, "phase_seconds": phase_seconds}
        (unit_dir / "error.txt").write_text("".join(traceback.format_exception(exc)))
        message = str(exc).strip().splitlines()[0] if isinstance(exc, GenbenchError) and str(exc).strip() \
            else one_line(exc)
        if config.max_memory and out_of_memory(exc):
            message += f" (over the job's memory limit: --max-memory {config.max_memory:g} GiB)"
        return {"status": "failed", "error": {"phase": failed_in, "type": type(exc).__name__, "message": message},
                "train": trained, "seconds": time.perf_counter() - t0, "phase_seconds": phase_seconds,
                "warnings": warnings}
    from ..perf import peak_rss_mb

    return {"status": "built", "seconds": time.perf_counter() - t0, "phase_seconds": phase_seconds,
            "peak_rss_mb": peak_rss_mb()}  # this build process's: the score process's is another


def clear_unit(unit_dir: Path) -> None:
    if unit_dir.exists():
        shutil.rmtree(unit_dir)
    unit_dir.mkdir(parents=True)
