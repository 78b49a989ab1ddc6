"""Bijections: every layer and stack of the course, with one interface.

``forward(z) -> (x, log_det)`` maps latent to data (field), ``reverse(x) -> (z, log_det)`` back;
``log_det`` has shape ``(batch,)``. Modules: :mod:`~lftutor.bijections.box_muller` (unit 1),
:mod:`~lftutor.bijections.coupling` (masks, affine couplings), :mod:`~lftutor.bijections.splines`,
:mod:`~lftutor.bijections.preconditioners`, :mod:`~lftutor.bijections.free_field` (the coupling
models of unit 6), :mod:`~lftutor.bijections.symmetry`, :mod:`~lftutor.bijections.flow` (a prior
and a stack of layers), :mod:`~lftutor.bijections.partitions`, :mod:`~lftutor.bijections.jacobians`.
"""

from lftutor.bijections.coupling import (
    AffineCoupling,
    SimpleCouplingLayer,
    make_checker_mask,
    make_conv_net,
    make_phi4_affine_layers,
)
from lftutor.bijections.flow import Flow

__all__ = ["AffineCoupling", "Flow", "SimpleCouplingLayer", "make_checker_mask", "make_conv_net",
           "make_phi4_affine_layers"]
