"""Lattice physics: actions (phi^4, the free field), the Gaussian prior, observables, MCMC and HMC.

Modules: :mod:`~lftutor.lattice.actions`, :mod:`~lftutor.lattice.priors`,
:mod:`~lftutor.lattice.observables`, :mod:`~lftutor.lattice.mcmc`.
"""

from lftutor.lattice.actions import FreeFieldAction, ScalarPhi4Action
from lftutor.lattice.priors import SimpleNormal

__all__ = ["FreeFieldAction", "ScalarPhi4Action", "SimpleNormal"]
