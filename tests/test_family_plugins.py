"""The built-in diffusion and flow plugins (plugins/diffusion, plugins/flow): registration through their entry
points without torch, the diffusion model's schedule is genbench's, and the flow's likelihood is a density:
its Jacobians are right (closed form at the identity, and it integrates to 1 on points)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats

diffusion = pytest.importorskip("genbench_diffusion.model", reason="pip install -e plugins/diffusion")
flow = pytest.importorskip("genbench_flow.model", reason="pip install -e plugins/flow")


@pytest.mark.parametrize("package", ["genbench_diffusion", "genbench_flow"])
def test_registration_does_not_import_torch(package):
    code = f"import sys, {package}; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_both_plugins_are_found_through_their_entry_points():
    from genbench.plugins import make_plugin_manager

    host = make_plugin_manager(disabled=[])
    ddpm, nvp = host.registry.model("ddpm-mlp"), host.registry.model("realnvp")
    assert (ddpm.plugin, ddpm.family, nvp.plugin, nvp.family) == ("genbench-diffusion", "diffusion", "genbench-flow", "flow")
    tasks = {d.name: d for d in host.registry.datasets}
    assert [n for n in ("digits", "mnist5k", "ring8", "grid25", "text") if ddpm.supports(tasks[n])] == \
        ["digits", "ring8", "grid25"]
    assert [n for n in ("digits", "mnist5k", "ring8", "grid25", "text") if nvp.supports(tasks[n])] == \
        ["digits", "ring8", "grid25"]


def test_the_diffusion_plugin_trains_on_the_schedule_genbench_samples_with():
    from genbench.runtime.diffusion import schedule_from_attrs

    np.testing.assert_allclose(diffusion.alphas_cumprod().numpy(), schedule_from_attrs(diffusion.ATTRS).alphas_cumprod,
                               rtol=1e-12)
    assert diffusion.ATTRS["steps"] == diffusion.T and diffusion.ATTRS["scale"] == "symmetric"


def _image_flow(levels: int = 17) -> "flow.RealNVPModule":
    torch.manual_seed(0)
    return flow.RealNVPModule((1, 2, 2), "image", levels, torch.zeros(4), torch.ones(4)).eval()


def test_the_image_flows_log_density_includes_the_logit_maps_jacobian():
    m = _image_flow()  # couplings start as the identity (zero last layers): log p(y) is the logit map's alone
    y = torch.rand(64, 1, 2, 2, dtype=torch.float32) * 0.999
    s = flow.ALPHA + (1 - 2 * flow.ALPHA) * y.flatten(1).double().numpy()
    u = np.log(s) - np.log1p(-s)
    expected = (stats.norm.logpdf(u) + math.log(1 - 2 * flow.ALPHA) - np.log(s) - np.log1p(-s)).sum(1)
    with torch.no_grad():
        np.testing.assert_allclose(flow.Likelihood(m)(y).double().numpy(), expected, rtol=1e-5, atol=1e-5)  # float32
        x = flow.Sampler(m)(torch.randn(500, 4) * 3)
    assert x.shape == (500, 1, 2, 2) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_a_trained_points_flow_is_a_density_that_integrates_to_one():
    from types import SimpleNamespace

    from genbench import TrainConfig
    from genbench.data.points import load_ring8

    ring8 = load_ring8()
    model = flow.RealNVP()
    data = SimpleNamespace(x=ring8.train_x, shape=(2,), kind="points", levels=None, task="ring8",
                           value_range=ring8.value_range)
    model.train(data, TrainConfig(seed=0, device="cpu", profile="smoke", steps=60), lambda *a: None)
    grid = np.linspace(-4, 4, 801)
    xx, yy = np.meshgrid(grid, grid)
    pts = torch.tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)
    with torch.no_grad():
        logp = model.torch_module("likelihood")(pts).double().numpy()
    mass = np.exp(logp).sum() * (grid[1] - grid[0]) ** 2
    assert abs(mass - 1) < 0.02, mass  # the square holds all but a sliver of a density fitted to |x| <= 1.5
