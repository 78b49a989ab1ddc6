r"""Flows on :math:`\mathbb R^2`: a standard-normal prior and a stack of one family's layers.

The vector flows reuse :class:`lftutor.bijections.flow.Flow` with the prior
``SimpleNormal.standard((2,))``: samples have shape ``(batch, 2)``.

Families (``make_flow(family, n_layers)``):

* ``"planar"``, ``"radial"``: :math:`K` layers of :mod:`lftutor.bijections.planar` /
  :mod:`~lftutor.bijections.radial` (arXiv:1505.05770).
* ``"householder"``: a diagonal affine layer followed by :math:`K` Householder reflections, i.e.
  a Gaussian with a full covariance (arXiv:1611.09630). Reflections alone leave the isotropic
  prior unchanged, so this is the Gaussian baseline, not a way to fit curved densities.
* ``"sylvester"``: :math:`K` Sylvester layers (arXiv:1803.05649), variant ``"orthogonal"`` by
  default (``sylvester_variant=``), each followed by a fixed swap of the two coordinates for the
  triangular variant.
* ``"maf"``, ``"iaf"`` (affine, arXiv:1705.07057 / arXiv:1606.04934), ``"naf"`` (neural
  autoregressive, arXiv:1804.00779: a monotone tanh network per coordinate), ``"spline"``
  (rational-quadratic spline autoregressive) and ``"sos"`` (sum-of-squares polynomial,
  arXiv:1905.02325): :math:`K` autoregressive layers with order reversals between them, from
  :mod:`lftutor.bijections.autoregressive`. In two dimensions the sequential direction costs
  two passes of the masked network, so sampling (reverse KL) and density (maximum likelihood)
  are both cheap; ``naf`` and ``sos`` solve a scalar monotone equation for the density of data.
"""

from __future__ import annotations

import torch

from lftutor._checks import check_positive_int
from lftutor.bijections.autoregressive import make_autoregressive_layers
from lftutor.bijections.flow import Flow
from lftutor.bijections.householder import DiagonalAffine, Householder
from lftutor.bijections.planar import Planar
from lftutor.bijections.radial import Radial
from lftutor.bijections.sylvester import Sylvester
from lftutor.lattice.priors import SimpleNormal

OWN_FAMILIES = ("planar", "radial", "householder", "sylvester")
AUTOREGRESSIVE_FAMILIES = ("maf", "iaf", "naf", "spline", "sos")
FAMILIES = OWN_FAMILIES + AUTOREGRESSIVE_FAMILIES

# Adam learning rate and batch size that train each family well in a minute on a CPU core
# (benchmarks/flows_2d.py); the CLI's defaults.
TRAINING_DEFAULTS = {
    "planar": {"lr": 1e-2, "batch_size": 128},
    "radial": {"lr": 1e-2, "batch_size": 128},
    "householder": {"lr": 2e-2, "batch_size": 128},
    "sylvester": {"lr": 1e-2, "batch_size": 128},
}
_AR_DEFAULTS = {"lr": 3e-3, "batch_size": 128}


# family -> (kind, mode) of lftutor.bijections.autoregressive.make_autoregressive_layers
_AR_KINDS = {"maf": ("affine", "maf"), "iaf": ("affine", "iaf"), "naf": ("naf", "maf"),
             "spline": ("spline", "maf"), "sos": ("sos", "maf")}


def _autoregressive_layers(family: str, n_layers: int, dtype: torch.dtype):
    """Layers of an autoregressive family (MADE 32-32, order reversals in between)."""
    kind, mode = _AR_KINDS[family]
    layers = make_autoregressive_layers(kind, 2, n_layers, hidden_sizes=(32, 32), mode=mode)
    return [layer.to(dtype) for layer in layers]


def available_families() -> tuple[str, ...]:
    """The families that :func:`make_flow` builds (every one of :data:`FAMILIES`)."""
    return FAMILIES


def make_layers(family: str, n_layers: int, *, dtype: torch.dtype = torch.float32,
                sylvester_variant: str = "orthogonal") -> list[torch.nn.Module]:
    """The layers of a ``family`` flow on vectors of dimension 2 (see the module docstring)."""
    check_positive_int(n_layers, name="n_layers")
    if family == "planar":
        return [Planar(2, dtype=dtype) for _ in range(n_layers)]
    if family == "radial":
        return [Radial(2, dtype=dtype) for _ in range(n_layers)]
    if family == "householder":
        return [DiagonalAffine(2, dtype=dtype), Householder(2, n_reflections=n_layers, dtype=dtype)]
    if family == "sylvester":
        return [Sylvester(2, variant=sylvester_variant, flip=bool(k % 2), dtype=dtype)
                for k in range(n_layers)]
    if family in AUTOREGRESSIVE_FAMILIES:
        return list(_autoregressive_layers(family, n_layers, dtype))
    raise ValueError(f"expected a flow family in {FAMILIES}, got {family!r}")


def make_flow(family: str, n_layers: int, *, dtype: torch.dtype = torch.float32,
              sylvester_variant: str = "orthogonal") -> Flow:
    """A :class:`~lftutor.bijections.flow.Flow` on :math:`\\mathbb R^2` with a standard-normal prior.

    Shapes:
        ``flow.sample(n) -> (x (n, 2), log_q (n,))``; ``flow.log_prob(x (batch, 2)) -> (batch,)``.

    Example:
        >>> flow = make_flow("planar", 4)
        >>> x, log_q = flow.sample(3)
        >>> tuple(x.shape), tuple(log_q.shape)
        ((3, 2), (3,))
    """
    layers = make_layers(family, n_layers, dtype=dtype, sylvester_variant=sylvester_variant)
    return Flow(SimpleNormal.standard((2,), dtype=dtype), layers)


def training_defaults(family: str) -> dict:
    """``{"lr", "batch_size"}`` for ``family`` (the CLI's defaults)."""
    return dict(TRAINING_DEFAULTS.get(family, _AR_DEFAULTS))
