r"""Linear, physics-informed first layers: a learned Gaussian in momentum space.

A free field :math:`S = \tfrac12\phi^T K\phi` with :math:`K = -\Delta + m^2` is sampled exactly by
scaling each Fourier mode of white noise by :math:`\hat K(k)^{-1/2}`. :class:`FourierScale`
learns such a scale per momentum, so that the first layer already gets the long-wavelength
correlations right and the couplings after it only learn the local, non-Gaussian rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from lftutor._checks import check_lattice_shape
from lftutor.bijections.base import Bijection

__all__ = ["FourierScale"]


class FourierScale(Bijection):
    r"""Scale every Fourier mode by a learned positive factor: a circulant, symmetric linear map.

    .. math::
        \phi = \mathcal F^{-1}\big[\sigma(k)\,\mathcal F[z](k)\big], \qquad
        \log\Big|\det\frac{\partial\phi}{\partial z}\Big| = \sum_{k} \log\sigma(k),

    with :math:`\sigma(k) = \sigma(-k) = e^{s(k)} > 0` (so :math:`\phi` is real and the map is
    the symmetric matrix :math:`U^\dagger \mathrm{diag}(\sigma) U`, :math:`U` the unitary DFT).
    The sum runs over all :math:`V` momenta; the parameters live on the half-spectrum of
    ``torch.fft.rfftn`` and the modes :math:`\pm k` share one. With
    :math:`\sigma(k) = \hat K(k)^{-1/2}` it maps white noise to the free field of :math:`K`
    (the Gaussian example of arXiv:2101.08176; the same idea as Fourier acceleration,
    Davies et al., Phys. Rev. D 37, 1581 (1988)).

    Args:
        lattice_shape: ``L``.

    Shapes:
        ``forward``/``reverse``: ``(batch, *L) -> ((batch, *L), (batch,))``.

    Example:
        >>> layer = FourierScale((4, 4))
        >>> z = torch.randn(3, 4, 4)
        >>> phi, log_det = layer.forward(z)   # identity at initialisation
        >>> torch.allclose(phi, z, atol=1e-6), log_det.shape
        (True, torch.Size([3]))
    """

    input_names = ("z", "phi")
    match_parameters = False  # the log-scales are converted to the input's dtype

    def __init__(self, lattice_shape: Sequence[int]):
        super().__init__()
        self.lattice_shape = self.event_shape = check_lattice_shape(lattice_shape)
        half = (*self.lattice_shape[:-1], self.lattice_shape[-1] // 2 + 1)
        self.log_scale = nn.Parameter(torch.zeros(half))
        # How many of the V momenta each half-spectrum entry stands for (k and -k, or itself).
        multiplicity = torch.full(half, 2.0)
        multiplicity[..., 0] = 1.0
        if self.lattice_shape[-1] % 2 == 0:
            multiplicity[..., -1] = 1.0
        self.register_buffer("multiplicity", multiplicity)
        self.dims = tuple(range(1, len(self.lattice_shape) + 1))

    @classmethod
    def free_field(cls, lattice_shape: Sequence[int], m2: float, *,
                   dtype=torch.float64) -> FourierScale:
        r"""The layer with :math:`\sigma(k) = \hat K(k)^{-1/2}`,
        :math:`\hat K(k) = m^2 + \sum_\mu 4\sin^2(k_\mu/2)`: white noise in, the free field out."""
        layer = cls(lattice_shape).to(dtype)
        half = layer.log_scale.shape
        momenta = torch.meshgrid(*[2 * math.pi * torch.arange(n, dtype=torch.float64) / size
                                   for n, size in zip(half, layer.lattice_shape, strict=True)],
                                 indexing="ij")
        k_hat = m2 + sum(4 * torch.sin(k / 2) ** 2 for k in momenta)
        with torch.no_grad():
            layer.log_scale.copy_(-0.5 * torch.log(k_hat))
        return layer

    def _symmetric_log_scale(self) -> torch.Tensor:
        # On the self-conjugate planes (last index 0 and L/2) the entries k and -k are both
        # stored; average them so that sigma(k) = sigma(-k) and the output stays real.
        s = self.log_scale
        if s.dim() == 1:  # 1-D: the self-conjugate entries are single momenta
            return s
        flipped = torch.flip(s, dims=tuple(range(s.dim() - 1)))
        flipped = torch.roll(flipped, shifts=(1,) * (s.dim() - 1), dims=tuple(range(s.dim() - 1)))
        sym = 0.5 * (s + flipped)
        last = s.shape[-1] - 1
        keep = torch.zeros_like(s, dtype=torch.bool)
        keep[..., 0] = True
        if self.lattice_shape[-1] % 2 == 0:
            keep[..., last] = True
        return torch.where(keep, sym, s)

    def _transform(self, x: torch.Tensor, sign: float):
        s = self._symmetric_log_scale().to(x.dtype)
        x_k = torch.fft.rfftn(x, dim=self.dims)
        y = torch.fft.irfftn(x_k * torch.exp(sign * s), s=self.lattice_shape, dim=self.dims)
        log_det = sign * (self.multiplicity.to(x.dtype) * s).sum()
        return y, log_det.expand(x.shape[0])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent to field: ``(batch, *L) -> ((batch, *L), (batch,))``."""
        return self._transform(z, 1.0)

    def reverse(self, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Field to latent: ``(batch, *L) -> ((batch, *L), (batch,))``."""
        return self._transform(phi, -1.0)
