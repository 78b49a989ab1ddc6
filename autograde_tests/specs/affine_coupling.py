"""Autograde spec of unit 03_affine_coupling: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
    mistakes=(
        Mistake("checker_mask", "(i + j + parity) % 2 == 0", "(i + j + parity) % 2 == 1",
                "parity flipped"),
        Mistake("affine_reverse", "log_det = -((1 - m) * s).sum(dim=(1, 2))",
                "log_det = ((1 - m) * s).sum(dim=(1, 2))", "reverse returns the forward log-det"),
        Mistake("affine_stack", "make_checker_mask(lattice_shape, i % 2)",
                "make_checker_mask(lattice_shape, 0)", "every layer updates the same sites"),
    ),
    cheats=(
        Cheat("checker_mask",
              "def checker_mask(lattice_shape, parity):\n    return torch.zeros(lattice_shape)\n"),
        Cheat("affine_reverse", """\
class AffineCoupling(nn.Module):
def __init__(self, net, mask):
    super().__init__()
    self.net = net
    self.register_buffer("mask", mask)

def forward(self, z):
    return torch.zeros_like(z), torch.zeros(z.shape[0], dtype=z.dtype)

def reverse(self, phi):
    return torch.zeros_like(phi), torch.zeros(phi.shape[0], dtype=phi.dtype)
"""),
        Cheat("affine_stack", "def make_affine_stack(**kwargs):\n    return nn.ModuleList()\n"),
    ),
)
