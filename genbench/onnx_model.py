"""Graphs a user brought as ONNX files, as a model source beside plugins (``genbench run --onnx FILE --role ROLE
--task T``, run by :mod:`genbench.onnx_command`): benchmark an exported graph with no plugin around it.

A graph brought as a file becomes one job of an ordinary run: the same validation (``onnx.checker``, size
cap, declared shapes at three batch sizes, finite outputs inside their range, the role's contract; no
parity, since there is no torch module), the same sampling through ONNX Runtime, the same quality metrics
and floors, and the same timing stage for ONNX Runtime. Torch eager is recorded as not available. Its
baselines stand beside it, as beside any named model.

A bare graph says its tensors' names, dtypes and shapes, not what genbench must know to drive it. Those
facts come from the graph's ``metadata_props`` (keys prefixed ``genbench.``, written by
:func:`write_metadata`) or from ``--meta KEY=VALUE`` (the same keys without the prefix; flags win):

==============================  ==========================================================  ============
key                             meaning                                                     needed by
==============================  ==========================================================  ============
``role``                        ``sample``, ``logits`` or ``elbo`` (or ``--role``)            every graph
``inputs.<name>.source``        ``normal`` (standard normal), ``uniform`` ([0, 1)),          sample, elbo
                                ``tokens`` or ``data`` (the task's examples; elbo only)
``inputs.<name>.vocab``         token values 0..vocab-1 of a ``tokens`` input                 sample (tokens)
``outputs.<name>.low/.high``    the value range of an output                                 sample, image tasks
``context_length``              the longest token sequence a logits graph takes              logits
``levels``                      values per pixel or bins per coordinate                     logits, image/points
``bos``                         the start token (must equal ``levels``; default ``levels``)   logits, image/points
``data``                        ``continuous`` or ``binarized`` data input                   elbo
``bound``                       ``exact``, ``elbo`` or ``iwae``                              elbo
``importance_samples``          k of an IWAE bound (default 1)                                elbo (optional)
==============================  ==========================================================  ============

A graph that leaves a needed fact out is refused in one line that names each missing fact and the flag
that gives it. The file is untrusted like plugin code: a size cap before it is read, no external data,
and every check of validation in the job's own process.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .errors import BundleError, ConfigError
from .model import GenerativeModel, Progress
from .runtime.roles import GENERATORS, role_choices, role_of
from .types import ROLE_ALIASES, GraphSpec, ModelSpec, OnnxBundle, TensorSpec, TrainConfig, TrainSummary

PREFIX = "genbench."
FAMILY = "onnx"
PLUGIN = "onnx-file"
_SOURCES = ("normal", "uniform", "tokens", "data")


@dataclass(frozen=True)
class OnnxFileSpec(ModelSpec):
    """A model that is nothing but graphs a user supplied: each file's path, its sha256 (checked again
    when the job copies it) and the :class:`GraphSpec` built from the graph and its facts."""

    graphs: tuple[GraphSpec, ...] = ()
    files: tuple[str, ...] = ()
    sha256: tuple[str, ...] = ()


class SuppliedGraphs(GenerativeModel):
    """The :class:`GenerativeModel` behind an :class:`OnnxFileSpec`: nothing to train, the files as its
    bundle, no torch module (so validation skips parity and timing covers ONNX Runtime only)."""

    def __init__(self, spec: OnnxFileSpec | None = None) -> None:
        self.spec = spec

    def train(self, data: Any, config: TrainConfig, progress: Progress) -> TrainSummary:
        return TrainSummary(steps=0, seconds=0.0)

    def export_onnx(self, directory: Path) -> OnnxBundle:
        if self.spec is None:
            raise BundleError("No ONNX files were given to this model.")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for graph, source, digest in zip(self.spec.graphs, self.spec.files, self.spec.sha256):
            target = directory / graph.path
            shutil.copyfile(source, target)
            if _sha256(target) != digest:
                raise BundleError(f"{source} changed after the run started (its sha256 differs); run again.")
        return OnnxBundle(directory, self.spec.graphs)

    def torch_module(self, role: str) -> None:
        return None


# --------------------------------------------------------------------------- metadata


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``genbench.*`` entries of a graph's ``metadata_props``, without the prefix."""
    proto = _load(Path(path))
    return {p.key[len(PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(PREFIX)}


def write_metadata(path: str | Path, facts: Mapping[str, Any]) -> Path:
    """Store ``facts`` (keys as in this module's table, without ``genbench.``) in the graph's
    ``metadata_props``, replacing earlier values of the same keys; the file is rewritten in place."""
    import onnx

    path = Path(path)
    proto = _load(path)
    values = {f"{PREFIX}{k}": _text(v) for k, v in facts.items()}
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in values]
    del proto.metadata_props[:]
    for key, value in [*kept, *values.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path


def graph_metadata(graph: GraphSpec) -> dict[str, str]:
    """The facts of a :class:`GraphSpec` as metadata keys: what ``write_metadata`` needs to make an
    exported graph self-describing (``write_metadata(path, graph_metadata(spec))``)."""
    facts: dict[str, str] = {"role": graph.role}
    for t in graph.inputs:
        if t.source:
            facts[f"inputs.{t.name}.source"] = t.source
        if t.vocab is not None:
            facts[f"inputs.{t.name}.vocab"] = _text(t.vocab)
    for t in graph.outputs:
        if t.low is not None:
            facts[f"outputs.{t.name}.low"] = _text(t.low)
        if t.high is not None:
            facts[f"outputs.{t.name}.high"] = _text(t.high)
    for key in ("context_length", "levels", "bos", "data", "bound", "importance_samples", "prediction", "schedule",
                "steps", "beta_start", "beta_end", "scale"):
        if key in graph.attrs:
            facts[key] = _text(graph.attrs[key])
    return facts


def parse_meta(items: Iterable[str]) -> dict[str, str]:
    """``["context_length=64", ...]`` (``--meta``) → a dict; a one-line error for anything else."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip().removeprefix(PREFIX)
        if not sep or not key or not value.strip():
            raise ConfigError(f"Invalid --meta {item!r}: give KEY=VALUE, e.g. --meta inputs.z.source=normal.")
        out[key] = value.strip()
    return out


# --------------------------------------------------------------------------- describing a graph


@dataclass
class _Facts:
    """Facts for one graph: flags over metadata; what was asked for and missing, and which keys were used."""

    given: Mapping[str, str]
    file: str
    missing: list[tuple[str, str]] = field(default_factory=list)  # (what, flag)
    used: set[str] = field(default_factory=set)

    def get(self, key: str, what: str | None = None, example: str = "") -> str | None:
        self.used.add(key)
        value = self.given.get(key)
        if value is None and what is not None:
            self.missing.append((what, f"--meta {key}={example}"))
        return value

    def number(self, key: str, kind: type, what: str | None = None, example: str = "") -> Any:
        value = self.get(key, what, example)
        if value is None:
            return None
        try:
            number = kind(value)
        except ValueError:
            raise ConfigError(f"{self.file}: {key}={value!r} is not a {'whole number' if kind is int else 'number'}."
                              ) from None
        if not math.isfinite(number):  # a NaN bound would switch the range check off
            raise ConfigError(f"{self.file}: {key}={value!r} is not a finite number; give a finite one (an "
                              "unbounded output on a points task: leave the key out).")
        return number


def describe_graph(path: str | Path, dataset: Any, role: str | None = None,
                   flags: Mapping[str, str] | None = None, used: set[str] | None = None) -> GraphSpec:
    """The :class:`GraphSpec` of ``path`` on ``dataset``'s task: names, dtypes and shapes from the graph,
    the rest from its ``genbench.*`` metadata and ``flags`` (which win). Raises one :class:`ConfigError`
    naming every missing fact, or :class:`BundleError` for a graph that cannot serve the role."""
    path = Path(path)
    proto = _load(path)
    given = {p.key[len(PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(PREFIX)}
    facts = _Facts({**given, **(flags or {}), **({"role": role} if role else {})}, path.name)
    role = facts.get("role")
    if role is None:
        facts.missing.append(("its role", f"--role {'|'.join(role_choices())}"))
        _refuse(path, None, facts)
    if role not in role_choices():
        raise ConfigError(f"{path.name}: role {role!r} is not one of {', '.join(role_choices())}.")
    role = ROLE_ALIASES.get(role, role)
    kind_of_role = role_of(role)
    initializers = {i.name for i in proto.graph.initializer}
    if role == "logits":
        _check_looks_like_logits(path, [v for v in proto.graph.input if v.name not in initializers],
                                 list(proto.graph.output))
    axis_names = kind_of_role.axes
    inputs = [_tensor(v, role, axis_names=axis_names) for v in proto.graph.input if v.name not in initializers]
    outputs = [_tensor(v, role, axis_names) for v in _with_inferred_shapes(proto, len(axis_names))]
    attrs: dict[str, Any] = {}
    kind = dataset.kind
    if role == "logits":
        attrs["context_length"] = facts.number("context_length", int, "the context length (tokens it takes)", "64")
        if kind in ("image", "points"):
            levels = facts.number("levels", int, "the levels (values per pixel, or bins per coordinate)",
                                  str(dataset.levels or 17))
            attrs["levels"] = levels
            attrs["bos"] = facts.number("bos", int) if "bos" in facts.given else levels
        vocab = dataset.vocab if kind == "text" else (attrs.get("levels") or 0) + 1
        inputs = [{**t, "source": "tokens", "vocab": vocab} for t in inputs]
    else:
        attrs = kind_of_role.describe(facts, dataset, inputs, outputs)
        if role == "sample":
            lo, hi = dataset.value_range
            for t in outputs:  # image tasks: the range is checked against the task's before anything is scored
                t["low"] = facts.number(f"outputs.{t['name']}.low", float)
                t["high"] = facts.number(f"outputs.{t['name']}.high", float)
                if kind == "image" and (t["low"] is None or t["high"] is None):
                    facts.missing.append((f"the value range of output '{t['name']}'",
                                          f"--meta outputs.{t['name']}.low={lo:g} --meta outputs.{t['name']}.high={hi:g}"))
                if t["low"] is not None and t["high"] is not None and t["low"] > t["high"]:
                    raise ConfigError(f"{path.name}: outputs.{t['name']}.low={t['low']:g} is above "
                                      f"outputs.{t['name']}.high={t['high']:g}; give low <= high.")
    if facts.missing:
        _refuse(path, role, facts)
    if used is not None:
        used.update(facts.used)
    return _graph_spec(path, role, inputs, outputs, attrs, dataset)


def _graph_spec(path: Path, role: str, inputs: list[dict], outputs: list[dict], attrs: dict, dataset: Any) -> GraphSpec:
    from .errors import SpecError
    from .runtime.validate import check_role_contract

    try:
        graph = GraphSpec(role, f"{role}.onnx", tuple(TensorSpec(**t) for t in inputs),
                          tuple(TensorSpec(**t) for t in outputs), {k: v for k, v in attrs.items() if v is not None})
    except SpecError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None
    try:  # the role's contract and the task's shape, range and vocabulary: before anything is written
        check_role_contract(graph, dataset)
    except BundleError as exc:
        raise BundleError(f"{path.name}: {exc}") from None
    return graph


def _check_looks_like_logits(path: Path, inputs: list[Any], outputs: list[Any]) -> None:
    """A graph given as ``logits`` takes one int64 tokens input [batch, seq] and returns [batch, seq, V]; say
    so in words when it does not, before its axes are read as a logits graph's."""
    def rank(v: Any) -> int | None:
        tt = v.type.tensor_type
        return len(tt.shape.dim) if tt.HasField("shape") else None

    if len(inputs) == 1 and inputs[0].type.tensor_type.elem_type == 7 and rank(inputs[0]) == 2 \
            and len(outputs) == 1 and rank(outputs[0]) == 3:  # 7: onnx.TensorProto.INT64
        return
    sample = all(v.type.tensor_type.elem_type != 7 for v in inputs)
    raise BundleError(f"{path.name} is not a logits graph: a logits graph takes one int64 tokens input [batch, seq] "
                      f"and returns logits [batch, seq, V]; this one takes {_values(inputs)} and returns "
                      f"{_values(outputs)}" + (" (a sample graph? give --role sample)." if sample else "."))


def _values(values: list[Any]) -> str:
    """``z float32 [N, 16]``, ... for a message."""
    from .runtime.validate import _ONNX_DTYPES

    def one(v: Any) -> str:
        tt = v.type.tensor_type
        dims = [d.dim_param or str(d.dim_value) if (d.dim_param or d.HasField("dim_value")) else "?"
                for d in tt.shape.dim] if tt.HasField("shape") else ["?"]
        return f"{v.name} {_ONNX_DTYPES.get(tt.elem_type, f'onnx type {tt.elem_type}')} [{', '.join(dims)}]"

    return ", ".join(one(v) for v in values) or "nothing"


def _refuse(path: Path, role: str | None, facts: _Facts) -> None:
    import re

    items = [w for w, _ in facts.missing]
    what = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    flags = " ".join(dict.fromkeys(f for _, f in facts.missing))
    names: list[str] = []
    for _, flag in facts.missing:
        names += ["role"] if flag.startswith("--role") else re.findall(r"--meta ([^=\s]+)=", flag)
    keys = ", ".join(dict.fromkeys(PREFIX + k for k in names))
    graph = f"{path.name} ({role} graph)" if role else path.name
    raise ConfigError(f"{graph} does not say {what}: give {flags}, or store {keys} in the graph's metadata_props "
                      "(genbench.onnx_model.write_metadata; see docs/score.md).")


def _with_inferred_shapes(proto: Any, leading: int) -> list[Any]:
    """The graph's outputs, each axis after the ``leading`` (batch, seq) ones that the file leaves symbolic but
    ONNX shape inference fixes given that value (exporters write e.g. ``Reshapex_dim_1`` for a reshape's 1):
    what a task's shape is checked against before the run. Parsed, never run; as declared where inference fails."""
    import onnx

    try:
        inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(proto, strict_mode=False).graph.output}
    except Exception:  # noqa: BLE001 - the job's own validation runs the graph and checks its shapes
        return list(proto.graph.output)
    merged = []
    for value in proto.graph.output:
        value, found = onnx.ValueInfoProto.FromString(value.SerializeToString()), inferred.get(value.name)
        dims = value.type.tensor_type.shape.dim
        known = found.type.tensor_type.shape.dim if found is not None else []
        if len(known) == len(dims):
            for axis, (d, k) in enumerate(zip(dims, known)):
                if axis >= leading and not d.HasField("dim_value") and k.HasField("dim_value"):
                    d.dim_value = k.dim_value
        merged.append(value)
    return merged


def _tensor(value: Any, role: str, axis_names: Sequence[str]) -> dict[str, Any]:
    """Name, dtype and shape of a graph input or output; leading axes get genbench's symbolic names."""
    from .runtime.validate import _ONNX_DTYPES

    tt = value.type.tensor_type
    dtype = _ONNX_DTYPES.get(tt.elem_type)
    if dtype is None or not tt.HasField("shape"):
        raise BundleError(f"{role} graph tensor '{value.name}' is not a tensor of a supported dtype with a known rank.")
    shape: list[Any] = []
    for axis, d in enumerate(tt.shape.dim):
        if axis < len(axis_names):
            if d.HasField("dim_value"):
                raise BundleError(f"{role} graph tensor '{value.name}' has its {axis_names[axis]} axis fixed to "
                                  f"{d.dim_value}; export it with a dynamic axis (dynamic_axes, or torch.export.Dim, "
                                  "from an example batch of 2 or more).")
            shape.append(axis_names[axis])
        elif d.HasField("dim_value"):
            shape.append(int(d.dim_value))
        else:
            shape.append(d.dim_param or f"axis{axis}")
    return {"name": value.name, "shape": tuple(shape), "dtype": dtype}


# --------------------------------------------------------------------------- the model and the run


def supplied_model(files: Sequence[str | Path], dataset: Any, task_kind: str, roles: Sequence[str] = (),
                   meta: Mapping[str, str] | None = None, name: str | None = None) -> OnnxFileSpec:
    """The :class:`OnnxFileSpec` of ``files`` (``roles[i]`` for ``files[i]``, else their metadata) on
    ``dataset``'s task; every flag in ``meta`` must be used by some graph."""
    from .runtime.validate import check_roles_fit_task, max_graph_bytes
    from .types import model_name, typed_name

    if not files:
        raise ConfigError("Give at least one --onnx FILE.")
    if roles and len(roles) != len(files):
        raise ConfigError(f"{len(files)} --onnx files and {len(roles)} --role values: give one --role per --onnx "
                          "(in the same order), or none and store genbench.role in each graph.")
    paths = [Path(f) for f in files]
    for p in paths:
        if p.is_dir():
            raise ConfigError(f"--onnx {p} is a directory; give the .onnx file in it.")
        if not p.is_file():
            raise ConfigError(f"--onnx {p}: no such file.")
        size, cap = p.stat().st_size, max_graph_bytes()
        if size > cap:
            raise BundleError(f"{p} is {size / 2**20:.3g} MiB, over the {cap / 2**20:.3g} MiB cap on graphs "
                              "($GENBENCH_MAX_GRAPH_MB raises it).")
    used: set[str] = set()
    graphs = [describe_graph(p, dataset, roles[i] if roles else None, meta, used) for i, p in enumerate(paths)]
    unused = sorted(set(meta or {}) - used)
    if unused:
        raise ConfigError(f"--meta {unused[0]} is not a fact any of the graphs needs (check the input and output "
                          "names and the keys in docs/score.md).")
    found = [g.role for g in graphs]
    if len(set(found)) != len(found):
        raise ConfigError(f"Two graphs have the same role ({', '.join(found)}); give one file per role.")
    if not any(role_of(r).generates for r in found):
        raise ConfigError(f"genbench draws the samples it scores from a {', '.join(repr(r) for r in GENERATORS)} "
                          f"graph; give one (the graphs given are {', '.join(found)}).")
    check_roles_fit_task(found, dataset)
    digests = tuple(_sha256(p) for p in paths)
    label = ", ".join(f"{p.name} ({g.role}, sha256 {d[:12]})" for p, g, d in zip(paths, graphs, digests))
    return OnnxFileSpec(name=typed_name(name) if name is not None else model_name(paths[0].stem), family=FAMILY, tasks=(task_kind,),
                        cls="genbench.onnx_model:SuppliedGraphs", description=f"ONNX file(s) supplied: {label}",
                        graphs=tuple(graphs), files=tuple(str(p.resolve()) for p in paths), sha256=digests)


def _load(path: Path) -> Any:
    import onnx

    from .runtime.validate import max_graph_bytes

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if size > max_graph_bytes():
        raise BundleError(f"{path} is {size / 2**20:.3g} MiB, over the {max_graph_bytes() / 2**20:.3g} MiB cap on "
                          "graphs ($GENBENCH_MAX_GRAPH_MB raises it).")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - not ONNX, or damaged
        raise BundleError(f"{path} is not an ONNX model: {' '.join(str(exc).split())[:200] or type(exc).__name__}."
                          ) from None
    if any(t.data_location == 1 for t in proto.graph.initializer):  # onnx.TensorProto.EXTERNAL
        raise BundleError(f"{path} keeps weights in external data files; export it as one file "
                          "(torch.onnx.export(..., external_data=False)).")
    return proto


def _sha256(path: Path) -> str:
    from .cache import _sha256_file  # one hashing of files for the whole package

    return _sha256_file(path)


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


__all__ = ["OnnxFileSpec", "SuppliedGraphs", "describe_graph", "graph_metadata", "parse_meta", "read_metadata",
           "supplied_model", "write_metadata"]
