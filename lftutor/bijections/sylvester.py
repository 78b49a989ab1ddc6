r"""Sylvester flows (van den Berg, Hasenclever, Tomczak & Welling, arXiv:1803.05649).

A planar layer moves points along one direction; a Sylvester layer moves them in an
:math:`M`-dimensional subspace (:math:`M \le D`):

.. math::
    f(z) = z + Q R\, h(\tilde R Q^\top z + b), \qquad h = \tanh,

with :math:`Q \in \mathbb R^{D\times M}` of orthonormal columns and :math:`R, \tilde R` upper
triangular :math:`M\times M`. Sylvester's determinant identity
:math:`\det(I_D + AB) = \det(I_M + BA)` and triangularity give

.. math::
    \log\Big|\det\frac{\partial f}{\partial z}\Big|
    = \sum_{i=1}^M \log\big|1 + h'\big((\tilde R Q^\top z + b)_i\big)\, R_{ii}\tilde R_{ii}\big| .

**Invertibility.** With :math:`0 < h' \le 1`, the map is invertible when
:math:`R_{ii}\tilde R_{ii} > -1`; the diagonals are parametrised as :math:`\tanh` of free
numbers, so each product lies in :math:`(-1, 1)`.

**Variants** (how :math:`Q` is made): ``"orthogonal"``: the first :math:`M` columns of
:math:`\exp(S - S^\top)` (a rotation, exact to round-off); ``"householder"``: of a product of
Householder reflections; ``"triangular"``: a fixed permutation (identity, or the reversal on
every other layer), so :math:`Q R` itself is triangular.

**Inverse.** Not closed form, but with :math:`v = Q^\top z` and :math:`y = Q^\top x` the map is
:math:`y = v + R\,h(\tilde R v + b)`, triangular in :math:`v`: component :math:`M` depends on
:math:`v_M` alone, component :math:`i` on :math:`v_i` and the already-solved :math:`v_{>i}`. So
back substitution with one increasing scalar equation per component
(:func:`lftutor.bijections.monotone.solve_increasing`); the part of :math:`x` orthogonal to the
columns of :math:`Q` is unchanged. One Newton step with autograd on gives exact gradients.
"""

from __future__ import annotations

import torch
from torch import nn

from lftutor._checks import check_positive_int
from lftutor.bijections.base import Bijection
from lftutor.bijections.householder import householder_matrix
from lftutor.bijections.monotone import solve_increasing

__all__ = ["SYLVESTER_VARIANTS", "Sylvester"]

SYLVESTER_VARIANTS = ("orthogonal", "householder", "triangular")


class Sylvester(Bijection):
    r"""One Sylvester layer :math:`f(z) = z + QR\tanh(\tilde R Q^\top z + b)`.

    Args:
        dim: :math:`D`.
        m: :math:`M \le D` (default :math:`D`).
        variant: ``"orthogonal"``, ``"householder"`` or ``"triangular"`` (see the module).
        n_reflections: reflections for ``"householder"`` (default :math:`D`).
        flip: for ``"triangular"``, use the reversal permutation instead of the identity.
        dtype: parameter dtype.

    Shapes:
        ``forward(z)``: ``(batch, D) -> (x (batch, D), log_det (batch,))``;
        ``reverse(x)``: ``(batch, D) -> (z, log_det)`` (numerical, by back substitution).

    Example:
        >>> layer = Sylvester(2, variant="householder").double()
        >>> z = torch.randn(5, 2, dtype=torch.float64)
        >>> bool(torch.allclose(layer.reverse(layer(z)[0])[0], z))
        True
    """

    def __init__(self, dim: int, *, m: int | None = None, variant: str = "orthogonal",
                 n_reflections: int | None = None, flip: bool = False,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dim = check_positive_int(dim, name="dim")
        self.event_shape = (dim,)
        self.m = check_positive_int(dim if m is None else m, name="m")
        if self.m > dim:
            raise ValueError(f"expected m <= dim = {dim}, got {self.m}")
        if variant not in SYLVESTER_VARIANTS:
            raise ValueError(f"expected variant in {SYLVESTER_VARIANTS}, got {variant!r}")
        self.variant = variant
        mm = self.m
        self.r_upper = nn.Parameter(0.1 * torch.randn(mm, mm, dtype=dtype))
        self.rt_upper = nn.Parameter(0.1 * torch.randn(mm, mm, dtype=dtype))
        self.r_diag = nn.Parameter(torch.empty(mm, dtype=dtype).uniform_(-1, 1))
        self.rt_diag = nn.Parameter(torch.empty(mm, dtype=dtype).uniform_(-1, 1))
        self.b = nn.Parameter(torch.zeros(mm, dtype=dtype))
        if variant == "orthogonal":
            self.skew = nn.Parameter(torch.randn(dim, dim, dtype=dtype))
        elif variant == "householder":
            k = check_positive_int(dim if n_reflections is None else n_reflections, name="n_reflections")
            self.vs = nn.Parameter(torch.randn(k, dim, dtype=dtype))
        else:
            eye = torch.eye(dim, dtype=dtype)
            self.register_buffer("perm", eye.flip(1) if flip else eye)

    def q(self) -> torch.Tensor:
        """:math:`Q`, shape ``(D, M)`` with orthonormal columns."""
        if self.variant == "orthogonal" and self.dim == 2:
            # exp of the 2x2 skew matrix [[0, a], [-a, 0]] is the rotation by -a: same matrix as
            # matrix_exp below, an order of magnitude cheaper per step.
            a = self.skew[0, 1] - self.skew[1, 0]
            c, s = torch.cos(a), torch.sin(a)
            full = torch.stack([torch.stack([c, s]), torch.stack([-s, c])])
        elif self.variant == "orthogonal":
            full = torch.linalg.matrix_exp(self.skew - self.skew.T)
        elif self.variant == "householder":
            full = householder_matrix(self.vs)
        else:
            full = self.perm
        return full[:, : self.m]

    def triangles(self) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(R, \tilde R)`, upper triangular with diagonals :math:`\tanh(\cdot)`."""
        r = torch.triu(self.r_upper, 1) + torch.diag(torch.tanh(self.r_diag))
        rt = torch.triu(self.rt_upper, 1) + torch.diag(torch.tanh(self.rt_diag))
        return r, rt

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.q()
        r, rt = self.triangles()
        h = torch.tanh((z @ q) @ rt.T + self.b)
        x = z + (h @ r.T) @ q.T
        diag = torch.diagonal(r) * torch.diagonal(rt)
        log_det = torch.log(torch.abs(1 + (1 - h**2) * diag)).sum(dim=1)
        return x, log_det

    def reverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.q()
        r, rt = self.triangles()
        y = x @ q  # (batch, M) = v + tanh(v rt^T + b) r^T
        with torch.no_grad():
            rd, rtd, yd, bd = r.detach(), rt.detach(), y.detach(), self.b.detach()
            v = torch.zeros_like(yd)
            for i in reversed(range(self.m)):
                c = v[:, i + 1:] @ rtd[i, i + 1:] + bd[i]
                known = (torch.tanh(v[:, i + 1:] @ rtd[i + 1:, i + 1:].T + bd[i + 1:]) @ rd[i, i + 1:]
                         if i + 1 < self.m else torch.zeros_like(c))
                rii, sii = rd[i, i], rtd[i, i]

                def g(a, c=c, rii=rii, sii=sii):
                    t = torch.tanh(sii * a + c)
                    return a + rii * t, 1 + rii * sii * (1 - t**2)

                target = yd[:, i] - known
                v[:, i] = solve_increasing(g, target, target - rii.abs() - 1e-6, target + rii.abs() + 1e-6)
        # One Newton step of the whole triangular system with autograd on (exact gradients).
        h = torch.tanh(v @ rt.T + self.b)
        resid = v + h @ r.T - y
        slope = (1 - h.detach()**2)[:, None, :]
        jac = torch.eye(self.m, dtype=x.dtype, device=x.device) + (r.detach() * slope) @ rt.detach()
        v = v - torch.linalg.solve(jac, resid.unsqueeze(-1)).squeeze(-1)
        z = x - (y - v) @ q.T
        h = torch.tanh(v @ rt.T + self.b)
        diag = torch.diagonal(r) * torch.diagonal(rt)
        log_det = -torch.log(torch.abs(1 + (1 - h**2) * diag)).sum(dim=1)
        return z, log_det
