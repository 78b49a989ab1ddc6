"""With one Hutchinson probe held fixed for a whole ODE solve, the estimate of log|det| is
v^T (int_0^t1 J dt) v: its variance is Exercise 2's formula for the *integrated* Jacobian
(unit 8's answer key), not the per-time variance integrated over time.

Checked on a field linear in z with a Jacobian that changes in time, A(t) = A0 + t A1, so that
int_0^1 J dt = A0 + A1 / 2 is known in closed form, and chosen so that the two formulas differ
by a factor of about 10.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lftutor.bijections.continuous import ContinuousFlow


class TimeLinearField(nn.Module):
    def __init__(self, a0: torch.Tensor, a1: torch.Tensor):
        super().__init__()
        self.dim = a0.shape[0]
        self.a0, self.a1 = nn.Parameter(a0), nn.Parameter(a1)

    def forward(self, t, z):
        return z @ (self.a0 + t * self.a1).T


def _sym_sq(a, off_diagonal_only):
    s = 0.5 * (a + a.T)
    if off_diagonal_only:
        s = s - torch.diag(torch.diagonal(s))
    return 2 * float((s ** 2).sum())


@pytest.mark.parametrize("probe", ["gaussian", "rademacher"])
def test_one_probe_per_trajectory_variance_uses_the_integrated_jacobian(probe):
    gen = torch.Generator().manual_seed(0)
    a0 = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    b = 0.3 * torch.randn(3, 3, generator=gen, dtype=torch.float64)
    a1 = -2 * a0 + b                       # int_0^1 (a0 + t a1) dt = b / 2: mostly cancels
    field = TimeLinearField(a0, a1)
    flow = ContinuousFlow(field, trace="hutchinson", probe=probe, rtol=1e-7, atol=1e-7,
                          generator=torch.Generator().manual_seed(1))
    n = 20_000
    x = torch.randn(1, 3, generator=gen, dtype=torch.float64).repeat(n, 1)
    with torch.no_grad():
        _, log_det = flow.forward(x)
    off = probe == "rademacher"
    integrated = _sym_sq(a0 + a1 / 2, off)
    ts = torch.linspace(0, 1, 2001, dtype=torch.float64)
    per_time = [_sym_sq(a0 + t * a1, off) for t in ts]
    per_time_integral = sum((u + v) / 2 for u, v in zip(per_time[:-1], per_time[1:], strict=True)) / 2000
    assert per_time_integral > 5 * integrated  # the two candidate formulas are far apart here
    var = float(log_det.var())
    # the sample variance of a quadratic form in n probes: relative s.e. about sqrt(2 / n) * 2
    assert var == pytest.approx(integrated, rel=6 * math.sqrt(2 / n) * 2)
    # unbiased: the mean is the integrated trace, tr(a0 + a1 / 2)
    assert float(log_det.mean()) == pytest.approx(float(torch.trace(a0 + a1 / 2)),
                                                  abs=5 * math.sqrt(var / n))
