"""Quality metrics: pure numpy/scipy functions plus thin :class:`Metric` wrappers."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .frechet import (StreamingStatistics, feature_statistics, frechet_distance, frechet_distance_from_features,
                      gaussian_statistics)
from .sample_metrics import (class_histogram, classifier_score, density_coverage, kernel_inception_distance,
                             knn_kl_divergence, mixture_mode_metrics, mode_histogram_kl, modes_covered,
                             precision_recall)

if TYPE_CHECKING:
    from ..data import Dataset


@dataclass(frozen=True)
class Likelihood:
    """Per-example held-out negative log-likelihoods of one model, computed by the harness from the
    model's graphs and handed to the likelihood metrics as arrays.

    ``nll``: nats per example (an image, a point) or per byte (text), float64. ``groups``: for correlated
    values (bytes of one window) the group of each, so that standard errors are taken over groups.
    ``dims``: dimensions per example (pixels, coordinates; 1 for bytes). ``bound``: ``exact``, ``elbo``
    or ``iwae`` (an upper bound on the NLL). ``variant``: the data the likelihood is of, e.g.
    ``binarized``, ``quantized-17``, ``continuous``, ``bytes``. ``discrete``: whether that data is
    discrete, i.e. whether bits per dimension mean anything. ``params`` and ``note`` go into the report.
    """

    nll: np.ndarray
    dims: int
    bound: str
    variant: str
    discrete: bool
    groups: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass
class QualityContext:
    """What a metric sees for one job: arrays only. The harness runs every graph; metrics compute.

    ``samples``: the generated samples (``None`` on text tasks). ``features(name, x)`` runs the task's
    fixed feature extractor on ``x`` and caches the result under ``name`` (``"samples"`` per job, other
    names per task), so that several metrics share one pass; ``probabilities`` is its classifier head,
    softmax-ed. ``likelihood``: the model's held-out NLLs when it exports a likelihood graph. ``cache``
    is shared by every job on the task (real-data references); ``job_cache`` by the metrics of one job.
    """

    dataset: "Dataset"
    samples: np.ndarray | None
    rng: np.random.Generator
    features: Callable[[str, np.ndarray], np.ndarray]
    extractor_id: str | None
    cache: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    job_cache: dict[str, Any] = field(default_factory=dict)
    #: ``probabilities(name, x)``: the extractor's classifier head, softmax-ed (cached like ``features``)
    probabilities: Callable[[str, np.ndarray], np.ndarray] | None = None
    likelihood: Likelihood | None = None
    #: the Inception space (``--features inception``): ``inception_features(name, x)`` is its 2,048-d pool3 of
    #: images in [0, 1] (cached like ``features``), ``inception_id`` names its weights file by sha256; it has no
    #: classifier head. ``fid_n``: the generated samples ``fid`` scores (None: all of them).
    inception_features: Callable[[str, np.ndarray], np.ndarray] | None = None
    inception_id: str | None = None
    fid_n: int | None = None
    #: the run's cache folder, where real-data references are kept on disk (None: not on disk, as under
    #: ``--no-cache``; :mod:`genbench.features.reference`)
    cache_dir: Any = None


class Metric(abc.ABC):
    """A metric: ``__call__(ctx) -> MetricValue``; ``spec`` is filled in from the registry."""

    @abc.abstractmethod
    def __call__(self, ctx: QualityContext):  # -> genbench.types.MetricValue
        ...


__all__ = [
    "Likelihood", "Metric", "QualityContext", "StreamingStatistics", "class_histogram", "classifier_score",
    "density_coverage", "feature_statistics", "frechet_distance", "frechet_distance_from_features",
    "gaussian_statistics", "kernel_inception_distance", "knn_kl_divergence", "mixture_mode_metrics",
    "mode_histogram_kl", "modes_covered", "precision_recall",
]
