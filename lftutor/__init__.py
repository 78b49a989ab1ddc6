"""lftutor: reference implementations for a course on normalizing flows for lattice field theory.

Conventions used everywhere in the package
------------------------------------------
* A **field** (a batch of lattice configurations) is a tensor of shape
  ``(batch, *lattice_shape)``, e.g. ``(64, 8, 8)`` for 64 configurations on an 8x8 lattice.
  Actions, log-densities and log-weights have shape ``(batch,)``.
* Every bijection (a single coupling layer or a whole stack) offers

  - ``forward(z) -> (phi, log_det)``: latent variable ``z`` to field ``phi``, with
    ``log_det = log |det d phi / d z|``;
  - ``reverse(phi) -> (z, log_det)``: field to latent, with
    ``log_det = log |det d z / d phi|`` (so forward and reverse log-dets cancel).

  ``log_det`` has shape ``(batch,)``, summed over sites. A stack sums the log-dets of its layers.
* The flow density of a sample ``phi = f(z)`` is ``log q(phi) = log r(z) - log|det df/dz|``.
* The target is ``p(phi) = exp(-S(phi)) / Z`` with unknown ``Z``; we use ``log p = -S`` and call
  ``log p - log q`` the **log-weights** (they exceed the normalised ones by the constant ``log Z``).

Reference: M. S. Albergo, G. Kanwar, P. E. Shanahan, "Flow-based generative models for Markov
chain Monte Carlo in lattice field theory", arXiv:1904.12072; and the tutorial
arXiv:2101.08176.
"""

from lftutor.bijections.coupling import (
    AffineCoupling,
    SimpleCouplingLayer,
    make_checker_mask,
    make_conv_net,
    make_phi4_affine_layers,
)
from lftutor.bijections.flow import Flow
from lftutor.device import default_device, default_dtype, grab
from lftutor.lattice.actions import FreeFieldAction, ScalarPhi4Action
from lftutor.lattice.priors import SimpleNormal
from lftutor.training.loop import History, train
from lftutor.training.metrics import acceptance_rate, ess, log_weights, reverse_kl

__all__ = [
    "AffineCoupling",
    "Flow",
    "FreeFieldAction",
    "History",
    "ScalarPhi4Action",
    "SimpleCouplingLayer",
    "SimpleNormal",
    "acceptance_rate",
    "default_device",
    "default_dtype",
    "ess",
    "grab",
    "log_weights",
    "make_checker_mask",
    "make_conv_net",
    "make_phi4_affine_layers",
    "reverse_kl",
    "train",
]


def _version() -> str:
    # pyproject.toml is the one place the version is written; an installed package (editable or
    # not) carries it in its metadata. A source tree on sys.path without an install has none.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lftutor")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _version()
