"""Samples as data: how useful a model's samples are for training a classifier.

* ``tstr`` (train on synthetic, test on real; Esteban, Hyland & Rätsch 2017, "Real-valued (medical)
  time series generation with recurrent conditional GANs"): a fixed classifier is trained on the ``n``
  generated samples, each labelled by the task's shipped extractor's classifier head (argmax), and its
  accuracy is measured on the real test split. Its ``floor`` is the same classifier trained on ``n`` real
  training images with their true labels (a fixed subset when ``n`` is smaller than the split).
* :func:`augmentation_gain` (``genbench limits`` only): accuracy of ``k`` real training images plus the
  generated ones, against the ``k`` real images alone, over several classifier seeds (which ``k`` images).

The classifier (:data:`CLASSIFIER`) is scikit-learn's multinomial logistic regression on the pixels
scaled to [0, 1]: deterministic, seconds on CPU, and independent of the feature extractor that labels the
samples. The labels come from that extractor, which was trained on the whole labelled training split, so
a gain also holds what the labeller knows; the ``baseline-gaussian`` row shows how much of it the
labeller brings to samples that look little like digits.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..types import MetricValue
from . import Metric, QualityContext

#: what is trained, in words (results and docs quote it)
CLASSIFIER = ("multinomial logistic regression (scikit-learn, lbfgs to tol=1e-8, C=1, max_iter=10000) on pixels "
              "scaled to [0, 1]")
#: lbfgs's stopping tolerance: scikit-learn's default (1e-4) stopped 71 iterations in on digits with its weights
#: 0.5% short of the optimum, so a test image near a class boundary came out either way between runs (±1 image);
#: at 1e-8 the weights are within ~1e-5 of the optimum (279 iterations on digits; 1e-6 left them 1.5e-4 off)
CLASSIFIER_TOL = 1e-8
CLASSIFIER_MAX_ITER = 10000
REAL_SUBSET_SEED = 12345  # the real-data figure's training subset is fixed: the same for every model and run
AUGMENTATION_KS = (10, 20, 50, 100)
CLASSIFIER_SEEDS = 5
TSTR_UNIT = "fraction correct"  # accuracy on the real test split, 0 to 1


def _flat(x: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    lo, hi = value_range
    return ((np.asarray(x, dtype=np.float64) - lo) / (hi - lo)).reshape(len(x), -1)


def classifier_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                        value_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """Accuracy on (``test_x``, ``test_y``) of :data:`CLASSIFIER` fitted on (``train_x``, ``train_y``).

    With a single class in the training labels (a collapsed model) the classifier predicts that class.
    """
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if len(np.unique(train_y)) < 2:
        return float(np.mean(test_y == train_y[0])) if len(train_y) else 0.0
    from .memorization import single_threaded

    clf = fit_classifier(train_x, train_y, value_range)
    with single_threaded():
        return float(np.mean(clf.predict(_flat(test_x, value_range)) == test_y))


def fit_classifier(train_x: np.ndarray, train_y: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> Any:
    """:data:`CLASSIFIER` fitted on (``train_x``, ``train_y``), to :data:`CLASSIFIER_TOL`, single-threaded (the
    same sums in the same order on every machine with the same BLAS)."""
    from sklearn.linear_model import LogisticRegression

    from .memorization import single_threaded

    with single_threaded():
        clf = LogisticRegression(C=1.0, tol=CLASSIFIER_TOL, max_iter=CLASSIFIER_MAX_ITER)
        return clf.fit(_flat(train_x, value_range), np.asarray(train_y))


def binomial_stderr(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on ``n`` independent test examples."""
    return math.sqrt(accuracy * (1.0 - accuracy) / n) if n else float("nan")


def augmentation_gain(real_x: np.ndarray, real_y: np.ndarray, generated_x: np.ndarray, generated_y: np.ndarray,
                      test_x: np.ndarray, test_y: np.ndarray, k: int, seeds: Sequence[int] = range(CLASSIFIER_SEEDS),
                      value_range: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    """Accuracy of ``k`` real images (stratified, drawn per classifier seed) with and without the generated
    ones added; per-seed values and their mean and standard error over seeds."""
    from ..data.variants import stratified_order

    real, augmented = [], []
    for seed in seeds:
        idx = stratified_order(real_y, len(real_x), np.random.default_rng([REAL_SUBSET_SEED, seed]))[:k]
        real.append(classifier_accuracy(real_x[idx], real_y[idx], test_x, test_y, value_range))
        augmented.append(classifier_accuracy(np.concatenate([real_x[idx], generated_x]),
                                             np.concatenate([real_y[idx], generated_y]), test_x, test_y, value_range))
    gain = [a - r for a, r in zip(augmented, real)]
    return {"k": int(k), "generated": len(generated_x), "real": real, "augmented": augmented, "gain": gain,
            **{f"{name}_mean": float(np.mean(v)) for name, v in (("real", real), ("augmented", augmented),
                                                                   ("gain", gain))},
            "gain_stderr": float(np.std(gain, ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else None}


def real_subset(labels: np.ndarray | None, total: int, n: int) -> np.ndarray:
    """The fixed, stratified training subset of ``n`` images the real-data figure is trained on."""
    from ..data.variants import stratified_order

    if n >= total:
        return np.arange(total)
    return np.sort(stratified_order(labels, total, np.random.default_rng(REAL_SUBSET_SEED))[:n])


class TrainOnSyntheticAccuracy(Metric):
    """Accuracy on the real test split of :data:`CLASSIFIER` trained on the samples, labelled by the
    extractor's classifier head; the floor is the same classifier trained on as many real training images."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        d = ctx.dataset
        if (d.kind != "image" or ctx.samples is None or ctx.probabilities is None or ctx.extractor_id is None
                or d.train_y is None or d.test_y is None):
            return None
        n = len(ctx.samples)
        labels = ctx.probabilities("samples", ctx.samples).argmax(1)
        value = classifier_accuracy(ctx.samples, labels, d.test_x, d.test_y, d.value_range)
        key = f"tstr:real@{n}"
        if key not in ctx.cache:
            idx = real_subset(d.train_y, len(d.train_x), n)
            ctx.cache[key] = classifier_accuracy(d.train_x[idx], d.train_y[idx], d.test_x, d.test_y, d.value_range)
        return MetricValue(value=value, unit=TSTR_UNIT, higher_is_better=True, n=n, extractor=ctx.extractor_id,
                           floor=ctx.cache[key], stderr=binomial_stderr(value, len(d.test_y)),
                           params={"classifier": CLASSIFIER, "labels": "argmax of the extractor's classifier head",
                                   "test": len(d.test_y), "classes_in_samples": int(len(np.unique(labels))),
                                   "stderr_of": f"{len(d.test_y)} real test images (binomial)"},
                           note=f"accuracy on the {len(d.test_y)} real test images; floor = trained on {n} real "
                                "training images with true labels; stderr binomial over the test images")


__all__ = ["AUGMENTATION_KS", "CLASSIFIER", "CLASSIFIER_SEEDS", "TrainOnSyntheticAccuracy", "augmentation_gain",
           "binomial_stderr", "classifier_accuracy", "fit_classifier", "real_subset"]
