"""FLOPs of an ONNX graph, counted from its dense and convolution layers after shape inference.

Counted: MatMul, Gemm, Conv, ConvTranspose, each multiply-add as 2 FLOPs (the usual convention).
Everything else (activations, norms, softmax) is left out, so the count is a lower bound and the
achieved GFLOP/s derived from it is conservative.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

COUNTED_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")


def graph_flops(path: str | Path, sizes: Mapping[str, int]) -> int | None:
    """FLOPs of one run of the graph with its symbolic axes set to ``sizes`` (e.g. ``{"batch": 1}``).

    ``None`` when shapes cannot be inferred for a counted op.
    """
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                if dim.dim_param not in sizes:
                    return None
                dim.dim_value = int(sizes[dim.dim_param])
    try:
        inferred = shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - a graph shape inference cannot follow has no count
        return None
    shapes: dict[str, list[int]] = {}
    for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        dims = v.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = [d.dim_value for d in dims]
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0
    for node in inferred.graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        ins = [shapes.get(name) for name in node.input[:2]]
        out = shapes.get(node.output[0])
        if any(s is None for s in ins) or out is None:
            return None
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "MatMul":
            k = ins[0][-1]
            total += 2 * math.prod(out) * k
        elif node.op_type == "Gemm":
            k = ins[0][0] if attrs.get("transA", 0) else ins[0][-1]
            total += 2 * math.prod(out) * k
        elif node.op_type == "Conv":
            group = int(attrs.get("group", 1))
            w = ins[1]  # [Cout, Cin/group, kh, kw]
            total += 2 * math.prod(out) * math.prod(w[1:])
        else:  # ConvTranspose: each input element scatters into Cout/group × kernel outputs
            group = int(attrs.get("group", 1))
            w = ins[1]  # [Cin, Cout/group, kh, kw]
            total += 2 * math.prod(ins[0]) * math.prod(w[1:])
            del group
    return total


#: the GEMM sizes of the practical ceiling, and the bursts each runtime gets at each (the largest is one call:
#: 137 GFLOP at 4096², about 0.7 s on 2 Zen cores; the whole measurement is about 2 s there, less on more cores)
DEFAULT_CEILING_SIZES = ((1024, 2), (2048, 1), (4096, 1))
CEILING_SIZES = DEFAULT_CEILING_SIZES
#: the longest one GEMM call of the ceiling may be predicted to take (from the best rate so far) to be measured
MAX_CALL_S = 1.5


def matmul_ceiling_gflops(threads: int, sizes: Sequence[tuple[int, int]] | None = None, seconds: float = 0.1,
                          repeats: int | None = None, n: int | None = None,
                          max_call_s: float = MAX_CALL_S) -> dict[str, Any]:
    """The machine's practical float32 GEMM ceiling with ``threads`` threads: the best rate of square matmuls
    at each size of ``sizes`` ((n, bursts) pairs: :data:`CEILING_SIZES`, 1024², 2048² and 4096², by default), in torch and in ONNX
    Runtime, and the better of the two (``ceiling``). A graph's achieved GFLOP/s is read against it.

    At each size the runtimes take turns, alternating which goes first, each burst at least ``seconds`` and at
    least one call; each runtime keeps its best burst over every size: background load only ever slows a burst
    down, so the best is the least disturbed, and the size that suits the machine's caches wins (``best_n``).
    The machine's background CPU use during the bursts is recorded (``background_cpu_cores``, ``noisy``).
    Measure it with nothing else of genbench running (the runner does, as the timing stage starts).
    ``n`` and ``repeats`` (the former one-size form) measure ``n``² alone in ``repeats`` bursts.

    The measurement stays bounded: a size whose one call, predicted from the best rate so far, would take longer
    than ``max_call_s`` is left out and named in ``skipped`` (a slow or loaded machine; a graph that then beats
    the ceiling has it measured again, :func:`settle_ceiling`).
    """
    import time as _time

    import torch
    from onnx import TensorProto, helper

    from . import make_session
    from ..perf import NOISY_BACKGROUND_CORES, CpuMonitor

    if n is not None:
        sizes = ((int(n), int(repeats or 5)),)
    elif sizes is None:
        sizes = CEILING_SIZES  # read at call time
    t_start = _time.perf_counter()

    def burst(call: Callable[[], Any], size: int) -> float:
        reps, t0 = 0, time.perf_counter()
        while reps < 1 or time.perf_counter() - t0 < seconds:
            call()
            reps += 1
        return 2 * size**3 * reps / (time.perf_counter() - t0) / 1e9

    def session_for(size: int) -> Any:
        graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                                  [helper.make_tensor_value_info(x, TensorProto.FLOAT, [size, size]) for x in "ab"],
                                  [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
        model.ir_version = 10
        return make_session(model.SerializeToString(), "cpu", threads)

    names = ("torch", "onnxruntime")
    bursts: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    monitor = None
    try:
        turn = 0
        skipped: list[int] = []
        for size, count in sizes:
            so_far = [r for name in names for rates in bursts[name].values() for r in rates]
            if so_far and 2 * size**3 / (max(so_far) * 1e9) > max_call_s:
                skipped.append(size)
                continue
            a, b = torch.randn(size, size), torch.randn(size, size)
            session = session_for(size)
            feeds = {"a": a.numpy(), "b": b.numpy()}
            calls = {"torch": lambda: torch.mm(a, b), "onnxruntime": lambda: session.run(["c"], feeds)}
            if monitor is None:
                for call in calls.values():
                    call()  # warm-up, at the smallest size: thread pools started, kernels chosen
                monitor = CpuMonitor()
            for _ in range(count):
                for name in (names if turn % 2 == 0 else reversed(names)):
                    bursts[name].setdefault(str(size), []).append(burst(calls[name], size))
                turn += 1
        background = monitor.background_cores() if monitor is not None else None
    finally:
        torch.set_num_threads(old)
    best = {name: max(r for rates in bursts[name].values() for r in rates) for name in names}
    best_n = {name: int(max(bursts[name], key=lambda k: max(bursts[name][k]))) for name in names}
    return {**best, "ceiling": max(best.values()), "sizes": [s for s, _ in sizes if s not in skipped],
            "skipped": skipped, "best_n": best_n,
            "threads": threads, "bursts": bursts, "seconds": _time.perf_counter() - t_start,
            "background_cpu_cores": background,
            "noisy": background is not None and background > NOISY_BACKGROUND_CORES}


def settle_ceiling(ceiling: Mapping[str, Any] | None, achieved: Sequence[tuple[str, float]],
                   remeasure: Callable[[], Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """The ceiling as a run reports it, once its graphs were timed. A graph faster than the ceiling means the
    ceiling was measured low (under load, say), so it is measured again and the best of both kept
    (``remeasured``). If a graph still beats it, the ceiling stays that final measured value and the run says
    so (``exceeded``, ``note``): a share above 100% is then shown as it is, never hidden, and the ceiling is
    never reported as "not measured" once measured."""
    if ceiling is None or not ceiling.get("ceiling"):
        return None if ceiling is None else dict(ceiling)
    top = max(achieved, key=lambda a: a[1], default=None)
    if top is None or top[1] <= ceiling["ceiling"]:
        return dict(ceiling)
    again = remeasure() or {}
    merged = dict(ceiling)
    for name in ("torch", "onnxruntime"):
        if again.get(name) is not None:
            merged[name] = max(merged.get(name) or 0.0, again[name])
    merged["ceiling"] = max(merged.get("torch") or 0.0, merged.get("onnxruntime") or 0.0)
    merged["remeasured"] = {k: again.get(k) for k in ("torch", "onnxruntime", "ceiling", "background_cpu_cores")}
    if top[1] <= merged["ceiling"]:
        return merged
    return {**merged, "exceeded": {"by": top[0], "gflops_per_s": top[1]},
            "note": f"{top[0]} achieved {top[1]:.1f} GFLOP/s, above the GEMM ceiling measured twice "
                    f"({merged['ceiling']:.1f} GFLOP/s, its final value); its share of the ceiling is over 100%"}


def ceiling_value(ceiling: Mapping[str, Any] | None) -> float | None:
    """The practical ceiling's final value in GFLOP/s: ``ceiling``, or ``measured_ceiling`` in a run written
    when an exceeded ceiling was withdrawn (``ceiling: null``); None when it was never measured."""
    if not isinstance(ceiling, Mapping):
        return None
    for k in ("ceiling", "measured_ceiling"):
        v = ceiling.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v):
            return float(v)
    return None
