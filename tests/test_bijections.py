"""Every bijection of lftutor: invertibility, log-det consistency, log-det vs autograd, gradients.

All in float64 on tiny lattices. New layers: add a builder to LAYERS.
"""

import math

import pytest
import torch

from lftutor import (
    AffineCoupling,
    Flow,
    SimpleCouplingLayer,
    SimpleNormal,
    make_checker_mask,
    make_conv_net,
    make_phi4_affine_layers,
)
from lftutor.bijections.free_field import (
    DenseCoupling,
    DiagonalScale,
    equivariant_linear_model,
    linear_coupling_model,
    nonlinear_coupling_model,
)
from lftutor.bijections.odd_splines import (
    OddSplineCoupling,
    OddZeroModeSpline,
    make_phi4_odd_spline_layers,
)
from lftutor.bijections.partitions import lexicographic_partition, random_partition
from lftutor.bijections.preconditioners import FourierScale
from lftutor.bijections.splines import (
    SplineCoupling,
    ZeroModeSpline,
    make_phi4_spline_layers,
    make_sublattice_masks,
)


def _perturb(module: torch.nn.Module) -> torch.nn.Module:
    # Fresh layers are close to the identity (small final weights); random parameters make
    # the checks meaningful.
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return module


def _affine(shape, parity=0):
    net = make_conv_net(hidden_sizes=[4, 4], kernel_size=3, lattice_dim=len(shape))
    return AffineCoupling(net, make_checker_mask(shape, parity))


def _stack(shape):
    prior = SimpleNormal.standard(shape, dtype=torch.float64)
    return Flow(prior, make_phi4_affine_layers(n_layers=4, lattice_shape=shape, hidden_sizes=[4],
                                               kernel_size=3))


def _spline(shape, update, condition, kernel_size=3, coupling=SplineCoupling):
    masks = make_sublattice_masks(shape)
    masks["even"] = masks["a"] + masks["b"]
    return coupling(masks[update], masks[condition], kernel_size=kernel_size,
                    hidden_sizes=[6], n_bins=4, bound=4.0)


def _spline_stack(shape, n_even_layers=2, **kwargs):
    prior = SimpleNormal.standard(shape, dtype=torch.float64)
    layers = [ZeroModeSpline(shape, n_bins=4),
              *make_phi4_spline_layers(lattice_shape=shape, n_even_layers=n_even_layers,
                                       hidden_sizes=[6], n_bins=4, **kwargs)]
    return Flow(prior, layers)


def _odd_spline_stack(shape):
    return Flow(SimpleNormal.standard(shape, dtype=torch.float64),
                make_phi4_odd_spline_layers(lattice_shape=shape, n_even_layers=2, hidden_sizes=[6],
                                            n_bins=4))


# name -> (builder returning a module, input shape without batch)
LAYERS = {
    "simple_coupling_2d": (lambda: SimpleCouplingLayer(), (2,)),
    "affine_2d_parity0": (lambda: _affine((4, 4), 0), (4, 4)),
    "affine_2d_parity1": (lambda: _affine((4, 6), 1), (4, 6)),
    "affine_1d": (lambda: _affine((6,), 0), (6,)),
    "affine_3d": (lambda: _affine((2, 2, 4), 1), (2, 2, 4)),
    "phi4_stack_flow": (lambda: _stack((4, 4)), (4, 4)),
    "affine_shift_only": (lambda: AffineCoupling(make_conv_net(hidden_sizes=[3], kernel_size=3,
                                                               out_channels=1),
                                                 make_checker_mask((4, 4), 1), shift_only=True), (4, 4)),
    "dense_linear_shift": (lambda: DenseCoupling(lexicographic_partition((4, 4))), (4, 4)),
    "dense_mlp_affine": (lambda: DenseCoupling(random_partition((2, 4)), hidden_sizes=[6],
                                               activation="leaky_relu", shift_only=False), (2, 4)),
    "diagonal_scale": (lambda: DiagonalScale((3, 2)), (3, 2)),
    "diagonal_scale_equivariant": (lambda: DiagonalScale((4, 4), equivariant=True), (4, 4)),
    "gff_linear_model": (lambda: linear_coupling_model((4, 4), n_layers=3), (4, 4)),
    "gff_nonlinear_model": (lambda: nonlinear_coupling_model((4, 4), n_layers=2, hidden_sizes=[8]), (4, 4)),
    "gff_equivariant_model": (lambda: equivariant_linear_model((4, 4), n_layers=2, radius=1), (4, 4)),
    "spline_odd_given_even_2d": (lambda: _spline((4, 4), "odd", "even"), (4, 4)),
    "spline_a_given_b_2d": (lambda: _spline((4, 6), "a", "b"), (4, 6)),
    "spline_b_given_a_3d": (lambda: _spline((2, 2, 4), "b", "a"), (2, 2, 4)),
    "spline_a_given_b_1d": (lambda: _spline((8,), "a", "b", kernel_size=5), (8,)),
    "zero_mode_spline": (lambda: ZeroModeSpline((4, 4), n_bins=4), (4, 4)),
    "phi4_spline_flow": (lambda: _spline_stack((4, 4)), (4, 4)),
    "phi4_spline_flow_four_colours": (lambda: _spline_stack((4, 8), 4, even_colours=4), (4, 8)),
    # odd (Z2-equivariant) splines; tests/test_odd_splines.py checks f(-z) = -f(z) on these
    "odd_spline_odd_given_even_2d": (lambda: _spline((4, 4), "odd", "even", coupling=OddSplineCoupling),
                                     (4, 4)),
    "odd_spline_a_given_b_2d": (lambda: _spline((4, 6), "a", "b", coupling=OddSplineCoupling), (4, 6)),
    "odd_spline_b_given_a_3d": (lambda: _spline((2, 2, 4), "b", "a", coupling=OddSplineCoupling),
                                (2, 2, 4)),
    "odd_spline_a_given_b_1d": (lambda: _spline((8,), "a", "b", kernel_size=5, coupling=OddSplineCoupling),
                                (8,)),
    "odd_zero_mode_spline": (lambda: OddZeroModeSpline((4, 4), n_bins=4), (4, 4)),
    "odd_zero_mode_spline_5_bins": (lambda: OddZeroModeSpline((2, 4), n_bins=5), (2, 4)),
    "odd_phi4_spline_flow": (lambda: _odd_spline_stack((4, 4)), (4, 4)),
    "fourier_scale_2d": (lambda: FourierScale((4, 6)), (4, 6)),
    "fourier_scale_1d": (lambda: FourierScale((5,)), (5,)),
    "fourier_scale_3d": (lambda: FourierScale((2, 4, 3)), (2, 4, 3)),
}


# Additive couplings have log-det exactly 0 (checked separately below).
VOLUME_PRESERVING = {"affine_shift_only", "dense_linear_shift"}


@pytest.fixture(params=sorted(LAYERS))
def layer_and_shape(request):
    build, shape = LAYERS[request.param]
    layer = _perturb(build()).double()
    layer.volume_preserving = request.param in VOLUME_PRESERVING
    return layer, shape


def test_reverse_inverts_forward(layer_and_shape):
    layer, shape = layer_and_shape
    z = torch.randn(5, *shape, dtype=torch.float64)
    phi, _ = layer.forward(z)
    z_back, _ = layer.reverse(phi)
    assert not torch.allclose(phi, z), "the layer should not be the identity for this test"
    torch.testing.assert_close(z_back, z, rtol=1e-10, atol=1e-10)


def test_forward_and_reverse_log_dets_cancel(layer_and_shape):
    layer, shape = layer_and_shape
    z = torch.randn(5, *shape, dtype=torch.float64)
    phi, ld_fwd = layer.forward(z)
    _, ld_rev = layer.reverse(phi)
    assert ld_fwd.shape == (5,)
    if not layer.volume_preserving:
        assert ld_fwd.abs().max() > 1e-3, "log-det should be non-trivial for perturbed parameters"
    torch.testing.assert_close(ld_fwd + ld_rev, torch.zeros(5, dtype=torch.float64), atol=1e-10,
                               rtol=0)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_log_det_matches_autograd_jacobian(layer_and_shape, direction):
    layer, shape = layer_and_shape
    fn = getattr(layer, direction)
    n = math.prod(shape)
    x = torch.randn(3, *shape, dtype=torch.float64)
    _, log_det = fn(x)
    for b in range(3):
        def flat(v):
            return fn(v.reshape(1, *shape))[0].reshape(n)

        jac = torch.autograd.functional.jacobian(flat, x[b].reshape(n))
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
    assert params, "a learnable layer has parameters"
    for name, p in params:
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {name}"


def test_shift_only_layers_preserve_volume():
    for name in sorted(VOLUME_PRESERVING):
        layer = _perturb(LAYERS[name][0]()).double()
        _, log_det = layer.forward(torch.randn(3, 4, 4, dtype=torch.float64))
        torch.testing.assert_close(log_det, torch.zeros(3, dtype=torch.float64))


def test_flow_log_prob_matches_sample():
    flow = _perturb(_stack((4, 4))).double()
    phi, log_q = flow.sample(6)
    torch.testing.assert_close(flow.log_prob(phi), log_q, rtol=1e-10, atol=1e-10)


def test_flow_density_is_normalised_in_one_dimension():
    # A 1-site-wide lattice is not allowed for checkerboards; use a 2-site 1-D lattice and
    # integrate q over a grid: the flow density must integrate to 1.
    shape = (2,)
    prior = SimpleNormal.standard(shape, dtype=torch.float64)
    flow = _perturb(Flow(prior, [_affine(shape, 0), _affine(shape, 1)])).double()
    grid = torch.linspace(-12, 12, 801, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    phi = torch.stack([xx.flatten(), yy.flatten()], dim=1)
    with torch.no_grad():
        q = flow.log_prob(phi).exp()
    h = (grid[1] - grid[0]).item()
    assert abs(q.sum().item() * h * h - 1) < 1e-3


def test_checkerboard_masks_alternate_and_cover():
    m0, m1 = make_checker_mask((4, 6), 0), make_checker_mask((4, 6), 1)
    assert m0[0, 0] == 1 and m0[0, 1] == 0 and m0[1, 0] == 0 and m0[1, 1] == 1
    torch.testing.assert_close(m0 + m1, torch.ones(4, 6))
    # every site's nearest neighbours (periodic) have the other parity
    for mu in (0, 1):
        torch.testing.assert_close(torch.roll(m0, 1, mu), m1)
