"""A small MLP denoising diffusion model (Ho, Jain and Abbeel, 2020) as a genbench ``GenerativeModel``.

The network ε̂(x_t, t) is trained with the simple loss ‖ε − ε̂(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖² on data mapped
linearly from the task's range to [−1, 1] (``scale: symmetric``), over the linear schedule β from 1e-4 to 0.02,
T = 1000. The plugin exports the network alone, as a ``denoise`` graph, with its schedule in the graph's attrs:
genbench owns the sampler (DDIM with η = 0 at 50 steps for the metrics, DDPM and other step counts for the
quality-against-steps sweep), so the step count is never the plugin's choice.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genbench import GenerativeModel, GraphSpec, OnnxBundle, TensorSpec, TrainConfig, TrainSummary, export_torch_module

T = 1000
BETA_START, BETA_END = 1e-4, 0.02
HIDDEN = 256
EMBED = 64  # sinusoidal features of t
BATCH = 128
LR = 1e-3
STEPS = {"smoke": 300, "default": 4_000}
#: per-task budgets, in place of STEPS for the profiles they name
TASK_STEPS: dict[str, dict[str, int]] = {}
LOG_EVERY = 50
ATTRS = {"prediction": "epsilon", "schedule": "linear", "steps": T, "beta_start": BETA_START, "beta_end": BETA_END,
         "scale": "symmetric"}


def alphas_cumprod() -> torch.Tensor:
    """ᾱ_t = Π_{s≤t} (1 − β_s) of the linear schedule, as genbench computes it from ``ATTRS`` (float64)."""
    return torch.cumprod(1.0 - torch.linspace(BETA_START, BETA_END, T, dtype=torch.float64), 0)


class Denoiser(nn.Module):
    """(x_t [B, *shape] in [−1, 1] space, t [B] int64) → ε̂ [B, *shape]: an MLP on x_t and sinusoidal features of t."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)
        dims = math.prod(shape)
        half = EMBED // 2
        self.register_buffer("freqs", torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half))
        self.net = nn.Sequential(nn.Linear(dims + EMBED, HIDDEN), nn.SiLU(), nn.Linear(HIDDEN, HIDDEN), nn.SiLU(),
                                 nn.Linear(HIDDEN, HIDDEN), nn.SiLU(), nn.Linear(HIDDEN, dims))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        angles = t.to(torch.float32).unsqueeze(1) * self.freqs
        h = torch.cat([x.flatten(1), torch.sin(angles), torch.cos(angles)], dim=1)
        return self.net(h).reshape(-1, *self.shape)


class MLPDDPM(GenerativeModel):
    def __init__(self) -> None:
        self.net: Denoiser | None = None

    def train(self, data, config: TrainConfig, progress) -> TrainSummary:
        budget = {**STEPS, **TASK_STEPS.get(data.task, {})}
        steps = budget.get(config.profile, budget["default"]) if config.steps is None else config.steps
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        device = torch.device(config.device)
        lo, hi = data.value_range
        x_all = torch.tensor(np.asarray(data.x, dtype=np.float32))
        x_all = ((x_all - lo) / (hi - lo) * 2.0 - 1.0).to(device)  # scale: symmetric
        net = Denoiser(tuple(data.shape)).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        abar = alphas_cumprod().to(torch.float32).to(device)
        history: dict[str, list[float]] = {"loss": []}
        t0 = time.perf_counter()
        n = len(x_all)
        for step in range(1, steps + 1):
            idx = torch.randint(0, n, (BATCH,), generator=gen).to(device)
            t = torch.randint(0, T, (BATCH,), generator=gen).to(device)
            eps = torch.randn((BATCH, *x_all.shape[1:]), generator=gen).to(device)
            a = abar[t].reshape(-1, *([1] * (x_all.dim() - 1)))
            x_t = a.sqrt() * x_all[idx] + (1 - a).sqrt() * eps
            loss = (net(x_t, t) - eps).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % LOG_EVERY == 0 or step == steps:
                history["loss"].append(loss.detach().item())
                progress(step, steps, {"loss": history["loss"][-1]})
        self.net = net.eval()
        return TrainSummary(steps=steps, seconds=time.perf_counter() - t0, loss_history=history, log_every=LOG_EVERY)

    def state_dict(self) -> dict:
        return {"net": self._require().state_dict()}

    def load_state_dict(self, state, data, config: TrainConfig) -> None:
        net = Denoiser(tuple(data.shape))
        net.load_state_dict(state["net"])
        self.net = net.to(torch.device(config.device)).eval()

    def export_onnx(self, directory: Path) -> OnnxBundle:
        net = self._require()
        dev = next(net.parameters()).device
        example = (torch.randn(4, *net.shape, device=dev), torch.randint(0, T, (4,), device=dev))
        export_torch_module(net, example, Path(directory) / "denoise.onnx", input_names=["x", "t"],
                            output_names=["eps"])
        graph = GraphSpec("denoise", "denoise.onnx",
                          inputs=(TensorSpec("x", ("batch", *net.shape), source="normal"),
                                  TensorSpec("t", ("batch",), dtype="int64", source="timestep", vocab=T)),
                          outputs=(TensorSpec("eps", ("batch", *net.shape)),), attrs=dict(ATTRS))
        return OnnxBundle(Path(directory), (graph,))

    def torch_module(self, role: str) -> nn.Module:
        if role != "denoise":
            raise KeyError(f"ddpm-mlp has no graph with role {role!r}")
        return self._require()

    def _require(self) -> Denoiser:
        if self.net is None:
            raise RuntimeError("train() must run before export")
        return self.net
