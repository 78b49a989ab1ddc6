"""Named training recipes for the phi^4 flow: the tutorial's, and the course's fast default.

A recipe fixes the architecture and the optimiser settings; the physics point (``L``, ``m2``,
``lam``) and the budget (steps or seconds) are chosen by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from lftutor.flows import Flow
from lftutor.layers import make_phi4_affine_layers
from lftutor.priors import SimpleNormal
from lftutor.train import cosine_schedule


@dataclass(frozen=True)
class Recipe:
    """Architecture and optimiser settings of a phi^4 flow.

    Attributes:
        name: how the CLI and the benchmarks call it.
        n_layers, hidden_sizes, kernel_size: the affine-coupling stack.
        batch_size, lr: Adam settings per step.
        lr_schedule: learning-rate factor as a function of progress in [0, 1], or ``None``.
        ess_every: how often the training loop computes the batch ESS.
    """

    name: str
    n_layers: int = 16
    hidden_sizes: tuple[int, ...] = (8, 8)
    kernel_size: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    lr_schedule: Callable[[float], float] | None = field(default=None, compare=False)
    ess_every: int = 1

    def build_flow(self, lattice_shape, *, dtype=torch.float32, device=None) -> Flow:
        """A freshly initialised flow for ``lattice_shape`` with this recipe's architecture."""
        prior = SimpleNormal.standard(lattice_shape, dtype=dtype, device=device)
        layers = make_phi4_affine_layers(n_layers=self.n_layers, lattice_shape=lattice_shape,
                                         hidden_sizes=list(self.hidden_sizes),
                                         kernel_size=self.kernel_size)
        return Flow(prior, layers).to(dtype=dtype, device=device)

    def train_kwargs(self) -> dict:
        """Keyword arguments for :func:`lftutor.train.train`."""
        return {"batch_size": self.batch_size, "lr": self.lr, "lr_schedule": self.lr_schedule,
                "ess_every": self.ess_every}


#: The recipe of the tutorial (arXiv:2101.08176): what the notebooks teach.
TUTORIAL = Recipe("tutorial")

#: The course's default for training: tuned for a 2-core CPU (see benchmarks/README.md).
FAST = Recipe("fast", n_layers=16, hidden_sizes=(16, 16), kernel_size=3, batch_size=256,
              lr=3e-3, lr_schedule=cosine_schedule, ess_every=5)

RECIPES: dict[str, Recipe] = {r.name: r for r in (TUTORIAL, FAST)}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name`` (``"tutorial"`` or ``"fast"``)."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"expected a recipe among {sorted(RECIPES)}, got {name!r}") from None
