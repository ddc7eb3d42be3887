"""The cost of one generated sample of a diffusion model, on the real clock: genbench's DDIM loop over the
``denoise`` graph at the scored step count. A fake model whose every denoise call costs the same (two 384×384
matmuls, multiplied by 0 into its output) makes one 2-D point out of 50 calls; its measured per-sample cost
must be 50 forward calls and a little more (the sampler's update arithmetic), within 35%, in ONNX Runtime and
torch eager alike. Timed, so here and not in tests/ (tests must pass under heavy load).

Run: ``pytest benchmarks/test_diffusion_cost.py --benchmark-enable -s``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from genbench import GraphSpec, OnnxBundle, TensorSpec
from genbench.config import get_profile
from genbench.perf import TimingPolicy
from genbench.runtime.roles.denoise import SCORE_STEPS
from genbench.timing import measure_performance

K = 384
ATTRS = {"schedule": "linear", "steps": 1000}


def _weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return tuple((rng.standard_normal((K, K)) / np.sqrt(K)).astype(np.float32) for _ in range(2))


def write_constant_cost_denoise(path: Path) -> None:
    """(x [B, 2], t [B]) → 0.1 x + 0 × (a fixed amount of work that depends on x, so it is not folded away)."""
    w1, w2 = _weights()
    inits = [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2"),
             numpy_helper.from_array(np.ones((K, K), np.float32), "ONES"),
             numpy_helper.from_array(np.array(0.0, np.float32), "ZERO"),
             numpy_helper.from_array(np.array(0.1, np.float32), "TENTH")]
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Cast", ["t"], ["tf"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["tf"], ["st"], keepdims=0),
             helper.make_node("Add", ["s", "st"], ["s2"]),
             helper.make_node("Mul", ["ONES", "s2"], ["h0"]),
             helper.make_node("MatMul", ["h0", "W1"], ["h1"]),
             helper.make_node("MatMul", ["h1", "W2"], ["h2"]),
             helper.make_node("ReduceSum", ["h2"], ["r"], keepdims=0),
             helper.make_node("Mul", ["r", "ZERO"], ["r0"]),
             helper.make_node("Mul", ["x", "TENTH"], ["xs"]),
             helper.make_node("Add", ["xs", "r0"], ["eps"])]
    graph = helper.make_graph(nodes, "constant-cost-denoise",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2]),
                               helper.make_tensor_value_info("t", TensorProto.INT64, ["batch"])],
                              [helper.make_tensor_value_info("eps", TensorProto.FLOAT, ["batch", 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.save(model, str(path))


class ConstantCostDenoise(torch.nn.Module):
    def __init__(self):
        super().__init__()
        w1, w2 = _weights()
        self.w1, self.w2 = torch.nn.Parameter(torch.from_numpy(w1)), torch.nn.Parameter(torch.from_numpy(w2))

    def forward(self, x, t):
        r = ((torch.ones(K, K) * (x.sum() + t.float().sum())) @ self.w1 @ self.w2).sum() * 0.0
        return x * 0.1 + r


def test_one_generated_diffusion_sample_costs_its_steps_in_forward_calls(tmp_path):
    policy = TimingPolicy(warmup=2, warmup_seconds=0.5, min_iterations=20, min_seconds=0.5, max_seconds=3.0,
                          rounds=2, target_ci=None)
    profile = replace(get_profile("default"), batch_sizes=(1,), timing=policy, latency_iterations=20,
                      generate_timing=replace(policy, min_iterations=5))
    write_constant_cost_denoise(tmp_path / "denoise.onnx")
    bundle = OnnxBundle(tmp_path, (GraphSpec("denoise", "denoise.onnx",
                                             (TensorSpec("x", ("batch", 2), source="normal"),
                                              TensorSpec("t", ("batch",), dtype="int64", source="timestep",
                                                         vocab=1000)),
                                             (TensorSpec("eps", ("batch", 2)),), attrs=ATTRS),))
    dataset = SimpleNamespace(name="points", kind="points", shape=(2,), value_range=(-2.0, 2.0), test_x=None,
                              vocab=None, levels=None)
    records, _, _, _ = measure_performance(bundle, lambda role: ConstantCostDenoise().eval(), "cpu", profile, 1, 0,
                                           dataset)
    for runtime in ("onnxruntime", "torch-eager"):
        forward = next(r for r in records if r.runtime == runtime and r.scenario == "forward")
        generate = next(r for r in records if r.runtime == runtime and r.scenario == "generate")
        assert generate.steps == SCORE_STEPS
        ratio = generate.latency_ms["mean"] / (SCORE_STEPS * forward.latency_ms["mean"])
        print(f"\n{runtime}: forward {forward.latency_ms['mean']:.3f} ms, one sample {generate.latency_ms['mean']:.2f} ms "
              f"= {ratio:.3f} × {SCORE_STEPS} forward calls")
        assert 0.8 < ratio < 1.35, f"{runtime}: one sample costs {ratio:.2f} × {SCORE_STEPS} forward calls"
