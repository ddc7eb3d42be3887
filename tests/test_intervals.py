"""Sampling intervals of one run's numbers (genbench.metrics.bootstrap): each weighted formula against the metric
computed on the materialised resample, the FD bootstrap's coverage of a known FD, exact binomial intervals, FD∞."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from genbench.metrics import bootstrap as bs
from genbench.metrics.frechet import (frechet_bootstrap, frechet_distance, frechet_distance_infinity,
                                      gaussian_statistics)
from genbench.metrics.sample_metrics import (_unbiased_mmd2, ball_memberships, classifier_score,
                                             classifier_score_weighted, density_coverage, kid_bootstrap,
                                             knn_bootstrap, knn_kl_divergence, knn_log_ratios, precision_recall)


def _materialised(x, w):
    return np.repeat(x, w.astype(int), axis=0)


def test_weights_are_draws_with_replacement():
    w = bs.weights(37, 50, np.random.default_rng(0))
    assert w.shape == (50, 37) and (w.sum(1) == 37).all() and (w >= 0).all()
    assert 0.55 < ((w > 0).mean()) < 0.72  # about 1 - 1/e of the rows are drawn at least once


def test_weighted_statistics_equal_the_materialised_resample():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3))
    w = bs.weights(40, 1, rng)[0]
    mu, sigma = bs.weighted_statistics(x, w)
    mu2, sigma2 = gaussian_statistics(_materialised(x, w))
    np.testing.assert_allclose(mu, mu2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sigma, sigma2, rtol=1e-10, atol=1e-12)


def test_classifier_score_weighted_equals_the_materialised_resample():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.full(10, 0.3), size=60)
    w = bs.weights(60, 4, rng)
    got = classifier_score_weighted(p, w)
    want = [classifier_score(_materialised(p, w[b])) for b in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert classifier_score_weighted(p, np.ones(60))[0] == pytest.approx(classifier_score(p), rel=1e-12)


def test_kid_bootstrap_weighted_u_statistic_against_a_loop():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 4)) + 0.5
    values, point, m = kid_bootstrap(x, y, subset_size=12, resamples=3, seed=5)
    assert m == 12
    assert point == pytest.approx(_unbiased_mmd2(x, y, 3, 0.25, 1.0), rel=1e-10)  # unit weights: the estimate
    # the same resamples, redrawn from the same generator, summed pair by pair (distinct original rows only)
    g = bs.generator(5, 4)
    ix, iy = g.choice(12, 12, replace=False), g.choice(12, 12, replace=False)
    xs, ys = x[ix], y[iy]
    wx, wy = bs.weights(12, 3, g), bs.weights(12, 3, g)
    k = lambda a, b: (a @ b / 4 + 1.0) ** 3  # noqa: E731
    for b in range(3):
        def within(s, w):
            num = sum(w[i] * w[j] * k(s[i], s[j]) for i in range(12) for j in range(12) if i != j)
            return num / sum(w[i] * w[j] for i in range(12) for j in range(12) if i != j)
        cross = sum(wx[b][i] * wy[b][j] * k(xs[i], ys[j]) for i in range(12) for j in range(12)) / 144
        assert values[b] == pytest.approx(within(xs, wx[b]) + within(ys, wy[b]) - 2 * cross, rel=1e-9)


def test_knn_memberships_give_the_metrics_point_values():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(120, 5)), rng.normal(size=(90, 5)) + 0.4
    _, point = knn_bootstrap(real, fake, k=3, which="precision_recall", resamples=5)
    assert tuple(point) == pytest.approx(precision_recall(real, fake, k=3), abs=0)
    values, point = knn_bootstrap(real, fake, k=5, which="density_coverage", resamples=200)
    assert tuple(point) == pytest.approx(density_coverage(real, fake, k=5), abs=1e-15)
    assert values.shape == (200, 2)
    lo, hi = bs.basic_interval(point[0], values[:, 0])
    assert lo < point[0] < hi


def test_density_resample_counts_pairs_with_their_multiplicity():
    """Density of a resample = Σ_j w_j Σ_i v_i [fake j in real ball i] / (k M), counted here from the dense matrix."""
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(30, 2)), rng.normal(size=(20, 2))
    a, _ = ball_memberships(real, fake, k=5, fake_balls=False)
    dense = a.toarray()
    g = bs.generator(9, 3)
    wr, wf = bs.weights(30, 4, g), bs.weights(20, 4, g)
    values, _ = knn_bootstrap(real, fake, k=5, which="density_coverage", resamples=4, seed=9)
    for b in range(4):
        want = sum(wf[b][j] * wr[b][i] * dense[j, i] for j in range(20) for i in range(30)) / (5 * 20)
        assert values[b, 0] == pytest.approx(want, rel=1e-12)


def test_knn_log_ratios_make_the_estimate():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(150, 2))
    d = 2 * np.mean(knn_log_ratios(x, y)) + np.log(150 / 199)
    assert d == pytest.approx(knn_kl_divergence(x, y), rel=1e-12)


def test_clopper_pearson_closed_forms():
    lo, hi = bs.binomial_interval(0, 500)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 500), rel=1e-9)  # never [0, 0] for 0 successes
    lo, hi = bs.binomial_interval(500, 500)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 500), rel=1e-9)
    lo, hi = bs.binomial_interval(7, 40)
    assert lo == pytest.approx(stats.beta.ppf(0.025, 7, 34)) and hi == pytest.approx(stats.beta.ppf(0.975, 8, 33))
    with pytest.raises(ValueError, match="successes"):
        bs.binomial_interval(3, 2)


def test_basic_interval_reflects_the_percentiles_about_the_point():
    values = np.arange(1000, dtype=float)  # quantiles 24.975 and 974.025
    lo, hi = bs.basic_interval(600.0, values)
    assert (lo, hi) == pytest.approx((1200 - 974.025, 1200 - 24.975))
    assert bs.basic_interval(1.0, np.full(10, np.nan)) is None  # too few finite resamples: no interval


def _gaussians(d=3):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    return np.zeros(d), np.eye(d), np.full(d, 1.0 / np.sqrt(d)), a @ a.T + 0.5 * np.eye(d)


def test_fd_bootstrap_covers_the_true_fd_at_least_90_of_100_times():
    """Two Gaussians with a known FD (closed form); 100 fixed-seed trials, 95% nominal: at least 90 cover it."""
    mu1, s1, mu2, s2 = _gaussians()
    truth = frechet_distance(mu1, s1, mu2, s2)
    covered = 0
    for trial in range(100):
        rng = np.random.default_rng(1000 + trial)
        x, y = rng.multivariate_normal(mu1, s1, size=400), rng.multivariate_normal(mu2, s2, size=800)
        out = frechet_bootstrap(x, y, seed=trial)
        lo, hi = out["interval"]
        assert lo <= out["value"] <= hi and out["resamples"] == bs.RESAMPLES
        covered += lo <= truth <= hi
    assert covered >= 90, f"the FD bootstrap covered the true FD in {covered} of 100 trials"
    assert "400 samples and the 800 reference rows" in out["interval_of"] and "200 resamples" in out["interval_of"]


def test_fd_bootstrap_draws_fewer_resamples_past_its_budget(monkeypatch):
    import genbench.metrics.frechet as fr

    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(60, 4))
    monkeypatch.setattr(fr, "BOOTSTRAP_FLOP_BUDGET", 30 * (110 * 16 + 2 * 64))
    out = fr.frechet_bootstrap(x, y)
    assert out["resamples"] == 30 and "fewer than 200" in out["interval_of"]
    monkeypatch.setattr(fr, "BOOTSTRAP_FLOP_BUDGET", 1.0)
    out = fr.frechet_bootstrap(x, y)
    assert out["interval"] is None and out["interval_of"].startswith("no interval")


def test_fd_infinity_removes_the_small_n_bias():
    """Samples of the reference's own distribution: the true FD is 0 and FD at n is biased upward (by about
    d / n terms); FD∞'s mean over trials sits far closer to 0, and its intervals mostly cover it."""
    d = 12
    rng = np.random.default_rng(11)
    ref_stats = gaussian_statistics(rng.normal(size=(50000, d)))
    fds, infs, covered = [], [], 0
    for trial in range(12):
        x = np.random.default_rng(trial).normal(size=(600, d))
        fds.append(frechet_distance(*gaussian_statistics(x), *ref_stats))
        fit = frechet_distance_infinity(x, ref_stats, seed=trial)
        infs.append(fit["value"])
        lo, hi = fit["interval"]
        assert lo < fit["value"] < hi and len(fit["sizes"]) == 15 and fit["sizes"][0] == 120
        covered += lo <= 0 <= hi
    assert np.mean(fds) > 4 * abs(np.mean(infs))
    assert covered >= 8


def test_fd_infinity_needs_subsets_larger_than_the_dimension():
    # 20 samples of 8 dimensions: the smallest subset (a fifth, 4 rows) cannot hold d + 2 = 10; the message says
    # how many samples would do, in numbers that add up (an outside tester read "20 of 100 ... got 15")
    with pytest.raises(ValueError, match=r"^FD∞ needs at least 50 samples in a 8-dimensional feature space \(its "
                                         r"smallest subset, 20% of them, must hold 10 rows\); 20 were drawn$"):
        frechet_distance_infinity(np.zeros((20, 8)), (np.zeros(8), np.eye(8)))


def test_the_floor_spread_is_the_prediction_interval_over_training_subsets():
    from genbench.metrics.builtin import FLOOR_SUBSETS, floor_spread

    assert FLOOR_SUBSETS == 5
    mean, (lo, hi), text = floor_spread(lambda i: [1.0, 2.0, 3.0, 4.0, 5.0][i])
    half = stats.t.ppf(0.975, 4) * np.std([1, 2, 3, 4, 5], ddof=1) * np.sqrt(1 + 1 / 5)
    assert mean == 3.0 and (lo, hi) == pytest.approx((3 - half, 3 + half)) and "5 training subsets" in text


def _mixture_ctx(samples):
    from types import SimpleNamespace

    centers = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    rng = np.random.default_rng(3)
    test = centers[rng.integers(0, 4, 400)] + rng.normal(0, 0.01, (400, 2))
    data = SimpleNamespace(meta={"centers": centers, "sigma": 0.01}, test_x=test, train_x=test, kind="points")
    return SimpleNamespace(dataset=data, samples=samples, cache={}, job_cache={}, seed=0)


def test_mixture_metrics_intervals_and_a_reverse_kl_that_is_not_defined():
    from genbench.metrics.builtin import HighQuality, KnnKL, MixtureModesCovered, ReverseKL

    far = np.full((300, 2), 5.0) + np.random.default_rng(0).normal(0, 0.1, (300, 2))
    ctx = _mixture_ctx(far)
    hq = HighQuality()(ctx)
    assert hq.value == 0.0 and hq.interval == pytest.approx((0.0, 1 - 0.025 ** (1 / 300)))
    assert "Clopper–Pearson" in hq.interval_of
    rk = ReverseKL()(ctx)
    assert rk.value is None and rk.error.startswith("not defined: no sample is high quality")
    assert rk.params["not_defined"].startswith("no sample is high quality")
    good = _mixture_ctx(_mixture_ctx(None).dataset.test_x[:300] + 0.0)
    mc = MixtureModesCovered()(good)
    assert mc.value == 4 and mc.interval[1] <= 4 and mc.interval[0] <= 4
    kl = KnnKL()(good)
    assert kl.interval[0] <= kl.value <= kl.interval[1] and "neighbour distances held fixed" in kl.interval_of
