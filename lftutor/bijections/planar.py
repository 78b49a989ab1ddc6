r"""Planar flow (Rezende & Mohamed, arXiv:1505.05770, sec. 4.1 and appendix A.1).

One layer moves every point along a fixed direction :math:`\hat u` by an amount that depends on
its position along another direction :math:`w`:

.. math::
    f(z) = z + \hat u\, h(w^\top z + b), \qquad h = \tanh .

Its Jacobian is the identity plus a rank-one matrix, so the matrix determinant lemma
:math:`\det(I + a c^\top) = 1 + c^\top a` gives the log-determinant in :math:`O(D)`:

.. math::
    \log\Big|\det\frac{\partial f}{\partial z}\Big| = \log\big|1 + h'(w^\top z + b)\, w^\top\hat u\big| .

**Invertibility.** Along :math:`w`, with :math:`a = w^\top z + b`, the map reads
:math:`w^\top f(z) + b = a + (w^\top \hat u)\tanh a`, a function of one variable whose slope is
:math:`1 + (w^\top\hat u)\,\mathrm{sech}^2 a`. It is increasing for every :math:`a` exactly when
:math:`w^\top\hat u \ge -1`. The free parameter :math:`u` is therefore mapped to

.. math::
    \hat u = u + \big[m(w^\top u) - w^\top u\big]\frac{w}{\|w\|^2},
    \qquad m(s) = -1 + \log(1 + e^{s}),

which changes only the component of :math:`u` along :math:`w` and makes
:math:`w^\top\hat u = m(w^\top u) > -1`.

**Inverse.** There is no closed form, but it is one scalar equation: solve
:math:`a + c\tanh a = w^\top x + b` (with :math:`c = w^\top\hat u`) for :math:`a` (increasing,
and :math:`|a - (w^\top x + b)| \le |c|` brackets the root), then :math:`z = x - \hat u\tanh a`.
:func:`lftutor.bijections.monotone.solve_monotone` does it by Newton steps safeguarded by
bisection; one extra Newton step taken with autograd on gives the exact gradient of the root
(implicit function theorem), so the inverse can be trained through (maximum likelihood). The
functional pieces :func:`planar_u_hat`, :func:`planar_transform` and :func:`planar_inverse` take
per-sample parameters too: :class:`lftutor.bijections.conditional.ConditionalPlanar` uses them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lftutor._checks import check_positive_int
from lftutor.bijections.base import Bijection
from lftutor.bijections.monotone import solve_increasing, solve_monotone

__all__ = ["Planar", "planar_inverse", "planar_transform", "planar_u_hat", "solve_increasing"]


def planar_u_hat(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r"""The constrained :math:`\hat u = u + [m(w^\top u) - w^\top u]\,w/\lVert w\rVert^2`, :math:`m(s) =
    -1 + \log(1+e^s)`, so that :math:`w^\top\hat u > -1` (arXiv:1505.05770, appendix A.1).

    Shapes:
        ``u, w``: ``(*B, D)`` (one pair, or one per sample) -> ``(*B, D)``.
    """
    wu = (w * u).sum(-1, keepdim=True)
    return u + (F.softplus(wu) - 1.0 - wu) * w / (w * w).sum(-1, keepdim=True).clamp_min(1e-12)


def planar_transform(z: torch.Tensor, u_hat: torch.Tensor, w: torch.Tensor, b: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Planar map and its log-determinant (matrix determinant lemma).

    .. math::
        x = z + \hat u\tanh(w^\top z + b), \qquad
        \log\Big|\det\frac{\partial x}{\partial z}\Big|
        = \log\big(1 + (1 - \tanh^2(w^\top z + b))\, w^\top\hat u\big),

    positive because :math:`w^\top\hat u > -1` (use :func:`planar_u_hat`), so no absolute value
    is needed, and ``log1p`` keeps the digits of a small :math:`w^\top\hat u`.

    Shapes:
        ``z``: ``(batch, D)``; ``u_hat, w``: ``(D,)`` or ``(batch, D)``; ``b``: ``()`` or ``(batch,)``
        -> ``(x (batch, D), log_det (batch,))``.
    """
    t = torch.tanh((w * z).sum(-1) + b)
    return z + u_hat * t.unsqueeze(-1), torch.log1p((1 - t * t) * (w * u_hat).sum(-1))


def planar_inverse(x: torch.Tensor, u_hat: torch.Tensor, w: torch.Tensor, b: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Inverse of :func:`planar_transform`: solve along :math:`w`, then subtract along :math:`\hat u`.

    With :math:`a = w^\top z + b` and :math:`c = w^\top\hat u > -1`, :math:`w^\top x + b = a +
    c\tanh a` is strictly increasing in :math:`a`, and :math:`|a - (w^\top x + b)| \le |c|`
    brackets the root; :func:`~lftutor.bijections.monotone.solve_monotone` finds it (with implicit
    gradients) and :math:`z = x - \hat u\tanh a`.

    Shapes:
        as :func:`planar_transform`; returns ``(z (batch, D), log|det dz/dx| (batch,))``.
    """
    c = (w * u_hat).sum(-1)
    target = (w * x).sum(-1) + b

    def along_w(a):
        t = torch.tanh(a)
        return a + c * t, 1 + c * (1 - t * t)

    spread = c.detach().abs() + 1e-6
    a = solve_monotone(along_w, target, lo=target.detach() - spread, hi=target.detach() + spread)
    t = torch.tanh(a)
    return x - u_hat * t.unsqueeze(-1), -torch.log1p((1 - t * t) * c)


class Planar(Bijection):
    r"""One planar layer :math:`f(z) = z + \hat u\tanh(w^\top z + b)` on vectors of dimension ``dim``.

    Args:
        dim: :math:`D`, the dimension of each sample.
        init_scale: standard deviation of the random initial ``w`` and ``u``.
        dtype: parameter dtype.

    Shapes:
        ``forward(z)``: ``(batch, D) -> (x (batch, D), log_det (batch,))`` with
        :math:`\log|\det\partial x/\partial z|`;
        ``reverse(x)``: ``(batch, D) -> (z, log_det)`` with :math:`\log|\det\partial z/\partial x|`
        (numerical: :func:`planar_inverse`).

    Example:
        >>> layer = Planar(2).double()
        >>> z = torch.randn(5, 2, dtype=torch.float64)
        >>> x, ld = layer(z)
        >>> z2, ld2 = layer.reverse(x)
        >>> bool(torch.allclose(z2, z)) and bool(torch.allclose(ld + ld2, 0 * ld))
        True
    """

    def __init__(self, dim: int, *, init_scale: float = 0.5, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dim = check_positive_int(dim, name="dim")
        self.event_shape = (dim,)
        self.w = nn.Parameter(init_scale * torch.randn(dim, dtype=dtype))
        self.u = nn.Parameter(init_scale * torch.randn(dim, dtype=dtype))
        self.b = nn.Parameter(torch.zeros((), dtype=dtype))

    def u_hat(self) -> torch.Tensor:
        r""":math:`\hat u`, constrained: :math:`w^\top\hat u = -1 + \mathrm{softplus}(w^\top u) > -1`."""
        return planar_u_hat(self.u, self.w)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return planar_transform(z, self.u_hat(), self.w, self.b)

    def reverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return planar_inverse(x, self.u_hat(), self.w, self.b)
