"""Autograde spec of unit 04_training: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
    mistakes=(
        Mistake("reverse_kl", "(log_q - log_p).mean()", "(log_p - log_q).mean()",
                "KL with log p and log q swapped"),
        Mistake("ess", " - math.log(n)", "", "ESS not divided by N"),
        Mistake("estimate_log_z", " - math.log(log_w.shape[0])", "",
                "log of the sum instead of the mean", fails=("test_log_z",)),
    ),
    cheats=(
        Cheat("reverse_kl", "def reverse_kl(log_p, log_q):\n    return torch.zeros(())\n"),
        Cheat("ess", "def ess(log_p, log_q):\n    return torch.zeros(())\n"),
        Cheat("estimate_log_z", "def estimate_log_z(log_p, log_q):\n    return torch.zeros(())\n"),
    ),
)
