"""Odd (Z2-equivariant) spline layers: equivariance phi -> -phi and an even density.

Their invertibility, log-dets and gradients are checked with every other layer in test_bijections.py.
"""

import pytest
import torch
from test_bijections import CASES, _odd_spline_stack, _spline

from lftutor.bijections.odd_splines import OddSplineCoupling, make_phi4_odd_spline_layers, mirror_index
from lftutor.bijections.splines import _spline as _rq_spline
from lftutor.bijections.splines import make_sublattice_masks

# The odd layers of the one registry of every bijection: tests/test_bijections.py checks them for
# invertibility, log-det against autograd and gradients like every other layer; here, oddness.
ODD_LAYERS = {name: (case.build, case.shape) for name, case in CASES.items() if name.startswith("odd_")}


@pytest.fixture(params=sorted(ODD_LAYERS))
def layer_and_shape(request):
    build, shape = ODD_LAYERS[request.param]
    torch.manual_seed(0)
    layer = build().double()
    with torch.no_grad():  # fresh layers are the identity; random parameters make checks meaningful
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer, shape


def test_every_odd_layer_is_in_the_registry():
    assert len(ODD_LAYERS) >= 7


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
    flow = _odd_spline_stack((4, 4)).double()
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
    y, ld = _rq_spline(x, params[:, :2 * k].unflatten(-1, (2, k)), params[:, 2 * k:], bound=3.0,
                       inverse=False)
    y_m, ld_m = _rq_spline(-x, mirrored[:, :2 * k].unflatten(-1, (2, k)), mirrored[:, 2 * k:], bound=3.0,
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
    layer = _spline((4, 4), "odd", "even", coupling=OddSplineCoupling)
    with pytest.raises(ValueError, match="expected"):
        layer.forward(torch.randn(2, 4, 6, dtype=torch.float64))
