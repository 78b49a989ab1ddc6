r"""The sum-of-squares polynomial flow (Jaini, Selby & Yu, arXiv:1905.02325).

A strictly increasing polynomial is the integral of a positive one, and a polynomial that is
non-negative on the real line is a sum of squares. So each coordinate is mapped by

.. math::
    h(u) = c + \int_0^u \Big[\delta + \sum_{j=1}^{m}\Big(\sum_{p=0}^{r} a_{jp}\,t^p\Big)^2\Big]dt
         = c + \delta u + \sum_{n=0}^{2r} \frac{u^{n+1}}{n+1}\sum_{p+q=n} G_{pq},
    \qquad G = A^{\mathsf T}\!A,

a polynomial of odd degree :math:`2r+1`, with :math:`h'(u) = \delta + \sum_j(\sum_p a_{jp}u^p)^2
\ge \delta > 0`, so :math:`\log h'` is finite and :math:`h` is a bijection of
:math:`\mathbb R`. The coefficients :math:`c, a_{jp}` of coordinate :math:`k` come from a
:class:`~lftutor.bijections.autoregressive.MADE` of the coordinates before it. Affine
autoregressive flows are the case :math:`r = 0`. The inverse has no closed form; :math:`h` is
monotone, so it is found by bisection (:func:`lftutor.bijections.monotone.solve_monotone`,
which also gives exact gradients through the inverse).

Choices that keep training stable (measured in ``tests/test_autoregressive.py``):

* the polynomial is written in :math:`v = u/s` with a fixed ``input_scale`` :math:`s` (default
  4, the range of standardized data), :math:`h(u) = c + s\,H(u/s)`, :math:`h'(u) = H'(u/s)`:
  the same family of maps, but every coefficient acts at order one where the data are instead of
  with weight :math:`u^p`, so Adam's steps are of similar size for every power. With
  :math:`s = 1` the maximum-likelihood fit of a correlated Gaussian blew up (a test NLL of
  :math:`10^6` after 20 steps at lr :math:`10^{-2}`, and stalled at lr :math:`3\cdot10^{-3}`);
  with :math:`s = 4` it reaches the entropy to 0.03 nats in 100 steps;
* small degree (``degree=2``: quintic maps) and a few squares (``n_squares=3``); high powers of
  :math:`u` in the tails make large degrees stiff;
* the floor :math:`\delta` (``min_derivative``, default :math:`10^{-3}`, as for the splines)
  keeps :math:`h' > 0` even where all squares vanish together;
* the layer starts as the identity (:math:`c = 0`, :math:`\sum_j a_{j0}^2 = 1 - \delta`, other
  coefficients 0), so a fresh stack is the prior;
* no squashing of the input: a bounded map (tanh) in front would make the layer a bijection of
  an interval, not of :math:`\mathbb R`, and break the composition with unbounded layers.

Which direction is the polynomial: here, as for every layer of the package, ``forward`` maps
latent to data, :math:`x_k = h(z_k)`. With ``mode="iaf"`` that direction is one closed-form
pass; the paper's density estimator (polynomial from data to latent) is
``Inverse(SumOfSquaresPolynomial(..., mode="iaf"))``; with ``mode="maf"`` the density direction
is one MADE pass plus a bisection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lftutor._checks import check_positive_int
from lftutor.bijections.made import AutoregressiveBijection
from lftutor.bijections.monotone import solve_monotone

__all__ = ["SumOfSquaresPolynomial"]


class SumOfSquaresPolynomial(AutoregressiveBijection):
    r"""Sum-of-squares polynomial autoregressive layer (arXiv:1905.02325); math in the module doc.

    .. math::
        x_k = h\big(z_k;\ c_k, A_k\big), \qquad (c_k, A_k) = \text{MADE}(y)_k \text{ from } y_{<k},
        \qquad \log\Big|\det\frac{\partial x}{\partial z}\Big| = \sum_k \log h'(z_k),

    :math:`y = x` for ``mode="maf"``, :math:`y = z` for ``mode="iaf"``.

    Args:
        dim: ``D``.
        hidden_sizes: MADE hidden widths.
        degree: ``r``, degree of each squared polynomial (the map has degree ``2r + 1``).
        n_squares: ``m``, number of squares.
        min_derivative: :math:`\delta > 0`.
        input_scale: :math:`s`, the polynomial's variable is :math:`u/s` (module docstring).
        mode, order, context_dim, activation: as for
            :class:`~lftutor.bijections.autoregressive.MaskedAffineAutoregressive`.

    Shapes:
        ``forward(z[, context])``, ``reverse(x[, context])``:
        ``(batch, D)[, (batch, C)] -> ((batch, D), (batch,))``.

    Example:
        >>> layer = SumOfSquaresPolynomial(2, [16], degree=2, n_squares=2, mode="iaf")
        >>> z = torch.randn(5, 2, dtype=torch.float64)
        >>> layer = layer.double()
        >>> x, log_det = layer.forward(z)           # closed form
        >>> torch.allclose(layer.reverse(x)[0], z)  # bisection, two passes
        True
    """

    def __init__(self, dim: int, hidden_sizes: Sequence[int] = (32, 32), *, degree: int = 2,
                 n_squares: int = 3, min_derivative: float = 1e-3, input_scale: float = 4.0,
                 mode: str = "maf",
                 order: Sequence[int] | None = None, context_dim: int = 0,
                 activation: str = "relu"):
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
            raise ValueError(f"expected degree to be an integer >= 0, got {degree!r}")
        check_positive_int(n_squares, name="n_squares")
        if not 0 < min_derivative < 1:
            raise ValueError(f"expected 0 < min_derivative < 1, got {min_derivative!r}")
        if not input_scale > 0:
            raise ValueError(f"expected a positive input_scale, got {input_scale!r}")
        super().__init__(dim, 1 + n_squares * (degree + 1), hidden_sizes, mode=mode, order=order,
                         context_dim=context_dim, activation=activation)
        self.degree, self.n_squares, self.min_derivative = degree, n_squares, float(min_derivative)
        self.input_scale = float(input_scale)
        self.a0_offset = math.sqrt((1 - self.min_derivative) / n_squares)

    def coefficients(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, D, P) -> (c (batch, D), A (batch, D, m, r + 1))``."""
        c = params[..., 0]
        a = params[..., 1:].unflatten(-1, (self.n_squares, self.degree + 1))
        a = torch.cat([a[..., :1] + self.a0_offset, a[..., 1:]], dim=-1)
        return c, a

    def integral_coefficients(self, a: torch.Tensor) -> torch.Tensor:
        r""":math:`b_n = \frac{1}{n+1}\sum_{p+q=n} G_{pq}`, :math:`G = A^{\mathsf T}A`, the coefficient
        of :math:`u^{n+1}`: ``(batch, D, m, r + 1) -> (batch, D, 2r + 1)``."""
        r = self.degree
        # sum over squares of the polynomial products a_j * a_j, one shifted row per p
        square = sum(F.pad((a[..., p:p + 1] * a).sum(-2), (p, r - p)) for p in range(r + 1))
        return square / torch.arange(1, 2 * r + 2, dtype=a.dtype, device=a.device)

    def polynomial(self, u: torch.Tensor, c: torch.Tensor, a: torch.Tensor,
                   b: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``h(u)`` and ``h'(u)``, both ``(batch, D)``, for ``u`` ``(batch, D)``, ``c`` ``(batch, D)``,
        ``a`` ``(batch, D, m, r + 1)`` (and ``b`` from :meth:`integral_coefficients`, if known).

        With :math:`s` = ``input_scale`` and :math:`v = u/s`:
        :math:`h(u) = c + s\big[\delta v + \sum_n b_n v^{n+1}\big]`, :math:`h'(u) = \delta +
        \sum_j(\sum_p a_{jp}v^p)^2`."""
        if b is None:
            b = self.integral_coefficients(a)
        v = u / self.input_scale
        powers = v.unsqueeze(-1) ** torch.arange(self.degree + 1, device=u.device)  # (..., r+1)
        derivative = self.min_derivative + ((a * powers.unsqueeze(-2)).sum(-1) ** 2).sum(-1)
        horner = torch.zeros_like(v)
        for n in range(2 * self.degree, -1, -1):
            horner = horner * v + b[..., n]
        return c + self.input_scale * v * (self.min_derivative + horner), derivative

    def elementwise(self, u, params, inverse):
        c, a = self.coefficients(params)
        b = self.integral_coefficients(a)
        if not inverse:
            x, derivative = self.polynomial(u, c, a, b)
            return x, torch.log(derivative)
        z = solve_monotone(lambda v: self.polynomial(v, c, a, b), u)
        return z, -torch.log(self.polynomial(z, c, a, b)[1])
