"""genbench's own diffusion samplers, over any ``denoise`` graph (or its torch module).

The plugin exports one network, ``(x_t, t[, label]) → ε̂`` (or ``v̂``), and declares its noise schedule; genbench
owns the loop, written once and seeded, so that every diffusion model is sampled by the same code and the
number of steps is genbench's choice, never the plugin's:

* **DDPM**, ancestral sampling over all T steps (Ho, Jain and Abbeel 2020, "Denoising Diffusion Probabilistic
  Models", eq. 6–7 and algorithm 2), with the posterior variance β̃_t;
* **DDIM** with η = 0 over S ≤ T steps (Song, Meng and Ermon 2021, "Denoising Diffusion Implicit Models",
  eq. 12), on the evenly spaced sub-sequence τ of [0, T).

Notation: ᾱ_t = Π_{s≤t} (1 − β_s); x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε. A ``v`` prediction (Salimans and Ho 2022) is
v = √ᾱ_t ε − √(1 − ᾱ_t) x_0. Samples live in the graph's space (``scale``); :func:`to_task` maps them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

#: ``(x_t [B, ...] float32, t [B] int64) → the network's prediction [B, ...]`` (labels, if any, bound inside)
DenoiseFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

PREDICTIONS = ("epsilon", "v")
SCHEDULES = ("linear", "cosine")
SCALES = ("task", "symmetric")
SAMPLERS = ("ddim", "ddpm")
MAX_T = 10_000


@dataclass(frozen=True)
class Schedule:
    """A noise schedule: β_t for t = 0 .. T − 1, and what the network predicts."""

    betas: np.ndarray  # float64 [T]
    prediction: str = "epsilon"
    description: str = ""

    @property
    def steps(self) -> int:
        return len(self.betas)

    @property
    def alphas_cumprod(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas)


def schedule_from_attrs(attrs: Mapping[str, Any]) -> Schedule:
    """The schedule a ``denoise`` graph declares; ValueError naming what is wrong (the role's contract turns it
    into a BundleError). ``betas`` (a list) wins over a named ``schedule``."""
    prediction = attrs.get("prediction", "epsilon")
    if prediction not in PREDICTIONS:
        raise ValueError(f"attrs['prediction'] must be one of {list(PREDICTIONS)}, got {prediction!r}")
    if "betas" in attrs:
        try:
            betas = np.asarray(attrs["betas"], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("attrs['betas'] must be a list of numbers") from None
        if betas.ndim != 1 or not 1 <= len(betas) <= MAX_T or not np.all((betas > 0) & (betas < 1)):
            raise ValueError(f"attrs['betas'] must hold 1 to {MAX_T} values, each in (0, 1)")
        return Schedule(betas, prediction, f"betas given (T = {len(betas)})")
    name, steps = attrs.get("schedule"), attrs.get("steps")
    if name not in SCHEDULES:
        raise ValueError(f"attrs['schedule'] must be one of {list(SCHEDULES)} (or give attrs['betas']), got {name!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_T:
        raise ValueError(f"attrs['steps'] must be T, the number of diffusion steps (an int in 1..{MAX_T}), got {steps!r}")
    if name == "linear":
        start, end = attrs.get("beta_start", 1e-4), attrs.get("beta_end", 0.02)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, end)) \
                or not 0 < start <= end < 1:
            raise ValueError(f"attrs beta_start and beta_end must satisfy 0 < beta_start <= beta_end < 1, got "
                             f"{start!r} and {end!r}")
        return Schedule(np.linspace(start, end, steps, dtype=np.float64), prediction,
                        f"linear β from {start:g} to {end:g}, T = {steps} (Ho et al. 2020)")
    # cosine: ᾱ(t) = cos²((t/T + s) / (1 + s) · π/2), β clipped at 0.999 (Nichol and Dhariwal 2021, eq. 17)
    s = 0.008
    f = np.cos((np.arange(steps + 1) / steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.clip(1 - f[1:] / f[:-1], 1e-8, 0.999)
    return Schedule(betas, prediction, f"cosine, T = {steps} (Nichol and Dhariwal 2021)")


def predict_x0_eps(schedule: Schedule, out: np.ndarray, x: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(x̂_0, ε̂) from the network's output at step t."""
    a = float(schedule.alphas_cumprod[t])
    sa, sb = math.sqrt(a), math.sqrt(1 - a)
    out = out.astype(np.float64)
    if schedule.prediction == "v":
        return sa * x - sb * out, sb * x + sa * out
    return (x - sb * out) / sa, out


def ddim_timesteps(T: int, steps: int) -> np.ndarray:
    """The S steps DDIM visits, descending: evenly spaced over [0, T − 1], both ends included."""
    if not 1 <= steps <= T:
        raise ValueError(f"DDIM steps must be in 1..{T} (the schedule's T), got {steps}")
    return np.unique(np.round(np.linspace(0, T - 1, steps)).astype(np.int64))[::-1]


def sample(fn: DenoiseFn, schedule: Schedule, shape: tuple[int, ...], batch: int, rng: np.random.Generator, *,
           sampler: str = "ddim", steps: int | None = None, clip: tuple[float, float] | None = None) -> np.ndarray:
    """``batch`` samples ``[batch, *shape]`` (float64, in the graph's space) from x_T ~ N(0, I).

    ``sampler`` ``ddim`` (η = 0, ``steps`` ≤ T, default T) or ``ddpm`` (ancestral, always all T steps).
    ``clip``: the graph space's bounds; x̂_0 is clipped to them at every step (bounded data, as in Ho et al.'s
    code), None for unbounded data. The network is called once per step on the whole batch.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    T = schedule.steps
    abar = schedule.alphas_cumprod
    x = rng.standard_normal((batch, *shape))
    if sampler == "ddpm":
        for t in range(T - 1, -1, -1):
            x0, _ = predict_x0_eps(schedule, _call(fn, x, t), x, t)
            if clip is not None:
                x0 = np.clip(x0, *clip)
            prev = abar[t - 1] if t > 0 else 1.0
            beta = schedule.betas[t]
            mean = (beta * math.sqrt(prev) / (1 - abar[t])) * x0 + ((1 - prev) * math.sqrt(1 - beta) / (1 - abar[t])) * x
            if t > 0:
                var = beta * (1 - prev) / (1 - abar[t])
                x = mean + math.sqrt(var) * rng.standard_normal(x.shape)
            else:
                x = mean
        return x
    taus = ddim_timesteps(T, T if steps is None else steps)
    for i, t in enumerate(taus):
        x0, eps = predict_x0_eps(schedule, _call(fn, x, int(t)), x, int(t))
        if clip is not None:
            x0 = np.clip(x0, *clip)
            eps = (x - math.sqrt(abar[t]) * x0) / math.sqrt(1 - abar[t])  # consistent with the clipped x̂_0
        prev = abar[taus[i + 1]] if i + 1 < len(taus) else 1.0
        x = math.sqrt(prev) * x0 + math.sqrt(1 - prev) * eps
    return x


def _call(fn: DenoiseFn, x: np.ndarray, t: int) -> np.ndarray:
    out = fn(np.ascontiguousarray(x, dtype=np.float32), np.full(len(x), t, np.int64))
    if out.shape != x.shape:
        raise ValueError(f"denoise graph returned shape {list(out.shape)} for x_t {list(x.shape)}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"denoise graph returned non-finite values at step t = {t}")
    return out


def graph_space(scale: str, value_range: tuple[float, float]) -> tuple[Callable[[np.ndarray], np.ndarray],
                                                                      Callable[[np.ndarray], np.ndarray]]:
    """(task → graph space, graph space → task) for ``scale``: ``task`` is the identity, ``symmetric`` maps the
    task's range [lo, hi] onto [−1, 1]."""
    if scale == "task":
        return (lambda v: v), (lambda x: x)
    lo, hi = value_range
    return (lambda v: 2 * (v - lo) / (hi - lo) - 1), (lambda x: lo + (x + 1) * (hi - lo) / 2)


__all__ = ["DenoiseFn", "PREDICTIONS", "SAMPLERS", "SCALES", "SCHEDULES", "Schedule", "ddim_timesteps",
           "graph_space", "predict_x0_eps", "sample", "schedule_from_attrs"]
