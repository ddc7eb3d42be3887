"""The graph roles (genbench.runtime.roles): each contract refuses a malformed graph in one line; genbench's DDPM and
DDIM samplers recover a Gaussian from its exact noise prediction (closed form); one generated diffusion sample
is ``steps`` graph calls; a flow's exact likelihood is the closed form, and its dequantised bits/dim get their
own column; a fake diffusion model runs end to end with its quality-against-steps sweep."""

from __future__ import annotations

import csv
import io
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

import genbench
from genbench.errors import BundleError, SpecError
from genbench.runtime import DEQUANTIZE_SEED, dequantize, quantize
from genbench.runtime.diffusion import ddim_timesteps, schedule_from_attrs
from genbench.runtime.roles import REGISTRY, held_out_likelihood, role_of
from genbench.runtime.roles.denoise import SCORE_STEPS, score_steps, sweep_plan
from genbench.types import GraphSpec, OnnxBundle, TensorSpec
from role_fakes import (FAKE_DIFFUSION_ATTRS, RoleFakesPlugin, denoise_spec, gaussian_denoise_bundle, likelihood_spec,
                        write_gaussian_log_density, write_uniform_log_density)

LINEAR = {"schedule": "linear", "steps": 1000}  # Ho et al. 2020: β from 1e-4 to 0.02 over T = 1000
POINTS = SimpleNamespace(name="gauss", kind="points", shape=(2,), value_range=(-4.0, 4.0), levels=None)
DIGITS = SimpleNamespace(name="digits", kind="image", shape=(1, 8, 8), value_range=(0.0, 1.0), levels=17)
TEXT = SimpleNamespace(name="text", kind="text", shape=(), value_range=(0.0, 255.0), levels=None)


def _refuses(graph: GraphSpec, dataset, *words: str) -> str:
    with pytest.raises(BundleError) as info:
        role_of(graph.role).contract(graph, dataset)
    message = str(info.value)
    assert "\n" not in message, message
    for w in words:
        assert w in message, message
    return message


# --------------------------------------------------------------------------- contracts, one line each


def test_a_well_formed_denoise_graph_passes_its_contract():
    role_of("denoise").contract(denoise_spec(LINEAR, (2,)), POINTS)
    role_of("denoise").contract(denoise_spec({**LINEAR, "scale": "symmetric"}, (1, 8, 8), t_dtype="float32"), DIGITS)


@pytest.mark.parametrize("change, words", [
    (lambda: GraphSpec("denoise", "d.onnx", (TensorSpec("x", ("batch", 2), source="normal"),),
                       (TensorSpec("eps", ("batch", 2)),), attrs=LINEAR), ["source 'timestep'", "x (normal)"]),
    (lambda: denoise_spec(LINEAR, (2,), t_vocab=100), ["[0, 100)", "T = 1000", "agree"]),
    (lambda: denoise_spec({**LINEAR, "prediction": "x0"}, (2,)), ["attrs['prediction']", "'x0'"]),
    (lambda: denoise_spec({"schedule": "quadratic", "steps": 10}, (2,)), ["attrs['schedule']", "'quadratic'"]),
    (lambda: denoise_spec({"schedule": "linear"}, (2,), t_vocab=5), ["attrs['steps']", "None"]),
    (lambda: denoise_spec({"betas": [0.5, 1.5]}, (2,), t_vocab=2), ["attrs['betas']", "(0, 1)"]),
    (lambda: denoise_spec({**LINEAR, "beta_start": 0.3, "beta_end": 0.1}, (2,)), ["beta_start <= beta_end"]),
    (lambda: denoise_spec({**LINEAR, "scale": "unit"}, (2,)), ["attrs['scale']", "'unit'"]),
    (lambda: denoise_spec(LINEAR, (2,), out_shape=("batch", 3)), ["one output shaped like its input 'x'", "[batch, 3]"]),
    (lambda: denoise_spec(LINEAR, (3,)), ["[batch, 3]", "'gauss'", "[batch, 2]"]),
])
def test_the_denoise_contract_refuses_a_malformed_graph_in_one_line(change, words):
    _refuses(change(), POINTS, *words)


def test_a_denoise_graph_is_refused_on_a_text_task_and_a_timestep_needs_its_T():
    _refuses(denoise_spec(LINEAR, (2,)), TEXT, "images or points", "text")
    with pytest.raises(SpecError, match="vocab = T"):
        TensorSpec("t", ("batch",), dtype="int64", source="timestep")


@pytest.mark.parametrize("attrs, dataset, words", [
    ({"bound": "exact", "data": "dequantized"}, DIGITS, ["attrs['levels']", "None"]),
    ({"bound": "exact", "data": "dequantized", "levels": 1}, DIGITS, ["attrs['levels']", ">= 2"]),
    ({"bound": "exact", "data": "dequantized", "levels": 256}, DIGITS, ["256 levels", "17"]),
    ({"bound": "exact", "data": "dequantized", "levels": 17}, POINTS, ["image pixels", "points", "'continuous'"]),
    ({"importance_samples": 0}, DIGITS, ["importance_samples", "positive int"]),
])
def test_the_likelihood_contract_refuses_a_malformed_graph_in_one_line(attrs, dataset, words):
    _refuses(likelihood_spec(tuple(dataset.shape), attrs), dataset, *words)


def test_the_likelihood_contract_refuses_no_data_input_and_a_non_batch_output_under_either_name():
    for role in ("likelihood", "elbo"):  # elbo: the older name of the same role
        no_data = GraphSpec(role, "l.onnx", (TensorSpec("x", ("batch", 2), source="normal"),), (TensorSpec("l", ("batch",)),))
        _refuses(no_data, POINTS, "no input with source 'data'")
        wide = GraphSpec(role, "l.onnx", (TensorSpec("x", ("batch", 2), source="data"),), (TensorSpec("l", ("batch", 1)),))
        _refuses(wide, POINTS, "[batch, 1]", "[batch]")
    assert role_of("elbo") is REGISTRY["likelihood"]


def test_the_sample_and_logits_contracts_refuse_a_malformed_graph_in_one_line():
    leaked = GraphSpec("sample", "s.onnx", (TensorSpec("x", ("batch", 2), source="data"),), (TensorSpec("y", ("batch", 2)),))
    _refuses(leaked, POINTS, "source 'data'")
    wide = GraphSpec("sample", "s.onnx", (TensorSpec("z", ("batch", 4), source="normal"),),
                     (TensorSpec("x", ("batch", 1, 8, 8), low=-1.0, high=1.0),))
    _refuses(wide, DIGITS, "[-1, 1]", "(x + 1) / 2")
    floats = GraphSpec("logits", "l.onnx", (TensorSpec("tokens", ("batch", "seq"), source="normal"),),
                       (TensorSpec("logits", ("batch", "seq", 17)),), attrs={"context_length": 65})
    _refuses(floats, None, "int64 tokens")
    with pytest.raises(BundleError, match="not one of"):
        role_of("score")


# --------------------------------------------------------------------------- the samplers, against closed forms
#
# Data x_0 ~ N(mu, s² I), so x_t ~ N(√ᾱ_t mu, σ_t² I) with σ_t² = ᾱ_t s² + 1 − ᾱ_t, and the graph's prediction is
# exact. Every update of both samplers is then affine in x_t, so each output coordinate is Gaussian; with
# y_t = x_t − √ᾱ_t mu (centred), one step multiplies y by a known factor (plus, for DDPM, fresh noise):
#   DDIM, t → t' (ᾱ' = ᾱ_t', 1 at the last step):  y' = y (√(ᾱ'ᾱ) s² + √((1 − ᾱ')(1 − ᾱ))) / σ_t²
#   DDPM, t → t − 1:  y' = g y + √β̃_t ξ,  g = k0 √ᾱ s² / σ_t² + k1  (k0, k1: the posterior mean's coefficients)
# The factors below are these scalars multiplied out; sampling from x_T ~ N(0, I) starts from y with mean
# −√ᾱ_T mu and variance 1. By Cauchy–Schwarz each DDIM factor is at most σ_t'/σ_t, the exact transport's: DDIM
# shrinks the spread, a little at T steps and visibly at few (its discretisation error, known in closed form).

MU = np.array([1.0, -0.5], np.float32)
S = 0.5
N = 4000


def _ddim_moments(attrs: dict, steps: int, s: float) -> tuple[float, float]:
    """(mean factor m, std) of DDIM's output: mean = mu · m, std per coordinate."""
    abar = schedule_from_attrs(attrs).alphas_cumprod
    taus = ddim_timesteps(len(abar), steps)
    factor = 1.0
    for i, t in enumerate(taus):
        a, a_prev = abar[t], (abar[taus[i + 1]] if i + 1 < len(taus) else 1.0)
        factor *= (math.sqrt(a_prev * a) * s * s + math.sqrt((1 - a_prev) * (1 - a))) / (a * s * s + 1 - a)
    return 1 - factor * math.sqrt(abar[taus[0]]), factor


def _ddpm_moments(attrs: dict, s: float) -> tuple[float, float]:
    schedule = schedule_from_attrs(attrs)
    abar, betas = schedule.alphas_cumprod, schedule.betas
    T = len(abar)
    m, var = -math.sqrt(abar[-1]), 1.0
    for t in range(T - 1, -1, -1):
        a, a_prev, b = abar[t], (abar[t - 1] if t > 0 else 1.0), betas[t]
        k0, k1 = b * math.sqrt(a_prev) / (1 - a), (1 - a_prev) * math.sqrt(1 - b) / (1 - a)
        g = k0 * math.sqrt(a) * s * s / (a * s * s + 1 - a) + k1
        m, var = g * m, g * g * var + (b * (1 - a_prev) / (1 - a) if t > 0 else 0.0)
    return 1 + m, math.sqrt(var)


def _draw(tmp_path, attrs, sampler, steps, s=S, n=N, seed=0, t_dtype="int64"):
    bundle = gaussian_denoise_bundle(tmp_path / f"{sampler}{steps}", attrs, MU, s, t_dtype)
    return REGISTRY["denoise"].draw(bundle, bundle.graphs[0], "cpu", n, seed, POINTS, sampler=sampler, steps=steps)


def _assert_gaussian(x: np.ndarray, mean: np.ndarray, std: float) -> None:
    """Sample mean and std within 5 standard errors of the closed form (SE of a mean: std/√n; of a std pooled
    over the d coordinates: std/√(2 n d))."""
    n, d = x.shape
    np.testing.assert_allclose(x.mean(0), mean, atol=5 * std / math.sqrt(n))
    pooled = math.sqrt(((x - x.mean(0)) ** 2).sum() / (n * d - d))
    assert abs(pooled - std) < 5 * std / math.sqrt(2 * n * d), (pooled, std)
    assert stats.normaltest(x[:, 0]).pvalue > 1e-4  # an affine map of x_T: Gaussian


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_ddim_with_T_steps_on_the_exact_noise_of_a_gaussian_recovers_it(tmp_path, prediction):
    attrs = {**LINEAR, "prediction": prediction}
    m, std = _ddim_moments(attrs, 1000, S)
    # the closed form is the Gaussian itself, to 0.5% (T = 1000 steps; ᾱ_T = 4e-5)
    assert abs(std - S) < 0.005 * S and abs(m - 1) < 0.01
    _assert_gaussian(_draw(tmp_path, attrs, "ddim", 1000), MU, S)
    _assert_gaussian(_draw(tmp_path, attrs, "ddim", 1000), MU * m, std)


def test_ddim_follows_the_closed_form_at_few_steps_sample_by_sample(tmp_path):
    m, std = _ddim_moments(LINEAR, 10, S)
    assert std < 0.8 * S  # ten steps shrink the spread visibly: the quality-against-steps trade-off
    _assert_gaussian(_draw(tmp_path, LINEAR, "ddim", 10), MU * m, std)
    # η = 0 is deterministic: x_0 = mu + F (x_T − √ᾱ_T mu), F the product of the factors, for each sample
    abar_T = schedule_from_attrs(LINEAR).alphas_cumprod[-1]
    x = _draw(tmp_path, LINEAR, "ddim", 10, n=50, seed=3)
    x_T = np.random.default_rng(3).standard_normal((50, 2))  # the sampler's first draw with the seed
    np.testing.assert_allclose(x, MU + std * (x_T - math.sqrt(abar_T) * MU), atol=2e-5)


def test_ddpm_ancestral_on_the_exact_noise_of_a_gaussian_recovers_it(tmp_path):
    m, std = _ddpm_moments(LINEAR, S)
    assert abs(std - S) < 0.01 * S and abs(m - 1) < 0.01
    x = _draw(tmp_path, LINEAR, "ddpm", None)
    _assert_gaussian(x, MU * m, std)
    _assert_gaussian(x, MU, S)


def test_a_float_timestep_and_a_cosine_schedule_sample_the_same_gaussian(tmp_path):
    cosine = {"schedule": "cosine", "steps": 400}
    m, std = _ddim_moments(cosine, 400, S)
    assert abs(std - S) < 0.01 * S
    _assert_gaussian(_draw(tmp_path, cosine, "ddim", 400, t_dtype="float32"), MU * m, std)


def test_the_sampler_is_seeded_and_symmetric_scale_maps_images_back_into_range(tmp_path):
    a, b = _draw(tmp_path, LINEAR, "ddim", 20, n=30, seed=5), _draw(tmp_path, LINEAR, "ddim", 20, n=30, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _draw(tmp_path, LINEAR, "ddim", 20, n=30, seed=6))
    # images: the graph works in [-1, 1]; samples come back clipped into the task's [0, 1]
    attrs = {**LINEAR, "scale": "symmetric"}
    bundle = gaussian_denoise_bundle(tmp_path / "img", attrs, np.zeros((1, 8, 8), np.float32), 0.5)
    x = REGISTRY["denoise"].draw(bundle, bundle.graphs[0], "cpu", 200, 0, DIGITS, sampler="ddim", steps=25)
    assert x.shape == (200, 1, 8, 8) and x.min() >= 0.0 and x.max() <= 1.0
    assert abs(float(x.mean()) - 0.5) < 0.02  # the graph's mean 0 in [-1, 1] is 0.5 in the task's range


# --------------------------------------------------------------------------- per-sample cost: graph calls


def test_one_generated_diffusion_sample_is_steps_graph_calls(tmp_path):
    bundle = gaussian_denoise_bundle(tmp_path, LINEAR, MU, S)
    graph = bundle.graphs[0]
    generation = REGISTRY["denoise"].generation(bundle, graph, POINTS, 0, None)
    assert generation.graph == "denoise" and generation.steps == score_steps(graph) == SCORE_STEPS == 50
    assert "DDIM" in generation.description and "50" in generation.description
    calls = []

    def counting(x, t):
        calls.append(len(x))
        return np.zeros_like(x)

    out = generation.run(counting, 7, np.random.default_rng(0))
    assert out.shape == (7, 2) and calls == [7] * generation.steps  # one call per step, on the whole batch
    # T below the scored steps: every step of the schedule
    small = denoise_spec({"schedule": "linear", "steps": 12}, (2,))
    assert score_steps(small) == 12
    assert sweep_plan(small) == [("ddim", 10), ("ddim", 12), ("ddpm", 12)]
    assert sweep_plan(graph) == [("ddim", s) for s in (10, 25, 50, 100, 250, 1000)] + [("ddpm", 1000)]


# --------------------------------------------------------------------------- flows: exact likelihoods


def test_a_flows_exact_gaussian_nll_equals_the_closed_form(tmp_path):
    from genbench.data.points import load_ring8

    ring8 = load_ring8()
    mu, s = np.array([0.1, -0.2], np.float32), 0.7
    write_gaussian_log_density(tmp_path / "likelihood.onnx", (2,), mu, s)
    bundle = OnnxBundle(tmp_path, (likelihood_spec((2,), {"bound": "exact", "data": "continuous"}),))
    lk = held_out_likelihood(bundle, ring8)
    expected = -stats.multivariate_normal(mu.astype(np.float64), s * s * np.eye(2)).logpdf(ring8.test_x.astype(np.float64))
    np.testing.assert_allclose(lk.nll, expected, rtol=1e-5, atol=1e-5)
    assert lk.bound == "exact" and lk.variant == "continuous" and not lk.discrete and lk.dims == 2


def test_dequantized_nll_is_the_documented_bound_nll_plus_d_log_l(tmp_path):
    from genbench.data.digits import load_digits

    digits = load_digits()
    L, D = 17, 64
    attrs = {"bound": "exact", "data": "dequantized", "levels": L}
    # a Gaussian density on the dequantised pixels y = (round(x (L − 1)) + u) / L, u ~ U[0, 1) with a fixed seed
    mu, s = np.full((1, 8, 8), 0.3, np.float32), 0.4
    write_gaussian_log_density(tmp_path / "likelihood.onnx", (1, 8, 8), mu, s)
    lk = held_out_likelihood(OnnxBundle(tmp_path, (likelihood_spec((1, 8, 8), attrs),)), digits)
    k = np.rint(digits.test_x.astype(np.float64) * (L - 1))
    y = (k + np.random.default_rng(DEQUANTIZE_SEED).random(digits.test_x.shape)) / L
    assert y.min() >= 0 and y.max() < 1 and np.array_equal(np.floor(y * L), k)  # every y in its pixel's bin
    minus_log_p = -stats.norm(0.3, s).logpdf(y).reshape(len(y), -1).sum(1)
    np.testing.assert_allclose(lk.nll, minus_log_p + D * math.log(L), rtol=1e-5)
    assert lk.variant == "dequantized-17" and lk.discrete and lk.bound == "exact"
    np.testing.assert_array_equal(dequantize(digits.test_x, L), y.astype(np.float32))
    np.testing.assert_array_equal(quantize(digits.test_x, L), k.astype(np.int64))
    # the uniform density on [0, 1]^D: P(k) = L^-D for every image, and the bound is that exactly
    write_uniform_log_density(tmp_path / "uniform.onnx", (1, 8, 8))
    uni = held_out_likelihood(OnnxBundle(tmp_path, (likelihood_spec((1, 8, 8), attrs, "uniform.onnx"),)), digits)
    np.testing.assert_allclose(uni.nll, D * math.log(L), rtol=1e-12)


def _run(tmp_path, models, tasks, timing=False):
    from fakes import FakePlugin

    from genbench.plugins import make_plugin_manager

    host = make_plugin_manager(extra_plugins=[("role-fakes", RoleFakesPlugin), ("fakes", FakePlugin)], entry_points=False)
    return genbench.run(models, tasks=tasks, profile="smoke", host=host, out=tmp_path, baselines=False, device="cpu",
                        timing=timing, executor="inline", cache=False, settings=False)


def test_dequantized_bits_per_dim_never_share_a_column_with_binarized_or_quantized_ones(tmp_path):
    from genbench.reports.csv import METRIC_FIELDS, render
    from genbench.reports.leaderboard import build

    result = _run(tmp_path, ["fake-flow", "tiny-elbo", "fake-ar-uniform"], ["digits"])
    jobs = {j.model: j for j in result.jobs}
    assert all(j.status == "ok" for j in jobs.values()), [(j.model, j.error) for j in jobs.values()]
    flow, ar = jobs["fake-flow"].quality["bpd"], jobs["fake-ar-uniform"].quality["bpd"]
    # both are log2(17) bits/dim exactly — the same number, of different data
    assert flow.value == pytest.approx(math.log2(17), rel=1e-9) and ar.value == pytest.approx(math.log2(17), rel=1e-6)
    assert flow.params["variant"] == "dequantized-17" and ar.params["variant"] == "quantized-17"
    assert jobs["tiny-elbo"].quality["bpd"].params["variant"] == "binarized"
    assert len({json.dumps(j.quality["bpd"].key, sort_keys=True) for j in jobs.values()}) == 3
    header = next(csv.reader(io.StringIO(render(result))))
    bpd_columns = [h for h in header if h.startswith("bpd") and not h.endswith(tuple(f"_{f}" for f in METRIC_FIELDS))]
    assert len(bpd_columns) == 3 and any("dequantized-17" in h for h in bpd_columns), bpd_columns
    table = next(t for t in build([result]).tables if t.task == "digits")
    columns = [c for c in table.columns if c.metric == "bpd"]
    assert len(columns) == 3 and {c.key["variant"] for c in columns} == {"dequantized-17", "quantized-17", "binarized"}
    owner = {c.label: [r.model for r in table.rows if c.label in r.cells] for c in columns}
    assert sorted(len(v) for v in owner.values()) == [1, 1, 1], owner


def test_a_flow_on_points_reports_its_exact_nll_and_bits_per_coordinate(tmp_path):
    from genbench.data.points import load_ring8

    job = _run(tmp_path, ["fake-flow"], ["ring8"]).jobs[0]
    assert job.status == "ok", job.error
    x = load_ring8().train_x.astype(np.float64)
    mu = x.mean(0).astype(np.float32).astype(np.float64)
    test = load_ring8().test_x.astype(np.float64)
    expected = -stats.multivariate_normal(mu, 0.25 * np.eye(2)).logpdf(test).mean()
    assert job.quality["nll"].value == pytest.approx(expected, rel=1e-5)
    assert job.quality["bpd"].value == pytest.approx(expected / (2 * math.log(2)), rel=1e-5)
    assert job.quality["bpd"].unit == "bits/dim (continuous density)" and job.quality["nll"].params["bound"] == "exact"


# --------------------------------------------------------------------------- end to end: a diffusion model


def test_a_diffusion_model_runs_end_to_end_with_its_quality_against_steps(tmp_path):
    result = _run(tmp_path, ["fake-diffusion"], ["digits", "ring8"], timing=True)
    T = FAKE_DIFFUSION_ATTRS["steps"]
    for job in result.jobs:
        assert job.status == "ok", (job.task, job.error)
        metric = {"digits": "fd", "ring8": "knn-kl"}[job.task]  # the sweep's metric: FD on images
        scored = job.quality[metric]
        assert scored.value is not None and math.isfinite(scored.value) and scored.floor is not None
        sampling = job.export["sampling"]
        assert sampling["steps"] == 50 and sampling["T"] == T and sampling["prediction"] == "epsilon"
        assert sampling["quality_vs_steps_metric"] == metric
        rows = sampling["quality_vs_steps"]
        assert [(r["sampler"], r["steps"]) for r in rows] == [("ddim", 10), ("ddim", 25), ("ddim", 50), ("ddim", T),
                                                             ("ddpm", T)]
        assert all(r["n"] == scored.n and r["metric"] == metric and math.isfinite(r[metric])
                   and r["draw_ms_per_sample"] > 0 for r in rows)
        # the sweep's 50-step row is the scored samples again: same seed, same sampler, same n
        assert next(r[metric] for r in rows if r["steps"] == 50) == pytest.approx(scored.value, rel=1e-6)
        png = tmp_path / result.run_id / sampling["quality_vs_steps_png"]
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
        generate = [r for r in job.performance if r.scenario == "generate"]
        assert generate and all(r.graph == "denoise" and r.steps == 50 and "DDIM" in r.note for r in generate)
        assert {r.runtime for r in generate} >= {"onnxruntime", "torch-eager"}
    report = (tmp_path / result.run_id / "report.md").read_text()
    assert report.count("### Quality against sampling steps") == 2  # one per task
    assert f"| DDPM | {T} |" in report and "| sampler | steps | fd ↓ | draw ms/sample |" in report
    assert "| sampler | steps | knn-kl ↓ | draw ms/sample |" in report
