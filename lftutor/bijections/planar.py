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
:func:`solve_increasing` does it by Newton steps safeguarded by bisection; one extra Newton step
taken with autograd on gives the exact gradient of the root (implicit function theorem), so the
inverse can be trained through (maximum likelihood).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lftutor._checks import check_positive_int
from lftutor.bijections.base import Bijection

__all__ = ["Planar", "solve_increasing"]


def solve_increasing(fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                     target: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, *,
                     max_iter: int = 100) -> torch.Tensor:
    r"""Solve :math:`g(a) = t` elementwise for an increasing :math:`g`, without autograd.

    Newton's method, falling back to bisection whenever a Newton step leaves the current bracket;
    the bracket shrinks every iteration, so it converges for any continuous increasing ``g``.

    Args:
        fn: ``a -> (g(a), g'(a))``, elementwise, any shape.
        target: :math:`t`, same shape as ``a``.
        lo, hi: brackets with :math:`g(lo) \le t \le g(hi)` (broadcastable to ``target``).
        max_iter: iterations at most (stops earlier once every root is found to round-off).

    Returns:
        The roots, detached, shape of ``target``.
    """
    with torch.no_grad():
        lo = torch.broadcast_to(lo, target.shape).clone()
        hi = torch.broadcast_to(hi, target.shape).clone()
        a = 0.5 * (lo + hi)
        tol = 4 * torch.finfo(target.dtype).eps
        for _ in range(max_iter):
            g, dg = fn(a)
            resid = g - target
            lo = torch.where(resid < 0, a, lo)
            hi = torch.where(resid > 0, a, hi)
            newton = a - resid / dg
            inside = (newton > lo) & (newton < hi) & torch.isfinite(newton)
            a_new = torch.where(inside, newton, 0.5 * (lo + hi))
            step = (a_new - a).abs()
            a = a_new
            if bool((step <= tol * (1 + a.abs())).all()) or bool(((hi - lo) <= tol * (1 + a.abs())).all()):
                break
    return a


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
        (numerical: :func:`solve_increasing`).

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
        wu = self.w @ self.u
        return self.u + (-1 + F.softplus(wu) - wu) * self.w / (self.w @ self.w).clamp_min(1e-12)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.u_hat()
        a = z @ self.w + self.b
        t = torch.tanh(a)
        x = z + t[:, None] * u
        log_det = torch.log(torch.abs(1 + (1 - t**2) * (self.w @ u)))
        return x, log_det

    def reverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.u_hat()
        c = self.w @ u
        y = x @ self.w + self.b  # = a + c tanh(a)

        def g(a):
            t = torch.tanh(a)
            return a + c * t, 1 + c * (1 - t**2)

        spread = c.detach().abs() + 1e-6
        a0 = solve_increasing(lambda a: tuple(v.detach() for v in g(a)), y.detach(),
                              y.detach() - spread, y.detach() + spread)
        # One Newton step with autograd on: same value, exact gradient of the root.
        g0, dg0 = g(a0)
        a = a0 - (g0 - y) / dg0.detach()
        t = torch.tanh(a)
        z = x - t[:, None] * u
        log_det = -torch.log(torch.abs(1 + (1 - t**2) * c))
        return z, log_det
