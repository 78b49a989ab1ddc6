"""Prior (base) distributions over lattice fields."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lftutor._checks import check_field, check_lattice_shape, check_positive_int


class SimpleNormal(torch.nn.Module):
    r"""Uncorrelated Gaussian over a lattice: every site independent, :math:`N(\mu_x, \sigma_x^2)`.

    .. math::
        \log r(z) = \sum_x \Big[-\frac{(z_x-\mu_x)^2}{2\sigma_x^2} - \log\sigma_x
                    - \tfrac12\log 2\pi\Big]

    Args:
        loc: means, shape ``lattice_shape``.
        scale: standard deviations (positive), shape ``lattice_shape``.

    Example:
        >>> prior = SimpleNormal(torch.zeros(4, 4), torch.ones(4, 4))
        >>> z = prior.sample_n(3)            # (3, 4, 4)
        >>> prior.log_prob(z).shape
        torch.Size([3])
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor):
        loc = torch.as_tensor(loc)
        scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        if loc.shape != scale.shape:
            raise ValueError(f"expected loc and scale of the same shape, got {tuple(loc.shape)} "
                             f"and {tuple(scale.shape)}")
        if not loc.is_floating_point():
            raise ValueError(f"expected floating loc and scale, got {loc.dtype}")
        if bool((scale <= 0).any()):
            raise ValueError("expected every scale (standard deviation) to be > 0")
        super().__init__()
        # Buffers, so that ``flow.to(device)`` moves the prior along with the layers.
        self.register_buffer("loc", loc)
        self.register_buffer("scale", scale)
        self.lattice_shape = tuple(loc.shape)

    @classmethod
    def standard(cls, lattice_shape: Sequence[int], *, dtype=torch.float32, device=None):
        """Unit Gaussian on every site of a lattice of shape ``lattice_shape``."""
        shape = check_lattice_shape(lattice_shape)
        return cls(torch.zeros(shape, dtype=dtype, device=device),
                   torch.ones(shape, dtype=dtype, device=device))

    def sample_n(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` independent configurations, shape ``(n, *lattice_shape)``."""
        check_positive_int(n, name="the number of samples (batch size)")
        eps = torch.randn((n, *self.lattice_shape), dtype=self.loc.dtype,
                          device=self.loc.device, generator=generator)
        return self.loc + self.scale * eps

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102 - nn.Module call = log_prob
        return self.log_prob(z)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Log-density of each configuration: ``(batch, *lattice_shape) -> (batch,)``."""
        check_field(z, self.lattice_shape, name="z")
        u = (z - self.loc) / self.scale
        per_site = -0.5 * u**2 - torch.log(self.scale) - 0.5 * math.log(2 * math.pi)
        return per_site.flatten(1).sum(dim=1)
