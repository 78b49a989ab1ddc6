"""Z2Symmetric: the mirror-symmetric mixture of a flow, against exact densities."""

import math

import pytest
import torch
from torch import nn

from lftutor import Flow, SimpleNormal
from lftutor.bijections.splines import ZeroModeSpline
from lftutor.bijections.symmetry import Z2Symmetric
from lftutor.training.recipes import FAST


class Shift(nn.Module):
    """phi = z + c: a one-mode flow around c (test helper)."""

    def __init__(self, c):
        super().__init__()
        self.c = nn.Parameter(c)

    def forward(self, z):
        return z + self.c, torch.zeros(z.shape[0], dtype=z.dtype)

    def reverse(self, phi):
        return phi - self.c, torch.zeros(phi.shape[0], dtype=phi.dtype)


def _gauss_log_pdf(x, mean):
    d = x.flatten(1) - mean.flatten()
    return -0.5 * (d**2).sum(1) - 0.5 * d.shape[1] * math.log(2 * math.pi)


def test_density_is_the_exact_even_mixture():
    torch.manual_seed(0)
    c = torch.tensor([[1.5, -0.5], [2.0, 0.3]], dtype=torch.float64)
    model = Z2Symmetric(Flow(SimpleNormal.standard((2, 2), dtype=torch.float64), [Shift(c)]))
    phi = 2 * torch.randn(50, 2, 2, dtype=torch.float64)
    expected = torch.log(0.5 * torch.exp(_gauss_log_pdf(phi, c)) + 0.5 * torch.exp(_gauss_log_pdf(phi, -c)))
    torch.testing.assert_close(model.log_prob(phi), expected)
    # its samples come from both modes in equal parts and carry the same density
    phi, log_q = model.sample(4000)
    torch.testing.assert_close(log_q, model.log_prob(phi))
    positive = float((phi.flatten(1).sum(1) > 0).double().mean())
    assert abs(positive - 0.5) < 4 * 0.5 / math.sqrt(4000)


def test_normalised_on_a_grid():
    """q_s integrates to 1 (two sites, trapezoid rule on [-8, 8]^2)."""
    torch.manual_seed(1)
    layer = ZeroModeSpline((2,), n_bins=6).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0.0, 0.5)
    model = Z2Symmetric(Flow(SimpleNormal.standard((2,), dtype=torch.float64), [layer]))
    x = torch.linspace(-8, 8, 801, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        dens = torch.exp(model.log_prob(grid)).reshape(801, 801)
    total = torch.trapezoid(torch.trapezoid(dens, x, dim=1), x)
    assert abs(float(total) - 1.0) < 1e-4


def test_mirror_invariant_for_any_weights():
    torch.manual_seed(2)
    model = FAST.build_flow((4, 4), dtype=torch.float64)
    model = model if isinstance(model, Z2Symmetric) else Z2Symmetric(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    phi = torch.randn(8, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(model.log_prob(-phi), model.log_prob(phi))
    assert not torch.allclose(model.flow.log_prob(-phi), model.flow.log_prob(phi))


def test_bad_input_raises():
    model = Z2Symmetric(Flow(SimpleNormal.standard((4, 4)), [ZeroModeSpline((4, 4))]))
    with pytest.raises(ValueError, match=r"expected phi of shape \(batch, 4, 4\)"):
        model.log_prob(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="batch size"):
        model.sample(0)
