"""Conditional layers (for each fixed context, the usual bijection checks) and amortized VI
over the ring family (grid log Z against polar quadrature, exact KL against a grid integral)."""

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
from lftutor.amortized.layers import (
    ConditionalFlow,
    ConditionalIAF,
    ConditionalPlanar,
    standard_normal_log_prob,
)

D, C = 3, 2


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


LAYERS = {
    "planar": lambda: ConditionalPlanar(D, C),
    "planar-hidden": lambda: ConditionalPlanar(D, C, hidden=8),
    "planar-odd": lambda: ConditionalPlanar(D, C, odd=True),
    "iaf": lambda: ConditionalIAF(D, C, hidden=12),
    "iaf-reversed": lambda: ConditionalIAF(D, C, hidden=12, reverse_order=True),
    "iaf-odd": lambda: ConditionalIAF(D, C, hidden=12, odd=True),
    "iaf-no-context": lambda: ConditionalIAF(D, 0, hidden=12),
}


def _make(name):
    torch.manual_seed(0)
    return _randomize(LAYERS[name]()).double()


def _inputs(layer, n=6):
    g = torch.Generator().manual_seed(2)
    z = torch.randn(n, D, generator=g, dtype=torch.float64)
    c = torch.randn(n, layer.context_dim, generator=g, dtype=torch.float64)
    return z, c


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_invertible_and_log_dets_cancel(name):
    layer = _make(name)
    z, c = _inputs(layer)
    x, ld_f = layer(z, c)
    assert x.shape == z.shape and ld_f.shape == (z.shape[0],)
    assert not torch.allclose(x, z, atol=1e-3)  # a real map, not the identity
    z_back, ld_r = layer.reverse(x, c)
    torch.testing.assert_close(z_back, z, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ld_f + ld_r, torch.zeros_like(ld_f), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_log_det_is_slogdet_of_autograd_jacobian(name):
    layer = _make(name)
    z, c = _inputs(layer, n=4)
    _, ld = layer(z, c)
    for i in range(z.shape[0]):
        ci = c[i:i + 1]
        jac = torch.autograd.functional.jacobian(lambda zi, ci=ci: layer(zi[None], ci)[0][0], z[i])
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign.item() > 0
        assert abs(logabs.item() - ld[i].item()) < 1e-10


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_parameter_gets_a_gradient(name):
    layer = _make(name)
    z, c = _inputs(layer)
    x, ld = layer(z, c)
    (x.square().sum() + ld.sum()).backward()
    for pname, p in layer.named_parameters():
        if (name, pname) in {("planar-odd", "net.bias"), ("iaf-odd", "out_shift.bias")}:
            continue  # odd layers: b = 0 and a constant shift cancels in m(z) - m(-z), by design
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", [n for n in sorted(LAYERS) if n != "iaf-no-context"])
def test_the_context_changes_the_map(name):
    layer = _make(name)
    z, c = _inputs(layer)
    x1, _ = layer(z, c)
    x2, _ = layer(z, c + 1.0)
    assert (x1 - x2).abs().max() > 1e-3


@pytest.mark.parametrize("order", [False, True])
def test_iaf_jacobian_is_triangular_in_its_order(order):
    layer = _randomize(ConditionalIAF(4, C, hidden=16, reverse_order=order)).double()
    z = torch.randn(1, 4, dtype=torch.float64)
    c = torch.randn(1, C, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda zi: layer(zi[None], c)[0][0], z[0])
    perm = layer.order
    jp = jac[perm][:, perm]  # rows and columns in the layer's order
    assert torch.allclose(torch.triu(jp, diagonal=1), torch.zeros_like(jp))
    assert torch.all(torch.tril(jp, diagonal=-1).abs().sum() > 0)


@pytest.mark.parametrize("name", ["planar-odd", "iaf-odd"])
def test_odd_layers_are_odd(name):
    layer = _make(name)
    z, c = _inputs(layer)
    x_plus, ld_plus = layer(z, c)
    x_minus, ld_minus = layer(-z, c)
    torch.testing.assert_close(x_minus, -x_plus)
    torch.testing.assert_close(ld_minus, ld_plus)


def test_shapes_are_checked():
    layer = ConditionalIAF(D, C)
    with pytest.raises(ValueError, match="expected z of shape"):
        layer(torch.zeros(4, D + 1), torch.zeros(4, C))
    with pytest.raises(ValueError, match="expected context of shape"):
        layer(torch.zeros(4, D), torch.zeros(4))
    with pytest.raises(ValueError, match="one context per sample"):
        ConditionalPlanar(D, C)(torch.zeros(4, D), torch.zeros(3, C))


def test_conditional_flow_log_prob_matches_sample():
    torch.manual_seed(0)
    flow = ConditionalFlow(D, [_randomize(ConditionalIAF(D, C, hidden=8, reverse_order=bool(k % 2)))
                               for k in range(3)] + [_randomize(ConditionalPlanar(D, C))]).double()
    c = torch.randn(7, C, dtype=torch.float64)
    x, log_q = flow.sample(c)
    torch.testing.assert_close(flow.log_prob(x, c), log_q, rtol=1e-8, atol=1e-8)


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


def test_odd_family_flow_is_mirror_symmetric():
    torch.manual_seed(0)
    flow = _randomize(make_family_flow("iaf", n_layers=3, hidden=8)).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    c = context(torch.full((5,), 2.0), dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(-x, c), flow.log_prob(x, c))


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
