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


class VAE(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module, z_dim: int, shape: tuple[int, ...]):
        super().__init__()
        self.encoder, self.decoder, self.z_dim, self.shape = encoder, decoder, z_dim, tuple(shape)
        self.dims = math.prod(shape)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return h[:, : self.z_dim], h[:, self.z_dim:]

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).reshape(z.shape[0], self.dims)

    def loss(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Negative ELBO per example (batch mean), with its reconstruction and KL terms."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        recon = -bernoulli_log_prob(self.decode_logits(z), x.flatten(1))
        kl = kl_standard_normal(mu, logvar)
        return (recon + kl).mean(), recon.mean(), kl.mean()

    def iwae_bound(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """log (1/k) Σⱼ p(x|zⱼ) p(zⱼ) / q(zⱼ|x), zⱼ = μ + σ εⱼ; eps is [B, k, Z]. Per example, in nats."""
        mu, logvar = self.encode(x)
        z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps  # [B, k, Z]
        k = eps.shape[1]
        logits = self.decode_logits(z.reshape(-1, self.z_dim)).reshape(x.shape[0], k, self.dims)
        log_px = bernoulli_log_prob(logits, x.flatten(1).unsqueeze(1))
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


class Elbo(nn.Module):
    """Role ``elbo``: (x, ε) → IWAE bound per example."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self.vae.iwae_bound(x, eps)


class _VAEModel(GenerativeModel):
    z_dim_small, z_dim_large = 16, 32

    def __init__(self) -> None:
        self.vae: VAE | None = None

    def build(self, shape: tuple[int, ...], z_dim: int) -> VAE:  # pragma: no cover - abstract
        raise NotImplementedError

    def train(self, data, config: TrainConfig, progress) -> TrainSummary:
        steps = STEPS.get(config.profile, STEPS["default"]) if config.steps is None else config.steps
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        device = torch.device(config.device)
        lo, hi = data.value_range
        x_all = torch.tensor((np.asarray(data.x, dtype=np.float32) - lo) / (hi - lo)).to(device)  # probabilities
        shape = tuple(data.shape)
        z_dim = self.z_dim_small if math.prod(shape) <= 256 else self.z_dim_large
        vae = self.build(shape, z_dim).to(device)
        opt = torch.optim.Adam(vae.parameters(), lr=LR)
        history: dict[str, list[float]] = {"loss": [], "recon": [], "kl": []}
        t0 = time.perf_counter()
        gen = torch.Generator(device=device).manual_seed(config.seed)
        for step in range(1, steps + 1):
            idx = torch.from_numpy(rng.integers(0, len(x_all), size=BATCH)).to(device)
            x = torch.bernoulli(x_all[idx], generator=gen)  # dynamic binarisation
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

    def export_onnx(self, directory: Path) -> OnnxBundle:
        vae = self._require()
        directory = Path(directory)
        dev = next(vae.parameters()).device
        z = vae.z_dim
        export_torch_module(Decoder(vae), (torch.randn(4, z, device=dev),), directory / "decoder.onnx",
                            input_names=["z"], output_names=["x"], dynamic_axes={"z": {0: "batch"}})
        x_ex = torch.bernoulli(torch.full((4, *vae.shape), 0.5, device=dev))
        eps_ex = torch.randn(4, IMPORTANCE_SAMPLES, z, device=dev)
        export_torch_module(Elbo(vae), (x_ex, eps_ex), directory / "elbo.onnx", input_names=["x", "eps"],
                            output_names=["elbo"], dynamic_axes={"x": {0: "batch"}, "eps": {0: "batch"}})
        sample = GraphSpec("sample", "decoder.onnx", (TensorSpec("z", ("batch", z), source="normal"),),
                           (TensorSpec("x", ("batch", *vae.shape), low=0.0, high=1.0),))
        elbo = GraphSpec("elbo", "elbo.onnx",
                         (TensorSpec("x", ("batch", *vae.shape), source="data"),
                          TensorSpec("eps", ("batch", IMPORTANCE_SAMPLES, z), source="normal")),
                         (TensorSpec("elbo", ("batch",), high=0.0),),
                         attrs={"data": "binarized", "importance_samples": IMPORTANCE_SAMPLES})
        return OnnxBundle(directory, (sample, elbo))

    def torch_module(self, role: str) -> nn.Module:
        vae = self._require()
        if role == "sample":
            return Decoder(vae).eval()
        if role == "elbo":
            return Elbo(vae).eval()
        raise KeyError(f"no graph with role {role!r}")

    def _require(self) -> VAE:
        if self.vae is None:
            raise RuntimeError("train() must run before export")
        return self.vae


class MLPVAE(_VAEModel):
    """Encoder D → H → (μ, log σ²); decoder Z → H → D logits; H = 256 (D ≤ 256) or 512."""

    def build(self, shape: tuple[int, ...], z_dim: int) -> VAE:
        d = math.prod(shape)
        h = 256 if d <= 256 else 512
        enc = nn.Sequential(nn.Flatten(), nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2 * z_dim))
        dec = nn.Sequential(nn.Linear(z_dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, d))
        return VAE(enc, dec, z_dim, shape)


class ConvVAE(_VAEModel):
    """Two stride-2 convolutions (28→14→7, or 8→4→2) and their transposes; for 28×28 data, runs on any
    side divisible by 4."""

    def build(self, shape: tuple[int, ...], z_dim: int) -> VAE:
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
