r"""Named phi^4 ensembles: the couplings of the course and of the paper behind it.

Albergo, Kanwar and Shanahan (arXiv:1904.12072, table I) study five ensembles E1-E5 at
``L = 6 ... 14`` with :math:`m^2 = -4` and :math:`\lambda` chosen so that the pole mass in
lattice units shrinks as :math:`1/L`: :math:`m_p L \approx 4` on all five, a line of constant
physics towards the continuum limit (the correlation length grows with ``L`` in lattice units
while the box stays the same size in physical units). The couplings below are the paper's as a
public reproduction lists them (github.com/g-koutsou/phi4flow, ``ensembles.json``; the paper's
own table could not be read where the course was written); unit 11 measures :math:`m_pL` with
HMC and finds 3.95-4.19 on all five, which checks them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENSEMBLES", "Ensemble", "get_ensemble"]


@dataclass(frozen=True)
class Ensemble:
    """A named point of the phi^4 phase diagram on an ``L x L`` lattice."""

    name: str
    L: int
    m2: float
    lam: float
    m_p_L: float | None = None  # the pole mass times L that the couplings were chosen for


#: The paper's line of constant physics (E1-E5), and the course's L = 8 point (units 4-5).
ENSEMBLES: dict[str, Ensemble] = {e.name: e for e in (
    Ensemble("E1", 6, -4.0, 6.975, 4.0),
    Ensemble("E2", 8, -4.0, 6.008, 4.0),
    Ensemble("E3", 10, -4.0, 5.550, 4.0),
    Ensemble("E4", 12, -4.0, 5.267, 4.0),
    Ensemble("E5", 14, -4.0, 5.113, 4.0),
    Ensemble("course", 8, -4.0, 8.0),
)}


def get_ensemble(name: str) -> Ensemble:
    """The ensemble called ``name`` (``E1`` ... ``E5``, ``course``)."""
    try:
        return ENSEMBLES[name]
    except KeyError:
        raise ValueError(f"expected an ensemble among {sorted(ENSEMBLES)}, got {name!r}") from None
