"""Spline layers of the fast recipe: the spline itself, sublattice masks, conditioner windows,
bad inputs. (Invertibility and log-dets of the layers: tests/test_bijections.py.)"""

import pytest
import torch

from lftutor.bijections.splines import (
    SplineCoupling,
    ZeroModeSpline,
    make_phi4_spline_layers,
    make_sublattice_masks,
    rational_quadratic_spline,
)


def _random_spline_params(n, k, scale=2.0):
    g = torch.Generator().manual_seed(0)
    return [scale * torch.randn(n, m, dtype=torch.float64, generator=g) for m in (k, k, k - 1)]


def test_spline_is_identity_for_zero_parameters_and_outside_the_bound():
    x = torch.linspace(-7, 7, 29, dtype=torch.float64)
    y, ld = rational_quadratic_spline(x, *[torch.zeros(29, m, dtype=torch.float64) for m in (5, 5, 4)],
                                      bound=3.0)
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(ld, torch.zeros_like(x))
    w, h, d = _random_spline_params(29, 5)
    y, ld = rational_quadratic_spline(x, w, h, d, bound=3.0)
    outside = x.abs() >= 3
    torch.testing.assert_close(y[outside], x[outside])
    assert (ld[outside] == 0).all()


def test_spline_is_monotone_inverts_and_its_log_derivative_matches_finite_differences():
    x = torch.linspace(-2.99, 2.99, 401, dtype=torch.float64)
    w, h, d = [p[:1].expand(401, -1) for p in _random_spline_params(1, 6)]
    y, ld = rational_quadratic_spline(x, w, h, d, bound=3.0)
    assert (y.diff() > 0).all()
    x_back, ld_inv = rational_quadratic_spline(y, w, h, d, bound=3.0, inverse=True)
    torch.testing.assert_close(x_back, x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ld + ld_inv, torch.zeros_like(x), rtol=0, atol=1e-10)
    eps = 1e-6
    y_plus, _ = rational_quadratic_spline(x + eps, w, h, d, bound=3.0)
    y_minus, _ = rational_quadratic_spline(x - eps, w, h, d, bound=3.0)
    torch.testing.assert_close(ld, torch.log((y_plus - y_minus) / (2 * eps)), rtol=0, atol=1e-6)


def test_sublattice_masks_partition_the_lattice_and_neighbours_have_the_right_type():
    masks = make_sublattice_masks((4, 6))
    torch.testing.assert_close(masks["a"] + masks["b"] + masks["odd"], torch.ones(4, 6))
    even = masks["a"] + masks["b"]
    for mu in (0, 1):
        for shift in (1, -1):  # nearest neighbours of odd sites are even
            assert (torch.roll(even, shift, mu)[masks["odd"].bool()] == 1).all()
    diagonal = torch.roll(masks["b"], (1, 1), (0, 1))  # diagonal neighbours of a are b
    assert (diagonal[masks["a"].bool()] == 1).all()


def test_conditioner_sees_exactly_the_nearest_neighbours_of_odd_sites():
    masks = make_sublattice_masks((4, 4))
    layer = SplineCoupling(masks["odd"], masks["a"] + masks["b"], kernel_size=3, hidden_sizes=[4])
    assert layer.neighbour_index.shape == (8, 4)
    # site (0, 1) has flat index 1; its neighbours (0,0), (0,2), (1,1), (3,1) are 0, 2, 5, 13
    assert sorted(layer.neighbour_index[0].tolist()) == [0, 2, 5, 13]


def test_fresh_layers_are_the_identity():
    z = torch.randn(3, 4, 4)
    for layer in [ZeroModeSpline((4, 4)),
                  *make_phi4_spline_layers(lattice_shape=(4, 4), n_even_layers=2, hidden_sizes=[4])]:
        phi, log_det = layer.forward(z)
        torch.testing.assert_close(phi, z)
        torch.testing.assert_close(log_det, torch.zeros(3))


def test_zero_mode_spline_changes_only_the_mean():
    layer = ZeroModeSpline((4, 4), n_bins=4).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p))
    z = torch.randn(5, 4, 4, dtype=torch.float64)
    phi, _ = layer.forward(z)
    centred = lambda f: f - f.mean(dim=(1, 2), keepdim=True)  # noqa: E731
    torch.testing.assert_close(centred(phi), centred(z))
    assert not torch.allclose(phi.mean(dim=(1, 2)), z.mean(dim=(1, 2)))


@pytest.mark.parametrize("build, match", [
    (lambda m: SplineCoupling(m["a"], m["a"]), "disjoint"),
    (lambda m: SplineCoupling(m["a"], m["b"][:, :2]), "same shape"),
    (lambda m: SplineCoupling(m["a"], m["b"], kernel_size=4), "odd positive kernel_size"),
    (lambda m: SplineCoupling(torch.zeros(4, 4), m["b"]), "at least one site"),
    (lambda m: SplineCoupling(m["a"], 2 * m["b"]), "0s and 1s"),
    (lambda m: SplineCoupling(m["a"], m["b"], n_bins=0), "n_bins"),
    # a conditioning mask that is not a sublattice: features would differ from site to site
    (lambda m: SplineCoupling(m["odd"], m["a"]), "same offsets"),
])
def test_bad_layer_arguments_raise_value_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build(make_sublattice_masks((4, 4)))


def test_bad_inputs_raise_value_errors():
    layer = SplineCoupling(*[make_sublattice_masks((4, 4))[k] for k in ("a", "b")], hidden_sizes=[4])
    with pytest.raises(ValueError, match=r"expected z of shape \(batch, 4, 4\)"):
        layer.forward(torch.zeros(2, 4, 6))
    with pytest.raises(ValueError, match="expected phi"):
        ZeroModeSpline((4, 4)).reverse(torch.zeros(2, 16))
    with pytest.raises(ValueError, match="even lattice extents"):
        make_sublattice_masks((6,))
    w = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="K-1"):
        rational_quadratic_spline(torch.zeros(3), w, w, w, bound=1.0)


def test_softmax_written_out_for_the_cpu_equals_the_fused_kernel_used_on_gpus():
    """The spline's CPU softmax (four operations) and the one-kernel branch taken on a GPU agree,
    values and gradients, also for large inputs (the max is subtracted)."""
    from lftutor.bijections.splines import _softmax

    x = (30 * torch.randn(64, 3, 2, 8, dtype=torch.float64)).requires_grad_()
    weights = torch.randn(64, 3, 2, 8, dtype=torch.float64)
    outs = []
    for fused in (True, False):
        y = _softmax(x, fused=fused)
        outs.append((y, torch.autograd.grad((y * weights).sum(), x)[0]))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-10, atol=1e-12)
    assert torch.isfinite(outs[1][0]).all()


def test_even_colours_partition_the_even_sites_and_no_colour_interacts_with_itself():
    """After integrating out the odd sites, an even site interacts with the even sites that share
    an odd neighbour with it (diagonals and two steps along an axis): none has its colour."""
    from lftutor.bijections.splines import make_even_colour_masks

    colours = make_even_colour_masks((8, 12))
    masks = make_sublattice_masks((8, 12))
    torch.testing.assert_close(sum(colours), masks["a"] + masks["b"])
    for c in colours:
        assert int(c.sum()) == 8 * 12 // 8
        for shift in [(1, 1), (1, -1), (2, 0), (0, 2)]:
            assert not (c * torch.roll(c, shift, (0, 1))).any(), shift
    with pytest.raises(ValueError, match="even extents"):
        make_even_colour_masks((5, 8))


def test_four_colours_at_extents_not_divisible_by_4_leave_few_interacting_pairs():
    """At L = 10 the colours still partition the even sites; 20 of the 200 interacting pairs
    (diagonal and two-step neighbours) share a colour, all on the seams at the boundary."""
    from lftutor.bijections.splines import make_even_colour_masks

    colours = make_even_colour_masks((10, 10))
    masks = make_sublattice_masks((10, 10))
    torch.testing.assert_close(sum(colours), masks["a"] + masks["b"])
    same = sum(int((c * torch.roll(c, shift, (0, 1))).sum()) for c in colours
               for shift in [(1, 1), (1, -1), (2, 0), (0, 2)])
    assert same == 20
    interior = torch.zeros(10, 10)
    interior[2:8, 2:8] = 1  # far from the seams every pair is of two colours
    for c in colours:
        for shift in [(1, 1), (1, -1), (2, 0), (0, 2)]:
            assert not (c * torch.roll(c, shift, (0, 1)) * interior).any(), shift


def test_four_colour_layers_see_the_eight_interacting_even_sites():
    layers = make_phi4_spline_layers(lattice_shape=(8, 8), n_even_layers=8, hidden_sizes=[4],
                                     even_colours=4)
    assert len(layers) == 9
    assert [tuple(layer.neighbour_index.shape) for layer in layers] == [(8, 8)] * 8 + [(32, 4)]
    with pytest.raises(ValueError, match="even_colours"):
        make_phi4_spline_layers(lattice_shape=(8, 8), even_colours=3)
