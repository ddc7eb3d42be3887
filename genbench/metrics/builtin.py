"""The metrics genbench registers for itself, through the same hook as any plugin."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.spatial import cKDTree
from scipy.special import rel_entr

from ..types import REPLAY_FLAG, MetricValue
from . import Metric, QualityContext
from . import bootstrap as bs
from .frechet import frechet_bootstrap, frechet_distance_infinity, gaussian_statistics
from .sample_metrics import (class_histogram, classifier_score, classifier_score_weighted, density_coverage, kernel_inception_distance,
                             kid_bootstrap, knn_bootstrap, knn_kl_divergence, knn_log_ratios, mixture_mode_metrics,
                             mode_histogram_kl, modes_covered, precision_recall)

FLOOR_SEED = 12345  # the floor's train subset is fixed: the same for every model and run


class FrechetDistance(Metric):
    """FD between generated samples and the test split, in the task's fixed feature space.

    The floor is the FD between a training subset of the same size and the test split: the value real
    data reaches at this ``n`` (FD is biased upward at small ``n``), so a model is read against it. It is drawn
    over :data:`FLOOR_SUBSETS` training subsets (:func:`floor_spread`): ``floor`` their mean, ``floor_interval``
    the 95% prediction interval of one more subset. ``interval``: a basic bootstrap over the samples and the test
    split (:func:`genbench.metrics.frechet.frechet_bootstrap`).
    """

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.extractor_id is None:
            return None
        from ..features.reference import frechet_distance_to_reference, reference_for

        n = len(ctx.samples)
        test = reference_for(ctx, "test", ctx.dataset.test_x)  # cached on disk per (data hash, extractor hash)
        if f"floor@{n}" not in ctx.cache:
            ctx.cache[f"floor@{n}"] = floor_spread(
                lambda i: frechet_distance_to_reference(*gaussian_statistics(_train_subset(ctx, n, i)), test),
                distinct=n < len(ctx.dataset.train_x))
        feats = ctx.features("samples", ctx.samples)
        value = frechet_distance_to_reference(*gaussian_statistics(feats), test)
        boot = _cached(ctx, "fd:bootstrap", lambda: frechet_bootstrap(feats, test.features, seed=ctx.seed,
                                                                       reference_stats=(test.mu, test.sigma)))
        floor, floor_interval, floor_of = ctx.cache[f"floor@{n}"]
        return MetricValue(value=value, unit="", higher_is_better=False, n=n, extractor=ctx.extractor_id,
                           floor=floor, floor_interval=floor_interval, floor_of=floor_of,
                           params=replay_params("FD", value, floor_interval, False),
                           interval=bs.containing(boot["interval"], value), interval_of=boot["interval_of"],
                           note=f"FD(samples, test split of {len(ctx.dataset.test_x)}); floor = FD(train subset, test)")


NO_CLASSIFIER = ("not computed: the inception feature space has no classifier head; its network ends at pool3: "
                 "add the CNN space, --features default,inception, for this metric")
FID_PREPROCESSING = "uint8, grey tiled to RGB, TF1 bilinear resize to 299 (align_corners=False), (x - 128) / 128"


def fid_references(ctx: QualityContext, n: int):
    """(the test split's reference, the floor's reference: a fixed training subset of ``n``) in the Inception
    space, each computed once per (task data hash, Inception weights hash) and kept on disk with the other
    references (:mod:`genbench.features.reference`), so that every job of a run, and later runs, read them."""
    from ..features.reference import NOTES, _rows_id, load_or_compute, reference_key

    data = ctx.cache.get("data_sha256") or ctx.cache.setdefault("data_sha256", ctx.dataset.sha256)
    root = Path(ctx.cache_dir) if getattr(ctx, "cache_dir", None) else None  # None: --no-cache, nothing on disk
    refs = []
    for split, images in (("test", lambda: ctx.dataset.test_x),
                          (f"train@{n}/subset-seed-{FLOOR_SEED}",
                           lambda: ctx.dataset.train_x[_subset(len(ctx.dataset.train_x), n)])):
        memo = f"inception-reference:{split}"
        if memo not in ctx.cache:
            key = reference_key(data, ctx.inception_id, split)
            count = len(ctx.dataset.test_x) if split == "test" else n
            ctx.cache[memo] = load_or_compute(
                root, key, lambda s=split, x=images: ctx.inception_features(s, x()),
                rows=lambda idx, s=split, x=images: ctx.inception_features(f"verify:{s}:{_rows_id(idx)}", x()[idx]),
                n=count, notes=ctx.cache.setdefault(NOTES, []))
        refs.append(ctx.cache[memo])
    return refs[0], refs[1]


class FrechetInceptionDistance(Metric):
    """FID: FD between generated samples and the test split in the pool3 space of the 2015 TensorFlow Inception
    (``--features inception``), with the literature's preprocessing. ``--fid-n N`` scores the first N samples.
    The floor is the FID of a fixed training subset of the same ``n`` against the test split."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.inception_id is None or ctx.inception_features is None or ctx.samples is None:
            return None
        from ..features.reference import frechet_distance_to_reference

        drawn, train = len(ctx.samples), len(ctx.dataset.train_x)
        n = ctx.fid_n or min(drawn, train)
        params = {"reference": "test split", "preprocessing": FID_PREPROCESSING}
        if n > drawn or n > train:
            why = (f"--fid-n {n} is more than the {drawn:,} samples this job drew" if n > drawn else
                   f"--fid-n {n} is more than the {train:,} training images the floor is drawn from")
            return MetricValue(value=None, unit="", higher_is_better=False, n=n, extractor=ctx.inception_id,
                               params=params, error=f"{why}: give a smaller --fid-n.")
        test, floor = fid_references(ctx, n)
        samples = ctx.samples if n == drawn else ctx.samples[:n]
        value = frechet_distance_to_reference(*gaussian_statistics(
            ctx.inception_features("samples" if n == drawn else f"samples[:{n}]", samples)), test)
        return MetricValue(value=value, unit="", higher_is_better=False, n=n, extractor=ctx.inception_id,
                           floor=frechet_distance_to_reference(floor.mu, floor.sigma, test), params=params,
                           note=f"FID(samples, test split of {len(ctx.dataset.test_x):,}) in Inception pool3; floor = "
                                f"FID(train subset of {n:,}, test); biased upward at small n; no classifier in this "
                                "space (modes, class-kl, classifier-score are the CNN's)")


def _no_classifier(ctx: QualityContext, unit: str, higher: bool) -> MetricValue | None:
    """A classifier metric in a run whose only image space is Inception's: no value, and why."""
    if ctx.extractor_id is None and ctx.inception_id is not None and ctx.samples is not None:
        return MetricValue(value=None, unit=unit, higher_is_better=higher, extractor=ctx.inception_id,
                           error=NO_CLASSIFIER)
    return None



class FrechetDistanceInfinity(Metric):
    """FD∞ (Chong & Forsyth 2020): FD extrapolated to infinitely many samples, free of FD's 1/N bias; its interval
    is the fit's (:func:`genbench.metrics.frechet.frechet_distance_infinity`). Beside FD, never in its place."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.extractor_id is None:
            return None
        from ..features.reference import reference_for

        test = reference_for(ctx, "test", ctx.dataset.test_x)
        feats = ctx.features("samples", ctx.samples)
        try:
            fit = frechet_distance_infinity(feats, (test.mu, test.sigma), seed=ctx.seed)
        except ValueError as exc:  # too few samples for the fit: said as such, never an exception's name
            return MetricValue(value=None, unit="", higher_is_better=False, n=len(feats), extractor=ctx.extractor_id,
                               error=f"not computed: {exc}")
        return MetricValue(value=fit["value"], unit="", higher_is_better=False, n=len(feats),
                           extractor=ctx.extractor_id, interval=fit["interval"], interval_of=fit["interval_of"],
                           params={"sizes": fit["sizes"], "slope": fit["slope"]},
                           note="FD at several sample sizes N, extrapolated linearly in 1/N to N → ∞ "
                                "(Chong & Forsyth 2020); can be below 0 by the fit's error")


#: training subsets the FD floor is drawn over (subset 0 is FLOOR_SEED's, the one the other references use)
FLOOR_SUBSETS = 5


def floor_spread(value_of, distinct: bool = True) -> tuple[float, tuple[float, float] | None, str]:
    """(mean, 95% prediction interval, what it is) of ``value_of(i)`` over :data:`FLOOR_SUBSETS` subsets: the
    interval ``mean ± t₀.₉₇₅,ₖ₋₁ · sd · √(1 + 1/k)`` is where one more real-data subset's value lands. Not
    ``distinct`` (the samples' size is the whole training split, so every subset is the same data): the one
    value, and no interval, since subsets that cannot differ say nothing of real data's spread at this n."""
    if not distinct:
        return float(value_of(0)), None, NO_SPREAD
    values = [float(value_of(i)) for i in range(FLOOR_SUBSETS)]
    k = len(values)
    return math.fsum(values) / k, prediction_interval(values), (
        f"mean over {k} training subsets of the samples' size; interval: the 95% prediction interval of one more "
        f"subset (t, {k - 1} df)")


NO_SPREAD = "the whole training split (the samples' size is all of it): no spread over subsets, no interval"


def prediction_interval(values) -> tuple[float, float]:
    """The 95% prediction interval of one more value, ``mean ± t₀.₉₇₅,ₖ₋₁ · sd · √(1 + 1/k)``, of ``values``."""
    k = len(values)
    mean = math.fsum(values) / k
    half = float(stats.t.ppf(0.975, k - 1)) * float(np.std(values, ddof=1)) * math.sqrt(1 + 1 / k)
    return mean - half, mean + half


def subset_floor_of(interval: tuple[float, float] | None) -> str:
    """What the floor of KID, precision and recall is (one fixed training subset) and its interval, or why none."""
    if interval is None:
        return NO_SPREAD
    return (f"floor: the fixed training subset of the samples' size; interval: the 95% prediction interval of one more "
            f"subset, from {FLOOR_SUBSETS} training subsets (t, {FLOOR_SUBSETS - 1} df)")


def replay_params(name: str, value: float, floor_interval: tuple[float, float] | None, higher_is_better: bool,
                  params: dict | None = None) -> dict | None:
    """``params`` with the flag of a value beyond its floor's interval (better than real training data of the same
    size scores against the test split: :data:`REPLAY_FLAG`), or ``params`` as given when it is not beyond it."""
    if floor_interval is None or not math.isfinite(value):
        return params
    lo, hi = floor_interval
    if not (value > hi if higher_is_better else value < lo):
        return params
    side = "above" if higher_is_better else "below"
    flag = (f"{REPLAY_FLAG} ({name} {value:.4g} {side} the floor's 95% interval [{lo:.4g}, {hi:.4g}] over "
            f"{FLOOR_SUBSETS} training subsets of the samples' size: better than real data at this n)")
    return {**(params or {}), "flag": flag, "replayed": True}


def _train_subset(ctx: QualityContext, n: int, i: int) -> np.ndarray:
    """Features of training subset ``i`` of size ``n`` (0: the fixed FLOOR_SEED subset)."""
    name = f"train@{n}" if i == 0 else f"train@{n}#{i}"
    return ctx.features(name, ctx.dataset.train_x[_subset(len(ctx.dataset.train_x), n, i)])


def _subset(total: int, n: int, i: int = 0):
    rng = np.random.default_rng(FLOOR_SEED if i == 0 else [FLOOR_SEED, i])
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
    seeded subsets; ``std`` is its spread over subsets; the floor is a training subset's KID. ``interval``: a
    bootstrap over samples and test rows of one subset's estimate (:func:`~.sample_metrics.kid_bootstrap`),
    placed around the value."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.extractor_id is None:
            return None
        test, fake, train = _real_and_fake(ctx)
        size = min(KID_SUBSET_SIZE, len(test), len(fake))
        mean, std = kernel_inception_distance(test, fake, num_subsets=KID_SUBSETS, subset_size=size, seed=ctx.seed)
        if f"kid-floor@{len(fake)}" not in ctx.cache:
            ctx.cache[f"kid-floor@{len(fake)}"] = kernel_inception_distance(
                test, train, num_subsets=KID_SUBSETS, subset_size=size, seed=ctx.seed)[0]
        if f"kid-floor-spread@{len(fake)}" not in ctx.cache:  # none where every training subset is the same data
            ctx.cache[f"kid-floor-spread@{len(fake)}"] = None if len(fake) >= len(ctx.dataset.train_x) else (
                prediction_interval([ctx.cache[f"kid-floor@{len(fake)}"]] + [
                    kernel_inception_distance(test, _train_subset(ctx, len(fake), i), num_subsets=KID_SUBSETS,
                                              subset_size=size, seed=ctx.seed)[0] for i in range(1, FLOOR_SUBSETS)]))
        floor_interval = ctx.cache[f"kid-floor-spread@{len(fake)}"]
        values, point, m = kid_bootstrap(test, fake, subset_size=size, resamples=bs.RESAMPLES, seed=ctx.seed)
        offsets = bs.basic_interval(point, values)
        interval = None if offsets is None else (mean + offsets[0] - point, mean + offsets[1] - point)
        over = f"{m:,} samples and {m:,} test rows (one subset of each)"
        return MetricValue(value=mean, unit="", higher_is_better=False, n=len(fake), extractor=ctx.extractor_id,
                           std=std, std_of=f"{KID_SUBSETS} subsets of {size}", floor=ctx.cache[f"kid-floor@{len(fake)}"],
                           floor_interval=floor_interval, floor_of=subset_floor_of(floor_interval),
                           interval=bs.containing(interval, mean),
                           interval_of=bs.describe(over, bs.RESAMPLES, "placed around the value"
                                                   + ("; of an estimate from fewer rows than n: conservative"
                                                      if m < min(len(test), len(fake)) else "")),
                           params=replay_params("KID", mean, floor_interval, False,
                                                {"subsets": KID_SUBSETS, "subset_size": size, "kernel": "(x.y/d + 1)^3"}))


#: the fractions among the k-NN metrics: (rows the share is of, what is held fixed) for an exact binomial interval
_KNN_FRACTIONS = {("precision_recall", 0): ("samples", "the test split's manifold held fixed"),
                  ("precision_recall", 1): ("test rows", "the samples' manifold held fixed"),
                  ("density_coverage", 1): ("test rows", "the samples held fixed")}


class _PairMetric(Metric):
    """One of two numbers computed together (precision/recall, density/coverage), with a real-data reference."""

    name = ""
    index = 0
    k = 3
    #: whether the floor has a spread over training subsets, and a value beyond it a flag (precision, recall)
    spread = False
    label = ""

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
        value = float(pair[self.index])
        floor_interval = None
        if self.spread and len(fake) < len(ctx.dataset.train_x):
            spread_key = f"{self.name}:reference-spread@{len(fake)}"
            if spread_key not in ctx.cache:
                pairs = [ctx.cache[ref_key]] + [self.compute(test, _train_subset(ctx, len(fake), i))
                                                for i in range(1, FLOOR_SUBSETS)]
                ctx.cache[spread_key] = [prediction_interval([float(p[j]) for p in pairs]) for j in (0, 1)]
            floor_interval = ctx.cache[spread_key][self.index]
        fraction = _KNN_FRACTIONS.get((self.name, self.index))
        if fraction is not None:  # a share of rows, the other set fixed: a binomial proportion
            rows = len(fake) if fraction[0] == "samples" else len(test)
            interval = bs.binomial_interval(int(round(value * rows)), rows)
            interval_of = bs.binomial_text(rows, fraction[0], fraction[1])
        else:  # density: (sample, ball) pairs, both sets resampled
            boot = knn_bootstrap(test, fake, k=self.k, which=self.name, resamples=bs.RESAMPLES, seed=ctx.seed)
            if boot is None:
                interval, interval_of = None, "no interval: too many ball memberships to store"
            else:
                values, point = boot
                interval = bs.basic_interval(float(point[self.index]), values[:, self.index])
                if interval is not None:  # the same formula as the value: placed around it (equal to round-off)
                    interval = bs.containing((interval[0] + value - point[self.index],
                                              interval[1] + value - point[self.index]), value)
                interval_of = bs.describe("the samples and the test rows", bs.RESAMPLES)
        return MetricValue(value=value, unit="", higher_is_better=True, n=len(fake),
                           extractor=ctx.extractor_id, floor=float(ctx.cache[ref_key][self.index]),
                           floor_interval=floor_interval, floor_of=subset_floor_of(floor_interval) if self.spread else None,
                           interval=interval, interval_of=interval_of,
                           params=replay_params(self.label, value, floor_interval, True,
                                                {"k": self.k, "real": "test split", "generated": "samples"}),
                           note="reference = a training subset of the same size scored the same way")


class Precision(_PairMetric):
    name, index, k, spread, label = "precision_recall", 0, 3, True, "precision"

    def compute(self, real, fake):
        return precision_recall(real, fake, k=self.k)


class Recall(Precision):
    index, label = 1, "recall"


class Density(_PairMetric):
    name, index, k = "density_coverage", 0, 5

    def compute(self, real, fake):
        return density_coverage(real, fake, k=self.k)


class Coverage(Density):
    index = 1


def _sample_classes(ctx: QualityContext):
    return ctx.probabilities("samples", ctx.samples)


def _train_classes(ctx: QualityContext) -> np.ndarray:
    """The classifier head's outputs on the fixed training subset of the samples' ``n`` (FLOOR_SEED's, the one
    FD's floor is drawn from): the real data a class metric's floor is read off."""
    n = len(ctx.samples)
    return ctx.probabilities(f"train@{n}", ctx.dataset.train_x[_subset(len(ctx.dataset.train_x), n)])


def _class_floor(ctx: QualityContext, name: str, statistic) -> float:
    """``statistic(probabilities)`` of :func:`_train_classes`, cached per metric and ``n``."""
    key = f"{name}:floor@{len(ctx.samples)}"
    if key not in ctx.cache:
        ctx.cache[key] = float(statistic(_train_classes(ctx)))
    return ctx.cache[key]


CLASS_FLOOR_NOTE = "floor = a training subset of the same n, scored the same way"


def _class_bootstrap(ctx: QualityContext, statistic, over: str = "the samples") -> tuple[np.ndarray, str]:
    """Bootstrap values of ``statistic(weights [B, n]) -> [B]`` over the samples' classifier outputs."""
    n = len(ctx.samples)
    w = bs.weights(n, bs.RESAMPLES, bs.generator(ctx.seed, 5))
    with np.errstate(all="ignore"):
        return statistic(w), bs.describe(over, bs.RESAMPLES)


class ModesCovered(Metric):
    """Classes (of the extractor's classifier head) that at least one sample is assigned to."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.probabilities is None or ctx.extractor_id is None:
            return _no_classifier(ctx, "of 10", True)
        probs = _sample_classes(ctx)
        k = probs.shape[1]
        onehot = np.eye(k)[probs.argmax(1)]
        value = float(modes_covered(probs.argmax(1), k))
        values, of = _class_bootstrap(ctx, lambda w: ((w @ onehot) > 0).sum(1).astype(float))
        floor = _class_floor(ctx, "modes", lambda p: modes_covered(p.argmax(1), k))
        return MetricValue(value=value, unit=f"of {k}", higher_is_better=True, floor=floor, note=CLASS_FLOOR_NOTE,
                           n=len(probs), extractor=ctx.extractor_id, params={"range": [0, k]},
                           interval=_clip(bs.containing(bs.basic_interval(value, values), value), 0, k),
                           interval_of=of)


def _clip(interval, low, high):
    """``interval`` inside ``[low, high]`` (a bootstrap interval of a bounded statistic can reach past it)."""
    if interval is None:
        return None
    return max(interval[0], low), min(interval[1], high)


class ClassHistogramKL(Metric):
    """KL(sample class histogram ‖ test-set class histogram), classes by the extractor's classifier head."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.probabilities is None or ctx.extractor_id is None:
            return _no_classifier(ctx, "nats", False)
        probs = _sample_classes(ctx)
        k = probs.shape[1]
        test = ctx.probabilities("test", ctx.dataset.test_x)
        ref = class_histogram(test.argmax(1), k).astype(float)
        value = mode_histogram_kl(probs.argmax(1), ref / ref.sum(), k)
        onehot, test_onehot = np.eye(k)[probs.argmax(1)], np.eye(k)[test.argmax(1)]
        wt = bs.weights(len(test), bs.RESAMPLES, bs.generator(ctx.seed, 6))

        def kl(w):
            p = w @ onehot
            p /= p.sum(1, keepdims=True)
            q = wt @ test_onehot
            q /= q.sum(1, keepdims=True)
            return rel_entr(p, q).sum(1)

        values, _ = _class_bootstrap(ctx, kl)
        floor = _class_floor(ctx, "class-kl", lambda p: mode_histogram_kl(p.argmax(1), ref / ref.sum(), k))
        return MetricValue(value=value, unit="nats", higher_is_better=False, n=len(probs), extractor=ctx.extractor_id,
                           floor=floor, note=CLASS_FLOOR_NOTE,
                           interval=_clip(bs.containing(bs.basic_interval(value, values), value), 0, math.inf),
                           interval_of=bs.describe("the samples and the test split", bs.RESAMPLES,
                                                   "a resample that puts samples in a class no test row is in is "
                                                   "infinite and left out"))


class ClassifierScore(Metric):
    """exp(E KL(p(y|x) ‖ p(y))) with the task's digit classifier: the Inception-Score analogue (not the IS)."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.probabilities is None or ctx.extractor_id is None:
            return _no_classifier(ctx, "", True)
        probs = _sample_classes(ctx)
        value = classifier_score(probs)
        values, of = _class_bootstrap(ctx, lambda w: classifier_score_weighted(probs, w))
        k = probs.shape[1]
        return MetricValue(value=value, unit="", higher_is_better=True, n=len(probs),
                           extractor=ctx.extractor_id, floor=_class_floor(ctx, "classifier-score", classifier_score),
                           params={"range": [1, k]},
                           interval=_clip(bs.containing(bs.basic_interval(value, values), value), 1, k),
                           interval_of=of,
                           note=f"max {probs.shape[1]}; {CLASS_FLOOR_NOTE}")



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
        params = {"threshold": "3 sigma", "modes": len(meta["centers"])}
        note = f"reference = {n:,} held-out points of the true mixture"
        if not math.isfinite(float(value)):  # NaN by design: the metric is not defined for these samples
            why = self.undefined()
            return MetricValue(value=None, unit=self.unit, higher_is_better=self.higher, n=n, params={
                **params, "not_defined": why}, error=f"not defined: {why}", note=note)
        interval, interval_of = self.interval(ctx, n, float(value), meta)
        return MetricValue(value=float(value), unit=self.unit, higher_is_better=self.higher, n=n,
                           floor=float(floor), params=params, note=note, interval=interval, interval_of=interval_of)

    def undefined(self) -> str:
        return "the metric is not defined for these samples"

    def interval(self, ctx, n, value, meta):
        """The interval of a mode metric: a bootstrap over the samples of the per-mode counts."""
        high, nearest = _mixture_assignments(ctx, n, meta)
        k = len(meta["centers"])
        counts = np.zeros((n, k))
        counts[np.flatnonzero(high), nearest[high]] = 1.0
        w = bs.weights(n, bs.RESAMPLES, bs.generator(ctx.seed, 7))
        with np.errstate(all="ignore"):
            values = self.from_counts(w @ counts, k)
        return (_clip(bs.containing(bs.basic_interval(value, values), value), 0, self.top(k)),
                bs.describe("the samples", bs.RESAMPLES, self.resample_note()))

    def top(self, k):
        return math.inf

    def resample_note(self) -> str:
        return ""


def _mixture_assignments(ctx: QualityContext, n: int, meta) -> tuple[np.ndarray, np.ndarray]:
    """(high quality [n] bool, nearest centre [n]) of the samples, as :func:`mixture_mode_metrics` assigns them."""
    def compute():
        dist, nearest = cKDTree(np.asarray(meta["centers"], dtype=np.float64)).query(
            np.asarray(ctx.samples[:n], dtype=np.float64))
        return dist <= 3.0 * float(meta["sigma"]), nearest

    return _cached(ctx, "mixture:assignments", compute)


class HighQuality(_Mixture):
    """Share of samples within 3σ of a mode: a binomial proportion, with its exact (Clopper–Pearson) interval."""

    key = "high_quality_fraction"

    def interval(self, ctx, n, value, meta):
        return bs.binomial_interval(int(round(value * n)), n), bs.binomial_text(n)


class MixtureModesCovered(_Mixture):
    key, unit = "modes_covered", "modes"

    def from_counts(self, counts, k):
        return (counts >= 1).sum(1).astype(float)

    def top(self, k):
        return float(k)


class ReverseKL(_Mixture):
    key, unit, higher = "reverse_kl", "nats", False

    def undefined(self) -> str:
        return "no sample is high quality (within 3 sigma of a mode), so the histogram of modes is empty"

    def from_counts(self, counts, k):
        p = counts / counts.sum(1, keepdims=True)  # NaN rows (no high-quality sample drawn) are left out
        return rel_entr(p, 1.0 / k).sum(1)

    def resample_note(self) -> str:
        return "a resample with no high-quality sample is left out"


class KnnKL(Metric):
    """KL(samples ‖ data) by the k-NN estimator, against held-out points of the true mixture."""

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.dataset.kind != "points" or ctx.samples is None:
            return None
        n = min(len(ctx.samples), len(ctx.dataset.test_x))
        x, y = ctx.samples[:n], ctx.dataset.test_x[:n]
        value = knn_kl_divergence(x, y)
        if f"knn-kl-floor@{n}" not in ctx.cache:
            ctx.cache[f"knn-kl-floor@{n}"] = knn_kl_divergence(ctx.dataset.train_x[:n], ctx.dataset.test_x[:n])
        xa, ya = (np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in (x, y))
        terms = knn_log_ratios(xa, ya)
        w = bs.weights(n, bs.RESAMPLES, bs.generator(ctx.seed, 8))
        values = xa.shape[1] * (w @ terms) / n + math.log(len(ya) / (n - 1))
        return MetricValue(value=value, unit="nats", higher_is_better=False, n=n, floor=ctx.cache[f"knn-kl-floor@{n}"],
                           params={"k": 1, "estimator": "Wang-Kulkarni-Verdu"},
                           interval=bs.containing(bs.basic_interval(value, values), value),
                           interval_of=bs.describe("the samples' terms log(ν/ρ)", bs.RESAMPLES,
                                                   "neighbour distances held fixed"))
