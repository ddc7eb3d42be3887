"""The plugin contract: the hooks a genbench plugin may implement.

A plugin is a module (or object) with functions decorated by :data:`genbench.hookimpl` whose names
are the hooks below. It is found through the entry-point group ``genbench``::

    [project.entry-points.genbench]
    gan = "genbench_gan"

Each hook is called once per plugin, when the plugin manager is built (``genbench plugins``,
``genbench list``, ``genbench run``). Each receives a ``register`` callback and returns nothing.
Registration must be cheap: pass lazy ``"package.module:Name"`` paths, never import torch here, so
that ``genbench --help`` and ``genbench plugins`` stay fast.

A spec that is malformed, or whose name another plugin already registered, is rejected and recorded
against the plugin that registered it (see ``genbench plugins``); the plugin's other specs and every
other plugin still load.
"""

from __future__ import annotations

from typing import Callable

import pluggy

from .types import DatasetSpec, MetricSpec, ModelSpec, ReporterSpec

PROJECT_NAME = "genbench"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def genbench_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register the models this plugin offers.

    :param register: call ``register(ModelSpec(...))`` once per model. ``ModelSpec.cls`` is a lazy
        path to a :class:`genbench.GenerativeModel` subclass, constructed with no arguments when a job
        runs.
    """


@hookspec
def genbench_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register tasks (data sets).

    :param register: call ``register(DatasetSpec(...))`` once per task. ``DatasetSpec.loader`` is a
        lazy path to ``loader(data_dir: Path | None, seed: int) -> genbench.data.Dataset``.
    """


@hookspec
def genbench_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Register quality metrics.

    :param register: call ``register(MetricSpec(...))`` once per metric. ``MetricSpec.factory`` is a
        lazy path to a callable returning a :class:`genbench.metrics.Metric`; the harness calls the
        metric on every job whose task kind is in ``MetricSpec.kinds``.
    """


@hookspec
def genbench_register_reporters(register: Callable[[ReporterSpec], None]) -> None:
    """Register report writers.

    :param register: call ``register(ReporterSpec(...))`` once per reporter. ``ReporterSpec.writer``
        is a lazy path to ``write(run: genbench.RunResult, directory: Path) -> Path``, called after each
        run and by ``genbench report``.
    """


HOOK_NAMES = (
    "genbench_register_models",
    "genbench_register_datasets",
    "genbench_register_metrics",
    "genbench_register_reporters",
)
