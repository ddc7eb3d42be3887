"""Conformance kit for plugin authors: check a model plugin against genbench's contract.

From your own tests::

    from genbench.testing import assert_conforms

    def test_my_model_conforms():
        assert_conforms("mygan-small")

or with the pytest plugin genbench installs, the ``genbench_conformance`` fixture (same function).
From the command line: ``genbench check-plugin NAME`` (a plugin's entry-point or distribution name,
or a model name).

Every problem comes with what to change. The checks: the plugin loads and implements known hooks;
each model's spec is valid and its class is a ``GenerativeModel``; it trains on a tiny budget and
returns a ``TrainSummary``; ``export_onnx`` returns an ``OnnxBundle`` whose graphs have known roles
and pass genbench's validation (checker, declared shapes and dtypes, several batch sizes, finite
outputs, parity with ``torch_module``); the graphs give as many finite samples and likelihoods as a
``smoke`` run draws from them (a graph that emits NaN for a few inputs fails here, as it would in the
run); two trainings with the same seed export the same graph outputs (determinism); and, for a model
that implements ``state_dict``, that a fresh instance restored with ``load_state_dict`` after
``torch.load(weights_only=True)`` matches the exported graphs (the cache).

A model is checked on a task of a kind it supports: ``task=`` (``--task``) naming a task of another kind
is a problem of that model, and a plugin checked with ``task=`` has its models that support the task's
kind checked.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .errors import GenbenchError, one_line

TINY_STEPS = 3
DETERMINISM_ATOL = 1e-6


@dataclass(frozen=True)
class Problem:
    model: str
    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.model}] {self.check}: {self.message}"


def _host(host: Any = None) -> Any:
    from .plugins import make_plugin_manager

    return host or make_plugin_manager()


def _task_for(spec: Any, host: Any, task: str | None) -> Any:
    from .config import RunConfig
    from .executors import JobSpec
    from .executors.worker import load_task

    reg = host.registry
    if task:
        kind = reg.dataset(task).kind
        if kind not in spec.tasks:
            fits = [d.name for d in reg.datasets if d.kind in spec.tasks]
            raise GenbenchError(f"model '{spec.name}' supports {', '.join(spec.tasks)} tasks and '{task}' is a {kind} "
                                f"task; check it on one of: {', '.join(fits) or 'none registered'}.")
    names = [task] if task else [d.name for d in reg.datasets if d.kind in spec.tasks]
    last_error = None
    for name in names:
        ds = reg.dataset(name)
        try:
            return load_task(JobSpec(spec, ds, RunConfig(device="cpu"), "cpu", Path("."), ()))
        except GenbenchError as exc:  # e.g. MNIST not on this machine: try the next task of that kind
            last_error = exc
    raise GenbenchError(f"No task to check model '{spec.name}' on ({last_error or 'none of its kinds is registered'}).")


def _draw_as_a_run_does(bundle: Any, data: Any, seed: int) -> None:
    """Draw the samples and likelihoods a ``smoke`` run draws from ``bundle``, every batch checked as the run
    checks it (shapes, finiteness, ranges): a graph that fails for a few inputs in a hundred fails here."""
    from .config import get_profile
    from .harness import BUILD_THREADS, draw_samples, sample_count
    from .runtime.likelihood import held_out_likelihood

    if data.kind != "text":
        draw_samples(bundle, "cpu", sample_count(data, get_profile("smoke")), seed, data.test_x, data)
    held_out_likelihood(bundle, data, "cpu", seed, BUILD_THREADS)


def check_model(name: str, *, host: Any = None, task: str | None = None, steps: int = TINY_STEPS,
                seed: int = 0) -> list[Problem]:
    """Every contract problem of model ``name`` (an empty list when it conforms)."""
    import numpy as np

    from .harness import draw_inputs, seed_everything
    from .model import GenerativeModel
    from .registry import load_object
    from .runtime import make_session, prepare_data
    from .runtime.validate import validate_bundle
    from .types import OnnxBundle, TrainConfig, TrainSummary

    host = _host(host)
    problems: list[Problem] = []

    def problem(check: str, message: str) -> list[Problem]:
        problems.append(Problem(name, check, message))
        return problems

    try:
        spec = host.registry.model(name)
    except GenbenchError as exc:
        return problem("registration", f"{exc} Register it with register(ModelSpec(...)) in a "
                                       "genbench_register_models hook.")
    try:
        cls = load_object(spec.cls, owner=f"model '{name}'")
    except GenbenchError as exc:
        return problem("class", f"{exc}. Make ModelSpec.cls a 'package.module:Class' path that imports.")
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        return problem("class", f"{spec.cls} is not a subclass of genbench.GenerativeModel; subclass it.")
    try:
        state = _task_for(spec, host, task)
    except GenbenchError as exc:
        return problem("task", str(exc))
    data = state.dataset

    def train_and_export(directory: Path) -> tuple[Any, Any]:
        seed_everything(seed)
        model = cls()
        summary = model.train(data.training_data(), TrainConfig(seed=seed, device="cpu", profile="smoke", steps=steps),
                              lambda *a: None)
        if not isinstance(summary, TrainSummary):
            raise TypeError(f"train() returned {type(summary).__name__}; return genbench.TrainSummary(steps, seconds, "
                            "loss_history)")
        bundle = model.export_onnx(directory)
        if not isinstance(bundle, OnnxBundle):
            raise TypeError(f"export_onnx() returned {type(bundle).__name__}; return genbench.OnnxBundle(directory, "
                            "graphs)")
        return model, bundle

    with tempfile.TemporaryDirectory() as tmp:
        try:
            model, bundle = train_and_export(Path(tmp) / "a")
        except Exception as exc:  # noqa: BLE001
            return problem("train/export", f"{type(exc).__name__}: {exc}")
        try:
            validate_bundle(bundle, model.torch_module, data=data.test_x, seed=seed, dataset=data)
        except GenbenchError as exc:
            return problem("onnx", f"{exc}")
        except Exception as exc:  # noqa: BLE001
            return problem("onnx", f"{type(exc).__name__}: {exc}")
        try:
            _draw_as_a_run_does(bundle, data, seed)
        except GenbenchError as exc:
            return problem("samples", f"{exc} (drawn as a smoke run draws them; the run would fail the job)")
        except Exception as exc:  # noqa: BLE001
            return problem("samples", f"{type(exc).__name__}: {exc}")
        try:
            _, again = train_and_export(Path(tmp) / "b")
        except Exception as exc:  # noqa: BLE001
            return problem("determinism", f"a second training raised {type(exc).__name__}: {exc}")
        for graph in bundle.graphs:
            feeds = draw_inputs(graph, 4, np.random.default_rng(seed), prepare_data(graph, data.test_x),
                                {graph.inputs[0].shape[1]: 8} if graph.role == "logits" else None)
            outs = [make_session(b.directory / b.graph(graph.role).path).run(None, feeds) for b in (bundle, again)]
            diff = max(float(np.max(np.abs(x - y), initial=0.0)) for x, y in zip(*outs))
            if not diff <= DETERMINISM_ATOL:
                problem("determinism", f"two trainings with seed {seed} give graph '{graph.role}' outputs that differ "
                                       f"by {diff:.3g}; seed torch, numpy and any other random source from "
                                       "config.seed in train().")
        message = _cache_problem(cls, model, bundle, data, TrainConfig(seed=seed, device="cpu", profile="smoke",
                                                                        steps=steps), seed)
        if message:
            problem("cache", message)
    return problems


def _cache_problem(cls: Any, model: Any, bundle: Any, data: Any, config: Any, seed: int) -> str | None:
    """For a model that opts into the cache: its state survives torch.save / torch.load(weights_only=True),
    and a fresh instance restored from it matches the graphs exported after training."""
    import io

    import torch

    from .runtime.validate import validate_bundle

    try:
        state = model.state_dict()
    except Exception as exc:  # noqa: BLE001
        return f"state_dict() raised {type(exc).__name__}: {exc}"
    if state is None:
        return None  # not cached: trained every run
    buffer = io.BytesIO()
    try:
        torch.save(state, buffer)
        buffer.seek(0)
        state = torch.load(buffer, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001
        return ("state_dict() holds objects that torch.load(weights_only=True) refuses; return only tensors, numbers, "
                "strings and dicts, lists or tuples of them")
    try:
        restored = cls()
        restored.load_state_dict(state, data.training_data(), config)
        validate_bundle(bundle, restored.torch_module, data=data.test_x, seed=seed, dataset=data)
    except Exception as exc:  # noqa: BLE001
        return (f"a model restored with load_state_dict(state_dict()) does not match the exported graphs "
                f"({one_line(exc)}); build the networks as train() does, then load every tensor that state_dict() "
                "returned")
    return None


def check_plugin(name: str, *, host: Any = None, **kwargs: Any) -> list[Problem]:
    """Problems of a plugin (by entry-point or distribution name) and of every model it registers; a model
    name checks that model alone."""
    host = _host(host)
    problems = [Problem(f.plugin, f"plugin {f.phase}", f.message) for f in host.failures
                if name in (f.plugin, f.distribution)]
    info = next((p for p in host.plugins if name in (p.name, p.distribution)), None)
    if info is None and not problems:
        if name in host.registry.models:
            return check_model(name, host=host, **kwargs)
        known = sorted({p.name for p in host.plugins} | set(host.registry.models.names()))
        from .registry import suggest

        return [Problem(name, "registration", f"No plugin or model '{name}' is installed.{suggest(name, known)} "
                                              "Install the plugin (pip install ...) and check its entry point in the "
                                              "group 'genbench'.")]
    models = [r.split(":", 1)[1] for r in (info.registered if info else ()) if r.startswith("model:")]
    if info is not None and not models and not problems:
        problems.append(Problem(name, "registration", "the plugin registers no model; call register(ModelSpec(...)) in "
                                                      "a genbench_register_models hook."))
    task = kwargs.get("task")
    if task and models:
        kind = host.registry.dataset(task).kind
        models = [m for m in models if kind in host.registry.model(m).tasks]  # the others cannot run on it
        if not models:
            problems.append(Problem(name, "task", f"none of the plugin's models supports {kind} tasks such as "
                                                  f"'{task}'; check it without --task, or on a task of their kinds."))
    for model in models:
        problems += check_model(model, host=host, **kwargs)
    return problems


def assert_conforms(name: str, **kwargs: Any) -> None:
    """Raise ``AssertionError`` listing every problem of plugin or model ``name``."""
    problems = check_plugin(name, **kwargs)
    assert not problems, "genbench contract problems:\n" + "\n".join(f"  - {p}" for p in problems)


@pytest.fixture
def genbench_conformance():
    """The pytest-plugin face of the kit: ``genbench_conformance("my-model")`` asserts conformance."""
    return assert_conforms
