"""The GAN plugin's mathematics against closed forms."""

import math

import pytest
import torch

genbench_gan = pytest.importorskip("genbench_gan.model", reason="plugins/gan is installed by .ci/run")


def test_losses_match_the_paper_formulas():
    real = torch.tensor([2.0, -1.0, 0.5])
    fake = torch.tensor([-3.0, 0.0, 1.5])
    sig = torch.sigmoid
    d_expected = -(torch.log(sig(real)) + torch.log(1 - sig(fake))).mean()
    # discriminator_loss sums the two batch means, which equals the mean of the per-example sum
    assert genbench_gan.discriminator_loss(real, fake).item() == pytest.approx(d_expected.item(), rel=1e-6)
    g_expected = -torch.log(sig(fake)).mean()
    assert genbench_gan.generator_loss(fake).item() == pytest.approx(g_expected.item(), rel=1e-6)


def test_losses_are_finite_for_saturated_logits():
    huge = torch.tensor([1e4, -1e4])
    assert math.isfinite(genbench_gan.discriminator_loss(huge, -huge).item())
    assert genbench_gan.generator_loss(-huge).item() == pytest.approx(5e3, rel=1e-6)  # mean(1e4, 0)


def test_architecture_is_the_classic_mlp():
    g = genbench_gan.Generator((1, 8, 8))
    layers = [type(m).__name__ for m in g.net]
    assert layers == ["Linear", "LeakyReLU", "Linear", "Tanh"]
    assert g.net[0].in_features == 100 and g.net[0].out_features == 128 and g.net[2].out_features == 64
    assert g.net[1].negative_slope == 0.01
    d = genbench_gan.Discriminator(64)
    assert [type(m).__name__ for m in d.net] == ["Linear", "LeakyReLU", "Linear"]
    out = g(torch.randn(5, 100))
    assert out.shape == (5, 1, 8, 8) and out.min() >= 0 and out.max() <= 1


def test_training_is_seeded_and_logs_losses():
    import numpy as np

    from genbench import TrainConfig
    from genbench.data.digits import load_digits

    data = load_digits().training_data()
    seen = []
    runs = []
    for _ in range(2):
        m = genbench_gan.MLPGAN()
        s = m.train(data, TrainConfig(seed=3, steps=100), lambda *a: seen.append(a))
        runs.append((s, m.generator(torch.ones(2, 100)).detach().numpy()))
    assert runs[0][0].steps == 100 and len(runs[0][0].loss_history["d"]) == 2
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][0].loss_history == runs[1][0].loss_history
    assert seen and seen[-1][0] == seen[-1][1] == 100
