"""Quality metrics: pure numpy/scipy functions plus thin :class:`Metric` wrappers."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .frechet import frechet_distance, frechet_distance_from_features, gaussian_statistics

if TYPE_CHECKING:
    from ..data import Dataset


@dataclass
class QualityContext:
    """What a metric sees for one job: generated samples and the task's real data.

    ``features(name, x)`` runs the task's fixed feature extractor (cached per array), so that several
    metrics share one pass. ``rng`` is seeded from the run's seed.
    """

    dataset: "Dataset"
    samples: np.ndarray
    rng: np.random.Generator
    features: Callable[[str, np.ndarray], np.ndarray]
    extractor_id: str | None
    cache: dict[str, Any] = field(default_factory=dict)


class Metric(abc.ABC):
    """A metric: ``__call__(ctx) -> MetricValue``; ``spec`` is filled in from the registry."""

    @abc.abstractmethod
    def __call__(self, ctx: QualityContext):  # -> genbench.types.MetricValue
        ...


__all__ = ["Metric", "QualityContext", "frechet_distance", "frechet_distance_from_features", "gaussian_statistics"]
