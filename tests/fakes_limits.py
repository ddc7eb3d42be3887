"""A tiny 2-D points model for the limits tests: it keeps K training points and draws around them.

``tiny-decliner`` declines every task (:class:`genbench.TaskDeclined`) the moment it is trained, as a
plugin does for a task it cannot afford (``ar-pixel`` on 28×28 images on CPU).

``train`` picks ``K = 16`` of the training points it is given (seeded) and runs ``steps`` (default 8)
4×4 torch matmuls, so its training FLOPs are known: 2·4·4·4 = 128 per step. Its graph is written with
onnx.helper (no exporter): x = C[floor(u·K)] + 0.05·z.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

import genbench
from genbench import GenerativeModel, GraphSpec, ModelSpec, OnnxBundle, TensorSpec, TrainSummary

K, SPREAD, DEFAULT_STEPS = 16, 0.05, 8
FLOPS_PER_STEP = 2 * 4 * 4 * 4


class TorchPoints(torch.nn.Module):
    def __init__(self, centres: np.ndarray):
        super().__init__()
        self.register_buffer("c", torch.from_numpy(centres.astype(np.float32)))

    def forward(self, u, z):
        idx = torch.clamp(torch.floor(u[:, 0] * K), max=K - 1).long()
        return self.c[idx] + SPREAD * z


def write_points_graph(path: Path, centres: np.ndarray) -> None:
    inits = [numpy_helper.from_array(centres.astype(np.float32), "C"),
             numpy_helper.from_array(np.array(float(K), np.float32), "KF"),
             numpy_helper.from_array(np.array(float(K - 1), np.float32), "KMAX"),
             numpy_helper.from_array(np.array(SPREAD, np.float32), "S"),
             numpy_helper.from_array(np.array([1], np.int64), "AX1")]
    nodes = [helper.make_node("Mul", ["u", "KF"], ["uk"]), helper.make_node("Floor", ["uk"], ["fl"]),
             helper.make_node("Min", ["fl", "KMAX"], ["cl"]), helper.make_node("Cast", ["cl"], ["ci"], to=TensorProto.INT64),
             helper.make_node("Squeeze", ["ci", "AX1"], ["idx"]), helper.make_node("Gather", ["C", "idx"], ["c"], axis=0),
             helper.make_node("Mul", ["z", "S"], ["zs"]), helper.make_node("Add", ["c", "zs"], ["x"])]
    graph = helper.make_graph(nodes, "points", [helper.make_tensor_value_info("u", TensorProto.FLOAT, ["batch", 1]),
                                                helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 2])],
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.save(model, str(path))


class TinyPointsModel(GenerativeModel):
    def train(self, data, config, progress):
        rng = np.random.default_rng(config.seed)
        x = np.asarray(data.x, dtype=np.float32)
        self.centres = x[rng.choice(len(x), size=min(K, len(x)), replace=False)]
        if len(self.centres) < K:
            self.centres = self.centres[np.arange(K) % len(self.centres)]
        steps = DEFAULT_STEPS if config.steps is None else config.steps
        a = torch.ones(4, 4)
        for _ in range(steps):
            a = (a @ torch.ones(4, 4)) / 4
        progress(1, 1, {})
        return TrainSummary(steps=steps, seconds=0.0)

    def state_dict(self):
        return {"c": torch.from_numpy(self.centres.copy())}

    def load_state_dict(self, state, data, config):
        self.centres = state["c"].numpy()

    def export_onnx(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_points_graph(directory / "g.onnx", self.centres)
        inputs = (TensorSpec("u", ("batch", 1), source="uniform"), TensorSpec("z", ("batch", 2), source="normal"))
        return OnnxBundle(directory, (GraphSpec("sample", "g.onnx", inputs, (TensorSpec("x", ("batch", 2)),)),))

    def torch_module(self, role):
        return TorchPoints(self.centres).eval()


class DecliningModel(TinyPointsModel):
    def train(self, data, config, progress):
        raise genbench.TaskDeclined(f"tiny-decliner declines '{data.task}': it is a test model that runs nowhere")


def die_at_once(conn) -> None:
    """A unit process that ends at once without a word, with exit code 255 (as when its forkserver is killed)."""
    import os

    os._exit(255)


class LimitsPlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_models(register):
        register(ModelSpec("tiny-points", "test", ("points",), "fakes_limits:TinyPointsModel", "test model tiny-points"))
        register(ModelSpec("tiny-decliner", "test", ("points",), "fakes_limits:DecliningModel", "declines every task"))
