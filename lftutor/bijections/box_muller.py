r"""The Box-Muller map of unit 1: two uniform numbers to two independent standard normals.

.. math::
    z_1 = \sqrt{-2\ln u_1}\,\cos(2\pi u_2), \qquad z_2 = \sqrt{-2\ln u_1}\,\sin(2\pi u_2),

with :math:`u_1, u_2 \in (0, 1)`. Its Jacobian determinant is
:math:`\det \partial z/\partial u = -2\pi/u_1`, so :math:`\log|\det| = \log 2\pi - \log u_1` and the
density of :math:`z` is :math:`r(u)/|\det| = u_1/2\pi = e^{-|z|^2/2}/2\pi`.
(G. E. P. Box and M. E. Muller, Ann. Math. Statist. 29 (1958) 610.)
"""

from __future__ import annotations

import math

import torch

__all__ = ["box_muller", "box_muller_log_det"]


def _check_points(u: torch.Tensor) -> torch.Tensor:
    if not isinstance(u, torch.Tensor) or u.dim() != 2 or u.shape[1] != 2:
        got = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
        raise ValueError(f"expected u of shape (batch, 2), got {got}")
    if not u.is_floating_point():
        raise ValueError(f"expected a floating dtype for u, got {u.dtype}")
    return u


def box_muller(u: torch.Tensor) -> torch.Tensor:
    r"""Map uniform points ``u`` in :math:`(0,1)^2` to standard normal points.

    Shapes:
        ``(batch, 2) -> (batch, 2)``.

    Example:
        >>> box_muller(torch.tensor([[math.exp(-0.5), 0.0]]))
        tensor([[1., 0.]])
    """
    _check_points(u)
    radius = torch.sqrt(-2 * torch.log(u[:, 0]))
    angle = 2 * math.pi * u[:, 1]
    return torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=-1)


def box_muller_log_det(u: torch.Tensor) -> torch.Tensor:
    r""":math:`\log|\det \partial z/\partial u| = \log 2\pi - \log u_1`, shape ``(batch,)``.

    Example:
        >>> box_muller_log_det(torch.tensor([[1.0, 0.3]]))
        tensor([1.8379])
    """
    _check_points(u)
    return math.log(2 * math.pi) - torch.log(u[:, 0])
