"""Typed registries filled by the ``genbench_register_*`` hooks."""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, fields, replace
from typing import Any, Generic, Iterator, TypeVar

from .errors import PluginError, SpecError, UnknownNameError
from .types import TASK_KINDS, DatasetSpec, MetricSpec, ModelSpec, ReporterSpec, deferred_spec_checks

S = TypeVar("S", ModelSpec, DatasetSpec, MetricSpec, ReporterSpec)


def suggest(name: str, choices: list[str]) -> str:
    """``" Did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(name, choices, n=2, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


class Table(Generic[S]):
    """Specs of one kind by name; rejects malformed specs and duplicates."""

    def __init__(self, kind: str, spec_type: type[S]):
        self.kind = kind
        self.spec_type = spec_type
        self._specs: dict[str, S] = {}

    def add(self, spec: Any, plugin: str, version: str) -> S:
        if not isinstance(spec, self.spec_type):
            raise SpecError(
                f"{self.kind.capitalize()} registration from plugin '{plugin}' must be a "
                f"{self.spec_type.__name__}, got {type(spec).__name__}."
            )
        # rebuilt from its fields, so every check runs on what is registered (a spec changed after it was
        # made, or a subclass that skips the checks, gets no further than this)
        # (genbench's own subclasses, such as the spec of an --onnx graph, keep their type and extra fields)
        cls = type(spec) if type(spec).__module__.split(".")[0] == "genbench" else self.spec_type
        with deferred_spec_checks(False):  # a spec made while its hook ran was not checked yet
            spec = cls(**{f.name: getattr(spec, f.name) for f in fields(cls)})
        if spec.name in self._specs:
            other = self._specs[spec.name].plugin
            raise SpecError(
                f"Plugin '{plugin}' registers {self.kind} '{spec.name}', which plugin '{other}' already "
                "registered; rename one of them."
            )
        spec = replace(spec, plugin=plugin, plugin_version=version)
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> S:
        try:
            return self._specs[name]
        except KeyError:
            names = sorted(self._specs)
            raise UnknownNameError(
                f"Unknown {self.kind} '{name}'.{suggest(name, names)} Available: {', '.join(names) or 'none'}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[S]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return sorted(self._specs)


@dataclass
class Registry:
    models: Table[ModelSpec]
    datasets: Table[DatasetSpec]
    metrics: Table[MetricSpec]
    reporters: Table[ReporterSpec]

    @classmethod
    def empty(cls) -> "Registry":
        return cls(
            models=Table("model", ModelSpec),
            datasets=Table("task", DatasetSpec),
            metrics=Table("metric", MetricSpec),
            reporters=Table("reporter", ReporterSpec),
        )

    def tables(self) -> tuple[Table[Any], ...]:
        return (self.models, self.datasets, self.metrics, self.reporters)

    def model(self, name: str) -> ModelSpec:
        return self.models.get(name)

    def dataset(self, name: str) -> DatasetSpec:
        return self.datasets.get(name)

    def unknown_tasks(self) -> list[str]:
        """One line per model that names a task no plugin registered (a typo, or a plugin not installed):
        the model never runs there."""
        kinds = {d.kind for d in self.datasets}
        known = set(self.datasets.names())
        lines = []
        for m in self.models:
            missing = [t for t in m.tasks if t not in TASK_KINDS and t not in known]
            if missing:
                lines.append(f"model '{m.name}' ({m.plugin}) names task(s) {', '.join(map(repr, missing))}, which no "
                             f"plugin registers, so it never runs there.{suggest(missing[0], sorted(known | kinds))}")
        return lines


def load_object(path: str, owner: str = "") -> Any:
    """Import ``"package.module:attr.sub"`` lazily, turning failures into one-line ``PluginError``s."""
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001 - plugin code is untrusted; any failure is reported
        who = f" of {owner}" if owner else ""
        raise PluginError(f"Cannot load '{path}'{who}: {type(exc).__name__}: {exc}") from exc
    return obj
