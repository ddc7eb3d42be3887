"""``genbench run --onnx FILE... --task T``: the graphs a user brought, as one job of an ordinary run.

The graphs are a model source (:mod:`genbench.onnx_model`) beside the plugins; this command turns them into
a spec and runs it through the public orchestration API (:func:`genbench.runner.run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .errors import ConfigError
from .onnx_model import PLUGIN, OnnxFileSpec, parse_meta, read_metadata, supplied_model


def run_onnx(models: Sequence[str] = (), *, onnx: Sequence[str | Path], roles: Sequence[str] = (),
             meta: Mapping[str, str] | Iterable[str] | None = None, name: str | None = None, **run_kwargs: Any):
    """``genbench run --onnx FILE... --task T``: the graphs as one job of a run (with the task's baselines
    beside it), through :func:`genbench.runner.run`; takes its other arguments. Returns the RunResult."""
    from .config import RunConfig
    from .harness import load_task_state
    from .plugins import make_plugin_manager
    from .runner import run

    if models or run_kwargs.get("all"):
        raise ConfigError("--onnx benchmarks the graph itself: name no model and leave out --all.")
    if run_kwargs.get("resume") is not None:
        raise ConfigError("--resume takes no --onnx: an --onnx run is run again from its graph.")
    tasks = list(run_kwargs.pop("tasks", ()) or ())
    if len(tasks) != 1:
        raise ConfigError("--onnx needs exactly one --task: the task the graph was trained for.")
    flags = parse_meta(meta) if meta is not None and not isinstance(meta, Mapping) else dict(meta or {})
    host = run_kwargs.pop("host", None) or make_plugin_manager()
    task = host.registry.dataset(tasks[0])
    config = RunConfig(data_dir=run_kwargs.get("data_dir"), text_file=run_kwargs.get("text_file"))
    dataset = load_task_state(task, config).dataset
    spec = supplied_model(onnx, dataset, task.kind, roles, flags, name)
    if spec.name in host.registry.models:
        raise ConfigError(f"The name '{spec.name}' is a registered model's; pick another with --name.")
    host.registry.models.add(spec, PLUGIN, f"sha256:{spec.sha256[0][:12]}")
    run_kwargs["cache"] = False  # nothing is trained; graphs are read from the files every time
    record = {**(run_kwargs.pop("record", None) or {}), "onnx": onnx_record(onnx, spec, flags, name)}
    return run([spec.name], tasks=tasks, host=host, record=record, **run_kwargs)


def onnx_record(files: Sequence[str | Path], spec: OnnxFileSpec, meta: Mapping[str, str],
                name: str | None) -> dict[str, Any]:
    """run.json's ``config.onnx``: each graph file as given, its sha256, role and the ``genbench.*`` metadata it
    holds; the ``--meta`` flags; the ``--name``. With the graphs' files, what reproduces the run."""
    graphs = [{"file": str(f), "sha256": digest, "role": graph.role, "metadata": read_metadata(f)}
              for f, digest, graph in zip(files, spec.sha256, spec.graphs)]
    return {"graphs": graphs, "meta": dict(meta), "name": name}


def onnx_arguments(files: Sequence[str | Path], roles: Sequence[str], meta: Iterable[str], name: str | None) -> list[str]:
    """The ``--onnx``/``--role``/``--meta``/``--name`` part of the command that reproduces a run."""
    parts: list[str] = []
    for i, f in enumerate(files):
        parts += ["--onnx", str(f)] + (["--role", roles[i]] if i < len(roles) else [])
    for m in meta:
        parts += ["--meta", str(m)]
    return parts + (["--name", name] if name else [])



__all__ = ["onnx_arguments", "onnx_record", "run_onnx"]
