r"""Lattice actions: the scalar :math:`\phi^4` theory and the Gaussian free field.

Both live on a periodic hypercubic lattice of any dimension; a field has shape
``(batch, *lattice_shape)`` and an action has shape ``(batch,)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property

import torch

from lftutor._checks import check_field, check_lattice_shape


def _neighbour_sum(phi: torch.Tensor) -> torch.Tensor:
    r"""``sum_mu [phi(x+mu) + phi(x-mu)]`` with periodic boundaries, shape as ``phi``."""
    total = torch.zeros_like(phi)
    for mu in range(1, phi.dim()):
        total = total + torch.roll(phi, 1, mu) + torch.roll(phi, -1, mu)
    return total


class ScalarPhi4Action:
    r"""Euclidean lattice action of a real scalar field with a quartic self-interaction.

    .. math::
        S(\phi) = \sum_x \Big[ \phi(x) \sum_{\mu=1}^{d} \big(2\phi(x) - \phi(x+\hat\mu)
                  - \phi(x-\hat\mu)\big) + m^2 \phi(x)^2 + \lambda \phi(x)^4 \Big]

    on a periodic lattice of any dimension ``d`` (the tutorial's normalisation, arXiv:2101.08176,
    eq. 2; the kinetic term equals ``phi^T (-Laplacian) phi``).

    Args:
        m2: bare mass squared :math:`m^2` (may be negative).
        lam: quartic coupling :math:`\lambda \ge 0`.

    Shapes:
        ``__call__``: ``(batch, *lattice_shape) -> (batch,)``.

    Example:
        >>> action = ScalarPhi4Action(m2=-4.0, lam=8.0)
        >>> action(torch.zeros(2, 8, 8))
        tensor([0., 0.])
    """

    def __init__(self, m2: float, lam: float):
        m2, lam = float(m2), float(lam)
        if not math.isfinite(m2) or not math.isfinite(lam):
            raise ValueError(f"expected finite m2 and lam, got m2={m2}, lam={lam}")
        if lam < 0:
            raise ValueError(f"expected lam >= 0 (otherwise the action is unbounded below), got {lam}")
        self.m2, self.lam = m2, lam

    def __repr__(self) -> str:
        return f"ScalarPhi4Action(m2={self.m2}, lam={self.lam})"

    def __call__(self, phi: torch.Tensor) -> torch.Tensor:
        check_field(phi, name="phi")
        d = phi.dim() - 1
        kinetic = phi * (2 * d * phi - _neighbour_sum(phi))
        density = kinetic + self.m2 * phi**2 + self.lam * phi**4
        return density.flatten(1).sum(dim=1)


def laplacian_matrix(lattice_shape: Sequence[int], *, dtype=torch.float64) -> torch.Tensor:
    r"""The periodic lattice Laplacian :math:`\Delta` as a dense ``(V, V)`` matrix.

    :math:`(\Delta\phi)(x) = \sum_\mu [\phi(x+\hat\mu) + \phi(x-\hat\mu) - 2\phi(x)]`, with sites
    ordered as ``phi.flatten()`` orders them (row-major). ``V = prod(lattice_shape)``.
    """
    shape = check_lattice_shape(lattice_shape)
    volume = math.prod(shape)
    eye = torch.eye(volume, dtype=dtype).reshape(volume, *shape)
    # Column j of Delta is Delta applied to the j-th unit field.
    cols = _neighbour_sum(eye) - 2 * len(shape) * eye
    return cols.reshape(volume, volume).T.contiguous()


class FreeFieldAction:
    r"""Gaussian free field: :math:`S(\phi) = \tfrac12 \phi^T K \phi`, :math:`K = -\Delta + m^2`.

    Everything is known exactly: the precision matrix :math:`K`, the covariance
    :math:`\Sigma = K^{-1}`, its Cholesky factor, and
    :math:`\log Z = \tfrac{V}{2}\log 2\pi - \tfrac12 \log\det K`.

    Args:
        m2: mass squared, must be > 0 (the zero mode of :math:`-\Delta` needs it).
        lattice_shape: e.g. ``(8, 8)``.

    Example:
        >>> gff = FreeFieldAction(0.25, (4, 4))
        >>> gff(torch.zeros(3, 4, 4)).shape
        torch.Size([3])
    """

    def __init__(self, m2: float, lattice_shape: Sequence[int]):
        m2 = float(m2)
        if not m2 > 0:
            raise ValueError(f"expected m2 > 0 for the free field (else it is not normalisable), got {m2}")
        self.m2 = m2
        self.lattice_shape = check_lattice_shape(lattice_shape)

    def __repr__(self) -> str:
        return f"FreeFieldAction(m2={self.m2}, lattice_shape={self.lattice_shape})"

    def __call__(self, phi: torch.Tensor) -> torch.Tensor:
        check_field(phi, self.lattice_shape, name="phi")
        d = len(self.lattice_shape)
        k_phi = (2 * d + self.m2) * phi - _neighbour_sum(phi)
        return 0.5 * (phi * k_phi).flatten(1).sum(dim=1)

    @cached_property
    def precision(self) -> torch.Tensor:
        """:math:`K = -\\Delta + m^2`, float64, shape ``(V, V)``."""
        volume = math.prod(self.lattice_shape)
        return -laplacian_matrix(self.lattice_shape) + self.m2 * torch.eye(volume, dtype=torch.float64)

    @cached_property
    def covariance(self) -> torch.Tensor:
        """:math:`\\Sigma = K^{-1}`, float64, shape ``(V, V)``."""
        return torch.linalg.inv(self.precision)

    @cached_property
    def cholesky(self) -> torch.Tensor:
        """Lower-triangular :math:`L` with :math:`L L^T = \\Sigma`, float64, ``(V, V)``."""
        return torch.linalg.cholesky(self.covariance)

    @cached_property
    def log_z(self) -> float:
        r""":math:`\log Z = \tfrac{V}{2}\log 2\pi - \tfrac12\log\det K`."""
        volume = math.prod(self.lattice_shape)
        return 0.5 * volume * math.log(2 * math.pi) - 0.5 * float(torch.linalg.slogdet(self.precision)[1])

    def sample_n(self, n: int, *, dtype=torch.float64) -> torch.Tensor:
        """Exact samples :math:`\\phi = L\\,\\epsilon`, shape ``(n, *lattice_shape)``."""
        eps = torch.randn(n, self.cholesky.shape[0], dtype=torch.float64)
        return (eps @ self.cholesky.T).reshape(n, *self.lattice_shape).to(dtype)
