"""Autograde spec of unit 07_flows_2d: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
    mistakes=(
        Mistake("planar_forward", "torch.log(torch.abs(1 + (1 - t**2) * (w @ u)))",
                "torch.log(torch.abs(1 + t * (w @ u)))",
                "the determinant lemma with h = tanh instead of its derivative 1 - tanh^2"),
        Mistake("constrain_u", "m = -1 + F.softplus(wu)", "m = F.softplus(wu)",
                "m(s) = softplus(s) without the -1 (w.u_hat > 0: stricter than the paper's)"),
        Mistake("radial_forward", "log_det = (dim - 1) * torch.log(1 + beta * h)",
                "log_det = dim * torch.log(1 + beta * h)",
                "D instead of D - 1 factors of 1 + beta h"),
        Mistake("log_z_midpoint", " + math.log(h * h)).item()", ").item()",
                "the cell area h^2 is left out of the sum"),
        Mistake("exact_kl", "return (log_q + u).mean().item() + log_z",
                "return (log_q + u).mean().item() - log_z", "log Z with the wrong sign"),
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
    ),
)
