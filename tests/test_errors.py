"""Bad input gets a ValueError that says what was expected and what came."""

import pytest
import torch

from lftutor import (
    AffineCoupling,
    FreeFieldAction,
    ScalarPhi4Action,
    SimpleCouplingLayer,
    SimpleNormal,
    ess,
    make_checker_mask,
    make_conv_net,
    make_phi4_affine_layers,
    train,
)


def _layer(shape=(4, 4)):
    return AffineCoupling(make_conv_net(hidden_sizes=[2], kernel_size=3), make_checker_mask(shape, 0))


def test_field_of_wrong_shape_names_both_shapes():
    with pytest.raises(ValueError, match=r"expected z of shape \(batch, 4, 4\).*got \(2, 6, 6\)"):
        _layer().forward(torch.zeros(2, 6, 6))


def test_field_without_batch_dimension():
    with pytest.raises(ValueError, match=r"got \(4, 4\)"):
        _layer().reverse(torch.zeros(4, 4))


def test_integer_field_is_refused():
    with pytest.raises(ValueError, match="floating dtype.*torch.int64"):
        ScalarPhi4Action(1.0, 1.0)(torch.zeros(2, 4, 4, dtype=torch.long))


def test_non_tensor_field_is_refused():
    with pytest.raises(ValueError, match="torch.Tensor.*list"):
        ScalarPhi4Action(1.0, 1.0)([[0.0]])


def _spline_layer():
    from lftutor.bijections.splines import SplineCoupling
    m = make_checker_mask((4, 4), 0)
    return SplineCoupling(1 - m, m, hidden_sizes=[4], n_bins=4)


@pytest.mark.parametrize("make", [_layer, SimpleCouplingLayer, _spline_layer],
                         ids=["affine", "simple", "spline"])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_field_of_another_dtype_than_the_layer(make, direction):
    # The usual slip: a float64 field into a float32 model. Without the check torch stops inside
    # the first Conv2d/Linear with "Input type (double) and bias type (float) should be the same".
    layer = make()
    x = torch.zeros((3, 2) if isinstance(layer, SimpleCouplingLayer) else (3, 4, 4), dtype=torch.float64)
    with pytest.raises(ValueError, match=r"dtype torch.float32 .*got torch.float64.*to\(torch.float32\)"):
        getattr(layer, direction)(x)
    layer.double()  # the remedy the message suggests works
    out, log_det = getattr(layer, direction)(x)
    assert out.dtype == torch.float64 and log_det.shape == (3,)


def test_even_kernel_size():
    with pytest.raises(ValueError, match="odd positive kernel_size.*got 4"):
        make_conv_net(hidden_sizes=[8], kernel_size=4)


def test_mask_that_does_not_match_the_lattice():
    layer = _layer((4, 4))
    with pytest.raises(ValueError, match=r"mask has shape \(4, 4\)"):
        layer.forward(torch.zeros(3, 8, 8))


def test_mask_must_be_binary_and_mixed():
    with pytest.raises(ValueError, match="0s and 1s"):
        AffineCoupling(make_conv_net(hidden_sizes=[2], kernel_size=3), torch.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="both frozen"):
        AffineCoupling(make_conv_net(hidden_sizes=[2], kernel_size=3), torch.ones(4, 4))


def test_odd_lattice_for_checkerboard():
    with pytest.raises(ValueError, match=r"even lattice extents.*\(5, 4\)"):
        make_checker_mask((5, 4), 0)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_non_positive_batch_size(n):
    with pytest.raises(ValueError, match="positive integer"):
        SimpleNormal.standard((4, 4)).sample_n(n)


def test_non_positive_batch_size_in_training():
    prior = SimpleNormal.standard((4, 4))
    flow_layers = make_phi4_affine_layers(n_layers=2, lattice_shape=(4, 4), hidden_sizes=[2], kernel_size=3)
    from lftutor import Flow

    with pytest.raises(ValueError, match="batch_size.*got 0"):
        train(Flow(prior, flow_layers), ScalarPhi4Action(-4, 8), steps=1, batch_size=0)


def test_training_without_a_budget():
    from lftutor import Flow

    flow = Flow(SimpleNormal.standard((4, 4)), [])
    with pytest.raises(ValueError, match="steps=N or time_budget"):
        train(flow, ScalarPhi4Action(-4, 8))


def test_simple_coupling_wants_points_of_the_plane():
    with pytest.raises(ValueError, match=r"\(batch, 2\), got \(5, 3\)"):
        SimpleCouplingLayer()(torch.zeros(5, 3))


def test_ess_with_mismatched_shapes():
    with pytest.raises(ValueError, match=r"same shape.*\(4,\) and \(5,\)"):
        ess(torch.zeros(4), torch.zeros(5))


def test_ess_with_matrix_input():
    with pytest.raises(ValueError, match=r"log_p of shape \(batch,\), got \(4, 4\)"):
        ess(torch.zeros(4, 4), torch.zeros(4, 4))


def test_physics_parameters():
    with pytest.raises(ValueError, match="lam >= 0"):
        ScalarPhi4Action(1.0, -1.0)
    with pytest.raises(ValueError, match="m2 > 0"):
        FreeFieldAction(0.0, (4, 4))
    with pytest.raises(ValueError, match="lattice_shape"):
        FreeFieldAction(1.0, (4, 0))
