r"""A normalizing flow: a prior and a stack of bijections.

.. math::
    \phi = f(z),\quad z\sim r, \qquad
    \log q(\phi) = \log r(z) - \log\Big|\det\frac{\partial f}{\partial z}\Big|
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from lftutor._checks import check_positive_int
from lftutor.bijections.base import Bijection

__all__ = ["Flow", "apply_flow_to_prior"]


class Flow(Bijection):
    r"""Prior plus a stack of bijections, itself a bijection with the package convention.

    Args:
        prior: has ``sample_n(n)`` and ``log_prob(z)`` (e.g. :class:`lftutor.SimpleNormal`).
        layers: bijections applied in order in ``forward`` (latent -> field).

    Shapes:
        ``forward(z)``: ``(batch, *L) -> (phi (batch, *L), log_det (batch,))``;
        ``reverse(phi)``: ``(batch, *L) -> (z, log_det)``;
        ``sample(n)``: ``-> (phi (n, *L), log_q (n,))``; ``log_prob(phi)``: ``-> (batch,)``.

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

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for layer in self.layers:
            z, ld = layer.forward(z)
            log_det = log_det + ld
        return z, log_det

    def reverse(self, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = torch.zeros(phi.shape[0], dtype=phi.dtype, device=phi.device)
        for layer in reversed(self.layers):
            phi, ld = layer.reverse(phi)
            log_det = log_det + ld
        return phi, log_det

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` fields and their log-density under the flow."""
        check_positive_int(n, name="the batch size")
        z = self.prior.sample_n(n)
        phi, log_det = self.forward(z)
        return phi, self.prior.log_prob(z) - log_det

    def log_prob(self, phi: torch.Tensor) -> torch.Tensor:
        r""":math:`\log q(\phi) = \log r(f^{-1}(\phi)) + \log|\det \partial f^{-1}/\partial\phi|`."""
        z, log_det = self.reverse(phi)
        return self.prior.log_prob(z) + log_det


def apply_flow_to_prior(prior, layers: Iterable[nn.Module], *, batch_size: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``batch_size`` latents from ``prior`` and push them through ``layers``.

    Returns:
        ``(phi, log_q)`` of shapes ``(batch, *L)`` and ``(batch,)``.
    """
    check_positive_int(batch_size, name="batch_size")
    z = prior.sample_n(batch_size)
    log_q = prior.log_prob(z)
    for layer in layers:
        z, log_det = layer.forward(z)
        log_q = log_q - log_det
    return z, log_q
