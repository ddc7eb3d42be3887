"""Frozen dataclasses that cross the plugin boundary and the results file.

Each has ``to_dict``/``from_dict`` so that a ``run.json`` reads back into the same objects.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from .errors import ConfigError, SpecError

NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\Z")  # \Z, not $: "gan-mlp\n" is not "gan-mlp"
CLASS_PATH_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*\Z")
TASK_KINDS = ("image", "text", "points")
#: The graph roles genbench drives. Each is one module of :mod:`genbench.runtime.roles` (its contract, how
#: samples are drawn, its held-out likelihood, how one generated sample is timed), registered there.
ROLES = ("sample", "logits", "likelihood", "denoise")
#: Older role names a plugin may still use: ``elbo`` is the ``likelihood`` role (graphs read back as it).
ROLE_ALIASES = {"elbo": "likelihood"}
#: How the harness prepares task data for a graph input with source ``data`` (``GraphSpec.attrs["data"]``).
#: ``dequantized``: pixels quantised to the task's L levels plus uniform noise, (k + u) / L (Theis et al. 2016).
DATA_TRANSFORMS = ("continuous", "binarized", "dequantized")
#: What a ``likelihood`` graph's output is (``GraphSpec.attrs["bound"]``): the exact log-likelihood, the ELBO
#: (k = 1) or the IWAE bound (k > 1). Without the attribute it follows from ``importance_samples``.
LIKELIHOOD_BOUNDS = ("exact", "elbo", "iwae")
#: Job and seed statuses in run.json. ``pending``: some of its work (a seed, or its timing) is not done
#: yet; ``genbench run --resume`` finishes it.
JOB_STATUSES = ("ok", "failed", "skipped", "pending")
#: ``timestep``: a diffusion step t, an integer in [0, vocab) (vocab = the schedule's T), int64 or float32.
INPUT_SOURCES = ("normal", "uniform", "tokens", "data", "timestep")
DTYPES = ("float32", "float16", "float64", "int64", "int32", "uint8", "bool")


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SpecError(
            f"Invalid {kind} name {name!r}: use lower-case letters, digits and single dashes "
            "(for example 'gan-mlp')."
        )


MAX_LINE = 300  # characters of a description or unit


def _check_one_line(owner: str, what: str, text: Any, empty: bool = False) -> None:
    """``text`` is one line of printable characters (no line breaks, tabs, escape sequences or other control
    and format characters, such as bidirectional overrides), at most ``MAX_LINE`` long."""
    if not isinstance(text, str) or not text.isprintable() or len(text) > MAX_LINE or not (empty or text.strip()):
        shown = repr(text) if len(repr(text)) <= 60 else repr(text)[:57] + "..."
        raise SpecError(f"{owner}: {what} {shown} must be {'a' if empty else 'a non-empty'} single line of printable "
                        f"text, at most {MAX_LINE} characters.")


class _Serializable:
    """``to_dict``/``from_dict`` for flat dataclasses whose fields are JSON values or tuples."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: _tupled(v) for k, v in data.items() if k in names})


def _jsonable(value: Any) -> Any:
    if isinstance(value, _Serializable):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; None reads as "no value"
    return value


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


# --------------------------------------------------------------------------- registry specs

#: True while a plugin's register hook runs: a malformed spec is then made without raising, and the
#: registry refuses it when it is registered (the plugin's other specs still load)
_DEFERRED = contextvars.ContextVar("genbench_deferred_spec_checks", default=False)


@contextlib.contextmanager
def deferred_spec_checks(deferred: bool = True) -> Iterator[None]:
    """While the block runs, registry specs (``ModelSpec`` …) made with bad fields do not raise at once: the
    registry checks each spec again when it is registered and records the one bad spec against its plugin,
    so that a plugin whose hook makes one bad spec keeps its others. ``deferred=False`` checks at once."""
    token = _DEFERRED.set(deferred)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


def _checked(check: Any) -> Any:
    """A spec's ``__post_init__`` that raises its :class:`SpecError` unless checks are deferred."""
    def post_init(self: Any) -> None:
        try:
            check(self)
        except SpecError:
            if not _DEFERRED.get():
                raise

    post_init.__doc__ = check.__doc__
    return post_init


def _as_tuple(values: Any) -> tuple[Any, ...]:
    """``tasks``/``kinds`` as a tuple (one string is one entry; something that is not a collection, none)."""
    if isinstance(values, str):
        return (values,)
    try:
        return tuple(values)
    except TypeError:
        return ()


@dataclass(frozen=True)
class ModelSpec(_Serializable):
    """A model a plugin offers.

    ``name`` is ``<arch>-<variant>`` (``[a-z0-9-]``); ``family`` is ``gan``, ``vae``, ``ar`` or any
    other lower-case word; ``tasks`` are what it runs on: task kinds (``image``, ``text``, ``points``: every
    task of that kind) and task names (``ring8``: that task only), mixed as needed (``("image", "ring8")``);
    ``cls`` is a lazy ``"package.module:Class"`` path to a :class:`genbench.GenerativeModel`
    subclass, imported only when a job runs. ``plugin`` and ``plugin_version`` are filled in by
    the registry from the plugin's distribution.
    """

    name: str
    family: str
    tasks: tuple[str, ...]
    cls: str
    description: str
    plugin: str = ""
    plugin_version: str = ""

    @_checked
    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", _as_tuple(self.tasks))
        _check_name("model", self.name)
        _check_name("family", self.family)
        if not self.tasks or any(not isinstance(t, str) or not NAME_RE.match(t) for t in self.tasks):
            raise SpecError(
                f"Model {self.name!r}: tasks {list(self.tasks)!r} must be a non-empty list of task kinds "
                f"({', '.join(TASK_KINDS)}) or task names (such as 'ring8')."
            )
        if not isinstance(self.cls, str) or not CLASS_PATH_RE.match(self.cls):
            raise SpecError(f"Model {self.name!r}: cls {self.cls!r} must be a lazy path like 'package.module:Class'.")
        _check_one_line(f"Model {self.name!r}", "description", self.description)

    def supports(self, task: "DatasetSpec") -> bool:
        """Whether this model runs on ``task``: its kind or its name is among ``tasks``."""
        return task.kind in self.tasks or task.name in self.tasks

    def describe_tasks(self) -> str:
        """What it runs on, in words: ``"image tasks"``, ``"ring8"``, ``"image tasks and ring8"``."""
        kinds = [t for t in self.tasks if t in TASK_KINDS]
        names = [t for t in self.tasks if t not in TASK_KINDS]
        parts = ([f"{', '.join(kinds)} tasks"] if kinds else []) + ([", ".join(names)] if names else [])
        return " and ".join(parts)


@dataclass(frozen=True)
class DatasetSpec(_Serializable):
    """A task: data of one ``kind`` loaded by the lazy ``loader`` path.

    The loader is called as ``loader(data_dir: Path | None, seed: int) -> genbench.data.Dataset`` and
    raises :class:`genbench.errors.DataUnavailableError` when its files are not on this machine.
    """

    name: str
    kind: str
    loader: str
    description: str
    plugin: str = ""
    plugin_version: str = ""

    @_checked
    def __post_init__(self) -> None:
        _check_name("task", self.name)
        if self.kind not in TASK_KINDS:
            raise SpecError(f"Task {self.name!r}: kind {self.kind!r} must be one of {list(TASK_KINDS)}.")
        if not isinstance(self.loader, str) or not CLASS_PATH_RE.match(self.loader):
            raise SpecError(f"Task {self.name!r}: loader {self.loader!r} must be a lazy path like 'package.module:function'.")
        _check_one_line(f"Task {self.name!r}", "description", self.description)


@dataclass(frozen=True)
class MetricSpec(_Serializable):
    """A quality metric for tasks of the given ``kinds``.

    ``factory`` is a lazy path to a callable returning a :class:`genbench.metrics.Metric`.
    ``higher_is_better`` is None for a two-sided metric, one whose best value is ``target`` with worse on
    both sides (e.g. a test statistic where 0 means "like held-out data"): such a metric is never ranked by.
    """

    name: str
    kinds: tuple[str, ...]
    factory: str
    unit: str
    higher_is_better: bool | None
    description: str
    plugin: str = ""
    plugin_version: str = ""
    target: float | None = None

    @_checked
    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_RE.match(self.name.replace("_", "-")):
            raise SpecError(f"Invalid metric name {self.name!r}: use lower-case letters, digits and single dashes or "
                            "underscores (for example 'class-kl').")
        object.__setattr__(self, "kinds", _as_tuple(self.kinds))
        if not self.kinds or any(k not in TASK_KINDS for k in self.kinds):
            raise SpecError(f"Metric {self.name!r}: kinds must be drawn from {list(TASK_KINDS)}.")
        if not isinstance(self.factory, str) or not CLASS_PATH_RE.match(self.factory):
            raise SpecError(f"Metric {self.name!r}: factory {self.factory!r} must be a lazy path 'package.module:callable'.")
        two_sided = self.higher_is_better is None
        if not (isinstance(self.higher_is_better, bool) or two_sided):
            raise SpecError(f"Metric {self.name!r}: higher_is_better must be True, False, or None with a target.")
        target_ok = isinstance(self.target, (int, float)) and not isinstance(self.target, bool) \
            and math.isfinite(self.target)
        if two_sided != target_ok or (self.target is not None and not target_ok):
            raise SpecError(f"Metric {self.name!r}: give a finite target exactly when higher_is_better is None "
                            "(a two-sided metric: the closer to target, the better).")
        _check_one_line(f"Metric {self.name!r}", "unit", self.unit, empty=True)
        _check_one_line(f"Metric {self.name!r}", "description", self.description)


@dataclass(frozen=True)
class ReporterSpec(_Serializable):
    """A report writer: ``writer`` is a lazy path to ``write(run: RunResult, directory: Path) -> Path``."""

    name: str
    writer: str
    description: str
    plugin: str = ""
    plugin_version: str = ""

    @_checked
    def __post_init__(self) -> None:
        _check_name("reporter", self.name)
        if not isinstance(self.writer, str) or not CLASS_PATH_RE.match(self.writer):
            raise SpecError(f"Reporter {self.name!r}: writer {self.writer!r} must be a lazy path 'package.module:function'.")
        _check_one_line(f"Reporter {self.name!r}", "description", self.description)


# --------------------------------------------------------------------------- model contract


@dataclass(frozen=True)
class TensorSpec(_Serializable):
    """One input or output of an exported graph.

    ``shape`` holds ints for fixed axes and strings for symbolic ones (``"batch"``, ``"seq"``).
    For inputs, ``source`` says where the harness draws values from: ``normal`` (standard normal),
    ``uniform`` ([0, 1)), ``tokens`` (integers in ``[0, vocab)``), ``data`` (the task's test split).
    For outputs, ``low``/``high`` bound the values (``None`` = unbounded): finite numbers (stored as floats)
    with ``low <= high``, refused otherwise; the harness checks them.
    """

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    source: str | None = None
    low: float | None = None
    high: float | None = None
    vocab: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))
        if not self.name or not isinstance(self.name, str):
            raise SpecError("TensorSpec: name must be a non-empty string.")
        if self.dtype not in DTYPES:
            raise SpecError(f"TensorSpec {self.name!r}: dtype {self.dtype!r} must be one of {list(DTYPES)}.")
        for d in self.shape:
            if not (isinstance(d, str) and d) and not (isinstance(d, int) and d > 0):
                raise SpecError(f"TensorSpec {self.name!r}: shape {list(self.shape)} may hold positive ints and axis names only.")
        if self.source is not None and self.source not in INPUT_SOURCES:
            raise SpecError(f"TensorSpec {self.name!r}: source {self.source!r} must be one of {list(INPUT_SOURCES)}.")
        if self.source == "tokens" and not self.vocab:
            raise SpecError(f"TensorSpec {self.name!r}: source 'tokens' needs vocab (the number of token values).")
        if self.source == "timestep" and not (isinstance(self.vocab, int) and self.vocab > 0):
            raise SpecError(f"TensorSpec {self.name!r}: source 'timestep' needs vocab = T, the number of diffusion "
                            "steps of its schedule.")
        # a NaN bound would switch the range check off (every comparison with NaN is false): refuse it
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                      or not math.isfinite(value)):
                raise SpecError(f"TensorSpec {self.name!r}: {bound} {value!r} must be a finite number, or None for "
                                "no bound.")
            if value is not None:
                object.__setattr__(self, bound, float(value))  # numpy scalars too: results files hold plain floats
        if self.low is not None and self.high is not None and self.low > self.high:
            raise SpecError(f"TensorSpec {self.name!r}: low {self.low!r} is above high {self.high!r}.")

    def concrete_shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        """The shape with every symbolic axis replaced by ``sizes[name]``."""
        return tuple(sizes[d] if isinstance(d, str) else d for d in self.shape)


@dataclass(frozen=True)
class GraphSpec(_Serializable):
    """One exported ONNX graph: its ``role``, file (relative to the bundle directory) and tensors.

    ``attrs`` holds facts the harness needs about a role, recorded with the metrics computed from it:

    * ``"data"``: how inputs with source ``data`` are prepared: ``"continuous"`` (the task's values as they
      are, the default), ``"binarized"`` (each value x replaced by a Bernoulli(x) draw with a fixed
      seed, the same for every model: the standard stochastically binarised evaluation set)
      or ``"dequantized"`` (pixels quantised to the task's L levels, then uniform noise added: (k + u) / L,
      fixed seed; a continuous density of these gives a bound on the discrete likelihood, Theis et al. 2016).
    * ``"importance_samples"``: for role ``likelihood`` (alias ``elbo``), the number k of importance samples
      (k = 1: the ELBO; k > 1: the IWAE bound).
    * ``"bound"``: for role ``likelihood``, what its output is: ``"exact"`` (an exact log-likelihood, e.g. a
      flow), ``"elbo"`` or ``"iwae"``. Without it, ``importance_samples`` decides (1: ``"elbo"``, more:
      ``"iwae"``). Every report shows it.
    * role ``denoise``: ``"prediction"`` (``"epsilon"`` or ``"v"``), the noise schedule (``"schedule"``:
      ``"linear"`` with ``"beta_start"``/``"beta_end"``, or ``"cosine"``; or ``"betas"``, a list of T values) and
      ``"scale"`` (``"task"``: the graph works on the task's values; ``"symmetric"``: on them mapped to [-1, 1]).
      See :mod:`genbench.runtime.roles.denoise`.

    The role ``elbo`` is the ``likelihood`` role under its older name: a graph keeps the name its plugin gave it
    (``torch_module`` is asked for it by that name), and genbench drives it as ``canonical_role``.
    """

    role: str
    path: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.canonical_role not in ROLES:
            raise SpecError(f"Graph role {self.role!r} is not one of {list(ROLES)} (or their older names "
                            f"{', '.join(f'{a} = {b}' for a, b in ROLE_ALIASES.items())}).")
        object.__setattr__(self, "attrs", dict(self.attrs or {}))
        if self.attrs.get("data", "continuous") not in DATA_TRANSFORMS:
            raise SpecError(f"Graph {self.role!r}: attrs['data'] must be one of {list(DATA_TRANSFORMS)}.")
        if "bound" in self.attrs and self.attrs["bound"] not in LIKELIHOOD_BOUNDS:
            raise SpecError(f"Graph {self.role!r}: attrs['bound'] must be one of {list(LIKELIHOOD_BOUNDS)}, "
                            f"got {self.attrs['bound']!r}.")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if not self.inputs or not self.outputs:
            raise SpecError(f"Graph {self.role!r}: declare at least one input and one output TensorSpec.")
        for t in (*self.inputs, *self.outputs):
            if not isinstance(t, TensorSpec):
                raise SpecError(f"Graph {self.role!r}: inputs and outputs must be TensorSpec objects, got {type(t).__name__}.")
        for t in self.inputs:
            if t.source is None:
                raise SpecError(f"Graph {self.role!r}: input {t.name!r} needs a source ({', '.join(INPUT_SOURCES)}).")

    @property
    def canonical_role(self) -> str:
        """The role genbench drives the graph as (``elbo`` is ``likelihood``)."""
        return ROLE_ALIASES.get(self.role, self.role)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GraphSpec":
        return cls(
            role=data["role"], path=data["path"],
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
            attrs=dict(data.get("attrs") or {}),
        )


@dataclass(frozen=True)
class OnnxBundle(_Serializable):
    """What ``export_onnx`` returns: the directory the graphs were written to and their specs."""

    directory: Path
    graphs: tuple[GraphSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory", Path(self.directory))
        object.__setattr__(self, "graphs", tuple(self.graphs))
        roles = [g.canonical_role for g in self.graphs]
        if len(set(roles)) != len(roles):
            raise SpecError(f"OnnxBundle: each role may appear once, got {roles}.")

    def graph(self, role: str) -> GraphSpec:
        role = ROLE_ALIASES.get(role, role)
        for g in self.graphs:
            if g.canonical_role == role:
                return g
        raise SpecError(f"The bundle has no graph with role {role!r} (it has {[g.role for g in self.graphs]}).")

    def path(self, role: str) -> Path:
        return self.directory / self.graph(role).path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "OnnxBundle":
        return cls(directory=Path(data["directory"]), graphs=tuple(GraphSpec.from_dict(g) for g in data["graphs"]))


@dataclass(frozen=True)
class TrainConfig(_Serializable):
    """What the harness asks of ``train``.

    ``steps`` is ``None`` for the model's own default for ``profile`` (``smoke`` is a tiny budget for
    CI, ``default`` trains properly); an int overrides it (``0`` leaves the model untrained).
    """

    seed: int = 0
    device: str = "cpu"
    profile: str = "default"
    steps: int | None = None


@dataclass(frozen=True)
class TrainSummary(_Serializable):
    """What ``train`` returns. ``loss_history`` maps a loss name to its values, one per logged step."""

    steps: int
    seconds: float
    loss_history: Mapping[str, Sequence[float]] = field(default_factory=dict)
    log_every: int = 1

    @property
    def final_loss(self) -> dict[str, float]:
        return {k: float(v[-1]) for k, v in self.loss_history.items() if len(v)}

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["final_loss"] = _jsonable(self.final_loss)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainSummary":
        return cls(steps=data["steps"], seconds=data["seconds"],
                   loss_history={k: list(v) for k, v in data.get("loss_history", {}).items()},
                   log_every=data.get("log_every", 1))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MetricValue(_Serializable):
    """One quality figure with its unit, direction, sample count and provenance.

    ``floor`` is the value the same metric gives real held-out data against real data (for FD:
    train split against test split) at this row's ``n``: the best a model can be expected to reach.
    ``std`` is the spread of an estimate over repeats, and ``std_of`` says over what (e.g. "100 subsets of
    1,000"); it is never a standard error. ``stderr`` is the standard error of a mean over ``n`` examples.
    ``params`` holds the settings the value depends on (bound, k, data preparation).

    ``key`` is the comparability key (:mod:`genbench.comparability`): two values are ranked or diffed
    against each other only when their keys are equal. With several training seeds, ``value`` is the mean
    over seeds, ``per_seed`` the value of each seed (in the order of ``JobResult.seeds``), ``seed_std``
    their standard deviation and ``ci95`` the 95% t-interval of the mean. ``error`` (with ``value`` None)
    says why the metric has no value for this job; the job's other metrics stand.

    Direction: ``higher_is_better`` True or False; or None for a two-sided metric, whose best value is
    ``target`` (the closer, the better; e.g. ``copy-ct``: 0 is held-out data, below it copying, above it
    under-fitting). A two-sided metric is never ranked by, and a move away from ``target`` is a regression.
    ``params["flag"]``, when present, is a warning about the row a report shows beside the model's name;
    ``params["copies"]`` (``"training"`` or ``"test"``) says the model copies that split, which keeps it
    out of the ranking (:mod:`genbench.metrics.memorization`). ``params["replayed"]`` (True) says the value lies
    beyond its floor's interval, better than real data at this n (:data:`REPLAY_FLAG`): that too keeps a model
    out of the ranking.
    """

    value: float | None
    unit: str
    higher_is_better: bool | None
    n: int | None = None
    extractor: str | None = None
    floor: float | None = None
    std: float | None = None
    stderr: float | None = None
    note: str | None = None
    params: Mapping[str, Any] | None = None
    key: Mapping[str, Any] | None = None
    std_of: str | None = None
    per_seed: tuple[float | None, ...] | None = None
    seed_std: float | None = None
    ci95: tuple[float, float] | None = None
    error: str | None = None
    target: float | None = None
    #: the kind of process that made the value (:mod:`genbench.stages`): ``genbench`` (a score process, where no
    #: plugin code runs), ``plugin`` (a plugin's own metric, in a process of its own) or ``inline`` (everything in
    #: one process, ``--executor inline``: never ranked)
    computed_by: str | None = None
    #: the 95% sampling interval of this one run's value (the samples and the reference set are random: a
    #: bootstrap over both, an exact binomial interval for a fraction, a fit's interval for FD∞), and what it is
    #: (``interval_of``: which sets were resampled and how many times). With several seeds it is None: ``ci95``
    #: over the seeds takes its place (each seed's value, and so its sampling noise, is in their spread).
    interval: tuple[float, float] | None = None
    interval_of: str | None = None
    #: the floor's spread: the 95% prediction interval of the floor's value over several training subsets (real
    #: data at this n lands there), and what it is
    floor_interval: tuple[float, float] | None = None
    floor_of: str | None = None


#: what a value beyond its floor's 95% interval says (FD, KID, precision, recall): nearer the test split than real
#: training data of the same size is, which a model that learned the distribution cannot be
REPLAY_FLAG = "closer to the test data than real data is: replayed data?"


@dataclass(frozen=True)
class PerfRecord(_Serializable):
    """One timing measurement: a runtime at one batch size, with raw-sample statistics."""

    runtime: str
    provider: str
    device: str
    batch_size: int
    threads: int
    iterations: int
    seconds: float
    latency_ms: Mapping[str, float]
    throughput_per_s: float
    valid: bool
    invalid_reason: str | None = None
    background_cpu_cores: float | None = None
    noisy: bool = False
    graph: str = "sample"
    #: forward: one graph run per call; generate: the samples of one call made through the graphs (see ``note``)
    scenario: str = "forward"
    unit: str = "items/s"  # of throughput_per_s: items per second (forward), samples per second (generate)
    first_call_ms: float | None = None  # cold start: the first call, excluded from the statistics
    session_create_ms: float | None = None  # ONNX Runtime session creation (onnxruntime records only)
    gflops_per_s: float | None = None  # achieved, from the graph's counted FLOPs (forward records, and a sample graph's generate)
    alone: bool = False  # measured in the timing stage, with nothing else of genbench running
    #: each figure judged on its own: ``p50``..``p99`` (enough samples beyond them), ``throughput`` (its duration)
    figure_validity: Mapping[str, bool] | None = None
    median_ci_ms: tuple[float, float] | None = None  # the 95% interval of the p50 (distribution-free)
    stop_reason: str | None = None  # why the measurement stopped: its median was tight, or max_seconds
    math_mode: str | None = None  # e.g. "fp32", or on CUDA "fp32, TF32 off (...)"
    providers_used: Mapping[str, int] | None = None  # ONNX Runtime: nodes per provider that really ran them
    clock: str | None = None  # what the latencies were read on: the host clock, around call + synchronisation
    device_time_ms: Mapping[str, Any] | None = None  # a device's own clock (CUDA events), never mixed with the above
    steps: int | None = None  # generate: graph calls per generated sample
    note: str | None = None  # generate: what one call produces and what it includes
    #: the p50 latency (ms) measured by each of ``--timing-repeats K`` fresh timing processes, in order; this
    #: record's own figures are the last process's. None: one process
    process_p50_ms: tuple[float, ...] | None = None
    #: the kind of process that measured it: ``genbench`` (a time process: ONNX Runtime, or torch running the program
    #: torch.export captured), ``plugin`` (torch in the plugin's own process, where torch.export could not capture the
    #: module: never ranked) or ``inline`` (``--executor inline``: never ranked)
    computed_by: str | None = None
    #: the identity hash of the machine that measured it (:func:`genbench.perf.machine.machine_identity`):
    #: figures of different machines are never ranked or gated together
    machine: str | None = None
    #: ``gflops_per_s`` as a share of the machine's physical peak (clock × FLOP/cycle × threads) and of its
    #: practical GEMM ceiling (the best matmul rate measured in the run)
    share_of_peak: float | None = None
    share_of_ceiling: float | None = None
    #: why this record cannot be right (above the physical peak): never published as a result
    measurement_error: str | None = None


@dataclass(frozen=True)
class JobError(_Serializable):
    phase: str
    type: str
    message: str


@dataclass(frozen=True)
class TimingResult(_Serializable):
    """The timing stage of one job: ``status`` done or failed; ``info`` holds how it ran (``alone``, the
    seed whose graphs were timed, where the torch module came from)."""

    status: str
    performance: tuple[PerfRecord, ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)
    memory: Mapping[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    error: JobError | None = None
    warnings: tuple[str, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TimingResult":
        d = dict(data)
        d["error"] = JobError.from_dict(d["error"]) if d.get("error") else None
        d["performance"] = tuple(PerfRecord.from_dict(p) for p in d.get("performance") or ())
        d["warnings"] = tuple(d.get("warnings") or ())
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _quality_from_dict(data: Any) -> dict[str, MetricValue]:
    return {k: MetricValue.from_dict(v) for k, v in (data or {}).items()}


@dataclass(frozen=True)
class SeedResult(_Serializable):
    """Build and score of one job with one training seed: train (or restore), export, validate, sample,
    quality. ``status`` is ok, failed (``error: {phase, type, message}``) or skipped (the model declined the
    task with :class:`genbench.errors.TaskDeclined`; ``reason`` says why)."""

    seed: int
    status: str
    error: JobError | None = None
    train: Mapping[str, Any] | None = None
    export: Mapping[str, Any] | None = None
    quality: Mapping[str, MetricValue] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    seconds: float | None = None
    phase_seconds: Mapping[str, float] = field(default_factory=dict)
    memory: Mapping[str, Any] = field(default_factory=dict)
    cache: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    node: str | None = None
    reason: str | None = None
    #: the kind of process that scored this seed (``genbench``, or ``inline``); its build ran in a plugin process
    computed_by: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SeedResult":
        d = dict(data)
        d["error"] = JobError.from_dict(d["error"]) if d.get("error") else None
        d["quality"] = _quality_from_dict(d.get("quality"))
        d["warnings"] = tuple(d.get("warnings") or ())
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class JobResult(_Serializable):
    """The outcome of one job (model × task × device, over ``seeds``). ``status`` is ok, failed, skipped
    or pending (work left for ``genbench run --resume``).

    ``seed_results`` holds each seed's build-and-score result; ``quality`` their aggregate (the mean over
    seeds, each value's ``per_seed`` list kept); ``train``, ``export``, ``files`` and ``cache`` are those
    of the first seed that succeeded, whose graphs are the ones timed. ``timing`` says how the timing
    stage went: ``{"status": done|pending|failed|off, "reason"?, "alone": bool, "seed": int}``.
    """

    model: str
    family: str
    plugin: str
    plugin_version: str
    task: str
    device: str
    status: str
    error: JobError | None = None
    reason: str | None = None
    train: Mapping[str, Any] | None = None
    export: Mapping[str, Any] | None = None
    quality: Mapping[str, MetricValue] = field(default_factory=dict)
    performance: tuple[PerfRecord, ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)
    seconds: float | None = None
    phase_seconds: Mapping[str, float] = field(default_factory=dict)
    memory: Mapping[str, Any] = field(default_factory=dict)
    node: str | None = None  # the machine the job ran on
    #: the model cache: ``{"key", "status": hit|stored|rebuilt|unsupported|not-stored|unreadable, "reason"?}``
    cache: Mapping[str, Any] | None = None
    #: things that did not fail the job but a reader should know (e.g. threads a plugin left running)
    warnings: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    seed_results: tuple[SeedResult, ...] = ()
    timing: Mapping[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobResult":
        d = dict(data)
        d["error"] = JobError.from_dict(d["error"]) if d.get("error") else None
        d["quality"] = _quality_from_dict(d.get("quality"))
        d["performance"] = tuple(PerfRecord.from_dict(p) for p in d.get("performance") or ())
        d["warnings"] = tuple(d.get("warnings") or ())
        d["seeds"] = tuple(d.get("seeds") or (0,))
        d["seed_results"] = tuple(SeedResult.from_dict(r) for r in d.get("seed_results") or ())
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class RunResult(_Serializable):
    """A whole run, exactly as stored in ``run.json`` (schema ``genbench.run/2``; a ``/1`` file is read
    into the same objects, with what it lacks marked unknown)."""

    schema: str
    run_id: str
    genbench_version: str
    started_at: str
    finished_at: str | None
    command: str
    config: Mapping[str, Any]
    environment: Mapping[str, Any]
    jobs: tuple[JobResult, ...] = ()
    plugin_failures: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunResult":
        d = dict(data)
        d["jobs"] = tuple(JobResult.from_dict(j) for j in d.get("jobs", ()))
        d["plugin_failures"] = tuple(d.get("plugin_failures", ()))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def failed(self) -> list[JobResult]:
        return [j for j in self.jobs if j.status == "failed"]


def model_name(text: str) -> str:
    """A row name from a file name: lower-case letters, digits and single dashes (``My_Samples.v2`` →
    ``my-samples-v2``)."""
    name = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return name[:64].strip("-") or "samples"


def typed_name(text: str) -> str:
    """A row name the user typed (``--name``): kept exactly as typed, or refused in one line naming the form it
    would need, never changed silently (``model_name`` makes one from a file's name)."""
    name = model_name(text)
    if not str(text).strip():
        raise ConfigError("--name '' is empty: pass a row name (lower-case letters, digits and single dashes), or "
                          "leave --name out for the default.")
    if name != text:
        raise ConfigError(f"--name {text!r} is not a row name (lower-case letters, digits and single dashes, at "
                          f"most 64 characters): pass --name {name} instead.")
    return name

