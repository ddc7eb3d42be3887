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
outputs, parity with ``torch_module``); a ``logits`` graph does not look ahead (``causality``: position t's logits
depend on tokens up to t only); every graph gives each row the same outputs at every batch size a run uses
(``batch-independence``: validation's, sampling's, the likelihood's and every built-in profile's timed sizes); the
graphs give as many finite samples and likelihoods as a
``smoke`` run draws from them (a graph that emits NaN for a few inputs fails here, as it would in the
run); two trainings with the same seed export the same graph outputs (determinism); and, for a model
that implements ``state_dict``, that a fresh instance restored with ``load_state_dict`` after
``torch.load(weights_only=True)`` matches the exported graphs (the cache).

A model is checked on a task of a kind it supports: ``task=`` (``--task``) naming a task of another kind
is a problem of that model, and a plugin checked with ``task=`` has its models that support the task's
kind checked.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GenbenchError, one_line

TINY_STEPS = 3
DETERMINISM_ATOL = 1e-6
CHECK_SCHEMA = "genbench.check-plugin/1"  # genbench/schemas/check-plugin-1.schema.json


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
        dataset = reg.dataset(task)
        if not spec.supports(dataset):
            fits = [d.name for d in reg.datasets if spec.supports(d)]
            raise GenbenchError(f"model '{spec.name}' supports {spec.describe_tasks()} and '{task}' is a "
                                f"{dataset.kind} task; check it on one of: {', '.join(fits) or 'none registered'}.")
    names = [task] if task else [d.name for d in reg.datasets if spec.supports(d)]
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
    from .runtime.roles import held_out_likelihood

    if data.kind != "text":
        draw_samples(bundle, "cpu", sample_count(data, get_profile("smoke")), seed, data.test_x, data)
    held_out_likelihood(bundle, data, "cpu", seed, BUILD_THREADS)


#: the checks of one model, in the order they run; each needs the ones before it to pass
MODEL_CHECKS = ("registration", "class", "task", "train/export", "onnx", "causality", "batch-independence", "samples",
                "determinism", "cache")


def _behaviour_sizes(data: Any) -> dict[str, Any]:
    """What the kit's ``causality`` and ``batch-independence`` checks cover: every built-in profile's timed batch
    sizes and samples per job, so that a plugin that passes meets the checks of any run."""
    from .config import PROFILES
    from .harness import sample_count

    return {"timed_batch_sizes": sorted({b for p in PROFILES.values() for b in p.batch_sizes}),
            "sample_counts": sorted({sample_count(data, p) for p in PROFILES.values()})}


def _behaviour_message(check: str, found: dict[str, dict[str, Any]]) -> str:
    if check == "causality":
        return "; ".join(f"graph '{role}' looks at no later token (positions checked per sequence length: "
                         f"{', '.join(f'{n}: {p}' for n, p in r['positions'].items())})" for role, r in found.items())
    return "; ".join(f"graph '{role}': each row the same at batch {', '.join(map(str, r['batch_sizes']))}"
                     if r.get("status") == "passed" else f"graph '{role}': {r.get('status')}" for role, r in found.items())


@dataclass(frozen=True)
class Check:
    """One check the kit ran: ``status`` is ``passed``, ``failed`` (``message``: what is wrong and what to
    change) or ``skipped`` (``message``: why it did not run)."""

    model: str
    check: str
    status: str
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "check": self.check, "status": self.status, "message": self.message}


class _Checks:
    """Records each check's outcome; after a failure the checks that need it are recorded as skipped."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.done: list[Check] = []

    def passed(self, check: str, message: str | None = None) -> None:
        self.done.append(Check(self.model, check, "passed", message))

    def failed(self, check: str, message: str) -> list[Check]:
        self.done.append(Check(self.model, check, "failed", message))
        rest = MODEL_CHECKS[MODEL_CHECKS.index(check) + 1:] if check in MODEL_CHECKS else ()
        self.done += [Check(self.model, c, "skipped", f"not run: check '{check}' failed") for c in rest]
        return self.done


def check_model(name: str, *, host: Any = None, task: str | None = None, steps: int = TINY_STEPS,
                seed: int = 0) -> list[Problem]:
    """Every contract problem of model ``name`` (an empty list when it conforms)."""
    return _problems(model_checks(name, host=host, task=task, steps=steps, seed=seed))


def _problems(checks: list[Check]) -> list[Problem]:
    return [Problem(c.model, c.check, c.message or "") for c in checks if c.status == "failed"]


def model_checks(name: str, *, host: Any = None, task: str | None = None, steps: int = TINY_STEPS,
                 seed: int = 0) -> list[Check]:
    """Every check of model ``name`` (:data:`MODEL_CHECKS`, in order) with its outcome."""
    import numpy as np

    from .harness import seed_everything
    from .model import GenerativeModel
    from .registry import load_object
    from .runtime import draw_inputs, make_session, prepare_data
    from .runtime.roles import role_of
    from .runtime.validate import check_graphs_behave, validate_bundle
    from .types import OnnxBundle, TrainConfig, TrainSummary

    host = _host(host)
    checks = _Checks(name)
    try:
        spec = host.registry.model(name)
    except GenbenchError as exc:
        return checks.failed("registration", f"{exc} Register it with register(ModelSpec(...)) in a "
                                             "genbench_register_models hook.")
    unknown = [w for w in host.registry.unknown_tasks() if w.startswith(f"model '{name}' ")]
    if unknown:
        return checks.failed("registration", unknown[0])
    checks.passed("registration")
    try:
        cls = load_object(spec.cls, owner=f"model '{name}'")
    except GenbenchError as exc:
        return checks.failed("class", f"{exc}. Make ModelSpec.cls a 'package.module:Class' path that imports.")
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        return checks.failed("class", f"{spec.cls} is not a subclass of genbench.GenerativeModel; subclass it.")
    checks.passed("class")
    try:
        state = _task_for(spec, host, task)
    except GenbenchError as exc:
        return checks.failed("task", str(exc))
    data = state.dataset
    checks.passed("task", f"checked on task '{data.name}'")

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
            return checks.failed("train/export", f"{type(exc).__name__}: {exc}")
        checks.passed("train/export")
        try:
            validate_bundle(bundle, model.torch_module, data=data.test_x, seed=seed, dataset=data, causality=False,
                            batch_independence=False)
        except GenbenchError as exc:
            return checks.failed("onnx", f"{exc}")
        except Exception as exc:  # noqa: BLE001
            return checks.failed("onnx", f"{type(exc).__name__}: {exc}")
        checks.passed("onnx", f"graphs {', '.join(g.role for g in bundle.graphs)}")
        for behaviour in ("causality", "batch-independence"):
            try:
                found = check_graphs_behave(bundle, behaviour, data=data.test_x, seed=seed, dataset=data,
                                            **_behaviour_sizes(data))
            except GenbenchError as exc:
                return checks.failed(behaviour, f"{exc}")
            except Exception as exc:  # noqa: BLE001
                return checks.failed(behaviour, f"{type(exc).__name__}: {exc}")
            if found:
                checks.passed(behaviour, _behaviour_message(behaviour, found))
            else:
                checks.done.append(Check(name, behaviour, "skipped", "not applicable: the bundle has no 'logits' "
                                                                     "graph (the one role whose outputs are "
                                                                     "per-position conditionals)"))
        try:
            _draw_as_a_run_does(bundle, data, seed)
        except GenbenchError as exc:
            return checks.failed("samples", f"{exc} (drawn as a smoke run draws them; the run would fail the job)")
        except Exception as exc:  # noqa: BLE001
            return checks.failed("samples", f"{type(exc).__name__}: {exc}")
        checks.passed("samples")
        try:
            _, again = train_and_export(Path(tmp) / "b")
        except Exception as exc:  # noqa: BLE001
            return checks.failed("determinism", f"a second training raised {type(exc).__name__}: {exc}")
        differ = []
        for graph in bundle.graphs:
            feeds = draw_inputs(graph, 4, np.random.default_rng(seed), prepare_data(graph, data.test_x),
                                role_of(graph.role).check_sizes(graph)[1][1])
            outs = [make_session(b.directory / b.graph(graph.role).path).run(None, feeds) for b in (bundle, again)]
            diff = max(float(np.max(np.abs(x - y), initial=0.0)) for x, y in zip(*outs))
            if not diff <= DETERMINISM_ATOL:
                differ.append(f"two trainings with seed {seed} give graph '{graph.role}' outputs that differ by "
                              f"{diff:.3g}")
        if differ:
            checks.failed("determinism", "; ".join(differ) + "; seed torch, numpy and any other random source from "
                                                             "config.seed in train().")
            return checks.done
        checks.passed("determinism")
        status, message = _cache_problem(cls, model, bundle, data, TrainConfig(seed=seed, device="cpu",
                                                                                profile="smoke", steps=steps), seed)
        if status == "failed":
            checks.failed("cache", message or "")
        else:
            checks.done.append(Check(name, "cache", status, message))
    return checks.done


def _cache_problem(cls: Any, model: Any, bundle: Any, data: Any, config: Any, seed: int) -> tuple[str, str | None]:
    """For a model that opts into the cache: its state survives torch.save / torch.load(weights_only=True),
    and a fresh instance restored from it matches the graphs exported after training. Returns the check's
    status (passed, failed, skipped) and message."""
    import io

    import torch

    from .runtime.validate import validate_bundle

    try:
        state = model.state_dict()
    except Exception as exc:  # noqa: BLE001
        return "failed", f"state_dict() raised {type(exc).__name__}: {exc}"
    if state is None:
        return "skipped", "state_dict() returns None: the model is not cached (trained on every run)"
    buffer = io.BytesIO()
    try:
        torch.save(state, buffer)
        buffer.seek(0)
        state = torch.load(buffer, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001
        return "failed", ("state_dict() holds objects that torch.load(weights_only=True) refuses; return only tensors, "
                          "numbers, strings and dicts, lists or tuples of them")
    try:
        restored = cls()
        restored.load_state_dict(state, data.training_data(), config)
        validate_bundle(bundle, restored.torch_module, data=data.test_x, seed=seed, dataset=data, causality=False,
                        batch_independence=False)  # the graphs were checked for lies already: parity is the point
    except Exception as exc:  # noqa: BLE001
        return "failed", (f"a model restored with load_state_dict(state_dict()) does not match the exported graphs "
                          f"({one_line(exc)}); build the networks as train() does, then load every tensor that "
                          "state_dict() returned")
    return "passed", None


def check_plugin(name: str, *, host: Any = None, **kwargs: Any) -> list[Problem]:
    """Problems of a plugin (by entry-point or distribution name) and of every model it registers; a model
    name checks that model alone."""
    return _problems(plugin_checks(name, host=host, **kwargs))


def plugin_checks(name: str, *, host: Any = None, **kwargs: Any) -> list[Check]:
    """Every check :func:`check_plugin` runs, passed, failed or skipped, in order: the plugin's loading
    (``plugin import``, ``plugin validate``, ``plugin register``), then each model's :data:`MODEL_CHECKS`."""
    host = _host(host)
    failures = [f for f in host.failures if name in (f.plugin, f.distribution)]
    checks = [Check(f.plugin, f"plugin {f.phase}", "failed", f.message) for f in failures]
    info = next((p for p in host.plugins if name in (p.name, p.distribution)), None)
    if info is None and not failures:
        if name in host.registry.models:
            return model_checks(name, host=host, **kwargs)
        known = sorted({p.name for p in host.plugins} | set(host.registry.models.names()))
        from .registry import suggest

        return [Check(name, "registration", "failed", f"No plugin or model '{name}' is installed."
                                                      f"{suggest(name, known)} Install the plugin (pip install ...) "
                                                      "and check its entry point in the group 'genbench'.")]
    if info is not None and not failures:
        checks.append(Check(info.name, "plugin load", "passed", f"{info.distribution} {info.version}"))
    models = [r.split(":", 1)[1] for r in (info.registered if info else ()) if r.startswith("model:")]
    if info is not None and not models and not failures:
        checks.append(Check(name, "registration", "failed", "the plugin registers no model; call "
                                                            "register(ModelSpec(...)) in a genbench_register_models hook."))
    task = kwargs.get("task")
    if task and models:
        dataset = host.registry.dataset(task)
        models = [m for m in models if host.registry.model(m).supports(dataset)]  # the others cannot run on it
        if not models:
            checks.append(Check(name, "task", "failed", f"none of the plugin's models supports {dataset.kind} tasks "
                                                        f"such as '{task}' (nor names that task); check it without "
                                                        "--task, or on a task they run on."))
    for model in models:
        checks += model_checks(model, host=host, **kwargs)
    return checks


def check_report(name: str, *, host: Any = None, task: str | None = None) -> dict[str, Any]:
    """``genbench check-plugin NAME --format json``: every check run and its outcome, schema
    ``genbench.check-plugin/1``."""
    from . import __version__

    checks = plugin_checks(name, host=host, task=task)
    problems = _problems(checks)
    return {"schema": CHECK_SCHEMA, "genbench_version": __version__, "target": name, "task": task,
            "conforms": not problems, "checks": [c.to_dict() for c in checks],
            "problems": [{"model": p.model, "check": p.check, "message": p.message} for p in problems]}


def assert_conforms(name: str, **kwargs: Any) -> None:
    """Raise ``AssertionError`` listing every problem of plugin or model ``name``."""
    problems = check_plugin(name, **kwargs)
    assert not problems, "genbench contract problems:\n" + "\n".join(f"  - {p}" for p in problems)


def _conformance_fixture() -> Any:
    """The pytest-plugin face of the kit: the ``genbench_conformance`` fixture, whose value is
    :func:`assert_conforms` (``genbench_conformance("my-model")`` asserts conformance).

    pytest is imported only here: genbench does not depend on it. pytest loads this module through the
    ``pytest11`` entry point with pytest already imported, so the fixture is defined at import then."""
    import pytest

    @pytest.fixture(name="genbench_conformance")
    def genbench_conformance() -> Any:
        return assert_conforms

    return genbench_conformance


if "pytest" in sys.modules:  # imported by pytest (its plugin entry point, or a test): offer the fixture
    genbench_conformance = _conformance_fixture()


def __getattr__(name: str) -> Any:
    """``genbench.testing.genbench_conformance`` when pytest was not imported before this module."""
    if name == "genbench_conformance":
        fixture = _conformance_fixture()
        globals()[name] = fixture
        return fixture
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
