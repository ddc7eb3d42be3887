"""The cost of one generated sample of an autoregressive model, on the real clock: its graph calls plus
genbench's sampling loop. A fake model whose every logits call costs the same (two 192×192 matmuls) makes
one 4×4 image out of 16 calls; its measured per-sample cost must be 16 forward calls and a little more (the
loop's token draws), within 35%, in ONNX Runtime and torch eager alike.

Means, not medians: on a busy machine a long call is interrupted more often than a short one, and only the
mean adds up call by call. Run: ``pytest benchmarks/test_generate_cost.py --benchmark-enable -s``.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from speed_fakes import ConstantCostARModel  # noqa: E402

from genbench.config import get_profile  # noqa: E402
from genbench.perf import TimingPolicy  # noqa: E402
from genbench.timing import measure_performance  # noqa: E402


def test_one_generated_sample_costs_its_steps_in_forward_calls(tmp_path):
    policy = TimingPolicy(warmup=2, warmup_seconds=0.5, min_iterations=20, min_seconds=0.5, max_seconds=3.0,
                          rounds=2, target_ci=None)
    profile = replace(get_profile("default"), batch_sizes=(1,), timing=policy, latency_iterations=20,
                      generate_timing=replace(policy, min_iterations=5))
    model = ConstantCostARModel()
    records, _, _, _ = measure_performance(model.export_onnx(tmp_path / "b"), model.torch_module, "cpu", profile, 1, 0,
                                           SimpleNamespace(kind="image", shape=(1, 4, 4), test_x=None, vocab=None))
    for runtime in ("onnxruntime", "torch-eager"):
        forward = next(r for r in records if r.runtime == runtime and r.scenario == "forward")
        generate = next(r for r in records if r.runtime == runtime and r.scenario == "generate")
        ratio = generate.latency_ms["mean"] / (16 * forward.latency_ms["mean"])
        print(f"\n{runtime}: forward {forward.latency_ms['mean']:.3f} ms, one sample {generate.latency_ms['mean']:.2f} ms "
              f"= {ratio:.3f} × 16 forward calls")
        assert 0.8 < ratio < 1.35, f"{runtime}: one sample costs {ratio:.2f} × 16 forward calls"
