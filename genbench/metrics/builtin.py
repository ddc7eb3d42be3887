"""The metrics genbench registers for itself, through the same hook as any plugin."""

from __future__ import annotations

from ..types import MetricValue
from . import Metric, QualityContext
from .frechet import frechet_distance_from_features

FLOOR_SEED = 12345  # the floor's train subset is fixed: the same for every model and run


class FrechetDistance(Metric):
    """FD between generated samples and the test split, in the task's fixed feature space.

    The floor is the FD between a training subset of the same size and the test split: the value real
    data reaches at this ``n`` (FD is biased upward at small ``n``), so a model is read against it.
    """

    def __call__(self, ctx: QualityContext) -> MetricValue | None:
        if ctx.extractor_id is None:
            return None
        n = len(ctx.samples)
        test = ctx.features("test", ctx.dataset.test_x)
        if f"floor@{n}" not in ctx.cache:
            idx = _subset(len(ctx.dataset.train_x), n)
            train = ctx.features(f"train@{n}", ctx.dataset.train_x[idx])
            ctx.cache[f"floor@{n}"] = frechet_distance_from_features(train, test)
        value = frechet_distance_from_features(ctx.features("samples", ctx.samples), test)
        return MetricValue(value=value, unit="", higher_is_better=False, n=n, extractor=ctx.extractor_id,
                           floor=ctx.cache[f"floor@{n}"],
                           note=f"FD(samples, test split of {len(ctx.dataset.test_x)}); floor = FD(train subset, test)")


def _subset(total: int, n: int):
    import numpy as np

    rng = np.random.default_rng(FLOOR_SEED)
    return np.sort(rng.choice(total, size=n, replace=False)) if n < total else np.arange(total)


def make_fd() -> Metric:
    return FrechetDistance()
