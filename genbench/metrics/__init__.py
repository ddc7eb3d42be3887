"""Quality metrics: pure numpy/scipy functions plus thin :class:`Metric` wrappers."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .frechet import (StreamingStatistics, feature_statistics, frechet_distance, frechet_distance_from_features,
                      gaussian_statistics)
from .sample_metrics import (class_histogram, classifier_score, density_coverage, grid25, kernel_inception_distance,
                             knn_kl_divergence, mixture_mode_metrics, mode_histogram_kl, modes_covered,
                             precision_recall, ring8)

if TYPE_CHECKING:
    from ..data import Dataset
    from ..types import OnnxBundle


@dataclass
class QualityContext:
    """What a metric sees for one job: generated samples, the task's real data and the exported bundle.

    ``features(name, x)`` runs the task's fixed feature extractor (cached: ``"samples"`` per job, other
    names per task), so that several metrics share one pass. ``cache`` is shared by every job on the task
    (real-data statistics); ``job_cache`` by the metrics of this job (e.g. per-example likelihoods that
    both ``nll`` and ``bpd`` report). ``session(role)`` is an ONNX Runtime session for a graph of the bundle.
    """

    dataset: "Dataset"
    samples: np.ndarray
    rng: np.random.Generator
    features: Callable[[str, np.ndarray], np.ndarray]
    extractor_id: str | None
    cache: dict[str, Any] = field(default_factory=dict)
    bundle: "OnnxBundle | None" = None
    device: str = "cpu"
    seed: int = 0
    job_cache: dict[str, Any] = field(default_factory=dict)
    #: ``probabilities(name, x)``: the extractor's classifier head, softmax-ed (cached like ``features``)
    probabilities: Callable[[str, np.ndarray], np.ndarray] | None = None

    def session(self, role: str) -> Any:
        key = f"session:{role}"
        if key not in self.job_cache:
            from ..runtime import make_session

            assert self.bundle is not None
            self.job_cache[key] = make_session(self.bundle.directory / self.bundle.graph(role).path, self.device)
        return self.job_cache[key]


class Metric(abc.ABC):
    """A metric: ``__call__(ctx) -> MetricValue``; ``spec`` is filled in from the registry."""

    @abc.abstractmethod
    def __call__(self, ctx: QualityContext):  # -> genbench.types.MetricValue
        ...


__all__ = [
    "Metric", "QualityContext", "StreamingStatistics", "class_histogram", "classifier_score", "density_coverage",
    "feature_statistics", "frechet_distance", "frechet_distance_from_features", "gaussian_statistics", "grid25",
    "kernel_inception_distance", "knn_kl_divergence", "mixture_mode_metrics", "mode_histogram_kl", "modes_covered",
    "precision_recall", "ring8",
]
