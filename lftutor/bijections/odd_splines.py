r"""Odd (:math:`Z_2`-equivariant) spline layers: flows with :math:`f(-z) = -f(z)` by construction.

The phi^4 action is even, :math:`S(-\phi) = S(\phi)`. A flow whose every layer is odd,
:math:`f(-z) = -f(z)` with :math:`\log|\det f'(-z)| = \log|\det f'(z)|`, pushes the even prior
:math:`r(-z) = r(z)` to an even density,

.. math::
    q(-\phi) = r(-z) \Big|\det\frac{\partial f}{\partial z}(-z)\Big|^{-1} = q(\phi),

for any weights, so it has the symmetry exactly, like the mirror-symmetric mixture of
:class:`lftutor.bijections.symmetry.Z2Symmetric`, but without that mixture's extra reverse pass
per sample. (Equivariant flows for the :math:`Z_2` symmetry of phi^4: e.g. arXiv:2007.07115.)
An odd flow can still be bimodal: the odd zero-mode spline :math:`g(-u) = -g(u)` can be steep
at :math:`u = 0` and so push the mass of the magnetization away from zero, to both signs alike.

How a spline coupling is made odd: write :math:`\theta(c)` for the spline parameters its
conditioner computes from the conditioning values :math:`c`, and :math:`\mathcal M\theta` for
the parameters of the mirror image :math:`\tilde g(z) = -g(-z)` of the spline (widths, heights
and interior derivatives in reverse order). The layer uses

.. math::
    \theta_{\rm odd}(c) = \theta(c) + \mathcal M\,\theta(-c),

which satisfies :math:`\theta_{\rm odd}(-c) = \mathcal M\,\theta_{\rm odd}(c)` (since
:math:`\mathcal M^2 = 1`), so :math:`g_{\theta_{\rm odd}(-c)}(-z) = -g_{\theta_{\rm odd}(c)}(z)`:
the coupling is odd. The conditioner runs once, on ``c`` and ``-c`` stacked along the batch, which
costs about as many operations as one run (what a small step pays for), where the mixture doubles
the operations of the whole flow.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lftutor._checks import check_lattice_shape, check_positive_int
from lftutor.bijections.splines import SplineCoupling, ZeroModeSpline, make_sublattice_masks

__all__ = ["OddSplineCoupling", "OddZeroModeSpline", "make_phi4_odd_spline_layers", "mirror_index"]


def mirror_index(n_bins: int) -> torch.Tensor:
    r"""Permutation of a coupling's ``3K - 1`` spline outputs that gives the mirror image's.

    The outputs are ``K`` widths, ``K`` heights, then ``K - 1`` interior derivatives; the mirror
    :math:`\tilde g(z) = -g(-z)` has each of the three lists reversed.

    Example:
        >>> mirror_index(2).tolist()
        [1, 0, 3, 2, 4]
    """
    check_positive_int(n_bins, name="n_bins")
    k = n_bins
    return torch.cat([torch.arange(k - 1, -1, -1), torch.arange(2 * k - 1, k - 1, -1),
                      torch.arange(3 * k - 2, 2 * k - 1, -1)])


class OddSplineCoupling(SplineCoupling):
    r"""A :class:`lftutor.bijections.splines.SplineCoupling` made odd: :math:`f(-z) = -f(z)`.

    Same masks, conditioner and spline as the parent, with the spline parameters symmetrised,
    :math:`\theta_{\rm odd}(c) = \theta(c) + \mathcal M\theta(-c)` (module docstring), so that
    flipping the sign of every input flips the sign of every output and leaves the log-det
    unchanged. A fresh layer is the identity (zero final weights).

    Args:
        update_mask, condition_mask, kernel_size, hidden_sizes, n_bins, bound: as for
            :class:`lftutor.bijections.splines.SplineCoupling`.

    Shapes:
        ``forward``/``reverse``: ``(batch, *L) -> ((batch, *L), (batch,))``.

    Example:
        >>> masks = make_sublattice_masks((4, 4))
        >>> layer = OddSplineCoupling(masks["odd"], masks["a"] + masks["b"], hidden_sizes=[8])
        >>> with torch.no_grad():
        ...     _ = layer.net[-1].bias.normal_()
        >>> z = torch.randn(3, 4, 4)
        >>> phi, log_det = layer.forward(z)
        >>> phi_m, log_det_m = layer.forward(-z)
        >>> torch.allclose(phi_m, -phi, atol=1e-5), torch.allclose(log_det_m, log_det, atol=1e-5)
        (True, True)
    """

    def __init__(self, update_mask: torch.Tensor, condition_mask: torch.Tensor, *,
                 kernel_size: int = 3, hidden_sizes: Sequence[int] = (32, 32), n_bins: int = 8,
                 bound: float = 5.0):
        super().__init__(update_mask, condition_mask, kernel_size=kernel_size,
                         hidden_sizes=hidden_sizes, n_bins=n_bins, bound=bound)
        self.register_buffer("mirror", mirror_index(n_bins))

    def spline_parameters(self, features: torch.Tensor) -> torch.Tensor:
        r""":math:`\theta(c) + \mathcal M\theta(-c)`: the conditioner runs once on ``c`` and ``-c``."""
        batch = features.shape[0]
        both = self.net(torch.cat([features, -features]))  # theta(c) and theta(-c), one pass
        return both[:batch] + both[batch:].index_select(-1, self.mirror)


class OddZeroModeSpline(ZeroModeSpline):
    r"""A :class:`lftutor.bijections.splines.ZeroModeSpline` whose spline is odd, :math:`g(-u) = -g(u)`.

    The learned widths, heights and interior derivatives are symmetrised,
    :math:`\theta_{\rm odd} = \theta + \mathcal M\theta`, so the knots sit symmetrically about
    0. The layer then maps :math:`-z` to :math:`-\phi` with the same log-det :math:`\log g'(u)`.
    A steep :math:`g` at :math:`u = 0` makes the magnetization bimodal, symmetric by construction.

    Args:
        lattice_shape, n_bins, bound: as for :class:`lftutor.bijections.splines.ZeroModeSpline`.

    Shapes:
        ``forward``/``reverse``: ``(batch, *L) -> ((batch, *L), (batch,))``.

    Example:
        >>> layer = OddZeroModeSpline((4, 4))
        >>> with torch.no_grad():
        ...     _ = layer.widths.normal_()
        >>> z = torch.randn(3, 4, 4)
        >>> torch.allclose(layer.forward(-z)[0], -layer.forward(z)[0], atol=1e-5)
        True
    """

    def spline_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`\theta + \mathcal M\theta`: widths and heights ``(2, K)``, derivatives ``(K - 1,)``."""
        wh, d = super().spline_parameters()
        return wh + wh.flip(-1), d + d.flip(-1)


def make_phi4_odd_spline_layers(*, lattice_shape: Sequence[int], n_even_layers: int = 4,
                                n_bins: int = 8, hidden_sizes: Sequence[int] = (32, 32),
                                kernel_size: int = 3, bound: float = 5.0,
                                zero_mode: bool = True) -> nn.ModuleList:
    r"""The layers of :func:`lftutor.bijections.splines.make_phi4_spline_layers`, every one odd.

    An optional :class:`OddZeroModeSpline` first, then ``n_even_layers``
    :class:`OddSplineCoupling` s alternating between the halves ``a`` and ``b`` of the even
    sublattice, and one that updates the odd sites given all even ones. With an even prior the
    flow's density satisfies :math:`q(-\phi) = q(\phi)` for any weights.

    Returns:
        ``nn.ModuleList``; wrap it with :class:`lftutor.Flow`.

    Example:
        >>> layers = make_phi4_odd_spline_layers(lattice_shape=(4, 4), n_even_layers=2,
        ...                                      hidden_sizes=[8])
        >>> [type(layer).__name__ for layer in layers]
        ['OddZeroModeSpline', 'OddSplineCoupling', 'OddSplineCoupling', 'OddSplineCoupling']
    """
    shape = check_lattice_shape(lattice_shape)
    if isinstance(n_even_layers, bool) or not isinstance(n_even_layers, int) or n_even_layers < 0:
        raise ValueError(f"expected n_even_layers to be an integer >= 0, got {n_even_layers!r}")
    masks = make_sublattice_masks(shape)
    even = masks["a"] + masks["b"]
    plan = [(masks["a"], masks["b"]) if i % 2 == 0 else (masks["b"], masks["a"])
            for i in range(n_even_layers)]
    plan.append((masks["odd"], even))
    layers: list[nn.Module] = [OddZeroModeSpline(shape, n_bins=n_bins, bound=bound)] if zero_mode else []
    layers += [OddSplineCoupling(upd, cond, kernel_size=kernel_size, hidden_sizes=hidden_sizes,
                                 n_bins=n_bins, bound=bound) for upd, cond in plan]
    return nn.ModuleList(layers)
