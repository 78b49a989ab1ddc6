"""Autograde spec of unit 07_flows_2d: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
    mistakes=(
        # One mistake per answer (the harness names a student after the answer). The two below
        # passed every check before issue 25 (w.u > -0.5 and |w.u| <= 30 only); h instead of h'
        # and softplus without the -1, the mistakes these lines held before, are kept in
        # tests/test_flows_2d_graders.py.
        Mistake("planar_forward", "torch.log(torch.abs(1 + (1 - t**2) * (w @ u)))",
                "torch.log(1 + (1 - t**2) * (w @ u))",
                "log of the determinant without abs(): NaN where a folded layer (w.u < -1) has "
                "a negative determinant"),
        Mistake("constrain_u", "m = -1 + F.softplus(wu)", "m = -1 + torch.log(1 + torch.exp(wu))",
                "softplus written as log(1 + exp(s)), which overflows for large w.u"),
        Mistake("radial_forward", "log_det = (dim - 1) * torch.log(1 + beta * h)",
                "log_det = dim * torch.log(1 + beta * h)",
                "D instead of D - 1 factors of 1 + beta h"),
        Mistake("log_z_midpoint", " + math.log(h * h)).item()", ").item()",
                "the cell area h^2 is left out of the sum"),
        Mistake("exact_kl", "return (log_q + u).mean().item() + log_z",
                "return (log_q + u).mean().item() - log_z", "log Z with the wrong sign"),
        Mistake("sylvester_forward", "a = z @ q @ r_tilde.T + b", "a = z @ q @ r_tilde + b",
                "R~ instead of its transpose in the row-vector form of R~ Q^T z"),
    ),
    cheats=(
        Cheat("planar_forward", """\
import torch.nn.functional as F


def planar_forward(z, w, u, b):
    return z.clone(), torch.zeros(z.shape[0], dtype=z.dtype)
"""),
        Cheat("constrain_u", """\
import torch.nn.functional as F


def constrain_u(w, u):
    return torch.zeros_like(u)
"""),
        Cheat("radial_forward", """\
def radial_forward(z, z0, alpha, beta):
    return z.clone(), torch.zeros(z.shape[0], dtype=z.dtype)
"""),
        Cheat("log_z_midpoint", "def log_z_midpoint(potential, box, n):\n    return 0.0\n"),
        Cheat("exact_kl", "def exact_kl(log_q, u, log_z):\n    return 0.0\n"),
        Cheat("sylvester_forward", """\
def sylvester_forward(z, q, r, r_tilde, b):
    return z.clone(), torch.zeros(z.shape[0], dtype=z.dtype)
"""),
    ),
)
