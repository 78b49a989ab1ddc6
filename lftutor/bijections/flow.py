r"""A normalizing flow: a prior and a stack of bijections, with or without a context.

.. math::
    \phi = f(z),\quad z\sim r, \qquad
    \log q(\phi) = \log r(z) - \log\Big|\det\frac{\partial f}{\partial z}\Big|

With a context :math:`c` the same stack gives :math:`q(\phi\mid c)`: layers whose ``conditional``
attribute is true get the context, the others (permutations, plain layers) do not. The one loop
over the layers serves plain flows and the conditional ones of
:class:`lftutor.bijections.conditional.ConditionalFlow`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from lftutor._checks import check_positive_int
from lftutor.bijections.base import Bijection

__all__ = ["Flow"]


class Flow(Bijection):
    r"""Prior plus a stack of bijections, itself a bijection with the package convention.

    Args:
        prior: has ``sample_n(n)`` and ``log_prob(z)`` (e.g. :class:`lftutor.SimpleNormal`).
        layers: bijections applied in order in ``forward`` (latent -> field).

    Shapes:
        ``forward(z[, context])``: ``(batch, *L)[, (batch, C)] -> (phi (batch, *L), log_det (batch,))``;
        ``reverse(phi[, context])``: ``(batch, *L)[, (batch, C)] -> (z, log_det)``;
        ``sample(n)``: ``-> (phi (n, *L), log_q (n,))``; ``log_prob(phi[, context])``: ``-> (batch,)``.
        The context goes to the layers whose ``conditional`` is true (ignored by the others).

    Example:
        >>> from lftutor import SimpleNormal, make_phi4_affine_layers
        >>> prior = SimpleNormal.standard((4, 4))
        >>> flow = Flow(prior, make_phi4_affine_layers(n_layers=2, lattice_shape=(4, 4),
        ...                                            hidden_sizes=[4], kernel_size=3))
        >>> phi, log_q = flow.sample(3)
        >>> torch.allclose(flow.log_prob(phi), log_q, atol=1e-4)
        True
    """

    def __init__(self, prior, layers: Iterable[nn.Module]):
        super().__init__()
        self.prior = prior
        self.layers = layers if isinstance(layers, nn.ModuleList) else nn.ModuleList(layers)

    @property
    def lattice_shape(self) -> tuple[int, ...]:
        return tuple(self.prior.lattice_shape)

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent to field through every layer in order: ``(z, log|det dphi/dz|)``."""
        return self._through(self.layers, "forward", z, context)

    def reverse(self, phi: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Field to latent through every layer in reverse order: ``(z, log|det dz/dphi|)``."""
        return self._through(reversed(self.layers), "reverse", phi, context)

    @staticmethod
    def _through(layers: Iterable[nn.Module], direction: str, x: torch.Tensor,
                 context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        # A conditional layer always gets the context argument, so that a missing one (None)
        # meets that layer's own check and message rather than a TypeError.
        log_det = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in layers:
            step = getattr(layer, direction)
            x, ld = step(x, context) if getattr(layer, "conditional", False) else step(x)
            log_det = log_det + ld
        return x, log_det

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` fields and their log-density under the flow."""
        check_positive_int(n, name="the batch size")
        z = self.prior.sample_n(n)
        phi, log_det = self.forward(z)
        return phi, self.prior.log_prob(z) - log_det

    def log_prob(self, phi: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\log q(\phi) = \log r(f^{-1}(\phi)) + \log|\det \partial f^{-1}/\partial\phi|`."""
        # without a context, reverse is called as before contexts existed (a subclass or a test
        # may replace it by a one-argument function)
        z, log_det = self.reverse(phi) if context is None else self.reverse(phi, context)
        return self.prior.log_prob(z) + log_det
