"""Training-data variants for ``genbench limits``: less data (nested, stratified subsets) and dirtier data
(a share of the examples replaced by noise).

Only what a plugin trains on changes: the task's ``Dataset`` (and so every number's ``n``, its floor and
the held-out data) stays as it is. Both draws depend on the training seed, so the spread over seeds
includes which examples were kept or corrupted, and on nothing else: a variant is reproducible.

* Subsets are **nested**: one seeded order of the training split, and a fraction ``f`` keeps its first
  ``round(f · N)`` examples, so the 1/16 subset lies inside the 1/8 subset, and so on. The order is
  **stratified** by label where the task has labels (digit classes, mixture modes): each class's
  examples are spread evenly over it, so every prefix holds each class in its share, ±1 example.
  Text has no labels: its examples are blocks of :data:`TEXT_BLOCK` bytes, kept in corpus order.
* Corruption replaces a share ``p`` of the (kept) examples with i.i.d. uniform noise over the task's
  value range (images: on its pixel grid when it has ``levels``; 2-D points: over the square
  ``value_range``²), or with uniformly random bytes (text blocks). The corrupted examples are the first
  ``round(p · N)`` of another seeded order, so 10% corrupted lies inside 30%. Labels are kept: the axis
  is input noise, not label noise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from . import TrainingData
from ..errors import ConfigError

#: bytes per text "example" (the unit that is kept, dropped or replaced)
TEXT_BLOCK = 256
_SALT = 0x1A175  # keeps these draws apart from every other use of the training seed


@dataclass(frozen=True)
class TrainingVariant:
    """What a plugin trains on: ``fraction`` of the training split (nested, stratified), of which a share
    ``corruption`` is replaced by noise. ``TrainingVariant()`` is the training split itself."""

    fraction: float = 1.0
    corruption: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"Invalid training fraction {self.fraction!r}: use a number in (0, 1].")
        if not 0.0 <= self.corruption < 1.0:
            raise ConfigError(f"Invalid corruption {self.corruption!r}: use a share in [0, 1).")

    @property
    def identity(self) -> bool:
        return self.fraction == 1.0 and self.corruption == 0.0

    def label(self) -> str | None:
        """``"train 1/16"``, ``"train 30% corrupted"``, both, or None for the training split itself."""
        parts = []
        if self.fraction != 1.0:
            frac = Fraction(self.fraction).limit_denominator(1000)
            parts.append(f"train {frac}" if float(frac) == self.fraction else f"train {self.fraction:g}")
        if self.corruption:
            parts.append(f"{self.corruption * 100:g}% corrupted")
        return ", ".join(parts) or None

    def apply(self, data: TrainingData, seed: int) -> TrainingData:
        """``data`` with this variant applied for training seed ``seed`` (``data`` itself when identity)."""
        if self.identity:
            return data
        if data.kind == "text":
            x, labels = _text_variant(np.asarray(data.x), self, seed), None
        else:
            x, labels = _array_variant(data, self, seed)
        x.setflags(write=False)
        return dataclasses.replace(data, x=x, labels=labels)

    def describe(self, data: TrainingData, seed: int) -> dict:
        """What the plugin saw, for the results: counts and how the noise was made."""
        kept = self.apply(data, seed)
        units = len(kept.x) // TEXT_BLOCK if data.kind == "text" else len(kept.x)
        return {"fraction": self.fraction, "corruption": self.corruption, "examples": int(units),
                "corrupted": int(round(self.corruption * units)), "noise": noise_description(data),
                "label": self.label()}


def stratified_order(labels: np.ndarray | None, n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(n)`` every prefix of which holds each label in its share (±1).

    Each class's examples, shuffled, get evenly spaced keys ``(i + u) / n_c`` (``u`` uniform, one per
    class) and the order sorts by key (ties broken at random): the first ``k`` have about ``k · n_c / n``
    of class ``c``. Without labels it is a plain random permutation.
    """
    if labels is None:
        return rng.permutation(n)
    labels = np.asarray(labels)
    keys = np.empty(n)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        keys[idx] = (np.arange(len(idx)) + rng.uniform()) / len(idx)
    return np.lexsort((rng.permutation(n), keys))


def kept_count(n: int, fraction: float) -> int:
    """Examples a fraction keeps: ``round(f · n)``, at least 1."""
    return max(1, int(round(fraction * n)))


def noise_description(data: TrainingData) -> str:
    lo, hi = data.value_range
    if data.kind == "text":
        return f"uniformly random bytes in blocks of {TEXT_BLOCK}"
    if data.kind == "image" and data.levels:
        return f"i.i.d. uniform pixels on the {data.levels} levels of [{lo:g}, {hi:g}]"
    return f"i.i.d. uniform over [{lo:g}, {hi:g}] per {'coordinate' if data.kind == 'points' else 'pixel'}"


def _rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent streams for the subset, the choice of corrupted examples, and the noise."""
    return tuple(np.random.default_rng([_SALT, seed, i]) for i in range(3))  # type: ignore[return-value]


def _noise(data: TrainingData, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    lo, hi = data.value_range
    if data.kind == "image" and data.levels and data.levels > 1:
        steps = rng.integers(0, data.levels, size=shape)
        return (lo + steps * (hi - lo) / (data.levels - 1)).astype(np.float32)
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def _array_variant(data: TrainingData, variant: TrainingVariant, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    subset_rng, choose_rng, noise_rng = _rngs(seed)
    n = len(data.x)
    keep = np.sort(stratified_order(data.labels, n, subset_rng)[:kept_count(n, variant.fraction)])
    x = np.array(data.x[keep], dtype=np.float32)
    labels = None if data.labels is None else np.asarray(data.labels)[keep]
    bad = choose_rng.permutation(len(x))[:int(round(variant.corruption * len(x)))]
    if len(bad):
        x[bad] = _noise(data, (len(bad), *x.shape[1:]), noise_rng)
    return x, labels


def _text_variant(stream: np.ndarray, variant: TrainingVariant, seed: int) -> np.ndarray:
    subset_rng, choose_rng, noise_rng = _rngs(seed)
    blocks = [stream[i:i + TEXT_BLOCK] for i in range(0, len(stream), TEXT_BLOCK)]
    keep = np.sort(subset_rng.permutation(len(blocks))[:kept_count(len(blocks), variant.fraction)])
    kept = [np.array(blocks[i], dtype=np.uint8) for i in keep]
    for i in choose_rng.permutation(len(kept))[:int(round(variant.corruption * len(kept)))]:
        kept[i] = noise_rng.integers(0, 256, size=len(kept[i]), dtype=np.uint8)
    return np.concatenate(kept) if kept else stream[:0].copy()


__all__ = ["TEXT_BLOCK", "TrainingVariant", "kept_count", "noise_description", "stratified_order"]
