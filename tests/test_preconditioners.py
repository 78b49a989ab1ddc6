"""FourierScale: with the free-field scales it maps white noise exactly to the free field.
(Invertibility and log-dets: tests/test_bijections.py.)"""

import math

import pytest
import torch

from lftutor import FreeFieldAction
from lftutor.bijections.preconditioners import FourierScale


def _jacobian(layer, shape):
    n = math.prod(shape)
    z = torch.zeros(n, dtype=torch.float64)
    return torch.autograd.functional.jacobian(
        lambda v: layer.forward(v.reshape(1, *shape))[0].reshape(n), z)


@pytest.mark.parametrize("shape", [(4, 4), (4, 6), (6,)])
def test_free_field_scales_give_the_exact_covariance(shape):
    m2 = 0.5
    gff = FreeFieldAction(m2, shape)
    layer = FourierScale.free_field(shape, m2)
    jac = _jacobian(layer, shape)
    torch.testing.assert_close(jac @ jac.T, gff.covariance, rtol=1e-10, atol=1e-10)
    # log-det of the map = -1/2 log det K
    _, log_det = layer.forward(torch.zeros(1, *shape, dtype=torch.float64))
    torch.testing.assert_close(log_det[0], -0.5 * torch.linalg.slogdet(gff.precision)[1])


def test_random_scales_give_a_real_symmetric_translation_invariant_map():
    layer = FourierScale((4, 6)).double()
    with torch.no_grad():
        layer.log_scale.normal_()
    jac = _jacobian(layer, (4, 6))
    torch.testing.assert_close(jac, jac.T)
    shifted = torch.roll(torch.eye(24, dtype=torch.float64).reshape(24, 4, 6), (1, 2), (1, 2))
    out = layer.forward(shifted)[0]
    torch.testing.assert_close(out, torch.roll(layer.forward(torch.eye(24, dtype=torch.float64)
                                                             .reshape(24, 4, 6))[0], (1, 2), (1, 2)))


def test_bad_input_raises():
    with pytest.raises(ValueError, match=r"expected z of shape \(batch, 4, 4\)"):
        FourierScale((4, 4)).forward(torch.zeros(2, 4, 5))
