"""Bijections: every layer and stack of the course, with one interface.

``forward(z) -> (x, log_det)`` maps latent to data (field), ``reverse(x) -> (z, log_det)`` back;
``log_det`` has shape ``(batch,)`` (``log|det dx/dz|`` forward, ``log|det dz/dx|`` reverse). Every
layer is a :class:`~lftutor.bijections.base.Bijection`, whose base class checks the inputs of
``forward`` and ``reverse`` once for all layers; :class:`~lftutor.bijections.base.Inverse` swaps
a layer's directions.

Lattice fields (units 1-6, 10):

* :mod:`~lftutor.bijections.box_muller` (unit 1), :mod:`~lftutor.bijections.coupling` (masks,
  affine couplings), :mod:`~lftutor.bijections.splines` (rational-quadratic splines and spline
  couplings), :mod:`~lftutor.bijections.preconditioners`, :mod:`~lftutor.bijections.free_field`
  (the coupling models of unit 6), :mod:`~lftutor.bijections.symmetry` (the mirror-symmetric
  mixture), :mod:`~lftutor.bijections.gauge` (gauge-equivariant couplings of U(1) links),
  :mod:`~lftutor.bijections.plaquette_chain` (the autoregressive U(1) flow for two dimensions);
* :mod:`~lftutor.bijections.flow` (a prior and a stack of layers),
  :mod:`~lftutor.bijections.partitions`, :mod:`~lftutor.bijections.jacobians`.

Vectors (units 7-9):

* :mod:`~lftutor.bijections.planar`, :mod:`~lftutor.bijections.radial`,
  :mod:`~lftutor.bijections.householder`, :mod:`~lftutor.bijections.sylvester`;
* :mod:`~lftutor.bijections.autoregressive` (affine, spline and neural autoregressive
  layers), :mod:`~lftutor.bijections.polynomial` (sum-of-squares), both built on
  :mod:`~lftutor.bijections.made` (MADE and the autoregressive base class), with the scalar
  solver of :mod:`~lftutor.bijections.monotone`;
* :mod:`~lftutor.bijections.conditional` (layers whose parameters depend on a context);
* :mod:`~lftutor.bijections.continuous` (continuous flows on torchdiffeq) and
  :mod:`~lftutor.bijections.trace` (exact and Hutchinson traces).
"""

from lftutor.bijections.autoregressive import (
    MADE,
    MaskedAffineAutoregressive,
    NeuralAutoregressive,
    Permutation,
    SplineAutoregressive,
    make_autoregressive_layers,
)
from lftutor.bijections.base import Bijection, Inverse
from lftutor.bijections.conditional import ConditionalFlow, ConditionalIAF, ConditionalPlanar
from lftutor.bijections.coupling import (
    AffineCoupling,
    SimpleCouplingLayer,
    make_checker_mask,
    make_conv_net,
    make_phi4_affine_layers,
)
from lftutor.bijections.flow import Flow
from lftutor.bijections.free_field import DenseCoupling, DiagonalScale
from lftutor.bijections.gauge import GaugeEquivariantCoupling, LinkBijection
from lftutor.bijections.householder import DiagonalAffine, Householder
from lftutor.bijections.made import AutoregressiveBijection
from lftutor.bijections.odd_splines import OddSplineCoupling, OddZeroModeSpline
from lftutor.bijections.planar import Planar
from lftutor.bijections.plaquette_chain import PlaquetteChainLayer
from lftutor.bijections.polynomial import SumOfSquaresPolynomial
from lftutor.bijections.preconditioners import FourierScale
from lftutor.bijections.radial import Radial
from lftutor.bijections.splines import SplineCoupling, ZeroModeSpline
from lftutor.bijections.sylvester import Sylvester
from lftutor.bijections.symmetry import Z2Symmetric

# Every public bijection of the package (tests/test_bijections.py checks that none is missing).
__all__ = ["MADE", "AffineCoupling", "AutoregressiveBijection", "Bijection", "ConditionalFlow",
           "ConditionalIAF", "ConditionalPlanar", "ContinuousFlow", "DenseCoupling", "DiagonalAffine",
           "DiagonalScale", "Flow", "FourierScale", "GaugeEquivariantCoupling", "Householder", "Inverse",
           "LinkBijection", "MaskedAffineAutoregressive", "NeuralAutoregressive", "OddSplineCoupling",
           "OddZeroModeSpline", "Permutation", "Planar", "PlaquetteChainLayer", "Radial",
           "SimpleCouplingLayer", "SplineAutoregressive", "SplineCoupling", "SumOfSquaresPolynomial",
           "Sylvester", "Z2Symmetric", "ZeroModeSpline", "make_autoregressive_layers", "make_checker_mask",
           "make_conv_net", "make_phi4_affine_layers"]


def __getattr__(name: str):
    # ContinuousFlow is imported on first use: it needs torchdiffeq, which `import lftutor` should
    # not have to load (units 1-7 never use it).
    if name == "ContinuousFlow":
        from lftutor.bijections.continuous import ContinuousFlow

        return ContinuousFlow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
