r"""Householder reflections (Tomczak & Welling, arXiv:1611.09630) and a diagonal affine layer.

A reflection through the hyperplane orthogonal to :math:`v`,

.. math::
    H_v = I - 2\frac{v v^\top}{\|v\|^2}, \qquad H_v^{-1} = H_v, \qquad |\det H_v| = 1,

is volume preserving, and a product of :math:`K` of them can reach any orthogonal matrix
(:math:`K = D` suffices). On its own such a stack cannot change an isotropic Gaussian (it is
rotation invariant): it is used after a layer that breaks the isotropy, e.g. :class:`DiagonalAffine`
(together: a Gaussian with a full covariance), or to build the orthogonal matrix of a Sylvester
layer (:mod:`lftutor.bijections.sylvester`).
"""

from __future__ import annotations

import torch
from torch import nn

from lftutor._checks import check_positive_int
from lftutor.bijections.base import Bijection

__all__ = ["DiagonalAffine", "Householder", "householder_matrix"]


def householder_matrix(vs: torch.Tensor) -> torch.Tensor:
    r"""The orthogonal matrix :math:`H_{v_K}\cdots H_{v_1}` of the rows of ``vs``.

    Shapes: ``(K, D) -> (D, D)``.
    """
    d = vs.shape[1]
    q = torch.eye(d, dtype=vs.dtype, device=vs.device)
    for v in vs:
        q = q - 2 * torch.outer(v, v @ q) / (v @ v).clamp_min(1e-30)
    return q


class Householder(Bijection):
    r"""A stack of :math:`K` reflections, :math:`x = H_{v_K}\cdots H_{v_1} z`; ``log_det`` is zero.

    Args:
        dim: :math:`D`.
        n_reflections: :math:`K`.
        dtype: parameter dtype.

    Shapes:
        ``forward(z)``: ``(batch, D) -> (x (batch, D), log_det (batch,) zeros)``;
        ``reverse(x)``: the reflections in the opposite order (each is its own inverse).

    Example:
        >>> layer = Householder(2, n_reflections=2)
        >>> z = torch.randn(4, 2)
        >>> bool(torch.allclose(layer.reverse(layer(z)[0])[0], z, atol=1e-6))
        True
    """

    def __init__(self, dim: int, *, n_reflections: int = 2, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dim = check_positive_int(dim, name="dim")
        self.event_shape = (dim,)
        check_positive_int(n_reflections, name="n_reflections")
        self.vs = nn.Parameter(torch.randn(n_reflections, dim, dtype=dtype))

    @staticmethod
    def _reflect(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return x - 2 * (x @ v)[:, None] * v / (v @ v).clamp_min(1e-30)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for v in self.vs:
            z = self._reflect(z, v)
        return z, z.new_zeros(z.shape[0])

    def reverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for v in reversed(self.vs):
            x = self._reflect(x, v)
        return x, x.new_zeros(x.shape[0])


class DiagonalAffine(Bijection):
    r"""Elementwise :math:`x = \mu + e^{s}\odot z`; :math:`\log|\det| = \sum_i s_i`.

    Shapes:
        ``forward(z)``: ``(batch, D) -> (x (batch, D), log_det (batch,))``; ``reverse`` its inverse.

    Example:
        >>> layer = DiagonalAffine(2)
        >>> with torch.no_grad():
        ...     _ = layer.shift.fill_(1.0)
        ...     _ = layer.log_scale.fill_(0.5)
        >>> x, log_det = layer(torch.tensor([[0.0, 2.0]]))
        >>> [round(v, 4) for v in x[0].tolist()]  # 1 + e^{0.5} z
        [1.0, 4.2974]
        >>> log_det.tolist()  # 0.5 per coordinate
        [1.0]
        >>> layer.reverse(x)[0].tolist()
        [[0.0, 2.0]]
    """

    def __init__(self, dim: int, *, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dim = check_positive_int(dim, name="dim")
        self.event_shape = (dim,)
        self.shift = nn.Parameter(torch.zeros(dim, dtype=dtype))
        self.log_scale = nn.Parameter(torch.zeros(dim, dtype=dtype))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.shift + torch.exp(self.log_scale) * z, self.log_scale.sum().expand(z.shape[0])

    def reverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x - self.shift) * torch.exp(-self.log_scale), (-self.log_scale.sum()).expand(x.shape[0])
