"""Autograde spec of unit fixture: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
    mistakes=(
        Mistake("square", "return x * x", "return x * abs(x)",
                "wrong sign for negative numbers (only the hidden test sees it)"),
        Mistake("mean_energy", "** 2))", "))", "averages phi instead of phi^2"),
        Mistake("magnetization", "np.mean(phi)", "np.sum(phi)", "sum instead of mean"),
    ),
    cheats=(
        Cheat("mean_energy", "def mean_energy(phi):\n    return 0.0\n"),
    ),
)
