"""Autograde spec of unit 01_change_of_variables: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
    mistakes=(
        Mistake("box_muller", "torch.sqrt(-2.0 * torch.log(u[:, 0]))",
                "torch.sqrt(-torch.log(u[:, 0]))", "radius without the factor 2"),
        Mistake("box_muller_log_det", "math.log(2.0 * math.pi) - torch.log(u[:, 0])",
                "math.log(2.0 * math.pi) + torch.log(u[:, 0])", "log u1 with the wrong sign"),
        Mistake("sample_u_and_z", "z = box_muller(u)", "z = torch.randn(n_points, 2)",
                "z drawn afresh with torch.randn instead of mapped from u by box_muller"),
        Mistake("simple_coupling_reverse", "return x, -s", "return x, s",
                "reverse returns the forward log-det"),
    ),
    cheats=(
        Cheat("box_muller", "def box_muller(u):\n    return torch.zeros_like(u)\n"),
        Cheat("box_muller_log_det",
              "def box_muller_log_det(u):\n    return torch.zeros(u.shape[0], dtype=u.dtype)\n"),
        Cheat("sample_u_and_z",
              "n_points = 2**12\nu = torch.zeros(n_points, 2)\nz = torch.zeros(n_points, 2)\n"),
        Cheat("simple_coupling_reverse", """\
class SimpleCouplingLayer(torch.nn.Module):
def __init__(self):
    super().__init__()
    self.s = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

def forward(self, x):
    return torch.zeros_like(x), torch.zeros(x.shape[0], dtype=x.dtype)

def reverse(self, y):
    return torch.zeros_like(y), torch.zeros(y.shape[0], dtype=y.dtype)
"""),
    ),
)
