"""Autograde spec of unit 02_phi4_lattice: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
    mistakes=(
        Mistake("phi4_action",
                "2 * phi - torch.roll(phi, 1, dims=dim) - torch.roll(phi, -1, dims=dim)",
                "phi - torch.roll(phi, 1, dims=dim)", "one-sided difference: half the kinetic term"),
        Mistake("gaussian_log_prob", "-0.5 * z**2 - 0.5 * math.log(2 * math.pi)", "-0.5 * z**2",
                "drops the normalization -log(2 pi)/2 per site"),
        Mistake("slope_one_intercept", "(y - x).mean()", "(x - y).mean()",
                "intercept with the wrong sign"),
    ),
    cheats=(
        Cheat("phi4_action",
              "def phi4_action(phi, m2, lam):\n    return torch.zeros(phi.shape[0], dtype=phi.dtype)\n"),
        Cheat("gaussian_log_prob",
              "def gaussian_log_prob(z):\n    return torch.zeros(z.shape[0], dtype=z.dtype)\n"),
        Cheat("slope_one_intercept", "def slope_one_intercept(x, y):\n    return 0.0\n"),
    ),
)
