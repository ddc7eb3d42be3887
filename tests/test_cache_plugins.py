"""Every built-in model restores from the cache to the model it was: same graphs, same quality numbers."""

import pytest

import genbench

pytestmark = pytest.mark.integration

JOBS = [("gan-mlp", "digits"), ("vae-mlp", "digits"), ("vae-mlp", "ring8"), ("vae-conv", "digits"),
        ("ar-points", "ring8"), ("ar-transformer", "text"), ("example-gan", "digits")]


def test_every_built_in_model_round_trips_through_the_cache(tmp_path):
    models = sorted({m for m, _ in JOBS})
    tasks = sorted({t for _, t in JOBS})
    runs = [genbench.run(models, tasks=tasks, profile="smoke", out=tmp_path, baselines=False, device="cpu",
                         timing=False, cache_dir=tmp_path / "cache", jobs=2, steps=5) for _ in range(2)]
    first, second = ({(j.model, j.task): j for j in r.jobs} for r in runs)
    for key in JOBS:
        a, b = first[key], second[key]
        assert a.status == b.status == "ok", (key, a.error, b.error)
        assert (a.cache["status"], b.cache["status"]) == ("stored", "hit"), (key, a.cache, b.cache)
        assert set(a.quality) == set(b.quality)
        for name, mv in a.quality.items():
            if mv.value is not None:
                assert b.quality[name].value == pytest.approx(mv.value, rel=1e-6, abs=1e-6), (key, name)
