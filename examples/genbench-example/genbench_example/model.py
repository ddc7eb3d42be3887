"""example-gan: a small MLP GAN. Replace the networks with yours; keep the three methods' contracts."""

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genbench import GenerativeModel, GraphSpec, OnnxBundle, TensorSpec, TrainSummary, export_torch_module

Z_DIM = 32
STEPS = {"smoke": 50, "default": 3000}


class Generator(nn.Module):
    def __init__(self, shape, value_range):
        super().__init__()
        self.shape, (self.low, self.high) = tuple(shape), value_range
        self.net = nn.Sequential(nn.Linear(Z_DIM, 128), nn.ReLU(), nn.Linear(128, math.prod(shape)), nn.Sigmoid())

    def forward(self, z):
        return (self.low + (self.high - self.low) * self.net(z)).reshape(-1, *self.shape)


class ExampleGAN(GenerativeModel):
    def __init__(self):
        self.generator = None

    def train(self, data, config, progress):
        steps = STEPS.get(config.profile, STEPS["default"]) if config.steps is None else config.steps
        torch.manual_seed(config.seed)  # every random source seeded from config.seed
        rng = np.random.default_rng(config.seed)
        x = torch.tensor(np.asarray(data.x, dtype=np.float32)).flatten(1)
        gen = Generator(data.shape, data.value_range)
        disc = nn.Sequential(nn.Linear(x.shape[1], 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
        opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999)) for m in (gen, disc))
        history, t0 = {"d": [], "g": []}, time.perf_counter()
        for step in range(1, steps + 1):
            real = x[torch.from_numpy(rng.integers(0, len(x), 64))]
            fake = gen(torch.randn(64, Z_DIM)).flatten(1)
            d_real, d_fake = disc(real), disc(fake.detach())
            d_loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
                F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_out = disc(fake)
            g_loss = F.binary_cross_entropy_with_logits(g_out, torch.ones_like(g_out))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            history["d"].append(d_loss.item())
            history["g"].append(g_loss.item())
            progress(step, steps, {"d": history["d"][-1], "g": history["g"][-1]})
        self.generator = gen.eval()
        return TrainSummary(steps=steps, seconds=time.perf_counter() - t0, loss_history=history)

    # The model cache: what train() learned, and how to rebuild the trained model from it (docs/plugins.md).
    def state_dict(self):
        return {"generator": self._require().state_dict()}

    def load_state_dict(self, state, data, config):
        gen = Generator(data.shape, data.value_range)
        gen.load_state_dict(state["generator"])
        self.generator = gen.eval()

    def export_onnx(self, directory):
        gen = self._require()
        export_torch_module(gen, (torch.randn(4, Z_DIM),), Path(directory) / "generator.onnx", input_names=["z"],
                            output_names=["x"], dynamic_axes={"z": {0: "batch"}})
        return OnnxBundle(Path(directory), (GraphSpec(
            "sample", "generator.onnx", inputs=(TensorSpec("z", ("batch", Z_DIM), source="normal"),),
            outputs=(TensorSpec("x", ("batch", *gen.shape), low=gen.low, high=gen.high),)),))

    def torch_module(self, role):
        if role != "sample":
            raise KeyError(role)
        return self._require()

    def _require(self):
        if self.generator is None:
            raise RuntimeError("train() must run before export")
        return self.generator
