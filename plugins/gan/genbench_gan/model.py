"""The classic MLP GAN (Goodfellow et al., 2014) as a genbench ``GenerativeModel``."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genbench import GenerativeModel, GraphSpec, OnnxBundle, TensorSpec, TrainConfig, TrainSummary, export_torch_module

Z_DIM = 100
HIDDEN = 128
BATCH = 100
LR = 1e-4
STEPS = {"smoke": 300, "default": 10_000}
#: per-task budgets, in place of STEPS for the profiles they name (README.md: the default run's time target)
TASK_STEPS: dict[str, dict[str, int]] = {"mnist5k": {"default": 10_000}}
LOG_EVERY = 50


class Generator(nn.Module):
    """z → Dense(128) → LeakyReLU(0.01) → Dense(H·W) → tanh, mapped from [−1, 1] to the data range."""

    def __init__(self, shape: tuple[int, ...], value_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__()
        self.shape = tuple(shape)
        self.low, self.high = value_range
        self.net = nn.Sequential(nn.Linear(Z_DIM, HIDDEN), nn.LeakyReLU(0.01), nn.Linear(HIDDEN, math.prod(shape)), nn.Tanh())

    def forward_tanh(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = (self.net(z) + 1.0) * (0.5 * (self.high - self.low)) + self.low
        return x.reshape(-1, *self.shape)


class Discriminator(nn.Module):
    """image → Dense(128) → LeakyReLU(0.01) → Dense(1); returns the logit (sigmoid is in the loss)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, HIDDEN), nn.LeakyReLU(0.01), nn.Linear(HIDDEN, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−[log D(x) + log(1 − D(G(z)))], batch mean, from logits (log-sigmoid, no overflow)."""
    return F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
        F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating −log D(G(z)), batch mean, from logits."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class MLPGAN(GenerativeModel):
    def __init__(self) -> None:
        self.generator: Generator | None = None

    def train(self, data, config: TrainConfig, progress) -> TrainSummary:
        budget = {**STEPS, **TASK_STEPS.get(data.task, {})}
        steps = budget.get(config.profile, budget["default"]) if config.steps is None else config.steps
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        device = torch.device(config.device)
        lo, hi = data.value_range
        x_all = torch.tensor(np.asarray(data.x, dtype=np.float32)).flatten(1)
        x_all = ((x_all - lo) / (hi - lo) * 2.0 - 1.0).to(device)  # the generator's tanh range
        gen = Generator(tuple(data.shape), (lo, hi)).to(device)
        disc = Discriminator(x_all.shape[1]).to(device)
        opt_g = torch.optim.Adam(gen.parameters(), lr=LR, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(disc.parameters(), lr=LR, betas=(0.5, 0.999))
        history: dict[str, list[float]] = {"d": [], "g": []}
        t0 = time.perf_counter()
        n = len(x_all)
        for step in range(1, steps + 1):
            real = x_all[torch.from_numpy(rng.integers(0, n, size=BATCH)).to(device)]
            fake = gen.forward_tanh(torch.randn(BATCH, Z_DIM, device=device))
            d_loss = discriminator_loss(disc(real), disc(fake.detach()))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_loss = generator_loss(disc(fake))  # against the updated discriminator, as in Goodfellow et al.
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            if step % LOG_EVERY == 0 or step == steps:
                history["d"].append(d_loss.detach().item())
                history["g"].append(g_loss.detach().item())
                progress(step, steps, {"d": history["d"][-1], "g": history["g"][-1]})
        self.generator = gen.eval()
        return TrainSummary(steps=steps, seconds=time.perf_counter() - t0, loss_history=history, log_every=LOG_EVERY)

    def state_dict(self) -> dict:
        return {"generator": self._require().state_dict()}

    def load_state_dict(self, state, data, config: TrainConfig) -> None:
        gen = Generator(tuple(data.shape), tuple(data.value_range))
        gen.load_state_dict(state["generator"])
        self.generator = gen.to(torch.device(config.device)).eval()

    def export_onnx(self, directory: Path) -> OnnxBundle:
        gen = self._require()
        example = torch.randn(4, Z_DIM, device=next(gen.parameters()).device)
        export_torch_module(gen, (example,), Path(directory) / "generator.onnx", input_names=["z"], output_names=["x"],
                            dynamic_axes={"z": {0: "batch"}})
        graph = GraphSpec("sample", "generator.onnx", inputs=(TensorSpec("z", ("batch", Z_DIM), source="normal"),),
                          outputs=(TensorSpec("x", ("batch", *gen.shape), low=gen.low, high=gen.high),))
        return OnnxBundle(Path(directory), (graph,))

    def torch_module(self, role: str) -> nn.Module:
        if role != "sample":
            raise KeyError(f"gan-mlp has no graph with role {role!r}")
        return self._require()

    def _require(self) -> Generator:
        if self.generator is None:
            raise RuntimeError("train() must run before export")
        return self.generator
