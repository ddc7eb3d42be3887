"""Variational autoencoders (Kingma & Welling, 2014) as genbench ``GenerativeModel``s.

The encoder gives μ(x) and log σ²(x); z = μ + σ ⊙ ε with ε ~ N(0, I); the decoder gives Bernoulli
logits for every pixel. Pixels are binarised: during training each batch is re-drawn as Bernoulli(x)
("dynamic binarisation"); the harness scores the stochastically binarised test split. The loss is the
negative ELBO: reconstruction NLL + KL(q(z|x) ‖ N(0, I)), with the KL in closed form.

Exported graphs:

* ``sample`` (decoder): z → Bernoulli means in [0, 1] (what the sample grid shows and FD scores);
* ``elbo``: (x, ε[k]) → the IWAE bound log (1/k) Σⱼ p(x, zⱼ) / q(zⱼ|x) per example, in nats
  (k = 1 is the ELBO; k = 64 here, recorded in the graph's ``attrs``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genbench import GenerativeModel, GraphSpec, OnnxBundle, TensorSpec, TrainConfig, TrainSummary, export_torch_module

BATCH = 100
LR = 1e-3
IMPORTANCE_SAMPLES = 64
STEPS = {"smoke": 200, "default": 8_000}
#: per-task budgets, in place of STEPS for the profiles they name (README.md: the default run's time target);
#: keyed by model name too, since the MLP and the conv VAE cost very different time per step
TASK_STEPS: dict[tuple[str, str], dict[str, int]] = {("vae-mlp", "mnist5k"): {"default": 4_000},
                                                    ("vae-conv", "mnist5k"): {"default": 2_000}}
LOG_EVERY = 50
LOG_2PI = math.log(2.0 * math.pi)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) = ½ Σᵢ (μᵢ² + σᵢ² − 1 − log σᵢ²), summed over the last axis (nats)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | logits) of binary x, summed over the last axis.

    x log σ(l) + (1 − x) log σ(−l) = x·l − softplus(l), with softplus(l) = max(l, 0) + log(1 + e^−|l|)
    written out: exported as-is it never forms log(σ(l)), which is −inf (and 0·−inf = NaN) once σ(l)
    rounds to 0 in float32.
    """
    softplus = torch.relu(logits) + torch.log(1.0 + torch.exp(-logits.abs()))
    return (x * logits - softplus).sum(-1)


def gaussian_log_prob(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log N(x; μ, diag σ²) summed over the last axis; ``params`` holds μ then log σ² (clamped to ≥ −14)."""
    d = x.shape[-1]
    mu, logvar = params[..., :d], params[..., d:].clamp(min=-14.0)
    return -0.5 * ((x - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


class VAE(nn.Module):
    """``likelihood``: ``bernoulli`` (pixels; the decoder gives D logits) or ``gaussian`` (continuous data such as
    2-D points; the decoder gives D means and D log-variances)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, z_dim: int, shape: tuple[int, ...],
                 likelihood: str = "bernoulli"):
        super().__init__()
        self.encoder, self.decoder, self.z_dim, self.shape = encoder, decoder, z_dim, tuple(shape)
        self.dims = math.prod(shape)
        self.likelihood = likelihood

    def log_px(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return gaussian_log_prob(out, x) if self.likelihood == "gaussian" else bernoulli_log_prob(out, x)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return h[:, : self.z_dim], h[:, self.z_dim:]

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits [N, D], or Gaussian μ and log σ² [N, 2D]."""
        return self.decoder(z).reshape(z.shape[0], -1)

    def loss(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Negative ELBO per example (batch mean), with its reconstruction and KL terms."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        recon = -self.log_px(self.decode_logits(z), x.flatten(1))
        kl = kl_standard_normal(mu, logvar)
        return (recon + kl).mean(), recon.mean(), kl.mean()

    def iwae_bound(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """log (1/k) Σⱼ p(x|zⱼ) p(zⱼ) / q(zⱼ|x), zⱼ = μ + σ εⱼ; eps is [B, k, Z]. Per example, in nats."""
        mu, logvar = self.encode(x)
        z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps  # [B, k, Z]
        k = eps.shape[1]
        out = self.decode_logits(z.reshape(-1, self.z_dim))
        log_px = self.log_px(out.reshape(x.shape[0], k, out.shape[-1]), x.flatten(1).unsqueeze(1))
        log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
        log_qz = -0.5 * (eps.pow(2) + LOG_2PI + logvar.unsqueeze(1)).sum(-1)
        return torch.logsumexp(log_px + log_pz - log_qz, dim=1) - math.log(k)


class Decoder(nn.Module):
    """Role ``sample``: z → Bernoulli means, shaped like the data."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.vae.decode_logits(z)).reshape(-1, *self.vae.shape)


class GaussianDecoder(nn.Module):
    """Role ``sample`` for continuous data: (z, e) → μ(z) + σ(z) ⊙ e, a draw from p(x|z)."""

    def __init__(self, vae: VAE, low: float, high: float):
        super().__init__()
        self.vae, self.low, self.high = vae, low, high

    def forward(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        out = self.vae.decode_logits(z)
        d = self.vae.dims
        x = out[:, :d] + torch.exp(0.5 * out[:, d:].clamp(min=-14.0)) * e
        return x.clamp(self.low, self.high).reshape(-1, *self.vae.shape)


class Elbo(nn.Module):
    """Role ``elbo``: (x, ε) → IWAE bound per example."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self.vae.iwae_bound(x, eps)


class _VAEModel(GenerativeModel):
    name = "vae"
    z_dim_small, z_dim_large = 16, 32

    def __init__(self) -> None:
        self.vae: VAE | None = None

    def build(self, shape: tuple[int, ...], z_dim: int, likelihood: str = "bernoulli") -> VAE:  # pragma: no cover
        raise NotImplementedError

    def train(self, data, config: TrainConfig, progress) -> TrainSummary:
        budget = {**STEPS, **TASK_STEPS.get((self.name, data.task), {})}
        steps = budget.get(config.profile, budget["default"]) if config.steps is None else config.steps
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        device = torch.device(config.device)
        lo, hi = data.value_range
        continuous = data.kind == "points"  # 2-D points: a Gaussian likelihood on the raw coordinates
        x_np = np.asarray(data.x, dtype=np.float32)
        x_all = torch.tensor(x_np if continuous else (x_np - lo) / (hi - lo)).to(device)  # else: probabilities
        vae = self._build_for(data).to(device)
        z_dim = vae.z_dim
        opt = torch.optim.Adam(vae.parameters(), lr=LR)
        history: dict[str, list[float]] = {"loss": [], "recon": [], "kl": []}
        t0 = time.perf_counter()
        gen = torch.Generator(device=device).manual_seed(config.seed)
        for step in range(1, steps + 1):
            idx = torch.from_numpy(rng.integers(0, len(x_all), size=BATCH)).to(device)
            x = x_all[idx] if continuous else torch.bernoulli(x_all[idx], generator=gen)  # dynamic binarisation
            eps = torch.randn(BATCH, z_dim, device=device, generator=gen)
            loss, recon, kl = vae.loss(x, eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % LOG_EVERY == 0 or step == steps:
                for name, v in (("loss", loss), ("recon", recon), ("kl", kl)):
                    history[name].append(v.detach().item())
                progress(step, steps, {"loss": history["loss"][-1]})
        self.vae = vae.eval()
        return TrainSummary(steps=steps, seconds=time.perf_counter() - t0, loss_history=history, log_every=LOG_EVERY)

    def _build_for(self, data) -> VAE:
        """The untrained network for ``data``: Gaussian likelihood for 2-D points, Bernoulli for images."""
        continuous = data.kind == "points"
        shape = tuple(data.shape)
        z_dim = (2 if continuous else self.z_dim_small) if math.prod(shape) <= 256 else self.z_dim_large
        self.value_range = tuple(data.value_range)
        return self.build(shape, z_dim, "gaussian" if continuous else "bernoulli")

    def state_dict(self) -> dict:
        return {"vae": self._require().state_dict()}

    def load_state_dict(self, state, data, config: TrainConfig) -> None:
        vae = self._build_for(data)
        vae.load_state_dict(state["vae"])
        self.vae = vae.to(torch.device(config.device)).eval()

    def export_onnx(self, directory: Path) -> OnnxBundle:
        vae = self._require()
        directory = Path(directory)
        dev = next(vae.parameters()).device
        z = vae.z_dim
        gaussian = vae.likelihood == "gaussian"
        lo, hi = self.value_range if gaussian else (0.0, 1.0)
        if gaussian:
            export_torch_module(self.torch_module("sample"), (torch.randn(4, z, device=dev), torch.randn(4, vae.dims, device=dev)),
                                directory / "decoder.onnx", input_names=["z", "e"], output_names=["x"],
                                dynamic_axes={"z": {0: "batch"}, "e": {0: "batch"}})
            sample_inputs = (TensorSpec("z", ("batch", z), source="normal"), TensorSpec("e", ("batch", vae.dims), source="normal"))
        else:
            export_torch_module(Decoder(vae), (torch.randn(4, z, device=dev),), directory / "decoder.onnx",
                                input_names=["z"], output_names=["x"], dynamic_axes={"z": {0: "batch"}})
            sample_inputs = (TensorSpec("z", ("batch", z), source="normal"),)
        x_ex = torch.rand(4, *vae.shape, device=dev) if gaussian else torch.bernoulli(torch.full((4, *vae.shape), 0.5, device=dev))
        eps_ex = torch.randn(4, IMPORTANCE_SAMPLES, z, device=dev)
        export_torch_module(Elbo(vae), (x_ex, eps_ex), directory / "elbo.onnx", input_names=["x", "eps"],
                            output_names=["elbo"], dynamic_axes={"x": {0: "batch"}, "eps": {0: "batch"}})
        sample = GraphSpec("sample", "decoder.onnx", sample_inputs,
                           (TensorSpec("x", ("batch", *vae.shape), low=lo, high=hi),))
        elbo = GraphSpec("elbo", "elbo.onnx",
                         (TensorSpec("x", ("batch", *vae.shape), source="data"),
                          TensorSpec("eps", ("batch", IMPORTANCE_SAMPLES, z), source="normal")),
                         (TensorSpec("elbo", ("batch",), high=None if gaussian else 0.0),),
                         attrs={"data": "continuous" if gaussian else "binarized", "importance_samples": IMPORTANCE_SAMPLES})
        return OnnxBundle(directory, (sample, elbo))

    def torch_module(self, role: str) -> nn.Module:
        vae = self._require()
        if role == "sample":
            if vae.likelihood == "gaussian":
                return GaussianDecoder(vae, *self.value_range).eval()
            return Decoder(vae).eval()
        if role == "elbo":
            return Elbo(vae).eval()
        raise KeyError(f"no graph with role {role!r}")

    def _require(self) -> VAE:
        if self.vae is None:
            raise RuntimeError("train() must run before export")
        return self.vae


class MLPVAE(_VAEModel):
    """Encoder D → H → (μ, log σ²); decoder Z → H → D logits (or D means and D log-variances for continuous
    data); H = 256 (D ≤ 256) or 512."""

    name = "vae-mlp"

    def build(self, shape: tuple[int, ...], z_dim: int, likelihood: str = "bernoulli") -> VAE:
        d = math.prod(shape)
        h = 256 if d <= 256 else 512
        out = 2 * d if likelihood == "gaussian" else d
        enc = nn.Sequential(nn.Flatten(), nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2 * z_dim))
        dec = nn.Sequential(nn.Linear(z_dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, out))
        return VAE(enc, dec, z_dim, shape, likelihood)


class ConvVAE(_VAEModel):
    """Two stride-2 convolutions (28→14→7, or 8→4→2) and their transposes; for 28×28 data, runs on any
    side divisible by 4."""

    name = "vae-conv"

    def build(self, shape: tuple[int, ...], z_dim: int, likelihood: str = "bernoulli") -> VAE:
        c, hgt, wid = shape
        if hgt % 4 or wid % 4:
            raise ValueError(f"vae-conv needs image sides divisible by 4, got {hgt}x{wid}")
        s_h, s_w = hgt // 4, wid // 4
        enc = nn.Sequential(
            nn.Conv2d(c, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * s_h * s_w, 256), nn.ReLU(), nn.Linear(256, 2 * z_dim))
        dec = nn.Sequential(
            nn.Linear(z_dim, 256), nn.ReLU(), nn.Linear(256, 64 * s_h * s_w), nn.ReLU(), nn.Unflatten(1, (64, s_h, s_w)),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(), nn.ConvTranspose2d(32, c, 4, stride=2, padding=1))
        return VAE(enc, dec, z_dim, shape)
