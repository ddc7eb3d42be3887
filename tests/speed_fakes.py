"""Fake plugins for the speed tests: an autoregressive model whose every graph call costs the same, a model
that allocates before timing, torch modules that fail, and sessions that pretend to run on a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from onnx import TensorProto, helper, numpy_helper

import genbench
from fakes import TinyModel, save_logits_graph
from genbench import GenerativeModel, GraphSpec, ModelSpec, OnnxBundle, TensorSpec, TrainSummary

K = 192  # the heavy part of a call: two K×K matmuls, whatever the batch and sequence length


def _heavy_weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return tuple((rng.standard_normal((K, K)) / np.sqrt(K)).astype(np.float32) for _ in range(2))


def write_constant_cost_logits(path: Path, vocab: int) -> None:
    """tokens [B, T] → zero logits [B, T, vocab], plus 0 × (a fixed amount of work that depends on the input,
    so ONNX Runtime cannot fold it away): every call costs about the same, whatever B and T."""
    w1, w2 = _heavy_weights()
    inits = [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2"),
             numpy_helper.from_array(np.zeros(vocab, np.float32), "ZEROS"),
             numpy_helper.from_array(np.array([-1], np.int64), "LAST"),
             numpy_helper.from_array(np.array(0.0, np.float32), "ZERO"),
             numpy_helper.from_array(np.ones((K, K), np.float32), "ONES")]
    nodes = [helper.make_node("Cast", ["tokens"], ["tf"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["tf"], ["s"], keepdims=0),
             helper.make_node("Mul", ["ONES", "s"], ["x0"]),
             helper.make_node("MatMul", ["x0", "W1"], ["x1"]),
             helper.make_node("MatMul", ["x1", "W2"], ["x2"]),
             helper.make_node("ReduceSum", ["x2"], ["r"], keepdims=0),
             helper.make_node("Mul", ["r", "ZERO"], ["r0"]),
             helper.make_node("Unsqueeze", ["tf", "LAST"], ["tu"]),
             helper.make_node("Mul", ["tu", "ZEROS"], ["z"]),
             helper.make_node("Add", ["z", "r0"], ["logits"])]
    save_logits_graph(path, "constant-cost", nodes, inits, vocab)


class ConstantCostLogits(torch.nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        w1, w2 = _heavy_weights()
        self.w1, self.w2 = torch.nn.Parameter(torch.from_numpy(w1)), torch.nn.Parameter(torch.from_numpy(w2))
        self.vocab = vocab

    def forward(self, tokens):
        tf = tokens.float()
        r = ((torch.ones(K, K) * tf.sum()) @ self.w1 @ self.w2).sum() * 0.0
        return tf.unsqueeze(-1) * torch.zeros(self.vocab) + r


class ConstantCostARModel(GenerativeModel):
    """An 'autoregressive' image model over 17 levels whose every logits call costs the same."""

    levels = 17

    def train(self, data, config, progress):
        return TrainSummary(steps=0, seconds=0.0)

    def export_onnx(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_constant_cost_logits(directory / "logits.onnx", self.levels)
        return OnnxBundle(directory, (GraphSpec(
            "logits", "logits.onnx",
            (TensorSpec("tokens", ("batch", "seq"), dtype="int64", source="tokens", vocab=self.levels + 1),),
            (TensorSpec("logits", ("batch", "seq", self.levels)),),
            attrs={"context_length": 65, "bos": self.levels, "levels": self.levels}),))

    def torch_module(self, role):
        return ConstantCostLogits(self.levels).eval()


class HungryModel(TinyModel):
    """Allocates (and touches) HUNGRY_MB while training, then frees it; saves no state, so the timing stage
    trains it again, in its own process, before it times."""

    hungry_mb = 600  # well above what the timing loops themselves add to the process (sessions, graphs: ~100 MiB)

    def train(self, data, config, progress):
        hog = np.ones(self.hungry_mb * 2**20 // 8)
        assert hog.sum() > 0
        del hog
        return super().train(data, config, progress)


class FailingTorch(torch.nn.Module):
    """Runs at batch 1, raises at any other batch (as a module that cannot take a large batch would)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, z):
        if z.shape[0] != 1:
            raise RuntimeError("CUDA out of memory (pretend)")
        return self.inner(z)


class TorchFailsAtBatch64Model(TinyModel):
    def torch_module(self, role):
        return FailingTorch(super().torch_module(role))


class SpeedPlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_models(register):
        for name, cls in {"tiny-hungry": "HungryModel", "tiny-ar-constant": "ConstantCostARModel",
                          "tiny-torch-fails": "TorchFailsAtBatch64Model"}.items():
            register(ModelSpec(name, "test", ("image",), f"speed_fakes:{cls}", f"test model {name}"))


class FakeSession:
    """An ONNX Runtime session as seen from genbench: it runs (on the CPU, really) and writes a profile that
    says which provider ran each node, as a GPU session's would."""

    def __init__(self, real, profile_events: list[dict], tmp: Path):
        self.real, self.events, self.tmp = real, profile_events, tmp

    def run(self, *args, **kwargs):
        return self.real.run(*args, **kwargs)

    def end_profiling(self) -> str:
        import json

        path = self.tmp / "fake-profile.json"
        path.write_text(json.dumps(self.events))
        return str(path)

    def get_providers(self):
        return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def node_event(name: str, provider: str) -> dict:
    return {"cat": "Node", "name": f"{name}_kernel_time", "args": {"provider": provider, "op_name": "MatMul"}}
