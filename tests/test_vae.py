"""The VAE plugin's mathematics, its ONNX export, and training that lowers the NLL bound."""


import numpy as np
import pytest
import torch

vae_model = pytest.importorskip("genbench_vae.model", reason="plugins/vae is installed by .ci/run")


def test_kl_on_fixed_numbers():
    mu = torch.tensor([2.5, 3.5, 4.5])
    logvar = torch.log(torch.full((3,), 0.5))
    assert vae_model.kl_standard_normal(mu, logvar).item() == pytest.approx(19.6647, abs=1e-4)


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(vae_model.kl_standard_normal(mu, logvar), expected, rtol=1e-5, atol=1e-6)


def test_bernoulli_log_prob_matches_torch_and_stays_finite():
    logits = torch.tensor([[-200.0, -3.0, 0.0, 2.0, 150.0]])
    x = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0]])
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)
    got = vae_model.bernoulli_log_prob(logits, x)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-5)


def _trained(steps=0, cls=None):
    from genbench import TrainConfig
    from genbench.data.digits import load_digits

    m = (cls or vae_model.MLPVAE)()
    m.train(load_digits().training_data(), TrainConfig(seed=0, steps=steps), lambda *a: None)
    return m


def test_iwae_bound_is_at_least_the_mean_single_sample_elbo():
    m = _trained(steps=50)
    g = torch.Generator().manual_seed(1)
    x = torch.bernoulli(torch.full((6, 1, 8, 8), 0.3), generator=g)
    eps = torch.randn(6, 16, m.vae.z_dim, generator=g)
    with torch.no_grad():
        iwae = m.vae.iwae_bound(x, eps)
        singles = torch.stack([m.vae.iwae_bound(x, eps[:, j:j + 1]) for j in range(16)], 1)
    assert (iwae >= singles.mean(1) - 1e-5).all()  # Jensen: log mean exp >= mean log
    assert (iwae <= 0).all()


@pytest.mark.parametrize("cls", ["MLPVAE", "ConvVAE"])
def test_elbo_from_onnx_matches_torch(tmp_path, cls):
    import onnxruntime as ort

    from genbench.data.digits import load_digits
    from genbench.runtime import binarize

    m = _trained(steps=20, cls=getattr(vae_model, cls))
    bundle = m.export_onnx(tmp_path)
    graph = bundle.graph("elbo")
    assert graph.attrs == {"data": "binarized", "importance_samples": vae_model.IMPORTANCE_SAMPLES}
    x = binarize(load_digits().test_x[:37])
    eps = np.random.default_rng(0).standard_normal((37, vae_model.IMPORTANCE_SAMPLES, m.vae.z_dim)).astype(np.float32)
    (onnx_out,) = ort.InferenceSession(str(bundle.path("elbo"))).run(None, {"x": x, "eps": eps})
    with torch.no_grad():
        torch_out = m.torch_module("elbo")(torch.from_numpy(x), torch.from_numpy(eps)).numpy()
    np.testing.assert_allclose(onnx_out, torch_out, rtol=1e-4, atol=1e-4)
    assert onnx_out.shape == (37,) and (onnx_out < 0).all()


@pytest.mark.integration
def test_training_lowers_the_nll_bound(tmp_path):
    import genbench

    results = {steps: genbench.run(["vae-mlp"], tasks=["digits"], profile="smoke", steps=steps, baselines=False,
                                   timing=False, out=tmp_path, device="cpu").jobs[0] for steps in (0, 600)}
    for job in results.values():
        assert job.status == "ok", job.error
    untrained, trained = results[0].quality["bpd"], results[600].quality["bpd"]
    assert trained.value + 5 * trained.stderr < untrained.value
    assert untrained.value == pytest.approx(1.0, rel=0.05)  # ~ Bernoulli(0.5) everywhere: 1 bit/dim
