"""Odd (Z2-equivariant) spline layers: bijection checks, equivariance phi -> -phi, even density."""

import math

import pytest
import torch

from lftutor import Flow, SimpleNormal
from lftutor.bijections.odd_splines import (
    OddSplineCoupling,
    OddZeroModeSpline,
    make_phi4_odd_spline_layers,
    mirror_index,
)
from lftutor.bijections.splines import _spline, make_sublattice_masks


def _coupling(shape, update, condition, kernel_size=3):
    masks = make_sublattice_masks(shape)
    masks["even"] = masks["a"] + masks["b"]
    return OddSplineCoupling(masks[update], masks[condition], kernel_size=kernel_size,
                             hidden_sizes=[6], n_bins=4, bound=4.0)


def _stack(shape):
    return Flow(SimpleNormal.standard(shape, dtype=torch.float64),
                make_phi4_odd_spline_layers(lattice_shape=shape, n_even_layers=2, hidden_sizes=[6],
                                            n_bins=4))


LAYERS = {
    "odd_spline_odd_given_even_2d": (lambda: _coupling((4, 4), "odd", "even"), (4, 4)),
    "odd_spline_a_given_b_2d": (lambda: _coupling((4, 6), "a", "b"), (4, 6)),
    "odd_spline_b_given_a_3d": (lambda: _coupling((2, 2, 4), "b", "a"), (2, 2, 4)),
    "odd_spline_a_given_b_1d": (lambda: _coupling((8,), "a", "b", kernel_size=5), (8,)),
    "odd_zero_mode_spline": (lambda: OddZeroModeSpline((4, 4), n_bins=4), (4, 4)),
    "odd_zero_mode_spline_5_bins": (lambda: OddZeroModeSpline((2, 4), n_bins=5), (2, 4)),
    "odd_phi4_spline_flow": (lambda: _stack((4, 4)), (4, 4)),
}


@pytest.fixture(params=sorted(LAYERS))
def layer_and_shape(request):
    build, shape = LAYERS[request.param]
    torch.manual_seed(0)
    layer = build().double()
    with torch.no_grad():  # fresh layers are the identity; random parameters make checks meaningful
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer, shape


def test_reverse_inverts_forward_and_log_dets_cancel(layer_and_shape):
    layer, shape = layer_and_shape
    z = torch.randn(5, *shape, dtype=torch.float64)
    phi, ld_fwd = layer.forward(z)
    z_back, ld_rev = layer.reverse(phi)
    assert not torch.allclose(phi, z), "the layer should not be the identity for this test"
    assert ld_fwd.shape == (5,) and ld_fwd.abs().max() > 1e-3
    torch.testing.assert_close(z_back, z, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ld_fwd + ld_rev, torch.zeros(5, dtype=torch.float64), atol=1e-10, rtol=0)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_log_det_matches_autograd_jacobian(layer_and_shape, direction):
    layer, shape = layer_and_shape
    fn = getattr(layer, direction)
    n = math.prod(shape)
    x = torch.randn(3, *shape, dtype=torch.float64)
    _, log_det = fn(x)
    for b in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: fn(v.reshape(1, *shape))[0].reshape(n),
                                                 x[b].reshape(n))
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign != 0
        torch.testing.assert_close(log_det[b], logabs, rtol=1e-9, atol=1e-9)


def test_every_parameter_gets_a_gradient(layer_and_shape):
    layer, shape = layer_and_shape
    z = torch.randn(8, *shape, dtype=torch.float64)
    phi, log_det = layer.forward(z)
    z_back, log_det_rev = layer.reverse(phi.detach())
    loss = (phi**2).sum() + log_det.sum() + (z_back**2).sum() + log_det_rev.sum()
    loss.backward()
    params = list(layer.named_parameters())
    assert params
    for name, p in params:
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {name}"


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_layers_are_odd_with_even_log_det(layer_and_shape, direction):
    """f(-z) = -f(z) and log|det f'(-z)| = log|det f'(z)| for any weights."""
    layer, shape = layer_and_shape
    fn = getattr(layer, direction)
    x = 2 * torch.randn(6, *shape, dtype=torch.float64)
    y, ld = fn(x)
    y_m, ld_m = fn(-x)
    torch.testing.assert_close(y_m, -y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ld_m, ld, rtol=1e-12, atol=1e-12)


def test_flow_density_is_even_and_matches_the_sample():
    torch.manual_seed(1)
    flow = _stack((4, 4)).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
        phi, log_q = flow.sample(7)
        torch.testing.assert_close(flow.log_prob(phi), log_q, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(flow.log_prob(-phi), log_q, rtol=1e-10, atol=1e-10)


def test_mirror_index_gives_the_mirror_image_spline():
    """Reversing widths, heights and derivatives gives g~(z) = -g(-z)."""
    k = 5
    params = torch.randn(40, 3 * k - 1, dtype=torch.float64)
    mirrored = params.index_select(-1, mirror_index(k))
    x = torch.linspace(-3.5, 3.5, 40, dtype=torch.float64)
    y, ld = _spline(x, params[:, :2 * k].unflatten(-1, (2, k)), params[:, 2 * k:], bound=3.0, inverse=False)
    y_m, ld_m = _spline(-x, mirrored[:, :2 * k].unflatten(-1, (2, k)), mirrored[:, 2 * k:], bound=3.0,
                        inverse=False)
    torch.testing.assert_close(y_m, -y)
    torch.testing.assert_close(ld_m, ld)


def test_a_plain_coupling_is_not_odd_so_the_test_above_can_fail():
    from lftutor.bijections.splines import SplineCoupling

    masks = make_sublattice_masks((4, 4))
    layer = SplineCoupling(masks["odd"], masks["a"] + masks["b"], hidden_sizes=[6], n_bins=4).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    z = torch.randn(4, 4, 4, dtype=torch.float64)
    assert not torch.allclose(layer.forward(-z)[0], -layer.forward(z)[0])


def test_fresh_layers_are_the_identity():
    z = torch.randn(3, 4, 4)
    for layer in make_phi4_odd_spline_layers(lattice_shape=(4, 4), n_even_layers=2, hidden_sizes=[4]):
        phi, log_det = layer.forward(z)
        torch.testing.assert_close(phi, z)
        torch.testing.assert_close(log_det, torch.zeros(3))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="n_even_layers"):
        make_phi4_odd_spline_layers(lattice_shape=(4, 4), n_even_layers=-1)
    with pytest.raises(ValueError, match="n_bins"):
        mirror_index(0)
    layer = _coupling((4, 4), "odd", "even")
    with pytest.raises(ValueError, match="expected"):
        layer.forward(torch.randn(2, 4, 6, dtype=torch.float64))


# The four-colour spline stack of the plain (not odd) family, through the same checks.
def _four_colour_stack():
    from lftutor.bijections.splines import make_phi4_spline_layers

    return Flow(SimpleNormal.standard((4, 8), dtype=torch.float64),
                make_phi4_spline_layers(lattice_shape=(4, 8), n_even_layers=4, hidden_sizes=[6],
                                        n_bins=4, even_colours=4))


FOUR_COLOUR = {"four_colour_spline_flow": (_four_colour_stack, (4, 8))}


@pytest.fixture(params=sorted(FOUR_COLOUR))
def plain_layer_and_shape(request):
    build, shape = FOUR_COLOUR[request.param]
    torch.manual_seed(0)
    layer = build().double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer, shape


def test_four_colour_stack_inverts_log_dets_match_autograd_and_gradients_reach_all(plain_layer_and_shape):
    test_reverse_inverts_forward_and_log_dets_cancel(plain_layer_and_shape)
    test_log_det_matches_autograd_jacobian(plain_layer_and_shape, "forward")
    test_log_det_matches_autograd_jacobian(plain_layer_and_shape, "reverse")
    test_every_parameter_gets_a_gradient(plain_layer_and_shape)
