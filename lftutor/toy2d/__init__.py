"""Unit 7: flows on two-dimensional densities.

:mod:`~lftutor.toy2d.targets` (U1-U4 of arXiv:1505.05770, tapered; a Gaussian mixture; two
moons; exact log Z by quadrature; the exact reverse KL), :mod:`~lftutor.toy2d.flows` (a
standard-normal prior and one family's layers: planar, radial, Householder, Sylvester, and the
autoregressive families), :mod:`~lftutor.toy2d.training` (reverse KL with annealing, maximum
likelihood, both through :func:`lftutor.training.train`), :mod:`~lftutor.toy2d.plots`.
"""

from lftutor.toy2d.flows import FAMILIES, available_families, make_flow
from lftutor.toy2d.targets import (
           TARGET_NAMES,
           GaussianMixture2D,
           Target2D,
           exact_kl,
           get_target,
           log_z_grid,
           two_moons,
)

__all__ = ["FAMILIES", "TARGET_NAMES", "GaussianMixture2D", "Target2D", "available_families", "exact_kl",
           "get_target", "log_z_grid", "make_flow", "two_moons"]
