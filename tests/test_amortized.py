"""Amortized VI over the ring family (grid log Z against polar quadrature, exact KL against a grid
integral, mirror symmetry, training). The conditional layers themselves (planar, IAF, odd or not)
are tested with every other bijection in tests/test_autoregressive.py."""

from __future__ import annotations

import math

import pytest
import torch

from lftutor.amortized.family import (
    THETA_RANGE,
    amortization_gap,
    context,
    exact_kl,
    fit,
    grid_log_z,
    make_family_flow,
    reverse_kl_loss,
    ring_energy,
)
from lftutor.bijections.conditional import ConditionalIAF, ConditionalPlanar, standard_normal_log_prob


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one thread (a shared machine makes torch's thread pool very slow)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomize(layer):
    """Move the layers away from their (near-)identity start, so the checks see a real map."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer


# ------------------------------------------------------------------ the ring family
def test_theta_two_is_rezende_mohamed_u1():
    z = torch.randn(50, 2, dtype=torch.float64)
    r = z.norm(dim=1)
    u1 = 0.5 * ((r - 2) / 0.4) ** 2 - torch.log(torch.exp(-0.5 * ((z[:, 0] - 2) / 0.6) ** 2)
                                               + torch.exp(-0.5 * ((z[:, 0] + 2) / 0.6) ** 2))
    torch.testing.assert_close(ring_energy(z, 2.0), u1)


@pytest.mark.parametrize("theta", [1.0, 2.0, 3.0])
def test_grid_log_z_against_polar_quadrature(theta):
    from scipy import integrate

    def integrand(phi, r):  # U_theta written out again, in plain floats
        x = r * math.cos(phi)
        modes = math.exp(-0.5 * ((x - theta) / 0.6) ** 2) + math.exp(-0.5 * ((x + theta) / 0.6) ** 2)
        return r * math.exp(-0.5 * ((r - theta) / 0.4) ** 2) * modes

    value, _ = integrate.dblquad(integrand, 0.0, theta + 4.0, 0.0, 2 * math.pi, epsabs=1e-11, epsrel=1e-10)
    assert abs(grid_log_z(theta) - math.log(value)) < 1e-6


def test_exact_kl_of_the_identity_flow_against_a_grid_integral():
    """A fresh IAF stack is the identity, q = N(0, I): KL(q || p_theta) by a grid integral."""
    torch.manual_seed(0)
    flow = make_family_flow("iaf", n_layers=2, hidden=8).double()
    theta = 1.5
    x = torch.linspace(-7, 7, 701, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    log_q = standard_normal_log_prob(zz)
    h2 = (x[1] - x[0]) ** 2
    expected = (torch.exp(log_q) * (log_q + ring_energy(zz, theta))).sum().item() * h2 + grid_log_z(theta)
    kl, se = exact_kl(flow, theta, n_samples=40000)
    assert abs(kl - expected) < 4 * se + 1e-3
    assert expected > 1.0  # a standard normal is far from the ring: the check is not trivial


@pytest.mark.parametrize("kind", ["iaf", "planar"])
def test_odd_family_flow_is_mirror_symmetric_and_uses_the_package_layers(kind):
    torch.manual_seed(0)
    flow = _randomize(make_family_flow(kind, n_layers=3, hidden=8)).double()
    layer_class = ConditionalIAF if kind == "iaf" else ConditionalPlanar
    assert all(isinstance(layer, layer_class) and layer.odd for layer in flow.layers)
    x = torch.randn(5, 2, dtype=torch.float64)
    c = context(torch.full((5,), 2.0), dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(-x, c), flow.log_prob(x, c))
    plain = _randomize(make_family_flow(kind, n_layers=3, hidden=8, odd=False)).double()
    assert (plain.log_prob(-x, c) - plain.log_prob(x, c)).abs().max() > 1e-3


def test_amortized_training_lowers_the_average_loss():
    torch.manual_seed(0)
    flow = make_family_flow("iaf", n_layers=4, hidden=16)
    loss_fn = reverse_kl_loss(THETA_RANGE)
    torch.manual_seed(1)
    before = sum(loss_fn(flow, 2000)[0].item() for _ in range(2)) / 2
    fit(flow, loss_fn, steps=60, batch_size=128, lr=1e-2)
    torch.manual_seed(1)
    with torch.no_grad():
        after = sum(loss_fn(flow, 2000)[0].item() for _ in range(2)) / 2
    assert after < before - 0.5


def test_amortization_gap_reports_every_theta():
    res = amortization_gap(thetas=(1.5, 2.5), n_layers=2, hidden=8, steps=10, n_samples=500)
    d = res.as_dict()
    assert len(d["kl_amortized"]) == len(d["kl_separate"]) == 2
    assert d["mean_gap"] == pytest.approx(sum(d["gap"]) / 2)
    assert all(k > -0.05 for k in d["kl_amortized"] + d["kl_separate"])  # a KL is >= 0 (up to noise)
