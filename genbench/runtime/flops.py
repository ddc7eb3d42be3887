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


def matmul_ceiling_gflops(threads: int, n: int = 1024, repeats: int = 5, seconds: float = 0.2) -> dict[str, Any]:
    """The machine's float32 n×n matmul rate with ``threads`` threads, in torch and in ONNX Runtime, and the
    better of the two (``ceiling``): the practical limit a graph's achieved GFLOP/s is read against.

    Each runtime runs ``repeats`` bursts of at least ``seconds``, alternating with the other, and keeps its
    best burst: background load only ever slows a burst down, so the best is the least disturbed. The
    machine's background CPU use during the bursts is recorded (``background_cpu_cores``, ``noisy``).
    Measure it with nothing else of genbench running (the runner does, as the timing stage starts).
    """
    import onnx
    import torch
    from onnx import TensorProto, helper

    from . import make_session
    from ..perf import NOISY_BACKGROUND_CORES, CpuMonitor

    def burst(call: Callable[[], Any]) -> float:
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or reps < 3:
            call()
            reps += 1
        return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9

    a, b = torch.randn(n, n), torch.randn(n, n)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    del onnx
    session = make_session(model.SerializeToString(), "cpu", threads)
    feeds = {"a": a.numpy(), "b": b.numpy()}
    calls = {"torch": lambda: torch.mm(a, b), "onnxruntime": lambda: session.run(["c"], feeds)}
    bursts: dict[str, list[float]] = {name: [] for name in calls}
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for call in calls.values():
            call()  # warm-up
        monitor = CpuMonitor()
        for r in range(repeats):
            for name in (calls if r % 2 == 0 else reversed(list(calls))):
                bursts[name].append(burst(calls[name]))
        background = monitor.background_cores()
    finally:
        torch.set_num_threads(old)
    best = {name: max(rates) for name, rates in bursts.items()}
    return {**best, "ceiling": max(best.values()), "n": n, "threads": threads, "repeats": repeats,
            "bursts": bursts, "background_cpu_cores": background,
            "noisy": background is not None and background > NOISY_BACKGROUND_CORES}


def settle_ceiling(ceiling: Mapping[str, Any] | None, achieved: Sequence[tuple[str, float]],
                   remeasure: Callable[[], Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """The ceiling as a run reports it, once its graphs were timed: a graph faster than the ceiling means the
    ceiling was measured low (under load, say), so it is measured again and the best of both kept; if a
    graph still beats it, the ceiling is withdrawn (``ceiling: None``, ``measured_ceiling`` and ``exceeded``
    say by what), so that no report prints a share of it above 100%."""
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
    return {**merged, "ceiling": None, "measured_ceiling": merged["ceiling"],
            "exceeded": {"by": top[0], "gflops_per_s": top[1]},
            "note": f"{top[0]} achieved {top[1]:.1f} GFLOP/s, above the matmul ceiling measured twice "
                    f"({merged['ceiling']:.1f}); no share of the ceiling is reported"}
