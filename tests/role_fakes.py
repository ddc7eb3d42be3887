"""Fakes for the graph roles (tests/test_roles.py): ``denoise`` and ``likelihood`` graphs written with onnx.helper
whose outputs are known in closed form, and the plugin that registers models built from them.

* :func:`write_gaussian_denoise` — the exact noise (or v) prediction for data x_0 ~ N(mu, s² I): under the
  forward process x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε the pair (x_0, x_t) is jointly Gaussian, so
  E[ε | x_t] = √(1 − ᾱ_t) (x_t − √ᾱ_t mu) / (ᾱ_t s² + 1 − ᾱ_t), and E[v | x_t] = √ᾱ_t E[ε | x_t] −
  √(1 − ᾱ_t) E[x_0 | x_t] follows. Both are P[t] · x_t + Q[t] · mu, tabulated over t.
* :func:`write_gaussian_log_density` — log N(x; mu, s² I) summed over every non-batch axis: a flow whose
  exact likelihood is a Gaussian.
* :func:`write_uniform_log_density` — log p(x) = 0: the uniform density on [0, 1]^D.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

import genbench
from fakes import TinyModel, save_logits_graph
from genbench import GenerativeModel, GraphSpec, ModelSpec, OnnxBundle, TensorSpec, TrainSummary
from genbench.runtime.diffusion import schedule_from_attrs


def _save(path: Path, nodes: list, name: str, inputs: list, outputs: list, inits: list) -> None:
    model = helper.make_model(helper.make_graph(nodes, name, inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def gaussian_tables(attrs: dict, s: float) -> tuple[np.ndarray, np.ndarray]:
    """(P, Q) over t of the exact prediction P[t] x_t + Q[t] mu for data N(mu, s² I), for ``attrs``' schedule."""
    schedule = schedule_from_attrs(attrs)
    abar = schedule.alphas_cumprod
    a = np.sqrt(1 - abar) / (abar * s**2 + 1 - abar)  # E[eps | x_t] = a (x_t - sqrt(abar) mu)
    if schedule.prediction == "v":  # v = E[eps]/sqrt(abar) - sqrt((1 - abar)/abar) x_t
        return a / np.sqrt(abar) - np.sqrt((1 - abar) / abar), -a
    return a, -a * np.sqrt(abar)


def write_gaussian_denoise(path: Path, attrs: dict, mu: np.ndarray, s: float, t_dtype: str = "int64") -> None:
    """``(x [batch, *mu.shape], t [batch]) → P[t] x + Q[t] mu``: the exact ε (or v) for data N(mu, s² I)."""
    p, q = gaussian_tables(attrs, s)
    shape = tuple(mu.shape)
    inits = [numpy_helper.from_array(p.astype(np.float32), "P"), numpy_helper.from_array(q.astype(np.float32), "Q"),
             numpy_helper.from_array(mu.astype(np.float32), "MU"),
             numpy_helper.from_array(np.array([-1] + [1] * len(shape), np.int64), "COL")]
    nodes = []
    t_name = "t"
    if t_dtype == "float32":
        nodes.append(helper.make_node("Cast", ["t"], ["t_int"], to=TensorProto.INT64))
        t_name = "t_int"
    nodes += [helper.make_node("Gather", ["P", t_name], ["pt"], axis=0),
              helper.make_node("Gather", ["Q", t_name], ["qt"], axis=0),
              helper.make_node("Reshape", ["pt", "COL"], ["pc"]),
              helper.make_node("Reshape", ["qt", "COL"], ["qc"]),
              helper.make_node("Mul", ["pc", "x"], ["px"]),
              helper.make_node("Mul", ["qc", "MU"], ["qm"]),
              helper.make_node("Add", ["px", "qm"], ["eps"])]
    elem = TensorProto.INT64 if t_dtype == "int64" else TensorProto.FLOAT
    _save(path, nodes, "gaussian-denoise",
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape]),
           helper.make_tensor_value_info("t", elem, ["batch"])],
          [helper.make_tensor_value_info("eps", TensorProto.FLOAT, ["batch", *shape])], inits)


class TorchGaussianDenoise(torch.nn.Module):
    def __init__(self, attrs: dict, mu: np.ndarray, s: float):
        super().__init__()
        p, q = gaussian_tables(attrs, s)
        self.register_buffer("p", torch.tensor(p, dtype=torch.float32))
        self.register_buffer("q", torch.tensor(q, dtype=torch.float32))
        self.register_buffer("mu", torch.tensor(mu, dtype=torch.float32))

    def forward(self, x, t):
        col = (-1,) + (1,) * (x.dim() - 1)
        t = t.long()
        return self.p[t].reshape(col) * x + self.q[t].reshape(col) * self.mu


def denoise_spec(attrs: dict, shape: tuple[int, ...], path: str = "denoise.onnx", t_dtype: str = "int64",
                 t_vocab: int | None = None, out_shape: tuple | None = None, role: str = "denoise") -> GraphSpec:
    T = len(attrs["betas"]) if "betas" in attrs else attrs.get("steps", 1000)  # a malformed schedule too
    return GraphSpec(role, path, (TensorSpec("x", ("batch", *shape), source="normal"),
                                  TensorSpec("t", ("batch",), dtype=t_dtype, source="timestep", vocab=t_vocab or T)),
                     (TensorSpec("eps", out_shape or ("batch", *shape)),), attrs=dict(attrs))


def gaussian_denoise_bundle(directory: Path, attrs: dict, mu: np.ndarray, s: float,
                            t_dtype: str = "int64") -> OnnxBundle:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_gaussian_denoise(directory / "denoise.onnx", attrs, mu, s, t_dtype)
    return OnnxBundle(directory, (denoise_spec(attrs, tuple(mu.shape), t_dtype=t_dtype),))


def write_gaussian_log_density(path: Path, shape: tuple[int, ...], mu: np.ndarray, s: float) -> None:
    """``x [batch, *shape] → log N(x; mu, s² I)`` (nats, summed over every non-batch axis)."""
    d = math.prod(shape)
    inits = [numpy_helper.from_array(mu.astype(np.float32), "MU"),
             numpy_helper.from_array(np.array(s, np.float32), "S"),
             numpy_helper.from_array(np.array(-0.5, np.float32), "HALF"),
             numpy_helper.from_array(np.array(-d * (math.log(s) + 0.5 * math.log(2 * math.pi)), np.float32), "C"),
             numpy_helper.from_array(np.arange(1, len(shape) + 1, dtype=np.int64), "AXES")]
    nodes = [helper.make_node("Sub", ["x", "MU"], ["c"]), helper.make_node("Div", ["c", "S"], ["z"]),
             helper.make_node("Mul", ["z", "z"], ["z2"]),
             helper.make_node("ReduceSum", ["z2", "AXES"], ["ss"], keepdims=0),
             helper.make_node("Mul", ["ss", "HALF"], ["h"]), helper.make_node("Add", ["h", "C"], ["logp"])]
    _save(path, nodes, "gaussian-log-density", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])],
          [helper.make_tensor_value_info("logp", TensorProto.FLOAT, ["batch"])], inits)


class TorchGaussianLogDensity(torch.nn.Module):
    def __init__(self, mu: np.ndarray, s: float):
        super().__init__()
        self.register_buffer("mu", torch.tensor(mu, dtype=torch.float32))
        self.s = s

    def forward(self, x):
        z = (x - self.mu) / self.s
        d = math.prod(x.shape[1:])
        return -0.5 * z.pow(2).flatten(1).sum(1) - d * (math.log(self.s) + 0.5 * math.log(2 * math.pi))


def write_uniform_log_density(path: Path, shape: tuple[int, ...]) -> None:
    """``x [batch, *shape] → 0``: the uniform density on [0, 1]^D (0 × Σx, so the graph reads its input)."""
    inits = [numpy_helper.from_array(np.arange(1, len(shape) + 1, dtype=np.int64), "AXES"),
             numpy_helper.from_array(np.array(0.0, np.float32), "ZERO")]
    nodes = [helper.make_node("ReduceSum", ["x", "AXES"], ["sx"], keepdims=0),
             helper.make_node("Mul", ["sx", "ZERO"], ["logp"])]
    _save(path, nodes, "uniform-log-density", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])],
          [helper.make_tensor_value_info("logp", TensorProto.FLOAT, ["batch"])], inits)


class TorchZeroLogDensity(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1).sum(1) * 0.0


def likelihood_spec(shape: tuple[int, ...], attrs: dict, path: str = "likelihood.onnx",
                    role: str = "likelihood") -> GraphSpec:
    return GraphSpec(role, path, (TensorSpec("x", ("batch", *shape), source="data"),),
                     (TensorSpec("logp", ("batch",)),), attrs=dict(attrs))


# --------------------------------------------------------------------------- models for genbench.run

#: the schedule of the fake diffusion models: T = 60, so the smoke run's sweep is short
FAKE_DIFFUSION_ATTRS = {"prediction": "epsilon", "schedule": "linear", "steps": 60, "beta_start": 1e-4,
                        "beta_end": 0.2}


class GaussianDiffusionModel(GenerativeModel):
    """A 'diffusion model' of the training data's per-dimension mean and a fixed spread: its denoise graph is the
    exact ε of N(mean, S² I); genbench samples it with its own DDIM loop."""

    S = 0.25
    attrs = FAKE_DIFFUSION_ATTRS

    def train(self, data, config, progress):
        x = np.asarray(data.x, dtype=np.float64)
        self.mu, self.shape = x.mean(0).astype(np.float32), tuple(data.shape)
        return TrainSummary(steps=1, seconds=0.0)

    def export_onnx(self, directory):
        return gaussian_denoise_bundle(Path(directory), self.attrs, self.mu, self.S)

    def torch_module(self, role):
        return TorchGaussianDenoise(self.attrs, self.mu, self.S).eval()


class GaussianFlowModel(GenerativeModel):
    """A 'flow' with an exact likelihood: on points, the Gaussian N(mean, S² I) of the training data (sample graph
    mu + S z); on images a sample graph (TinyModel's) and the uniform density of dequantised pixels."""

    S = 0.5

    def train(self, data, config, progress):
        self.kind, self.shape = data.kind, tuple(data.shape)
        self.mu = np.asarray(data.x, dtype=np.float64).mean(0).astype(np.float32)
        self.levels = data.levels
        self.tiny = TinyModel()
        self.tiny.train(data, config, progress)
        return TrainSummary(steps=1, seconds=0.0)

    def export_onnx(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.kind == "points":
            write_affine_sample(directory / "sample.onnx", self.mu, self.S)
            sample = GraphSpec("sample", "sample.onnx", (TensorSpec("z", ("batch", *self.shape), source="normal"),),
                               (TensorSpec("x", ("batch", *self.shape)),))
            write_gaussian_log_density(directory / "likelihood.onnx", self.shape, self.mu, self.S)
            lik = likelihood_spec(self.shape, {"bound": "exact", "data": "continuous"})
        else:
            sample = self.tiny.export_onnx(directory).graphs[0]
            write_uniform_log_density(directory / "likelihood.onnx", self.shape)
            lik = likelihood_spec(self.shape, {"bound": "exact", "data": "dequantized", "levels": self.levels})
        return OnnxBundle(directory, (sample, lik))

    def torch_module(self, role):
        if role == "likelihood":
            return (TorchGaussianLogDensity(self.mu, self.S) if self.kind == "points" else TorchZeroLogDensity()).eval()
        if self.kind == "points":
            return TorchAffine(self.mu, self.S).eval()
        return self.tiny.torch_module(role)


def write_affine_sample(path: Path, mu: np.ndarray, s: float) -> None:
    inits = [numpy_helper.from_array(mu.astype(np.float32), "MU"), numpy_helper.from_array(np.array(s, np.float32), "S")]
    nodes = [helper.make_node("Mul", ["z", "S"], ["sz"]), helper.make_node("Add", ["sz", "MU"], ["x"])]
    _save(path, nodes, "affine", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", *mu.shape])],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *mu.shape])], inits)


class TorchAffine(torch.nn.Module):
    def __init__(self, mu: np.ndarray, s: float):
        super().__init__()
        self.register_buffer("mu", torch.tensor(mu, dtype=torch.float32))
        self.s = s

    def forward(self, z):
        return z * self.s + self.mu


class TorchUniformLogits(torch.nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens):
        return tokens.float().unsqueeze(-1) * torch.zeros(self.vocab)


class UniformPixelsARModel(GenerativeModel):
    """An autoregressive image model that gives every one of the task's L pixel levels probability 1/L: its exact
    quantised NLL is D log L, the same number as the uniform flow's dequantised bound, in another column."""

    def train(self, data, config, progress):
        self.levels, self.dims = int(data.levels), math.prod(data.shape)
        return TrainSummary(steps=0, seconds=0.0)

    def export_onnx(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        inits = [numpy_helper.from_array(np.zeros(self.levels, np.float32), "ZEROS"),
                 numpy_helper.from_array(np.array([-1], np.int64), "LAST")]
        nodes = [helper.make_node("Cast", ["tokens"], ["tf"], to=TensorProto.FLOAT),
                 helper.make_node("Unsqueeze", ["tf", "LAST"], ["tu"]),
                 helper.make_node("Mul", ["tu", "ZEROS"], ["logits"])]
        save_logits_graph(directory / "logits.onnx", "uniform-pixels", nodes, inits, self.levels)
        return OnnxBundle(directory, (GraphSpec(
            "logits", "logits.onnx",
            (TensorSpec("tokens", ("batch", "seq"), dtype="int64", source="tokens", vocab=self.levels + 1),),
            (TensorSpec("logits", ("batch", "seq", self.levels)),),
            attrs={"context_length": self.dims + 1, "bos": self.levels, "levels": self.levels}),))

    def torch_module(self, role):
        return TorchUniformLogits(self.levels).eval()


ROLE_FAKES = {"fake-diffusion": ("GaussianDiffusionModel", ("image", "points")),
              "fake-flow": ("GaussianFlowModel", ("image", "points")),
              "fake-ar-uniform": ("UniformPixelsARModel", ("image",))}


class RoleFakesPlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_models(register):
        for name, (cls, kinds) in ROLE_FAKES.items():
            register(ModelSpec(name, "test", kinds, f"role_fakes:{cls}", f"test model {name}"))
