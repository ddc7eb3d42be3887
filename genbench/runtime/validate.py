"""Bundle validation: nothing a plugin exports is trusted before it passes every check here."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import BundleError
from ..types import GraphSpec, OnnxBundle, TensorSpec
from . import draw_inputs, make_session, prepare_data
from .checks import check_outputs
from .roles import GENERATORS, role_of
from .roles.logits import check_sizes as logits_sizes
from .checks import shape_text as _shape

MAX_GRAPH_BYTES = 1 << 30  # 1 GiB (protobuf's own limit is 2 GiB); $GENBENCH_MAX_GRAPH_MB overrides
MAX_GRAPH_ENV = "GENBENCH_MAX_GRAPH_MB"


def max_graph_bytes() -> int:
    """The cap on a graph file's size: ``$GENBENCH_MAX_GRAPH_MB`` MiB (a number above 0), else 1 GiB."""
    from ..settings import env_number

    return int(env_number(MAX_GRAPH_ENV, MAX_GRAPH_BYTES / 2**20, "a size in MiB") * 2**20)


PARITY_BATCH = 8
PARITY_ATOL = 1e-4
PARITY_RTOL = 1e-4

_ONNX_DTYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 2: "uint8", 9: "bool"}


def graph_path(bundle: OnnxBundle, graph: GraphSpec) -> Path:
    """The graph's file, refusing paths that leave the bundle directory."""
    root = bundle.directory.resolve()
    path = (root / graph.path).resolve()
    if Path(graph.path).is_absolute() or root not in path.parents:
        raise BundleError(f"Graph '{graph.role}' path {graph.path!r} leaves the bundle directory; "
                          "write graphs inside the directory export_onnx was given.")
    if not path.is_file():
        raise BundleError(f"Graph '{graph.role}' file {graph.path!r} does not exist in the bundle directory.")
    return path


def check_graph_file(path: Path, graph: GraphSpec, max_bytes: int = MAX_GRAPH_BYTES) -> Any:
    """Size cap, ``onnx.checker`` (with shape inference) and the declared names, dtypes and shapes."""
    import onnx

    size = path.stat().st_size
    if size > max_bytes:
        raise BundleError(f"Graph '{graph.role}' is {size / 2**20:.3g} MiB, over the {max_bytes / 2**20:.3g} MiB cap; "
                          f"export a smaller model or raise the cap (${MAX_GRAPH_ENV}).")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # noqa: BLE001 - any checker failure is the bundle's fault
        raise BundleError(f"Graph '{graph.role}' fails onnx.checker: {str(exc).splitlines()[0]}") from exc
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in initializers]
    _match_values(graph.role, "input", inputs, graph.inputs)
    _match_values(graph.role, "output", list(proto.graph.output), graph.outputs)
    return proto


def _match_values(role: str, kind: str, values: list[Any], specs: tuple[TensorSpec, ...]) -> None:
    names = [v.name for v in values]
    if names != [s.name for s in specs]:
        raise BundleError(f"Graph '{role}' has {kind}s {names}, its spec declares {[s.name for s in specs]}.")
    for v, s in zip(values, specs):
        tt = v.type.tensor_type
        dtype = _ONNX_DTYPES.get(tt.elem_type, f"onnx type {tt.elem_type}")
        if dtype != s.dtype:
            raise BundleError(f"Graph '{role}' {kind} '{s.name}' is {dtype}, its spec declares {s.dtype}.")
        dims = tt.shape.dim
        if len(dims) != len(s.shape):
            raise BundleError(f"Graph '{role}' {kind} '{s.name}' has rank {len(dims)}, its spec declares "
                              f"shape {_shape(s.shape)}.")
        for axis, (d, want) in enumerate(zip(dims, s.shape)):
            fixed = d.dim_value if d.HasField("dim_value") else None
            if isinstance(want, int) and fixed is not None and fixed != want:
                raise BundleError(f"Graph '{role}' {kind} '{s.name}' axis {axis} is {fixed}, its spec declares {want}.")
            if isinstance(want, str) and fixed is not None:
                raise BundleError(f"Graph '{role}' {kind} '{s.name}' axis {axis} is fixed to {fixed}, its spec declares "
                                  f"it symbolic ('{want}'); export with a dynamic axis (and an example batch of 2+).")


def check_role_contract(graph: GraphSpec, dataset: Any = None) -> None:
    """What the graph's role promises beyond its own spec (:mod:`genbench.runtime.roles`), and that it fits the
    task's data."""
    role_of(graph.role).contract(graph, dataset)


def check_roles_fit_task(roles: Sequence[str], dataset: Any) -> None:
    """The graphs a task is scored through are there: text is sampled and scored by a ``logits`` graph."""
    if dataset is not None and dataset.kind == "text" and "logits" not in roles:
        raise BundleError(f"Task '{dataset.name}' is a text task, sampled and scored through a 'logits' graph "
                          f"(int64 tokens [batch, seq] -> logits [batch, seq, {dataset.vocab}]); the graphs given are: "
                          f"{', '.join(roles) or 'none'}.")


def logits_check_sizes(graph: GraphSpec) -> list[tuple[int, int]]:
    """(batch, seq) pairs a logits graph is run at: short, medium and its full declared context."""
    return logits_sizes(graph)


def check_role_values(graph: GraphSpec, outputs: list[np.ndarray], dataset: Any = None) -> None:
    """Values the graph's role can never take (a discrete likelihood is at most 1, its log at most 0; a
    generating graph's samples lie in the task's shape and range)."""
    role_of(graph.role).check_values(graph, outputs, dataset)


def parity_feeds(graph: GraphSpec, seed: int, data: np.ndarray | None) -> dict[str, np.ndarray]:
    """The inputs on which a graph, its torch module and the module's exported program must agree: genbench's
    own draw (``data``: the rows a graph with a ``data`` input gets; the build stage gives the training split,
    which is all a build process needs)."""
    return draw_inputs(graph, PARITY_BATCH, np.random.default_rng(seed + 1), prepare_data(graph, data),
                       role_of(graph.role).full_sizes(graph))


def validate_bundle(bundle: OnnxBundle, torch_module: Callable[[str], Any] | None, *, device: str = "cpu",
                    data: np.ndarray | None = None, seed: int = 0, required_roles: tuple[str, ...] = (),
                    max_bytes: int | None = None, dataset: Any = None, parity_data: np.ndarray | None = None,
                    saved_outputs: Callable[[str, Mapping[str, np.ndarray]], list[np.ndarray] | None] | None = None,
                    timed_batch_sizes: Sequence[int] = (), sample_counts: Sequence[int] = (),
                    causality: bool = True, batch_independence: bool = True) -> dict[str, dict[str, Any]]:
    """Check every graph of ``bundle``; return the ``export`` section of the job result.

    Parity, on :func:`parity_feeds` (from ``parity_data``, else ``data``): the graph in ONNX Runtime against
    ``torch_module(role)`` (in a score process, the program ``torch.export`` captured, loaded without the
    plugin's code; None where there is none) and against ``saved_outputs(role, feeds)`` (the plugin module's
    own outputs on those inputs, saved by the build process). ``torch_module=None`` and no saved outputs
    (graphs supplied as files, with no torch module) skips the parity check, and the report says
    ``parity: not available`` instead of giving a difference.

    ``dataset`` (a :class:`genbench.data.Dataset`) also checks that the graphs fit the task (vocabulary,
    pixel levels, context). Raises :class:`BundleError` naming the graph and what is wrong.

    Graphs that lie: ``causality`` checks that a ``logits`` graph does not look ahead
    (:mod:`genbench.runtime.causality`), ``batch_independence`` that every graph's rows come out the same at every
    batch size genbench runs it at (:mod:`genbench.runtime.batching`): validation's, sampling's (``sample_counts``:
    the samples a job draws), the likelihood's and ``timed_batch_sizes`` (the profile's, when the job is timed).
    Their outcomes are the graph's ``causality`` and ``batch_independence`` entries.
    """
    if not isinstance(bundle, OnnxBundle):
        raise BundleError(f"export_onnx returned {type(bundle).__name__}, expected genbench.OnnxBundle.")
    max_bytes = max_bytes if max_bytes is not None else max_graph_bytes()
    for role in required_roles:
        if role not in [g.role for g in bundle.graphs]:
            raise BundleError(f"The bundle has no '{role}' graph (it has {[g.role for g in bundle.graphs]}); "
                              f"this task needs one.")
    if not any(role_of(g.role).generates for g in bundle.graphs):
        raise BundleError(f"The bundle has no graph genbench can draw samples from (one of "
                          f"{', '.join(repr(r) for r in GENERATORS)}); it has {[g.role for g in bundle.graphs]}.")
    check_roles_fit_task([g.role for g in bundle.graphs], dataset)
    report: dict[str, dict[str, Any]] = {}
    for graph in bundle.graphs:
        check_role_contract(graph, dataset)
        path = graph_path(bundle, graph)
        proto = check_graph_file(path, graph, max_bytes)
        session = make_session(path, device)
        rng = np.random.default_rng(seed)
        graph_data = prepare_data(graph, data)
        role = role_of(graph.role)
        checks = role.check_sizes(graph)
        for b, extra in checks:
            feeds = draw_inputs(graph, b, rng, graph_data, extra)
            try:
                outs = session.run([s.name for s in graph.outputs], feeds)
            except Exception as exc:  # noqa: BLE001
                where = f"batch {b}"
                if graph.role == "logits":
                    where += f" and sequence length {list(extra.values())[0]}"
                    if list(extra.values())[0] == graph.attrs["context_length"]:
                        where += " (its declared context_length)"
                raise BundleError(f"Graph '{graph.role}' fails in ONNX Runtime at {where}: {_ort_message(exc)}") from exc
            check_outputs(graph.role, outs, graph.outputs, {"batch": b, **_sizes(graph, feeds)})
            role.check_values(graph, outs, dataset)
        report[graph.role] = _graph_report(path, proto, checks, session, graph)
        if causality:
            found = causality_of(graph, session, dataset, seed)
            if found is not None:
                report[graph.role]["causality"] = found
        if batch_independence:
            report[graph.role]["batch_independence"] = batch_independence_of(
                graph, session, dataset, graph_data, seed, timed_batch_sizes, sample_counts)
        module = torch_module(graph.role) if torch_module is not None else None
        feeds = parity_feeds(graph, seed, parity_data if parity_data is not None else data)
        references: list[tuple[str, list[np.ndarray]]] = []
        saved = saved_outputs(graph.role, feeds) if saved_outputs is not None else None
        if saved is not None:  # first: the module the plugin wrote, as its build process ran it
            references.append((f"torch_module('{graph.role}') (its outputs in the build process)", saved))
        if module is not None:
            from .programs import run_module

            what = f"torch_module('{graph.role}')" if saved_outputs is None else \
                f"the program torch.export captured from torch_module('{graph.role}')"
            references.append((what, run_module(module, graph, feeds, device)))
        if not references:  # a graph supplied as a file (genbench run --onnx): nothing to check it against
            report[graph.role].update(parity_max_abs_diff=None, parity_tolerance=None, parity=PARITY_NOT_AVAILABLE)
            continue
        ort_outs = session.run([s.name for s in graph.outputs], feeds)
        diff, tol = 0.0, 0.0
        for what, refs in references:
            d, t = _parity(graph, what, refs, ort_outs)
            diff, tol = max(diff, d), max(tol, t)
        report[graph.role].update(parity_max_abs_diff=diff, parity_tolerance=tol,
                                  parity_against=[what for what, _ in references])
    return report


def causality_of(graph: GraphSpec, session: Any, dataset: Any = None, seed: int = 0) -> dict[str, Any] | None:
    """:func:`genbench.runtime.causality.check_causality` of a ``logits`` graph on its ORT ``session``, at every
    sequence length validation runs it at and the one genbench scores it at; None for other roles (none returns
    per-position conditionals)."""
    if role_of(graph.role).name != "logits":
        return None
    from .batching import logits_length
    from .causality import check_causality

    lengths = {t for _, t in logits_check_sizes(graph)} | {logits_length(graph, dataset, 1, ["likelihood"])}
    names = [s.name for s in graph.outputs]
    return check_causality(graph, lambda feeds: session.run(names, dict(feeds)), sorted(lengths), seed=seed,
                           atol=PARITY_ATOL, rtol=PARITY_RTOL)


def batch_independence_of(graph: GraphSpec, session: Any, dataset: Any = None, data: np.ndarray | None = None,
                          seed: int = 0, timed_batch_sizes: Sequence[int] = (), sample_counts: Sequence[int] = ()
                          ) -> dict[str, Any]:
    """:func:`genbench.runtime.batching.check_batch_independence` of ``graph`` on its ORT ``session``, at every
    batch size of :func:`genbench.runtime.batching.batch_sizes_used` (``data``: prepared for the graph)."""
    from .batching import batch_sizes_used, check_batch_independence

    validation = sorted({b for b, _ in role_of(graph.role).check_sizes(graph)} | {PARITY_BATCH})
    sizes: dict[int, list[str]] = {}
    for n in (sample_counts or (None,)):
        for b, why in batch_sizes_used(graph, dataset, validation=validation, samples=n,
                                       timed=timed_batch_sizes).items():
            sizes.setdefault(b, [])
            sizes[b] += [w for w in why if w not in sizes[b]]
    names = [s.name for s in graph.outputs]
    return check_batch_independence(graph, lambda feeds: session.run(names, dict(feeds)), dict(sorted(sizes.items())),
                                    data=data, dataset=dataset, seed=seed, atol=PARITY_ATOL, rtol=PARITY_RTOL)


def check_graphs_behave(bundle: OnnxBundle, check: str, *, device: str = "cpu", data: np.ndarray | None = None,
                        seed: int = 0, dataset: Any = None, timed_batch_sizes: Sequence[int] = (),
                        sample_counts: Sequence[int] = ()) -> dict[str, dict[str, Any]]:
    """One of the checks of graphs that lie on every graph of an already validated ``bundle`` (``check``:
    ``causality`` or ``batch-independence``), each graph in a session of its own: what ``check-plugin`` reports
    apart from the rest of validation. Returns the outcome per role that was checked; raises
    :class:`BundleError`."""
    out: dict[str, dict[str, Any]] = {}
    for graph in bundle.graphs:
        session = make_session(graph_path(bundle, graph), device)
        if check == "causality":
            found = causality_of(graph, session, dataset, seed)
            if found is not None:
                out[graph.role] = found
        elif check == "batch-independence":
            out[graph.role] = batch_independence_of(graph, session, dataset, prepare_data(graph, data), seed,
                                                    timed_batch_sizes, sample_counts)
        else:  # pragma: no cover - a caller's typo
            raise ValueError(f"unknown check {check!r}")
    return out


def _parity(graph: GraphSpec, what: str, refs: list[np.ndarray], ort_outs: list[np.ndarray]) -> tuple[float, float]:
    """The largest difference between ``refs`` and the graph's outputs, and its tolerance; BundleError past it."""
    if len(refs) != len(ort_outs):
        raise BundleError(f"{what} returns {len(refs)} outputs, the graph {len(ort_outs)}.")
    diff, tol = 0.0, 0.0
    for r, o in zip(refs, ort_outs):
        r = np.asarray(r)
        if r.shape != o.shape:
            raise BundleError(f"{what} output shape {_shape(r.shape)} differs from the ONNX graph's {_shape(o.shape)}.")
        diff = max(diff, float(np.max(np.abs(r.astype(np.float64) - o.astype(np.float64)), initial=0.0)))
        tol = max(tol, PARITY_ATOL + PARITY_RTOL * float(np.max(np.abs(r.astype(np.float64)), initial=0.0)))
    if not np.isfinite(diff) or diff > tol:
        raise BundleError(f"Graph '{graph.role}' disagrees with {what}: max abs difference {diff:.3g} over tolerance "
                          f"{tol:.3g} on a fixed input.")
    return diff, tol


#: ``export.graphs.<role>.parity`` of a graph that has no torch module to be checked against
PARITY_NOT_AVAILABLE = "not available: no torch module (graph supplied as an ONNX file)"


def _graph_report(path: Path, proto: Any, checks: list, session: Any, graph: GraphSpec) -> dict[str, Any]:
    """``export.graphs.<role>``: the file, and what the graph was driven with (each input's source, each
    output's declared range, the role's attributes), as validated."""
    def tensors(specs: tuple[TensorSpec, ...]) -> list[dict[str, Any]]:
        return [{k: v for k, v in t.to_dict().items() if v is not None} for t in specs]

    return {"path": str(path), "bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "opset": max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None),
            "checked_batch_sizes": [b for b, _ in checks], "providers": session.get_providers(),
            "inputs": tensors(graph.inputs), "outputs": tensors(graph.outputs),
            "attrs": {str(k): v for k, v in graph.attrs.items()  # a plugin's own values: JSON scalars only
                      if isinstance(v, (str, bool, int)) or (isinstance(v, float) and np.isfinite(v))}}


def _ort_message(exc: Exception) -> str:
    """The useful part of an ONNX Runtime error, on one line."""
    text = " ".join(str(exc).split())
    text = text.split("Status Message:", 1)[-1].strip()
    return text if len(text) <= 300 else text[:297] + "..."


def _sizes(graph: GraphSpec, feeds: dict[str, np.ndarray]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for t in graph.inputs:
        for d, n in zip(t.shape, feeds[t.name].shape):
            if isinstance(d, str):
                sizes[d] = int(n)
    return sizes


def _torch_device(device: str) -> str:
    return "cuda" if device == "cuda" else "cpu"
