"""Bundle validation: nothing a plugin exports is trusted before it passes every check here."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import BundleError
from ..types import GraphSpec, OnnxBundle, TensorSpec
from . import draw_inputs, make_session, prepare_data

MAX_GRAPH_BYTES = 1 << 30  # 1 GiB (protobuf's own limit is 2 GiB); $GENBENCH_MAX_GRAPH_MB overrides
MAX_GRAPH_ENV = "GENBENCH_MAX_GRAPH_MB"


def max_graph_bytes() -> int:
    """The cap on a graph file's size: ``$GENBENCH_MAX_GRAPH_MB`` MiB (a number above 0), else 1 GiB."""
    from ..settings import env_number

    return int(env_number(MAX_GRAPH_ENV, MAX_GRAPH_BYTES / 2**20, "a size in MiB") * 2**20)


CHECK_BATCH_SIZES = (1, 3, 8)  # three sizes: exporters can silently fix a symbolic axis
PARITY_BATCH = 8
PARITY_ATOL = 1e-4
PARITY_RTOL = 1e-4
RANGE_TOL = 1e-5

_ONNX_DTYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 2: "uint8", 9: "bool"}


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


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


def check_outputs(role: str, outputs: list[np.ndarray], specs: tuple[TensorSpec, ...], sizes: dict[str, int]) -> None:
    """Shapes, dtypes, finiteness and declared ranges of one run's outputs."""
    for out, s in zip(outputs, specs):
        want = s.concrete_shape(sizes) if all(not isinstance(d, str) or d in sizes for d in s.shape) else None
        if want is not None and tuple(out.shape) != want:
            raise BundleError(f"Graph '{role}' output '{s.name}' has shape {_shape(out.shape)} at batch {sizes['batch']}, "
                              f"its spec declares {_shape(want)}.")
        if np.issubdtype(out.dtype, np.floating):
            bad = ~np.isfinite(out)
            if bad.any():
                raise BundleError(f"Graph '{role}' output '{s.name}' has {int(bad.sum())} non-finite values (NaN/inf) "
                                  f"of {out.size} at batch {sizes['batch']}.")
        if s.low is not None and out.size and float(out.min()) < s.low - RANGE_TOL:
            raise BundleError(f"Graph '{role}' output '{s.name}' reaches {float(out.min()):.4g}, below its declared low {s.low}.")
        if s.high is not None and out.size and float(out.max()) > s.high + RANGE_TOL:
            raise BundleError(f"Graph '{role}' output '{s.name}' reaches {float(out.max()):.4g}, above its declared high {s.high}.")


def check_role_contract(graph: GraphSpec, dataset: Any = None) -> None:
    """What each role promises beyond its own spec (DESIGN.md §3), and that it fits the task's data."""
    if graph.role == "sample":
        leaked = [t.name for t in graph.inputs if t.source == "data"]
        if leaked:
            raise BundleError(f"Graph 'sample' input {leaked[0]!r} has source 'data': a sample graph must not take "
                              "the test split (its samples would be scored against the data they came from); "
                              "draw its inputs from 'normal', 'uniform' or 'tokens'.")
        if dataset is not None and dataset.kind in ("image", "points"):
            _check_sample_fits(graph, dataset)
    if graph.role == "logits":
        _check_logits_contract(graph, dataset)
    if graph.role == "elbo":
        out = graph.outputs[0]
        if tuple(out.shape) != ("batch",) and not (len(out.shape) == 1 and isinstance(out.shape[0], str)):
            raise BundleError(f"Graph 'elbo' output '{out.name}' is declared {_shape(out.shape)}; an elbo graph returns "
                              "one log-likelihood bound per example: shape [batch].")
        if not any(t.source == "data" for t in graph.inputs):
            raise BundleError("Graph 'elbo' has no input with source 'data': it must take the examples it scores.")
        k = graph.attrs.get("importance_samples", 1)
        if not isinstance(k, int) or k < 1:
            raise BundleError(f"Graph 'elbo': attrs['importance_samples'] must be a positive int, got {k!r}.")


def _check_sample_fits(graph: GraphSpec, dataset: Any) -> None:
    """A sample graph draws the task's examples: its first output has the task's shape (an axis left symbolic is
    checked on the real outputs, :func:`check_samples_fit_task`), and on image tasks its declared value range lies
    inside the task's (what the metrics and feature extractors take)."""
    out, want = graph.outputs[0], tuple(dataset.shape)
    if len(out.shape) != len(want) + 1 or any(isinstance(d, int) and d != w for d, w in zip(out.shape[1:], want)):
        raise BundleError(f"Graph 'sample' output '{out.name}' is declared {_shape(out.shape)}; task "
                          f"'{dataset.name}' takes samples {_shape(('batch', *want))}.")
    lo, hi = dataset.value_range
    if dataset.kind == "image" and ((out.low is not None and out.low < lo) or (out.high is not None and out.high > hi)):
        declared = f"[{_bound(out.low)}, {_bound(out.high)}]"
        hint = " (a tanh output? end the graph with (x + 1) / 2)" if (out.low, out.high) == (-1.0, 1.0) else ""
        raise BundleError(f"Graph 'sample' output '{out.name}' is declared in {declared}, outside task "
                          f"'{dataset.name}'s value range [{lo:g}, {hi:g}]{hint}; rescale it in the graph.")


def _bound(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:g}"


def check_samples_fit_task(graph: GraphSpec, samples: np.ndarray, dataset: Any) -> None:
    """What a sample graph returned is the task's: its shape (image and points tasks), and on image tasks values
    in the task's range, declared or not (a graph with no declared range is still never scored on values the
    task cannot hold)."""
    if dataset is None or dataset.kind not in ("image", "points"):
        return
    name, want = graph.outputs[0].name, tuple(dataset.shape)
    if tuple(samples.shape[1:]) != want:
        raise BundleError(f"Graph '{graph.role}' output '{name}' has shape {_shape(samples.shape)}; task "
                          f"'{dataset.name}' takes samples {_shape(('batch', *want))}.")
    lo, hi = dataset.value_range
    if dataset.kind != "image" or not samples.size:
        return
    bottom, top = float(samples.min()), float(samples.max())
    if bottom < lo - RANGE_TOL or top > hi + RANGE_TOL:
        raise BundleError(f"Graph '{graph.role}' output '{name}' has values in [{bottom:.4g}, {top:.4g}], outside "
                          f"task '{dataset.name}'s value range [{lo:g}, {hi:g}]; rescale it in the graph (and "
                          "declare low/high).")


def check_roles_fit_task(roles: Sequence[str], dataset: Any) -> None:
    """The graphs a task is scored through are there: text is sampled and scored by a ``logits`` graph."""
    if dataset is not None and dataset.kind == "text" and "logits" not in roles:
        raise BundleError(f"Task '{dataset.name}' is a text task, sampled and scored through a 'logits' graph "
                          f"(int64 tokens [batch, seq] -> logits [batch, seq, {dataset.vocab}]); the graphs given are: "
                          f"{', '.join(roles) or 'none'}.")


def _check_logits_contract(graph: GraphSpec, dataset: Any) -> None:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise BundleError("Graph 'logits' must have one input (tokens [batch, seq]) and one output (logits [batch, seq, V]).")
    tok, out = graph.inputs[0], graph.outputs[0]
    if tok.source != "tokens" or tok.dtype != "int64" or len(tok.shape) != 2 or not all(isinstance(d, str) for d in tok.shape):
        raise BundleError(f"Graph 'logits' input '{tok.name}' must be int64 tokens with two symbolic axes "
                          f"[batch, seq] and source 'tokens'; it is {tok.dtype} {_shape(tok.shape)} from {tok.source!r}.")
    if len(out.shape) != 3 or tuple(out.shape[:2]) != tuple(tok.shape) or not isinstance(out.shape[2], int):
        raise BundleError(f"Graph 'logits' output '{out.name}' is declared {_shape(out.shape)}; it must be "
                          f"[{tok.shape[0]}, {tok.shape[1]}, V] with a fixed vocabulary size V.")
    context = graph.attrs.get("context_length")
    if not isinstance(context, int) or context < 1:
        raise BundleError("Graph 'logits' needs attrs['context_length']: the longest token sequence it takes (int).")
    if dataset is None:
        return
    vocab = out.shape[2]
    if dataset.kind == "text" and vocab != dataset.vocab:
        raise BundleError(f"Graph 'logits' predicts {vocab} values per position; task '{dataset.name}' has a "
                          f"vocabulary of {dataset.vocab} (bytes).")
    if dataset.kind == "text" and tok.vocab is not None and tok.vocab > dataset.vocab:
        raise BundleError(f"Graph 'logits' takes tokens below {tok.vocab}; task '{dataset.name}' has {dataset.vocab}.")
    if dataset.kind == "points":
        levels, bos = graph.attrs.get("levels"), graph.attrs.get("bos")
        if not isinstance(levels, int) or levels < 2 or vocab != levels or bos != levels or tok.vocab != levels + 1:
            raise BundleError(f"Graph 'logits' for points needs attrs['levels'] (bins per coordinate, = its {vocab} "
                              f"outputs) and attrs['bos'] = levels with input vocab levels + 1; got levels={levels!r}, "
                              f"bos={bos!r}, vocab={tok.vocab!r}.")
        if context < int(np.prod(dataset.shape)):
            raise BundleError(f"Graph 'logits' has context_length {context}, shorter than a point's "
                              f"{int(np.prod(dataset.shape))} coordinates.")
    if dataset.kind == "image":
        levels, bos = graph.attrs.get("levels"), graph.attrs.get("bos")
        dims = int(np.prod(dataset.shape))
        if levels != dataset.levels or vocab != dataset.levels:
            raise BundleError(f"Graph 'logits' models {vocab} values per pixel (attrs levels={levels!r}); task "
                              f"'{dataset.name}' has {dataset.levels} levels.")
        if bos != levels or tok.vocab != levels + 1:
            raise BundleError(f"Graph 'logits' for images needs attrs['bos'] == levels ({levels}) and input vocab "
                              f"levels + 1; got bos={bos!r}, vocab={tok.vocab!r}.")
        if context < dims:
            raise BundleError(f"Graph 'logits' has context_length {context}, shorter than the {dims} pixels of a "
                              f"'{dataset.name}' image.")


def logits_check_sizes(graph: GraphSpec) -> list[tuple[int, int]]:
    """(batch, seq) pairs a logits graph is run at: short, medium and its full declared context."""
    t = int(graph.attrs["context_length"])
    return [(1, min(5, t)), (3, min(16, t)), (8, t)]


def check_role_values(graph: GraphSpec, outputs: list[np.ndarray]) -> None:
    """Values a role can never take: a discrete likelihood (binarized data) is at most 1, its log at most 0."""
    if graph.role == "elbo" and graph.attrs.get("data") == "binarized":
        top = float(np.max(outputs[0], initial=-np.inf))
        if top > RANGE_TOL:
            raise BundleError(f"Graph 'elbo' returns a positive log-likelihood bound ({top:.4g} nats) for binary data, "
                              "where log p(x) <= 0; check the sign of the reconstruction term.")


def validate_bundle(bundle: OnnxBundle, torch_module: Callable[[str], Any] | None, *, device: str = "cpu",
                    data: np.ndarray | None = None, seed: int = 0, required_roles: tuple[str, ...] = (),
                    max_bytes: int | None = None, dataset: Any = None) -> dict[str, dict[str, Any]]:
    """Check every graph of ``bundle``; return the ``export`` section of the job result.

    ``torch_module=None`` (graphs supplied as files, with no torch module) skips the parity check, and the
    report says ``parity: not available`` instead of giving a difference.

    ``dataset`` (a :class:`genbench.data.Dataset`) also checks that the graphs fit the task (vocabulary,
    pixel levels, context). Raises :class:`BundleError` naming the graph and what is wrong.
    """
    import torch

    if not isinstance(bundle, OnnxBundle):
        raise BundleError(f"export_onnx returned {type(bundle).__name__}, expected genbench.OnnxBundle.")
    max_bytes = max_bytes if max_bytes is not None else max_graph_bytes()
    for role in required_roles:
        if role not in [g.role for g in bundle.graphs]:
            raise BundleError(f"The bundle has no '{role}' graph (it has {[g.role for g in bundle.graphs]}); "
                              f"this task needs one.")
    if not any(g.role in ("sample", "logits") for g in bundle.graphs):
        raise BundleError(f"The bundle has no 'sample' or 'logits' graph (it has {[g.role for g in bundle.graphs]}); "
                          "genbench draws the samples it scores from one of them.")
    check_roles_fit_task([g.role for g in bundle.graphs], dataset)
    report: dict[str, dict[str, Any]] = {}
    for graph in bundle.graphs:
        check_role_contract(graph, dataset)
        path = graph_path(bundle, graph)
        proto = check_graph_file(path, graph, max_bytes)
        session = make_session(path, device)
        rng = np.random.default_rng(seed)
        graph_data = prepare_data(graph, data)
        if graph.role == "logits":
            seq_axis = graph.inputs[0].shape[1]
            checks = [(b, {seq_axis: t}) for b, t in logits_check_sizes(graph)]
        else:
            checks = [(b, {}) for b in CHECK_BATCH_SIZES]
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
            check_role_values(graph, outs)
            if graph.role == "sample":
                check_samples_fit_task(graph, outs[0], dataset)
        parity_extra = checks[-1][1]
        report[graph.role] = _graph_report(path, proto, checks, session, graph)
        if torch_module is None:  # a graph supplied as a file (genbench run --onnx): nothing to check it against
            report[graph.role].update(parity_max_abs_diff=None, parity_tolerance=None, parity=PARITY_NOT_AVAILABLE)
            continue
        feeds = draw_inputs(graph, PARITY_BATCH, np.random.default_rng(seed + 1), graph_data, parity_extra)
        ort_outs = session.run([s.name for s in graph.outputs], feeds)
        module = torch_module(graph.role)
        with torch.inference_mode():
            ref = module(*[torch.from_numpy(feeds[t.name]).to(_torch_device(device)) for t in graph.inputs])
        refs = [r.detach().float().cpu().numpy() for r in (ref if isinstance(ref, (tuple, list)) else (ref,))]
        if len(refs) != len(ort_outs):
            raise BundleError(f"torch_module('{graph.role}') returns {len(refs)} outputs, the graph {len(ort_outs)}.")
        diff, tol = 0.0, 0.0
        for r, o in zip(refs, ort_outs):
            if r.shape != o.shape:
                raise BundleError(f"torch_module('{graph.role}') output shape {_shape(r.shape)} differs from the "
                                  f"ONNX graph's {_shape(o.shape)}.")
            diff = max(diff, float(np.max(np.abs(r.astype(np.float64) - o.astype(np.float64)), initial=0.0)))
            tol = max(tol, PARITY_ATOL + PARITY_RTOL * float(np.max(np.abs(r), initial=0.0)))
        if not np.isfinite(diff) or diff > tol:
            raise BundleError(f"Graph '{graph.role}' disagrees with torch_module('{graph.role}'): max abs difference "
                              f"{diff:.3g} over tolerance {tol:.3g} on a fixed input.")
        report[graph.role].update(parity_max_abs_diff=diff, parity_tolerance=tol)
    return report


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
