"""The metrics genbench registers for itself, through the same hook as any plugin."""

from __future__ import annotations

from ..types import MetricValue
from . import Metric, QualityContext
from .frechet import gaussian_statistics
from .sample_metrics import (class_histogram, classifier_score, density_coverage, kernel_inception_distance,
                             knn_kl_divergence, mixture_mode_metrics, mode_histogram_kl, modes_covered,
                             precision_recall)

FLOOR_SEED = 12345  # the floor's train subset is fixed: the same for every model and run


class FrechetDistance(Metric):
    """FD between generated samples and the test split, in the task's fixed feature space.

    The floor is the FD between a training subset of the same size and the test split: the value real
    data reaches at this ``n`` (FD is biased upward at small ``n``), so a model is read against it.
    """

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.extractor_id is None:
            return None
        from ..features.reference import frechet_distance_to_reference, reference_for

        n = len(ctx.samples)
        test = reference_for(ctx, "test", ctx.dataset.test_x)  # cached on disk per (data hash, extractor hash)
        if f"floor@{n}" not in ctx.cache:
            idx = _subset(len(ctx.dataset.train_x), n)
            train = ctx.features(f"train@{n}", ctx.dataset.train_x[idx])
            ctx.cache[f"floor@{n}"] = frechet_distance_to_reference(*gaussian_statistics(train), test)
        value = frechet_distance_to_reference(*gaussian_statistics(ctx.features("samples", ctx.samples)), test)
        return MetricValue(value=value, unit="", higher_is_better=False, n=n, extractor=ctx.extractor_id,
                           floor=ctx.cache[f"floor@{n}"],
                           note=f"FD(samples, test split of {len(ctx.dataset.test_x)}); floor = FD(train subset, test)")


def _subset(total: int, n: int):
    import numpy as np

    rng = np.random.default_rng(FLOOR_SEED)
    return np.sort(rng.choice(total, size=n, replace=False)) if n < total else np.arange(total)



# --------------------------------------------------------------------------- feature-space metrics beyond FD

KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000


def _real_and_fake(ctx: QualityContext):
    """(test features, sample features, a training subset of the samples' size): the last is the reference."""
    n = len(ctx.samples)
    test = ctx.features("test", ctx.dataset.test_x)
    train = ctx.features(f"train@{n}", ctx.dataset.train_x[_subset(len(ctx.dataset.train_x), n)])
    return test, ctx.features("samples", ctx.samples), train


def _cached(ctx: QualityContext, key: str, compute):
    if key not in ctx.job_cache:
        ctx.job_cache[key] = compute()
    return ctx.job_cache[key]


class KernelInceptionDistance(Metric):
    """KID: unbiased MMD² (cubic polynomial kernel) between samples and the test split, averaged over
    seeded subsets; ``std`` is its spread over subsets; the floor is a training subset's KID."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.extractor_id is None:
            return None
        test, fake, train = _real_and_fake(ctx)
        size = min(KID_SUBSET_SIZE, len(test), len(fake))
        mean, std = kernel_inception_distance(test, fake, num_subsets=KID_SUBSETS, subset_size=size, seed=ctx.seed)
        if f"kid-floor@{len(fake)}" not in ctx.cache:
            ctx.cache[f"kid-floor@{len(fake)}"] = kernel_inception_distance(
                test, train, num_subsets=KID_SUBSETS, subset_size=size, seed=ctx.seed)[0]
        return MetricValue(value=mean, unit="", higher_is_better=False, n=len(fake), extractor=ctx.extractor_id,
                           std=std, std_of=f"{KID_SUBSETS} subsets of {size}", floor=ctx.cache[f"kid-floor@{len(fake)}"],
                           params={"subsets": KID_SUBSETS, "subset_size": size, "kernel": "(x.y/d + 1)^3"})


class _PairMetric(Metric):
    """One of two numbers computed together (precision/recall, density/coverage), with a real-data reference."""

    name = ""
    index = 0
    k = 3

    def compute(self, real, fake):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.extractor_id is None:
            return None
        test, fake, train = _real_and_fake(ctx)
        pair = _cached(ctx, f"{self.name}:pair", lambda: self.compute(test, fake))
        ref_key = f"{self.name}:reference@{len(fake)}"
        if ref_key not in ctx.cache:
            ctx.cache[ref_key] = self.compute(test, train)
        return MetricValue(value=float(pair[self.index]), unit="", higher_is_better=True, n=len(fake),
                           extractor=ctx.extractor_id, floor=float(ctx.cache[ref_key][self.index]),
                           params={"k": self.k, "real": "test split", "generated": "samples"},
                           note="reference = a training subset of the same size scored the same way")


class Precision(_PairMetric):
    name, index, k = "precision_recall", 0, 3

    def compute(self, real, fake):
        return precision_recall(real, fake, k=self.k)


class Recall(Precision):
    index = 1


class Density(_PairMetric):
    name, index, k = "density_coverage", 0, 5

    def compute(self, real, fake):
        return density_coverage(real, fake, k=self.k)


class Coverage(Density):
    index = 1


def _sample_classes(ctx: QualityContext):
    return ctx.probabilities("samples", ctx.samples)


class ModesCovered(Metric):
    """Classes (of the extractor's classifier head) that at least one sample is assigned to."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.probabilities is None or ctx.extractor_id is None:
            return None
        probs = _sample_classes(ctx)
        k = probs.shape[1]
        return MetricValue(value=float(modes_covered(probs.argmax(1), k)), unit=f"of {k}", higher_is_better=True,
                           n=len(probs), extractor=ctx.extractor_id)


class ClassHistogramKL(Metric):
    """KL(sample class histogram ‖ test-set class histogram), classes by the extractor's classifier head."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.probabilities is None or ctx.extractor_id is None:
            return None
        probs = _sample_classes(ctx)
        k = probs.shape[1]
        test = ctx.probabilities("test", ctx.dataset.test_x)
        ref = class_histogram(test.argmax(1), k).astype(float)
        value = mode_histogram_kl(probs.argmax(1), ref / ref.sum(), k)
        return MetricValue(value=value, unit="nats", higher_is_better=False, n=len(probs), extractor=ctx.extractor_id)


class ClassifierScore(Metric):
    """exp(E KL(p(y|x) ‖ p(y))) with the task's digit classifier: the Inception-Score analogue (not the IS)."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.probabilities is None or ctx.extractor_id is None:
            return None
        probs = _sample_classes(ctx)
        floor_key = "classifier-score:test"
        if floor_key not in ctx.cache:
            ctx.cache[floor_key] = classifier_score(ctx.probabilities("test", ctx.dataset.test_x))
        return MetricValue(value=classifier_score(probs), unit="", higher_is_better=True, n=len(probs),
                           extractor=ctx.extractor_id, floor=ctx.cache[floor_key],
                           note=f"max {probs.shape[1]}; reference = the test split's own score")



# --------------------------------------------------------------------------- 2-D mixture tasks


class _Mixture(Metric):
    key = ""
    unit = ""
    higher = True

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        meta = ctx.dataset.meta or {}
        if "centers" not in meta or ctx.samples is None:
            return None
        n = min(len(ctx.samples), len(ctx.dataset.test_x))
        m = _cached(ctx, "mixture", lambda: mixture_mode_metrics(ctx.samples[:n], meta["centers"], meta["sigma"]))
        ref_key = f"mixture:reference@{n}"  # held-out data of the true mixture, scored at the samples' n
        if ref_key not in ctx.cache:
            ctx.cache[ref_key] = mixture_mode_metrics(ctx.dataset.test_x[:n], meta["centers"], meta["sigma"])
        value, floor = m[self.key], ctx.cache[ref_key][self.key]
        return MetricValue(value=float(value), unit=self.unit, higher_is_better=self.higher, n=n,
                           floor=float(floor), params={"threshold": "3 sigma", "modes": len(meta["centers"])},
                           note=f"reference = {n:,} held-out points of the true mixture")


class HighQuality(_Mixture):
    key = "high_quality_fraction"


class MixtureModesCovered(_Mixture):
    key, unit = "modes_covered", "modes"


class ReverseKL(_Mixture):
    key, unit, higher = "reverse_kl", "nats", False


class KnnKL(Metric):
    """KL(samples ‖ data) by the k-NN estimator, against held-out points of the true mixture."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.dataset.kind != "points" or ctx.samples is None:
            return None
        n = min(len(ctx.samples), len(ctx.dataset.test_x))
        value = knn_kl_divergence(ctx.samples[:n], ctx.dataset.test_x[:n])
        if f"knn-kl-floor@{n}" not in ctx.cache:
            ctx.cache[f"knn-kl-floor@{n}"] = knn_kl_divergence(ctx.dataset.train_x[:n], ctx.dataset.test_x[:n])
        return MetricValue(value=value, unit="nats", higher_is_better=False, n=n, floor=ctx.cache[f"knn-kl-floor@{n}"],
                           params={"k": 1, "estimator": "Wang-Kulkarni-Verdu"})
