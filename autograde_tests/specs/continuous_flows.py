"""Autograde spec of unit 08_continuous_flows: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
    mistakes=(
        Mistake("hutchinson_trace", "return fz, (v * jv).sum(dim=1)", "return fz, jv.sum(dim=1)",
                "sums J v instead of v . J v"),
        Mistake("trace_variance", "sym = 0.5 * (a + a.T)", "sym = a",
                "forgets to symmetrise A (2 ||A||_F^2)"),
        Mistake("augmented_dynamics", "return dz, -trace", "return dz, trace",
                "d log p / dt = +tr J: the sign of the instantaneous change of variables"),
        Mistake("push_forward", "times = torch.tensor([0.0, t1], dtype=z.dtype)",
                "times = torch.tensor([t1, 0.0], dtype=z.dtype)",
                "integrates backwards (data -> latent) instead of forwards"),
    ),
    cheats=(
        Cheat("hutchinson_trace", """\
def hutchinson_trace(f, z, v):
    return torch.zeros_like(z), torch.zeros(z.shape[0], dtype=z.dtype)
"""),
        Cheat("trace_variance", "def trace_variance(a, kind):\n    return 0.0\n"),
        Cheat("augmented_dynamics", """\
def augmented_dynamics(field, t, state):
    z, log_p = state
    return torch.zeros_like(z), torch.zeros_like(log_p)
"""),
        Cheat("push_forward", "def push_forward(field, z, t1=1.0):\n    return torch.zeros_like(z)\n"),
    ),
)
