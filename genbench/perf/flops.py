"""FLOPs of an ONNX graph, counted from its dense and convolution layers after shape inference.

Counted: MatMul, Gemm, Conv, ConvTranspose, each multiply-add as 2 FLOPs (the usual convention).
Everything else (activations, norms, softmax) is left out, so the count is a lower bound and the
achieved GFLOP/s derived from it is conservative.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

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


def matmul_ceiling_gflops(threads: int, n: int = 1024, seconds: float = 0.5) -> dict[str, float]:
    """The machine's float32 n×n matmul rate with ``threads`` threads, in torch and in ONNX Runtime, and
    the better of the two (``ceiling``): the practical limit a graph's achieved GFLOP/s is read against."""
    import time

    import numpy as np
    import onnx
    import torch
    from onnx import TensorProto, helper

    from ..runtime import make_session

    def rate(call) -> float:
        call()
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or reps < 3:
            call()
            reps += 1
        return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch_rate = rate(lambda: torch.mm(a, b))
    finally:
        torch.set_num_threads(old)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    session = make_session(model.SerializeToString(), "cpu", threads)
    feeds = {"a": a.numpy(), "b": b.numpy()}
    ort_rate = rate(lambda: session.run(["c"], feeds))
    del onnx, np
    return {"torch": torch_rate, "onnxruntime": ort_rate, "ceiling": max(torch_rate, ort_rate), "n": n,
            "threads": threads}
