"""Purpose-built model plugins for tests: tiny ONNX graphs written with onnx.helper (fast, no exporter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

import genbench
from genbench import GenerativeModel, GraphSpec, ModelSpec, OnnxBundle, TensorSpec, TrainSummary

Z = 4


def _weights(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((Z, 64)).astype(np.float32)


class TinyTorch(torch.nn.Module):
    def __init__(self, w: np.ndarray, flat: bool = False, scale: float = 1.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.from_numpy(w.copy()), requires_grad=False)
        self.flat, self.scale = flat, scale

    def forward(self, z):
        x = torch.sigmoid(z @ self.w) * self.scale
        return x if self.flat else x.reshape(-1, 1, 8, 8)


def write_graph(path: Path, w: np.ndarray, *, reshape: bool = True, nan: bool = False, batch: int | str = "batch",
                opset: int = 20, scale: float = 1.0) -> None:
    nodes = [helper.make_node("MatMul", ["z", "W"], ["h"]), helper.make_node("Sigmoid", ["h"], ["s"])]
    inits = [numpy_helper.from_array(w, "W")]
    last = "s"
    if scale != 1.0:  # values in [0, scale]
        inits.append(numpy_helper.from_array(np.array(scale, np.float32), "SCALE"))
        nodes.append(helper.make_node("Mul", [last, "SCALE"], ["s_scaled"]))
        last = "s_scaled"
    if nan:
        inits.append(numpy_helper.from_array(np.array([np.nan], np.float32), "NAN"))
        nodes.append(helper.make_node("Mul", [last, "NAN"], ["s_nan"]))
        last = "s_nan"
    if reshape:
        inits.append(numpy_helper.from_array(np.array([-1, 1, 8, 8], np.int64), "SHAPE"))
        nodes.append(helper.make_node("Reshape", [last, "SHAPE"], ["x"]))
        out_shape = [batch, 1, 8, 8]
    else:
        nodes.append(helper.make_node("Identity", [last], ["x"]))
        out_shape = [batch, 64]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("z", TensorProto.FLOAT, [batch, Z])],
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    onnx.save(model, str(path))


class TinyModel(GenerativeModel):
    """A correct model: sigmoid(z W) reshaped to 8×8; 'training' just seeds the weights."""

    graph_kwargs: dict = {}
    torch_offset = 0.0
    declared_out = ("batch", 1, 8, 8)
    declared_range: tuple = (0.0, 1.0)

    def train(self, data, config, progress):
        self.w = _weights(config.seed)
        progress(1, 1, {"loss": 0.0})
        return TrainSummary(steps=config.steps or 1, seconds=0.0, loss_history={"loss": [1.0, 0.5]})

    def export_onnx(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_graph(directory / "g.onnx", self.w, **self.graph_kwargs)
        return OnnxBundle(directory, (GraphSpec("sample", "g.onnx", (TensorSpec("z", ("batch", Z), source="normal"),),
                                                (TensorSpec("x", self.declared_out, low=self.declared_range[0],
                                                            high=self.declared_range[1]),)),))

    def torch_module(self, role):
        return TinyTorch(self.w + self.torch_offset, scale=self.graph_kwargs.get("scale", 1.0)).eval()


class WrongShapeModel(TinyModel):
    graph_kwargs = {"reshape": False}  # the graph outputs [B, 64]; the spec says [B, 1, 8, 8]


class NaNModel(TinyModel):
    graph_kwargs = {"nan": True}


class ParityModel(TinyModel):
    torch_offset = 0.5  # the torch module is not what was exported


class FixedBatchModel(TinyModel):
    graph_kwargs = {"batch": 4}  # exporter fixed the batch axis


class NaNRangeModel(TinyModel):
    declared_range = (float("nan"), float("nan"))  # a NaN bound would switch the range check off


class WideRangeModel(TinyModel):
    declared_range = (-1.0, 1.0)  # a tanh range on a [0, 1] task


class UnboundedModel(TinyModel):
    declared_range = (None, None)
    graph_kwargs = {"scale": 3.0}  # values in [0, 3]: outside digits' [0, 1], and nothing declared to catch it


class ColourModel(TinyModel):
    declared_out = ("batch", 3, 8, 8)  # three channels on a greyscale task


class RaisingTrainModel(TinyModel):
    def train(self, data, config, progress):
        raise RuntimeError("boom in train")


class NotAModel:
    pass


class CachedModel(TinyModel):
    """TinyModel with the cache contract: its weights round-trip through state_dict/load_state_dict."""

    def state_dict(self):
        return {"w": torch.from_numpy(self.w.copy()), "note": "tiny", "shape": (Z, 64)}

    def load_state_dict(self, state, data, config):
        assert isinstance(state["w"], torch.Tensor) and state["note"] == "tiny"
        self.w = state["w"].numpy()


class WrongRestoreModel(CachedModel):
    """Restores the wrong weights: the cached graph no longer matches its model, so the entry is refused."""

    def load_state_dict(self, state, data, config):
        self.w = np.zeros((Z, 64), np.float32)


class RaisingRestoreModel(CachedModel):
    def load_state_dict(self, state, data, config):
        raise RuntimeError("boom in load_state_dict")


class RaisingStateModel(CachedModel):
    def state_dict(self):
        raise RuntimeError("boom in state_dict")


class PickledStateModel(CachedModel):
    """Returns an arbitrary object: torch.load(weights_only=True) could not read it back, so it is not cached."""

    def state_dict(self):
        return {"w": torch.from_numpy(self.w.copy()), "obj": Path("/")}


FAKES = {
    "tiny-ok": "TinyModel", "tiny-wrong-shape": "WrongShapeModel", "tiny-nan": "NaNModel",
    "tiny-parity": "ParityModel", "tiny-fixed-batch": "FixedBatchModel", "tiny-raises": "RaisingTrainModel",
    "tiny-not-a-model": "NotAModel", "tiny-cached": "CachedModel", "tiny-wrong-restore": "WrongRestoreModel",
    "tiny-raising-restore": "RaisingRestoreModel", "tiny-raising-state": "RaisingStateModel",
    "tiny-pickled-state": "PickledStateModel", "tiny-nan-range": "NaNRangeModel", "tiny-wide-range": "WideRangeModel",
    "tiny-unbounded": "UnboundedModel", "tiny-colour": "ColourModel",
}


class FakePlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_models(register):
        for name, cls in FAKES.items():
            register(ModelSpec(name, "test", ("image",), f"fakes:{cls}", f"test model {name}"))


# --------------------------------------------------------------------------- elbo graphs


def write_elbo_graph(path: Path, *, sign: float = -1.0, keepdims: bool = False) -> None:
    """elbo(x, eps) = sign · (Σ x + 1) − 0·Σ eps: a toy 'bound' whose sign and shape tests control."""
    inits = [numpy_helper.from_array(np.array([1, 2, 3], np.int64), "AXES"),
             numpy_helper.from_array(np.array([1], np.int64), "AXIS1"),
             numpy_helper.from_array(np.array(sign, np.float32), "SIGN"),
             numpy_helper.from_array(np.array(1.0, np.float32), "ONE"),
             numpy_helper.from_array(np.array(0.0, np.float32), "ZERO")]
    nodes = [helper.make_node("ReduceSum", ["x", "AXES"], ["sx"], keepdims=0),
             helper.make_node("ReduceSum", ["eps", "AXIS1"], ["se"], keepdims=0),
             helper.make_node("Mul", ["se", "ZERO"], ["se0"]),
             helper.make_node("Add", ["sx", "ONE"], ["s1"]),
             helper.make_node("Mul", ["s1", "SIGN"], ["s2"])]
    if keepdims:
        nodes += [helper.make_node("Add", ["s2", "se0"], ["s3"]), helper.make_node("Unsqueeze", ["s3", "AXIS1"], ["elbo"])]
        out = [helper.make_tensor_value_info("elbo", TensorProto.FLOAT, ["batch", 1])]
    else:
        nodes.append(helper.make_node("Add", ["s2", "se0"], ["elbo"]))
        out = [helper.make_tensor_value_info("elbo", TensorProto.FLOAT, ["batch"])]
    graph = helper.make_graph(nodes, "elbo", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8]),
                                              helper.make_tensor_value_info("eps", TensorProto.FLOAT, ["batch", 2])], out, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.save(model, str(path))


class TorchElbo(torch.nn.Module):
    def __init__(self, sign: float, keepdims: bool):
        super().__init__()
        self.sign, self.keepdims = sign, keepdims

    def forward(self, x, eps):
        out = self.sign * (x.sum((1, 2, 3)) + 1.0) + 0.0 * eps.sum(1)
        return out.unsqueeze(1) if self.keepdims else out


class TinyElboModel(TinyModel):
    sign = -1.0
    keepdims = False
    elbo_shape = ("batch",)

    def export_onnx(self, directory):
        bundle = super().export_onnx(directory)
        write_elbo_graph(Path(directory) / "elbo.onnx", sign=self.sign, keepdims=self.keepdims)
        elbo = GraphSpec("elbo", "elbo.onnx", (TensorSpec("x", ("batch", 1, 8, 8), source="data"),
                                               TensorSpec("eps", ("batch", 2), source="normal")),
                         (TensorSpec("elbo", self.elbo_shape),), attrs={"data": "binarized", "importance_samples": 1})
        return OnnxBundle(bundle.directory, (*bundle.graphs, elbo))

    def torch_module(self, role):
        return TorchElbo(self.sign, self.keepdims).eval() if role == "elbo" else super().torch_module(role)


class PositiveElboModel(TinyElboModel):
    sign = 1.0  # a 'log-likelihood' above 0 for binary data


class WrongShapeElboModel(TinyElboModel):
    keepdims = True  # [batch, 1] instead of [batch]
    elbo_shape = ("batch", 1)


FAKES.update({"tiny-elbo": "TinyElboModel", "tiny-elbo-positive": "PositiveElboModel",
              "tiny-elbo-shape": "WrongShapeElboModel"})


# --------------------------------------------------------------------------- logits graphs (text)


def write_logits_graph(path: Path, vocab: int = 256, positions: int | None = None) -> None:
    """tokens [B, T] → zero logits [B, T, vocab] (a uniform model); with ``positions``, also adds a row of a
    [positions, vocab] zero table per position, so the graph fails for T > positions."""
    inits = [numpy_helper.from_array(np.zeros(vocab, np.float32), "ZEROS"),
             numpy_helper.from_array(np.array([-1], np.int64), "LAST")]
    nodes = [helper.make_node("Cast", ["tokens"], ["tf"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["tf", "LAST"], ["tu"]),
             helper.make_node("Mul", ["tu", "ZEROS"], ["z" if positions else "logits"])]
    if positions:
        inits += [numpy_helper.from_array(np.zeros((positions, vocab), np.float32), "POS"),
                  numpy_helper.from_array(np.array(1, np.int64), "ONE_I"),
                  numpy_helper.from_array(np.array(0, np.int64), "ZERO_I")]
        nodes += [helper.make_node("Shape", ["tokens"], ["shp"]),
                  helper.make_node("Gather", ["shp", "ONE_I"], ["seq"], axis=0),
                  helper.make_node("Range", ["ZERO_I", "seq", "ONE_I"], ["idx"]),
                  helper.make_node("Gather", ["POS", "idx"], ["pos"], axis=0),
                  helper.make_node("Add", ["z", "pos"], ["logits"])]
    save_logits_graph(path, "uniform", nodes, inits, vocab)


def save_logits_graph(path, name: str, nodes: list, inits: list, vocab: int) -> None:
    """A ``logits`` graph (int64 tokens [batch, seq] → float logits [batch, seq, vocab]) made of ``nodes``."""
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.save(model, str(path))


class TorchUniform(torch.nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens):
        return torch.zeros(*tokens.shape, self.vocab)


class UniformTextModel(GenerativeModel):
    vocab = 256
    positions = None
    context = 64

    def train(self, data, config, progress):
        return TrainSummary(steps=0, seconds=0.0)

    def export_onnx(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_logits_graph(directory / "logits.onnx", self.vocab, self.positions)
        return OnnxBundle(directory, (GraphSpec(
            "logits", "logits.onnx", (TensorSpec("tokens", ("batch", "seq"), dtype="int64", source="tokens", vocab=256),),
            (TensorSpec("logits", ("batch", "seq", self.vocab)),), attrs={"context_length": self.context}),))

    def torch_module(self, role):
        return TorchUniform(self.vocab).eval()


class WrongVocabTextModel(UniformTextModel):
    vocab = 300


class ShortContextTextModel(UniformTextModel):
    positions = 16  # declares 64, supports 16


class TextPlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_models(register):
        for name, cls in {"text-uniform": "UniformTextModel", "text-wrong-vocab": "WrongVocabTextModel",
                          "text-short-context": "ShortContextTextModel"}.items():
            register(ModelSpec(name, "test", ("text",), f"fakes:{cls}", f"test model {name}"))


# --------------------------------------------------------------------------- hostile plugins (process isolation)


class HangingModel(TinyModel):
    def train(self, data, config, progress):
        import time

        time.sleep(3600)


class ExitingModel(TinyModel):
    def export_onnx(self, directory):
        import os

        os._exit(3)


class SegfaultModel(TinyModel):
    def train(self, data, config, progress):
        import ctypes

        ctypes.string_at(0)


class SysExitModel(TinyModel):
    def train(self, data, config, progress):
        import sys

        sys.exit("plugin called sys.exit")


class MemoryHogModel(TinyModel):
    """Asks for 8 GiB at once, as a model far too big for the machine would."""

    def train(self, data, config, progress):
        hog = np.empty(2**31, np.float32)
        hog.fill(1.0)
        return super().train(data, config, progress)


class KilledModel(TinyModel):
    """Dies by SIGKILL, as under the kernel's out-of-memory killer."""

    def train(self, data, config, progress):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


class LeakyThreadsModel(TinyModel):
    """Starts a non-daemon thread that would keep its process alive for an hour, and a daemon one."""

    def train(self, data, config, progress):
        import threading
        import time

        threading.Thread(target=time.sleep, args=(3600,), name="leaked-sleeper").start()
        threading.Thread(target=time.sleep, args=(3600,), name="leaked-daemon", daemon=True).start()
        return super().train(data, config, progress)


FAKES.update({"tiny-hangs": "HangingModel", "tiny-exits": "ExitingModel", "tiny-segfaults": "SegfaultModel",
              "tiny-sys-exit": "SysExitModel", "tiny-memory-hog": "MemoryHogModel", "tiny-killed": "KilledModel",
              "tiny-leaky-threads": "LeakyThreadsModel"})


class SlowModel(TinyModel):
    def train(self, data, config, progress):
        import time

        time.sleep(4)
        return super().train(data, config, progress)


FAKES["tiny-slow"] = "SlowModel"


# --------------------------------------------------------------------------- conformance-kit cases


class WrongRoleModel(TinyModel):
    def export_onnx(self, directory):
        bundle = super().export_onnx(directory)
        g = bundle.graphs[0]
        return OnnxBundle(bundle.directory, (GraphSpec("samples", g.path, g.inputs, g.outputs),))


class NondeterministicModel(TinyModel):
    def train(self, data, config, progress):
        summary = super().train(data, config, progress)
        self.w = np.random.default_rng().standard_normal(self.w.shape).astype(np.float32)  # ignores config.seed
        return summary


class NoHookPlugin:
    """A plugin whose author forgot the @hookimpl."""

    @staticmethod
    def genbench_register_models(register):
        register(ModelSpec("never-registered", "test", ("image",), "fakes:TinyModel", "never registered"))


FAKES.update({"tiny-wrong-role": "WrongRoleModel", "tiny-nondeterministic": "NondeterministicModel"})


class RaisesInExportModel(TinyModel):
    def export_onnx(self, directory):
        raise ValueError("boom in export")


class RaisesInTorchModuleModel(TinyModel):
    def torch_module(self, role):
        raise RuntimeError("boom in torch_module")


class NaNLossModel(TinyModel):
    def train(self, data, config, progress):
        super().train(data, config, progress)
        return TrainSummary(steps=1, seconds=0.0, loss_history={"loss": [1.0, float("nan")]})


class WrongReturnModel(TinyModel):
    def train(self, data, config, progress):
        super().train(data, config, progress)
        return {"steps": 1}


FAKES.update({"tiny-raises-export": "RaisesInExportModel", "tiny-raises-torch": "RaisesInTorchModuleModel",
              "tiny-nan-loss": "NaNLossModel", "tiny-wrong-return": "WrongReturnModel"})


class HostileNamesPlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_models(register):
        register(ModelSpec("../../evil", "test", ("image",), "fakes:TinyModel", "path traversal"))


class RaisingMetricPlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_metrics(register):
        from genbench import MetricSpec

        register(MetricSpec("broken-metric", ("image",), "fakes:make_broken_metric", "", False, "raises"))


def make_broken_metric():
    def metric(ctx):
        raise ZeroDivisionError("metric blew up")

    return metric


# --------------------------------------------------------------------------- a sample graph fed the test split


def write_identity_graph(path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Identity", ["x_in"], ["x"])], "replay-test",
                              [helper.make_tensor_value_info("x_in", TensorProto.FLOAT, ["batch", 1, 8, 8])],
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.save(model, str(path))


class DataFedSampleModel(TinyModel):
    """A 'generator' that returns its input, declared to be fed from the test split: it would score perfectly."""

    def export_onnx(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_identity_graph(directory / "g.onnx")
        return OnnxBundle(directory, (GraphSpec("sample", "g.onnx",
                                                (TensorSpec("x_in", ("batch", 1, 8, 8), source="data"),),
                                                (TensorSpec("x", ("batch", 1, 8, 8), low=0.0, high=1.0),)),))

    def torch_module(self, role):
        return torch.nn.Identity().eval()


FAKES["tiny-test-data"] = "DataFedSampleModel"


# --------------------------------------------------------------------------- interruptions and hostile restores

SLEEP_ENV, MARKS_ENV = "GENBENCH_TEST_SLEEP", "GENBENCH_TEST_MARKS"


def _mark(what: str) -> None:
    """A file per process in $GENBENCH_TEST_MARKS, so a test knows which unit processes ran, and their pids."""
    import os

    if os.environ.get(MARKS_ENV):
        Path(os.environ[MARKS_ENV], f"{what}-{os.getpid()}").touch()


def _nap(what: str) -> None:
    import os
    import time

    time.sleep(float(os.environ.get(f"{SLEEP_ENV}_{what.upper()}") or os.environ.get(SLEEP_ENV) or 1))


class _DataDependent(torch.nn.Module):
    """A module with a Python branch on a tensor's value: torch.export cannot capture it."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, z):
        out = self.inner(z)
        return out * 0 if float(z.abs().sum()) > 1e30 else out


class SleepyModel(CachedModel):
    """Trains for $GENBENCH_TEST_SLEEP_TRAIN seconds, and restores in $GENBENCH_TEST_SLEEP_RESTORE seconds; each
    defaults to $GENBENCH_TEST_SLEEP, else 1. Its torch module cannot be captured by torch.export, so the
    timing stage times torch in the plugin's own process, which restores the model first."""

    def train(self, data, config, progress):
        _mark("train")
        _nap("train")
        return super().train(data, config, progress)

    def torch_module(self, role):
        return _DataDependent(super().torch_module(role)).eval()

    def load_state_dict(self, state, data, config):
        _mark("restore")
        _nap("restore")
        super().load_state_dict(state, data, config)


class HangingRestoreModel(CachedModel):
    """Trains and caches fine; restoring it from the cache hangs."""

    def load_state_dict(self, state, data, config):
        import time

        time.sleep(3600)


FAKES.update({"tiny-sleepy": "SleepyModel", "tiny-hanging-restore": "HangingRestoreModel"})


# --------------------------------------------------------------------------- NaN for some inputs only

NAN_ABOVE = 2.5  # the sample graph emits NaN for samples whose first noise value exceeds this (about 0.6%)


def write_sometimes_nan_graph(path: Path, w: np.ndarray) -> None:
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([-1, 1, 8, 8], np.int64), "SHAPE"),
             numpy_helper.from_array(np.array([0], np.int64), "S0"), numpy_helper.from_array(np.array([1], np.int64), "S1"),
             numpy_helper.from_array(np.array([1], np.int64), "AX"),
             numpy_helper.from_array(np.array(NAN_ABOVE, np.float32), "T"),
             numpy_helper.from_array(np.array(np.nan, np.float32), "NAN"),
             numpy_helper.from_array(np.array(1.0, np.float32), "ONE")]
    nodes = [helper.make_node("MatMul", ["z", "W"], ["h"]), helper.make_node("Sigmoid", ["h"], ["s"]),
             helper.make_node("Slice", ["z", "S0", "S1", "AX"], ["z0"]),
             helper.make_node("Greater", ["z0", "T"], ["over"]),
             helper.make_node("Where", ["over", "NAN", "ONE"], ["mask"]),
             helper.make_node("Mul", ["s", "mask"], ["m"]),
             helper.make_node("Reshape", ["m", "SHAPE"], ["x"])]
    graph = helper.make_graph(nodes, "sometimes-nan", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", Z])],
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.save(model, str(path))


class TorchSometimesNaN(TinyTorch):
    def forward(self, z):
        mask = torch.where(z[:, :1] > NAN_ABOVE, torch.tensor(float("nan")), torch.tensor(1.0))
        return (torch.sigmoid(z @ self.w) * mask).reshape(-1, 1, 8, 8)


class SometimesNaNModel(TinyModel):
    def export_onnx(self, directory):
        bundle = super().export_onnx(directory)
        write_sometimes_nan_graph(Path(directory) / "g.onnx", self.w)
        return bundle

    def torch_module(self, role):
        return TorchSometimesNaN(self.w).eval()


FAKES["tiny-sometimes-nan"] = "SometimesNaNModel"


class NewlineNamePlugin:
    """Registers 'tiny-ok\\n' beside the real 'tiny-ok', then a spec whose name is changed after it was checked."""

    @staticmethod
    @genbench.hookimpl
    def genbench_register_models(register):
        try:
            register(ModelSpec("tiny-ok\n", "test", ("image",), "fakes:TinyModel", "a second tiny-ok"))
        finally:
            spec = ModelSpec("tiny-sneaky", "test", ("image",), "fakes:TinyModel", "renamed after the check")
            object.__setattr__(spec, "name", "tiny-ok\n")
            register(spec)


class NoSpaceModel(TinyModel):
    """Its export meets a full disk."""

    def export_onnx(self, directory):
        import errno
        import os

        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


FAKES["tiny-no-space"] = "NoSpaceModel"


# --------------------------------------------------------------------------- hostile task data


def load_hanging(data_dir=None, seed=0):
    import time

    time.sleep(3600)


def load_bomb(data_dir=None, seed=0):
    """What a small compressed file that inflates to gigabytes does to its reader."""
    import zlib

    bomb = zlib.compress(bytes(2**20))  # 1 MiB of zeros, 1 KiB compressed
    # a reader that trusts the size a file declares (8 GiB) and allocates it up front: under --max-memory the
    # allocation fails at once, however loaded the machine is (inflating chunk by chunk took seconds, and under
    # load outlasted the loader's timeout before it reached the memory limit)
    return np.frombuffer(zlib.decompress(bomb, bufsize=2**33), np.uint8)


def load_not_a_dataset(data_dir=None, seed=0):
    return {"x": [1, 2, 3]}


class HostileDataPlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_datasets(register):
        from genbench import DatasetSpec

        for name, loader in {"hanging-data": "load_hanging", "bomb-data": "load_bomb",
                             "not-a-dataset": "load_not_a_dataset"}.items():
            register(DatasetSpec(name, "image", f"fakes:{loader}", f"test task {name}"))


class SelfInterruptingModel(TinyModel):
    """Presses Ctrl-C on its own process while it trains (meaningful with the inline executor)."""

    def train(self, data, config, progress):
        import os
        import signal
        import time

        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        return super().train(data, config, progress)


FAKES["tiny-self-interrupting"] = "SelfInterruptingModel"


class SpawningModel(TinyModel):
    """Starts a long `sleep` process (its pid in $TMPDIR/genbench-spawned-<steps>), then hangs."""

    def train(self, data, config, progress):
        import subprocess
        import tempfile
        import time

        child = subprocess.Popen(["sleep", "3600"])
        Path(tempfile.gettempdir(), f"genbench-spawned-{config.steps}").write_text(str(child.pid))
        time.sleep(3600)


FAKES["tiny-spawns"] = "SpawningModel"


# --------------------------------------------------------------------------- progress display


class SteppingModel(TinyModel):
    """Trains in $GENBENCH_TEST_STEPS steps (default 6) of 0.25 s each, reporting each step and a loss."""

    def train(self, data, config, progress):
        import os
        import time

        total = int(os.environ.get("GENBENCH_TEST_STEPS") or 6)
        for step in range(1, total + 1):
            time.sleep(0.25)
            progress(step, total, {"loss": 1.0 / step})
        return super().train(data, config, lambda *a: None)


FAKES["tiny-stepping"] = "SteppingModel"


# --------------------------------------------------------------------------- a plugin's output and the processes it leaves

ESCAPES = "\x1b[2K\x1b[1A\x1b[31mFAKE: all good\x1b[0m [bold]styled[/bold]"


class EscapingModel(TinyModel):
    """Prints terminal escape sequences (clear the screen, go home) on stdout and stderr, through Python and
    straight to the file descriptors, then raises an error whose message carries more of them."""

    def train(self, data, config, progress):
        import os
        import sys

        print("\x1b[2J\x1b[Hscreen cleared by the plugin", flush=True)
        sys.stderr.write("\x1b[31mred from the plugin\n")
        sys.stderr.flush()
        os.write(1, b"\x1b[2Kstraight to fd 1\n")
        os.write(2, b"\x1b[2Kstraight to fd 2\n")
        raise ValueError(ESCAPES)


class ChattyModel(TinyModel):
    """Writes $GENBENCH_TEST_PRINT_MB MiB (default 3) to stdout while it trains, then trains fine."""

    def train(self, data, config, progress):
        import os

        line = b"x" * 1023 + b"\n"
        for _ in range(int(float(os.environ.get("GENBENCH_TEST_PRINT_MB") or 3) * 1024)):
            os.write(1, line)
        return super().train(data, config, progress)


def start_escaping_sleeper(seconds: int) -> None:
    """Start `sleep SECONDS` the way a daemon does: in a new session, from an intermediate process that exits at
    once (a double fork), so the sleep leaves both the process group and the process tree of its starter."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "import subprocess, sys\n"
                    "subprocess.Popen(['sleep', sys.argv[1]], start_new_session=True, stdout=sys.stdout)\n",
                    str(seconds)], check=True)


class SetsidHangingModel(TinyModel):
    """Starts an escaping `sleep <steps>` (start_escaping_sleeper), then hangs: the job times out."""

    def train(self, data, config, progress):
        import time

        start_escaping_sleeper(config.steps)
        time.sleep(3600)


class SetsidFinishingModel(TinyModel):
    """Starts an escaping `sleep <steps>`, then trains fine: the job ends normally."""

    def train(self, data, config, progress):
        start_escaping_sleeper(config.steps)
        return super().train(data, config, progress)


class SetsidExitingModel(TinyModel):
    """Starts an escaping `sleep <steps>`, then ends its own process with os._exit (nothing of genbench runs
    after it in that process)."""

    def train(self, data, config, progress):
        import os

        start_escaping_sleeper(config.steps)
        os._exit(3)


FAKES.update({"tiny-escapes": "EscapingModel", "tiny-chatty": "ChattyModel", "tiny-setsid-hangs": "SetsidHangingModel",
              "tiny-setsid-ok": "SetsidFinishingModel", "tiny-setsid-exits": "SetsidExitingModel"})
