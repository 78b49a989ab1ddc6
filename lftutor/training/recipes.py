"""Named training recipes for the phi^4 flow: the tutorial's, and the course's fast default.

A recipe fixes the architecture and the optimiser settings; the physics point (``L``, ``m2``,
``lam``) and the budget (steps or seconds) are chosen by the caller.

* ``tutorial``: 16 affine couplings, as in arXiv:2101.08176 (what the notebooks teach).
* ``fast``: a zero-mode spline, four rational-quadratic spline couplings on the even sublattice
  and one that samples the odd sites given their neighbours (:mod:`lftutor.bijections.splines`), made
  mirror-symmetric (:class:`lftutor.bijections.symmetry.Z2Symmetric`, so it cannot lose one sign of the
  field), trained with a larger learning rate on a cosine schedule and one CPU thread. At
  ``L=8, m2=-4, lam=8`` it reaches ESS > 0.5 in 120 s on two CPU cores (see
  ``benchmarks/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from lftutor.bijections.coupling import make_phi4_affine_layers
from lftutor.bijections.flow import Flow
from lftutor.bijections.splines import ZeroModeSpline, make_phi4_spline_layers
from lftutor.bijections.symmetry import Z2Symmetric
from lftutor.lattice.priors import SimpleNormal
from lftutor.training.loop import cosine_schedule


@dataclass(frozen=True)
class Recipe:
    """Architecture and optimiser settings of a phi^4 flow.

    Attributes:
        name: how the CLI and the benchmarks call it.
        coupling: ``"affine"`` (:func:`lftutor.make_phi4_affine_layers`) or ``"spline"``
            (:func:`lftutor.bijections.splines.make_phi4_spline_layers`).
        n_layers, hidden_sizes, kernel_size: the coupling stack (for ``"spline"``,
            ``n_layers - 1`` even-sublattice couplings and one odd-given-even coupling).
        n_bins: spline bins (``"spline"`` only).
        zero_mode: start with a :class:`lftutor.bijections.splines.ZeroModeSpline` (``"spline"`` only).
        z2_symmetric: wrap the flow in :class:`lftutor.bijections.symmetry.Z2Symmetric`, the mixture of
            the flow and its mirror image, so that no training can lose one sign of the field.
        gradient: the gradient estimator of :func:`lftutor.training.loop.train` (``"reparam"`` or
            ``"path"``).
        batch_size, lr: Adam settings per step.
        lr_schedule: learning-rate factor as a function of progress in [0, 1], or ``None``.
        ess_every: how often the training loop computes the batch ESS.
        num_threads: torch CPU threads while training (``None``: leave torch's setting). One
            thread is faster for these small tensors, and far faster on a CPU shared with
            other processes, where several threads wait on each other.
    """

    name: str
    coupling: str = "affine"
    n_layers: int = 16
    hidden_sizes: tuple[int, ...] = (8, 8)
    kernel_size: int = 3
    n_bins: int = 8
    zero_mode: bool = False
    z2_symmetric: bool = False
    batch_size: int = 64
    lr: float = 1e-3
    lr_schedule: Callable[[float], float] | None = field(default=None, compare=False)
    ess_every: int = 1
    num_threads: int | None = None
    gradient: str = "reparam"

    def __post_init__(self):
        if self.coupling not in ("affine", "spline"):
            raise ValueError(f"expected coupling 'affine' or 'spline', got {self.coupling!r}")
        if self.coupling == "spline" and self.n_layers < 3:
            raise ValueError(f"expected n_layers >= 3 for a spline recipe (two even couplings and "
                             f"the odd one), got {self.n_layers}")

    def build_flow(self, lattice_shape, *, dtype=torch.float32, device=None) -> Flow | Z2Symmetric:
        """A freshly initialised flow for ``lattice_shape`` with this recipe's architecture.

        A :class:`lftutor.Flow`, or with ``z2_symmetric`` a :class:`lftutor.bijections.symmetry.Z2Symmetric`
        around one (both have ``sample(n)``, ``log_prob(phi)`` and ``state_dict()``).
        """
        prior = SimpleNormal.standard(lattice_shape, dtype=dtype, device=device)
        if self.coupling == "affine":
            layers = make_phi4_affine_layers(n_layers=self.n_layers, lattice_shape=lattice_shape,
                                             hidden_sizes=list(self.hidden_sizes),
                                             kernel_size=self.kernel_size)
        else:
            layers = list(make_phi4_spline_layers(
                lattice_shape=lattice_shape, n_even_layers=self.n_layers - 1, n_bins=self.n_bins,
                hidden_sizes=self.hidden_sizes, kernel_size=self.kernel_size))
            if self.zero_mode:
                layers.insert(0, ZeroModeSpline(lattice_shape, n_bins=self.n_bins))
        flow = Flow(prior, layers).to(dtype=dtype, device=device)
        return Z2Symmetric(flow) if self.z2_symmetric else flow

    def train_kwargs(self) -> dict:
        """Keyword arguments for :func:`lftutor.training.loop.train`."""
        return {"batch_size": self.batch_size, "lr": self.lr, "lr_schedule": self.lr_schedule,
                "ess_every": self.ess_every, "num_threads": self.num_threads,
                "gradient": self.gradient}


#: The recipe of the tutorial (arXiv:2101.08176): what the notebooks teach.
TUTORIAL = Recipe("tutorial")

#: The course's default for training: tuned for a 2-core CPU (see benchmarks/README.md).
FAST = Recipe("fast", coupling="spline", n_layers=5, hidden_sizes=(32, 32), kernel_size=3,
              n_bins=8, zero_mode=True, z2_symmetric=True, batch_size=128, lr=5e-3,
              lr_schedule=cosine_schedule, ess_every=10, num_threads=1)

RECIPES: dict[str, Recipe] = {r.name: r for r in (TUTORIAL, FAST)}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name`` (``"tutorial"`` or ``"fast"``)."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"expected a recipe among {sorted(RECIPES)}, got {name!r}") from None
