"""Autograde spec of unit 10_u1_gauge: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
    mistakes=(
        Mistake("plaquette_angles", "torch.roll(t1, -1, dims=1) - torch.roll(t0, -1, dims=2)",
                "torch.roll(t1, 1, dims=1) - torch.roll(t0, 1, dims=2)",
                "rolls by +1: takes x - mu-hat for the neighbour x + mu-hat (the charge uses it too)",
                fails=("test_plaquette_angles", "test_topological_charge")),
        Mistake("gauge_transform", "a0 = alpha - torch.roll(alpha, -1, dims=1)",
                "a0 = torch.roll(alpha, -1, dims=1) - alpha",
                "direction 0 picks up alpha(x + 0hat) - alpha(x): reversed signs"),
        Mistake("topological_charge", "p - 2 * math.pi * torch.ceil((p - math.pi) / (2 * math.pi))",
                "p - 2 * math.pi * torch.floor((p + math.pi) / (2 * math.pi))",
                "wraps into [-pi, pi) instead of (-pi, pi]: a plaquette of exactly -pi stays, +pi becomes "
                "-pi (right on random links; the boundary case catches it). The [0, 2 pi) mistake, one "
                "per answer here, is tested in tests/test_u1.py"),
        Mistake("metropolis_chain", "lw[i] - lw[current]", "lw[i] - lw[i - 1]",
                "compares with the previous proposal instead of the state the chain holds"),
    ),
    cheats=(
        Cheat("plaquette_angles", "def plaquette_angles(theta):\n"
                                  "    return torch.zeros_like(theta[:, 0])\n\n\n"
                                  "def wilson_action(theta, beta):\n"
                                  "    return torch.zeros(theta.shape[0])\n"),
        Cheat("gauge_transform", "def gauge_transform(theta, alpha):\n    return torch.zeros_like(theta)\n"),
        Cheat("topological_charge", "def topological_charge(theta):\n"
                                    "    return torch.zeros(theta.shape[0], dtype=theta.dtype)\n"),
        Cheat("metropolis_chain", "def metropolis_chain(values, log_w, u):\n"
                                  "    return torch.zeros_like(values)\n"),
    ),
)
