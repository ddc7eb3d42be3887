"""Graphs that lie (issue #24), written with onnx.helper, and the plugin models that export them.

* :func:`write_peeking_graph`: a parameter-free ``logits`` graph whose ``logits[:, t]`` is a scaled one-hot of
  ``tokens[:, t + 1]``: it "predicts" every next byte by reading it (0.1 bits per byte on ``text`` before the
  causality check).
* :func:`write_batch_if_graph`: a ``sample`` graph with an ONNX ``If`` on its batch size: a constant grey image
  at the batch sizes validation and timing use, sigmoid(z W) from ``SWITCH`` rows on (where it is scored).
* :func:`write_row_mixing_graph`: a ``logits`` graph causal within a row, whose rows each read the next row's
  first token (in the text likelihood's batches, that is the next window's first byte: the next target).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

import genbench
from genbench import GenerativeModel, GraphSpec, ModelSpec, OnnxBundle, TensorSpec, TrainSummary

PEEK_SCALE = 20.0
SWITCH = 100  # the If graph's good branch from this many rows on
Z = 4


def _save(nodes, name, inputs, outputs, inits, path) -> None:
    model = helper.make_model(helper.make_graph(nodes, name, inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def write_peeking_graph(path: Path, vocab: int = 256, scale: float = PEEK_SCALE) -> Path:
    """tokens [B, T] → logits [B, T, vocab]: ``scale`` · one_hot(tokens[:, t + 1]) (zeros at the last position)."""
    inits = [numpy_helper.from_array(np.array([1], np.int64), "START"),
             numpy_helper.from_array(np.array([2**62], np.int64), "END"),
             numpy_helper.from_array(np.array([1], np.int64), "AXIS"),
             numpy_helper.from_array(np.array([0, 0, 0, 1], np.int64), "PADS"),
             numpy_helper.from_array(np.array(vocab, np.int64), "DEPTH"),
             numpy_helper.from_array(np.array([0.0, scale], np.float32), "VALUES")]
    nodes = [helper.make_node("Slice", ["tokens", "START", "END", "AXIS"], ["next"]),
             helper.make_node("Pad", ["next", "PADS"], ["padded"]),
             helper.make_node("OneHot", ["padded", "DEPTH", "VALUES"], ["logits"], axis=-1)]
    _save(nodes, "peek", [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"])],
          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab])], inits, path)
    return path


def write_masked_peek_graph(path: Path, where: list[int], vocab: int = 256, scale: float = PEEK_SCALE,
                            longest: int = 4096) -> Path:
    """The peeking graph, but reading ahead only at the positions ``where`` (uniform logits elsewhere)."""
    mask = np.zeros((longest, 1), np.float32)
    mask[list(where)] = 1.0
    inits = [numpy_helper.from_array(np.array([1], np.int64), "START"),
             numpy_helper.from_array(np.array([2**62], np.int64), "END"),
             numpy_helper.from_array(np.array([1], np.int64), "AXIS"),
             numpy_helper.from_array(np.array([0], np.int64), "ZERO"),
             numpy_helper.from_array(np.array([0, 0, 0, 1], np.int64), "PADS"),
             numpy_helper.from_array(np.array(vocab, np.int64), "DEPTH"),
             numpy_helper.from_array(np.array([0.0, scale], np.float32), "VALUES"),
             numpy_helper.from_array(mask, "MASK")]
    nodes = [helper.make_node("Slice", ["tokens", "START", "END", "AXIS"], ["next"]),
             helper.make_node("Pad", ["next", "PADS"], ["padded"]),
             helper.make_node("OneHot", ["padded", "DEPTH", "VALUES"], ["peek"], axis=-1),  # [B, T, V]
             helper.make_node("Shape", ["tokens"], ["shp"]),
             helper.make_node("Slice", ["shp", "START", "END", "ZERO"], ["seq"]),  # [T]
             helper.make_node("Slice", ["MASK", "ZERO", "seq", "ZERO"], ["m"]),  # [T, 1]
             helper.make_node("Mul", ["peek", "m"], ["logits"])]
    _save(nodes, "masked-peek", [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"])],
          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab])], inits, path)
    return path


def write_row_position_graph(path: Path, w: np.ndarray, every: int = 7, at: int = 3) -> Path:
    """z [B, Z] → x [B, 1, 8, 8]: sigmoid(z W), but the rows at index ``at`` mod ``every`` of the batch are grey."""
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([-1, 1, 8, 8], np.int64), "SHAPE"),
             numpy_helper.from_array(np.array(0, np.int64), "ZERO_I"),
             numpy_helper.from_array(np.array(1, np.int64), "ONE_I"),
             numpy_helper.from_array(np.array(every, np.int64), "EVERY"),
             numpy_helper.from_array(np.array(at, np.int64), "AT"),
             numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "COL"),
             numpy_helper.from_array(np.array(0.5, np.float32), "HALF")]
    nodes = [helper.make_node("MatMul", ["z", "W"], ["h"]), helper.make_node("Sigmoid", ["h"], ["s"]),
             helper.make_node("Reshape", ["s", "SHAPE"], ["good"]),
             helper.make_node("Shape", ["z"], ["shp"]), helper.make_node("Gather", ["shp", "ZERO_I"], ["rows"], axis=0),
             helper.make_node("Range", ["ZERO_I", "rows", "ONE_I"], ["index"]),
             helper.make_node("Mod", ["index", "EVERY"], ["place"]),
             helper.make_node("Equal", ["place", "AT"], ["grey"]),
             helper.make_node("Reshape", ["grey", "COL"], ["grey4"]),
             helper.make_node("Where", ["grey4", "HALF", "good"], ["x"])]
    _save(nodes, "row-position", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", Z])],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])], inits, path)
    return path


def write_row_mixing_graph(path: Path, vocab: int = 256, scale: float = PEEK_SCALE) -> Path:
    """tokens [B, T] → logits: position t < T−1 is uniform (zeros); the last position is ``scale`` · one_hot of
    the next row's first token (the first row's for the last row). Causal within every row."""
    inits = [numpy_helper.from_array(np.array([1], np.int64), "ONE"),
             numpy_helper.from_array(np.array([0], np.int64), "ZERO"),
             numpy_helper.from_array(np.array([2**62], np.int64), "END"),
             numpy_helper.from_array(np.array(vocab, np.int64), "DEPTH"),
             numpy_helper.from_array(np.array([0.0, scale], np.float32), "VALUES"),
             numpy_helper.from_array(np.array([0.0], np.float32), "ZEROF")]
    nodes = [helper.make_node("Slice", ["tokens", "ZERO", "ONE", "ONE"], ["first"]),  # [B, 1]
             helper.make_node("Slice", ["first", "ONE", "END", "ZERO"], ["rest"]),  # rows 1..B-1
             helper.make_node("Slice", ["first", "ZERO", "ONE", "ZERO"], ["head"]),  # row 0
             helper.make_node("Concat", ["rest", "head"], ["nextrow"], axis=0),  # [B, 1]
             helper.make_node("OneHot", ["nextrow", "DEPTH", "VALUES"], ["last"], axis=-1),  # [B, 1, V]
             helper.make_node("Shape", ["tokens"], ["shp"]),
             helper.make_node("Gather", ["shp", "ONE"], ["seq"], axis=0),  # [1]
             helper.make_node("Sub", ["seq", "ONE"], ["seqm1"]),
             helper.make_node("Slice", ["tokens", "ZERO", "seqm1", "ONE"], ["lead"]),  # [B, T-1]
             helper.make_node("Cast", ["lead"], ["leadf"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["leadf", "END_AXIS"], ["leadu"]),  # [B, T-1, 1]
             helper.make_node("Mul", ["leadu", "ZEROF"], ["lead0"]),  # zeros [B, T-1, 1]
             helper.make_node("Expand", ["lead0", "VSHAPE"], ["uniform"]),  # zeros [B, T-1, V]
             helper.make_node("Concat", ["uniform", "last"], ["logits"], axis=1)]
    inits += [numpy_helper.from_array(np.array([-1], np.int64), "END_AXIS"),
              numpy_helper.from_array(np.array([1, 1, vocab], np.int64), "VSHAPE")]
    _save(nodes, "rowmix", [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"])],
          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab])], inits, path)
    return path


def batch_if_weights(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((Z, 64)).astype(np.float32)


def write_batch_if_graph(path: Path, w: np.ndarray, switch: int = SWITCH) -> Path:
    """z [B, Z] → x [B, 1, 8, 8]: 0.5 everywhere for B < ``switch``, sigmoid(z W) from ``switch`` rows on."""
    out = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])
    good = helper.make_graph([helper.make_node("MatMul", ["z", "W"], ["h"]), helper.make_node("Sigmoid", ["h"], ["s"]),
                              helper.make_node("Reshape", ["s", "SHAPE"], ["x_good"])], "good", [],
                             [helper.make_tensor_value_info("x_good", TensorProto.FLOAT, None)])
    grey = helper.make_graph([helper.make_node("MatMul", ["z", "W"], ["h0"]),
                              helper.make_node("Mul", ["h0", "ZEROF"], ["h00"]),
                              helper.make_node("Add", ["h00", "HALF"], ["g"]),
                              helper.make_node("Reshape", ["g", "SHAPE"], ["x_grey"])], "grey", [],
                             [helper.make_tensor_value_info("x_grey", TensorProto.FLOAT, None)])
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([-1, 1, 8, 8], np.int64), "SHAPE"),
             numpy_helper.from_array(np.array(0.0, np.float32), "ZEROF"),
             numpy_helper.from_array(np.array(0.5, np.float32), "HALF"),
             numpy_helper.from_array(np.array(0, np.int64), "ZERO_I"),
             numpy_helper.from_array(np.array(switch, np.int64), "SWITCH")]
    nodes = [helper.make_node("Shape", ["z"], ["shp"]), helper.make_node("Gather", ["shp", "ZERO_I"], ["rows"], axis=0),
             helper.make_node("GreaterOrEqual", ["rows", "SWITCH"], ["big"]),
             helper.make_node("If", ["big"], ["x"], then_branch=good, else_branch=grey)]
    _save(nodes, "batch-if", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", Z])], [out], inits, path)
    return path


class TorchPeek(torch.nn.Module):
    def __init__(self, vocab: int = 256):
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens):
        nxt = torch.nn.functional.pad(tokens[:, 1:], (0, 1))
        return torch.nn.functional.one_hot(nxt, self.vocab).float() * PEEK_SCALE


class TorchBatchIf(torch.nn.Module):
    def __init__(self, w: np.ndarray):
        super().__init__()
        self.w = torch.nn.Parameter(torch.from_numpy(w.copy()), requires_grad=False)

    def forward(self, z):
        x = torch.sigmoid(z @ self.w)
        if z.shape[0] < SWITCH:
            x = x * 0.0 + 0.5
        return x.reshape(-1, 1, 8, 8)


class PeekingTextModel(GenerativeModel):
    """A text model that reads the next byte: what a plugin author who forgot the causal mask exports."""

    def train(self, data, config, progress):
        return TrainSummary(steps=0, seconds=0.0)

    def export_onnx(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_peeking_graph(directory / "logits.onnx")
        return OnnxBundle(directory, (GraphSpec(
            "logits", "logits.onnx", (TensorSpec("tokens", ("batch", "seq"), dtype="int64", source="tokens", vocab=256),),
            (TensorSpec("logits", ("batch", "seq", 256)),), attrs={"context_length": 64}),))

    def torch_module(self, role):
        return TorchPeek().eval()


class BatchIfModel(GenerativeModel):
    """A digits 'generator' whose output depends on its batch size."""

    def train(self, data, config, progress):
        self.w = batch_if_weights(config.seed)
        return TrainSummary(steps=1, seconds=0.0)

    def export_onnx(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_batch_if_graph(directory / "g.onnx", self.w)
        return OnnxBundle(directory, (GraphSpec("sample", "g.onnx", (TensorSpec("z", ("batch", Z), source="normal"),),
                                                (TensorSpec("x", ("batch", 1, 8, 8), low=0.0, high=1.0),)),))

    def torch_module(self, role):
        return TorchBatchIf(self.w).eval()


class LyingPlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_models(register):
        register(ModelSpec("lying-peek", "test", ("text",), "lying_fakes:PeekingTextModel", "reads the next byte"))
        register(ModelSpec("lying-batch-if", "test", ("image",), "lying_fakes:BatchIfModel",
                           "grey below 100 rows, samples above"))
