r"""Radial flow (Rezende & Mohamed, arXiv:1505.05770, sec. 4.1 and appendix A.2).

One layer contracts or expands space around a centre :math:`z_0`:

.. math::
    f(z) = z + \beta\, h(\alpha, r)\,(z - z_0), \qquad r = \|z - z_0\|,
    \qquad h(\alpha, r) = \frac{1}{\alpha + r},

with :math:`\alpha > 0`. The Jacobian is a multiple of the identity plus a rank-one term along
:math:`z - z_0`, so

.. math::
    \log\Big|\det\frac{\partial f}{\partial z}\Big|
    = (D-1)\log\big(1 + \beta h\big) + \log\big(1 + \beta h + \beta h'(r)\, r\big),
    \qquad h' = -\frac{1}{(\alpha + r)^2} .

**Invertibility.** The radius maps to :math:`R = r\,(1 + \beta/(\alpha + r))`, increasing in
:math:`r` for all :math:`r \ge 0` exactly when :math:`\beta \ge -\alpha`. The free parameters
are mapped as :math:`\alpha = \mathrm{softplus}(\alpha')`,
:math:`\beta = -\alpha + \mathrm{softplus}(\beta')`.

**Inverse** (closed form): :math:`R(\alpha + r) = r(\alpha + r) + \beta r` is a quadratic in
:math:`r`, :math:`r^2 + (\alpha + \beta - R)\,r - \alpha R = 0`, whose roots have product
:math:`-\alpha R \le 0`; the non-negative one is the radius, and
:math:`z = z_0 + (x - z_0)/(1 + \beta h(\alpha, r))`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lftutor._checks import check_positive_int
from lftutor.bijections.base import Bijection

__all__ = ["Radial"]


class Radial(Bijection):
    r"""One radial layer :math:`f(z) = z + \beta (z - z_0)/(\alpha + \|z - z_0\|)`.

    Args:
        dim: :math:`D`, the dimension of each sample.
        init_scale: standard deviation of the random initial centre :math:`z_0`.
        dtype: parameter dtype.

    Shapes:
        ``forward(z)``: ``(batch, D) -> (x (batch, D), log_det (batch,))``;
        ``reverse(x)``: ``(batch, D) -> (z, log_det)`` (closed form).

    Example:
        >>> layer = Radial(2).double()
        >>> z = torch.randn(5, 2, dtype=torch.float64)
        >>> z2, _ = layer.reverse(layer(z)[0])
        >>> bool(torch.allclose(z2, z))
        True
    """

    def __init__(self, dim: int, *, init_scale: float = 1.0, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dim = check_positive_int(dim, name="dim")
        self.event_shape = (dim,)
        self.z0 = nn.Parameter(init_scale * torch.randn(dim, dtype=dtype))
        self.alpha_raw = nn.Parameter(torch.randn((), dtype=dtype))
        self.beta_raw = nn.Parameter(torch.randn((), dtype=dtype))

    def alpha_beta(self) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(\alpha, \beta)` with :math:`\alpha > 0` and :math:`\beta > -\alpha`."""
        alpha = F.softplus(self.alpha_raw)
        return alpha, -alpha + F.softplus(self.beta_raw)

    def _log_det(self, r: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        h = 1 / (alpha + r)
        one_plus = 1 + beta * h
        return (self.dim - 1) * torch.log(one_plus) + torch.log(one_plus - beta * h**2 * r)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha, beta = self.alpha_beta()
        d = z - self.z0
        r = d.norm(dim=1)
        x = z + (beta / (alpha + r))[:, None] * d
        return x, self._log_det(r, alpha, beta)

    def reverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha, beta = self.alpha_beta()
        d = x - self.z0
        big_r = d.norm(dim=1)
        b = alpha + beta - big_r
        disc = torch.sqrt(b**2 + 4 * alpha * big_r)
        # The two algebraically equal forms of the positive root, each used where it does not
        # cancel catastrophically.
        r = torch.where(b > 0, 2 * alpha * big_r / (b + disc).clamp_min(1e-30), 0.5 * (disc - b))
        z = self.z0 + d / (1 + beta / (alpha + r))[:, None]
        return z, -self._log_det(r, alpha, beta)
