r"""Autoregressive flows on vectors: MADE, affine (MAF / IAF) and rational-quadratic spline layers.

An autoregressive bijection transforms each coordinate with a monotone scalar map whose
parameters depend only on the coordinates *before* it in a fixed order,

.. math::
    x_k = h\big(z_k;\ \theta_k\big), \qquad \theta_k = \theta_k(y_{<k}), \qquad
    \log\Big|\det\frac{\partial x}{\partial z}\Big| = \sum_k \log h'\big(z_k;\ \theta_k\big),

so the Jacobian is triangular and its log-determinant is a sum of scalar log-derivatives. All
:math:`\theta_k` come from one masked network (:class:`MADE`, arXiv:1502.03509, in
:mod:`lftutor.bijections.made` with the base class of these layers) in one pass.
Which side :math:`y` is fixes which direction is cheap:

* ``mode="maf"`` (masked autoregressive flow, arXiv:1705.07057): :math:`y = x`, the data.
  ``reverse`` (data -> latent, density evaluation) is one network pass; ``forward``
  (sampling) must produce :math:`x_1, x_2, \dots` in turn: :math:`D` passes.
* ``mode="iaf"`` (inverse autoregressive flow, arXiv:1606.04934): :math:`y = z`, the latent.
  ``forward`` (sampling, with the density of the sample) is one pass; ``reverse`` of
  external data takes :math:`D` passes.

The sequential direction iterates :math:`y^{(t+1)} = \text{solve}\big(\theta(y^{(t)})\big)`
from :math:`y^{(0)} = 0`: after pass :math:`t` the first :math:`t` coordinates (in the order)
are exact, so :math:`D` passes give the exact inverse, and because :math:`\theta_k` depends only
on :math:`y_{<k}`, autograd through the unrolled passes gives the exact derivatives.

Layers here: :class:`MaskedAffineAutoregressive`, :class:`SplineAutoregressive` and
:class:`NeuralAutoregressive`; the
sum-of-squares polynomial flow is in :mod:`lftutor.bijections.polynomial`; :class:`Permutation`
reorders coordinates between layers (log-det 0) and :class:`Inverse` swaps a layer's
directions. Every layer takes an optional context vector (``context_dim > 0``): it enters the
MADE with full connectivity, giving the conditional layers of amortized inference
(:mod:`lftutor.bijections.conditional`).

Shapes: ``forward(z[, context])``: ``(batch, D)[, (batch, C)] -> ((batch, D), (batch,))``, and
the same for ``reverse``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lftutor._checks import check_positive_int
from lftutor.bijections.base import Bijection, Inverse
from lftutor.bijections.made import ACTIVATIONS, MADE, MODES, AutoregressiveBijection, MaskedLinear
from lftutor.bijections.monotone import solve_monotone
from lftutor.bijections.polynomial import SumOfSquaresPolynomial
from lftutor.bijections.splines import rational_quadratic_spline

__all__ = ["ACTIVATIONS", "KINDS", "MADE", "MODES", "AutoregressiveBijection", "Inverse",
           "MaskedAffineAutoregressive", "MaskedLinear", "NeuralAutoregressive", "Permutation",
           "SplineAutoregressive", "make_autoregressive_layers"]


class MaskedAffineAutoregressive(AutoregressiveBijection):
    r"""Affine autoregressive layer: MAF (arXiv:1705.07057) or IAF (arXiv:1606.04934).

    .. math::
        x_k = \mu_k + \sigma_k z_k, \qquad (\mu_k, \sigma_k) = \text{MADE}(y)_k \text{ from }
        y_{<k}, \qquad \log\Big|\det\frac{\partial x}{\partial z}\Big| = \sum_k \log\sigma_k,

    with :math:`y = x` for ``mode="maf"`` and :math:`y = z` for ``mode="iaf"``. The scale is
    kept in a safe range:

    * ``scale="tanh"``: :math:`\log\sigma = B\tanh(s/B)` with ``B = max_log_scale`` (a soft
      clamp: one layer scales by at most :math:`e^{\pm B}`, and the gradient never vanishes
      near :math:`s = 0`);
    * ``scale="sigmoid"``: the gated update of IAF, :math:`x = \sigma z + (1-\sigma) m` with
      :math:`\sigma = \mathrm{sigmoid}(s + 2)`, i.e. :math:`\mu = (1-\sigma)m` (contracting only:
      meant after a learned Gaussian, as in a VAE posterior).

    At initialisation (the MADE's last layer is zero) the ``"tanh"`` layer is the identity.

    Args:
        dim: ``D``.
        hidden_sizes: MADE hidden widths.
        mode: ``"maf"`` or ``"iaf"``.
        order: autoregressive order (a permutation of ``range(D)``).
        context_dim: ``C`` (0: unconditional).
        scale: ``"tanh"`` or ``"sigmoid"``.
        max_log_scale: ``B`` for ``scale="tanh"``.
        activation: MADE activation.

    Shapes:
        ``forward(z[, context])``, ``reverse(x[, context])``:
        ``(batch, D)[, (batch, C)] -> ((batch, D), (batch,))``.

    Example:
        >>> layer = MaskedAffineAutoregressive(3, [16], mode="iaf")
        >>> z = torch.randn(4, 3)
        >>> x, log_det = layer.forward(z)          # one pass
        >>> z_back, _ = layer.reverse(x)           # three passes
        >>> torch.allclose(z_back, z, atol=1e-5), log_det.shape
        (True, torch.Size([4]))
    """

    def __init__(self, dim: int, hidden_sizes: Sequence[int] = (32, 32), *, mode: str = "maf",
                 order: Sequence[int] | None = None, context_dim: int = 0, scale: str = "tanh",
                 max_log_scale: float = 3.0, activation: str = "relu"):
        if scale not in ("tanh", "sigmoid"):
            raise ValueError(f"expected scale 'tanh' or 'sigmoid', got {scale!r}")
        if not max_log_scale > 0:
            raise ValueError(f"expected a positive max_log_scale, got {max_log_scale!r}")
        super().__init__(dim, 2, hidden_sizes, mode=mode, order=order, context_dim=context_dim,
                         activation=activation)
        self.scale, self.max_log_scale = scale, float(max_log_scale)

    def shift_and_log_scale(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, D, 2) -> (mu (batch, D), log sigma (batch, D))``."""
        m, s = params[..., 0], params[..., 1]
        if self.scale == "tanh":
            return m, self.max_log_scale * torch.tanh(s / self.max_log_scale)
        log_sigma = F.logsigmoid(s + 2.0)
        return (1 - torch.exp(log_sigma)) * m, log_sigma

    def elementwise(self, u, params, inverse):
        mu, log_sigma = self.shift_and_log_scale(params)
        if inverse:
            return (u - mu) * torch.exp(-log_sigma), -log_sigma
        return mu + torch.exp(log_sigma) * u, log_sigma


class SplineAutoregressive(AutoregressiveBijection):
    r"""Rational-quadratic spline autoregressive layer (Durkan et al., arXiv:1906.04032).

    Each coordinate gets its own monotone spline on :math:`[-B, B]` (identity outside), the
    spline's ``K`` widths, ``K`` heights and ``K - 1`` interior derivatives coming from the MADE:

    .. math::
        x_k = g\big(z_k;\ \theta_k(y_{<k})\big), \qquad
        \log\Big|\det\frac{\partial x}{\partial z}\Big| = \sum_k \log g'\big(z_k;\ \theta_k\big),

    with :math:`y = x` (``"maf"``) or :math:`y = z` (``"iaf"``), and :math:`g` the package's
    :func:`lftutor.bijections.splines.rational_quadratic_spline` (whose inverse is closed
    form, so both directions are exact). Starts as the identity.

    Args:
        dim: ``D``.
        hidden_sizes: MADE hidden widths.
        n_bins: ``K``.
        bound: ``B``; keep the data (and the prior's bulk) inside it.
        mode, order, context_dim, activation: as for :class:`MaskedAffineAutoregressive`.

    Shapes:
        ``forward(z[, context])``, ``reverse(x[, context])``:
        ``(batch, D)[, (batch, C)] -> ((batch, D), (batch,))``.

    Example:
        >>> layer = SplineAutoregressive(2, [16], n_bins=6)
        >>> x, log_det = layer.forward(torch.randn(4, 2))
        >>> x.shape, log_det.shape
        (torch.Size([4, 2]), torch.Size([4]))
    """

    def __init__(self, dim: int, hidden_sizes: Sequence[int] = (32, 32), *, n_bins: int = 8,
                 bound: float = 5.0, mode: str = "maf", order: Sequence[int] | None = None,
                 context_dim: int = 0, activation: str = "relu"):
        check_positive_int(n_bins, name="n_bins")
        if not bound > 0:
            raise ValueError(f"expected a positive bound, got {bound!r}")
        super().__init__(dim, 3 * n_bins - 1, hidden_sizes, mode=mode, order=order,
                         context_dim=context_dim, activation=activation)
        self.n_bins, self.bound = n_bins, float(bound)

    def elementwise(self, u, params, inverse):
        k = self.n_bins
        return rational_quadratic_spline(u, params[..., :k], params[..., k:2 * k],
                                         params[..., 2 * k:], bound=self.bound, inverse=inverse)


class NeuralAutoregressive(AutoregressiveBijection):
    r"""Neural autoregressive layer: a monotone one-hidden-layer network per coordinate (NAF).

    In a neural autoregressive flow (Huang et al., arXiv:1804.00779) each coordinate is mapped
    by a small monotone neural network whose weights come from a MADE. The paper's deep sigmoidal
    transformer, :math:`\mathrm{logit}\big(\sum_i w_i\,\sigma(a_i u + b_i)\big)`, maps
    :math:`\mathbb R` onto :math:`\mathbb R` only in exact arithmetic (the sigmoids saturate,
    and the logit of a rounded 1 is infinite), so here the units are tanh with a linear term,

    .. math::
        h(u) = c + \delta u + \sum_{i=1}^{K} w_i\tanh(a_i u + b_i), \qquad
        h'(u) = \delta + \sum_i w_i a_i\big(1 - \tanh^2(a_i u + b_i)\big),

    with :math:`\delta, w_i, a_i > 0` (softplus), so :math:`h' \ge \delta > 0`, :math:`h` is a
    bijection of :math:`\mathbb R` with linear tails and a learned, possibly multi-step, middle.
    The inverse has no closed form: :func:`lftutor.bijections.monotone.solve_monotone`. The
    fresh layer is close to the identity (:math:`\delta = 1`, :math:`w_i = 0.007`, biases
    spread over :math:`[-2, 2]`).

    Args:
        dim: ``D``.
        hidden_sizes: MADE hidden widths.
        n_units: ``K``, tanh units per coordinate.
        min_slope: a floor added to :math:`\delta`.
        mode, order, context_dim, activation: as for :class:`MaskedAffineAutoregressive`.

    Shapes:
        ``forward(z[, context])``, ``reverse(x[, context])``:
        ``(batch, D)[, (batch, C)] -> ((batch, D), (batch,))``.

    Example:
        >>> layer = NeuralAutoregressive(2, [16], n_units=4).double()
        >>> z = torch.randn(3, 2, dtype=torch.float64)
        >>> torch.allclose(layer.reverse(layer.forward(z)[0])[0], z)
        True
    """

    def __init__(self, dim: int, hidden_sizes: Sequence[int] = (32, 32), *, n_units: int = 8,
                 min_slope: float = 1e-3, mode: str = "maf", order: Sequence[int] | None = None,
                 context_dim: int = 0, activation: str = "relu"):
        check_positive_int(n_units, name="n_units")
        if not min_slope > 0:
            raise ValueError(f"expected a positive min_slope, got {min_slope!r}")
        super().__init__(dim, 2 + 3 * n_units, hidden_sizes, mode=mode, order=order,
                         context_dim=context_dim, activation=activation)
        self.n_units, self.min_slope = n_units, float(min_slope)
        self.register_buffer("bias_offset", torch.linspace(-2, 2, n_units) if n_units > 1
                             else torch.zeros(1))

    def unit_parameters(self, params: torch.Tensor):
        """``(batch, D, P) -> c, delta (batch, D); w, a, b (batch, D, K)``."""
        k = self.n_units
        c = params[..., 0]
        delta = self.min_slope + F.softplus(params[..., 1] + 0.5413)  # softplus(0.5413) = 1
        w = F.softplus(params[..., 2:2 + k] - 5.0)
        a = F.softplus(params[..., 2 + k:2 + 2 * k] + 0.5413)
        b = params[..., 2 + 2 * k:] + self.bias_offset
        return c, delta, w, a, b

    @staticmethod
    def monotone(u, c, delta, w, a, b):
        """``h(u)`` and ``h'(u)``, ``(batch, D)`` each."""
        t = torch.tanh(a * u.unsqueeze(-1) + b)
        return c + delta * u + (w * t).sum(-1), delta + (w * a * (1 - t * t)).sum(-1)

    def elementwise(self, u, params, inverse):
        p = self.unit_parameters(params)
        if not inverse:
            x, slope = self.monotone(u, *p)
            return x, torch.log(slope)
        z = solve_monotone(lambda v: self.monotone(v, *p), u)
        return z, -torch.log(self.monotone(z, *p)[1])


class Permutation(Bijection):
    r"""Reorder the coordinates: :math:`x_i = z_{\pi(i)}`; volume preserving (log-det 0).

    Placed between autoregressive layers so that every coordinate is, in some layer, early in
    the order (conditioned on little) and, in another, late (conditioned on much).

    Args:
        permutation: :math:`\pi`, a permutation of ``range(D)``.

    Shapes:
        ``forward(z)``, ``reverse(x)``: ``(batch, D) -> ((batch, D), (batch,))`` (log-det zeros).

    Example:
        >>> flip = Permutation.reversal(3)
        >>> flip.forward(torch.tensor([[1., 2., 3.]]))[0]
        tensor([[3., 2., 1.]])
    """

    def __init__(self, permutation: Sequence[int]):
        super().__init__()
        perm = [int(i) for i in permutation]
        if not perm or sorted(perm) != list(range(len(perm))):
            raise ValueError(f"expected a permutation of range(D), got {perm}")
        self.dim = len(perm)
        self.event_shape = (self.dim,)
        self.register_buffer("permutation", torch.tensor(perm, dtype=torch.long))
        self.register_buffer("inverse_permutation", torch.argsort(self.permutation))

    @classmethod
    def reversal(cls, dim: int) -> Permutation:
        """The order reversal :math:`\\pi(i) = D - 1 - i`."""
        check_positive_int(dim, name="dim")
        return cls(list(range(dim - 1, -1, -1)))

    @staticmethod
    def _permute(x: torch.Tensor, index: torch.Tensor):
        return x[:, index], x.new_zeros(x.shape[0])

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None):
        """``(batch, D) -> ((batch, D), zeros (batch,))``; ``context`` is ignored."""
        return self._permute(z, self.permutation)

    def reverse(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """``(batch, D) -> ((batch, D), zeros (batch,))``; ``context`` is ignored."""
        return self._permute(x, self.inverse_permutation)


KINDS = ("affine", "spline", "naf", "sos")


def make_autoregressive_layers(kind: str, dim: int, n_layers: int, *,
                               hidden_sizes: Sequence[int] = (32, 32), mode: str = "maf",
                               context_dim: int = 0, **kwargs) -> nn.ModuleList:
    r"""``n_layers`` autoregressive layers of one kind with an order reversal between them.

    Args:
        kind: ``"affine"`` (:class:`MaskedAffineAutoregressive`), ``"spline"``
            (:class:`SplineAutoregressive`), ``"naf"`` (:class:`NeuralAutoregressive`) or ``"sos"``
            (:class:`lftutor.bijections.polynomial.SumOfSquaresPolynomial`).
        dim: ``D``.
        n_layers: number of autoregressive layers (``n_layers - 1`` reversals in between).
        hidden_sizes, mode, context_dim: passed to every layer.
        **kwargs: further keyword arguments of the layer class (``n_bins``, ``degree``, ...).

    Returns:
        ``nn.ModuleList``; wrap it as ``Flow(SimpleNormal.standard((D,)), layers)``.

    Example:
        >>> layers = make_autoregressive_layers("affine", 2, 3, hidden_sizes=[16])
        >>> [type(m).__name__ for m in layers]  # doctest: +NORMALIZE_WHITESPACE
        ['MaskedAffineAutoregressive', 'Permutation', 'MaskedAffineAutoregressive', 'Permutation',
         'MaskedAffineAutoregressive']
    """
    classes = {"affine": MaskedAffineAutoregressive, "spline": SplineAutoregressive,
               "naf": NeuralAutoregressive, "sos": SumOfSquaresPolynomial}
    if kind not in classes:
        raise ValueError(f"expected kind in {KINDS}, got {kind!r}")
    check_positive_int(dim, name="dim")
    check_positive_int(n_layers, name="n_layers")
    layers: list[nn.Module] = []
    for i in range(n_layers):
        if i:
            layers.append(Permutation.reversal(dim))
        layers.append(classes[kind](dim, hidden_sizes, mode=mode, context_dim=context_dim,
                                    **kwargs))
    return nn.ModuleList(layers)
