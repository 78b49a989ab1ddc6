"""Autograde spec of unit 06_free_field: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
    mistakes=(
        Mistake("free_field_covariance", "K[site, (ni % L) * L + nj % L] -= 1.0",
                "if 0 <= ni < L and 0 <= nj < L:\n                    K[site, ni * L + nj] -= 1.0",
                "open boundaries: no neighbours across the edge (log Z uses K too)",
                fails=("test_free_field_covariance", "test_free_field_log_z")),
        Mistake("free_field_log_z", "- 0.5 * log_det_k.item()", "- log_det_k.item()",
                "log det K without the 1/2"),
        Mistake("linear_coupling", "flat[:, self.idx_b] - flat[:, self.idx_a]",
                "flat[:, self.idx_b] + flat[:, self.idx_a]", "reverse adds the shift like forward"),
        Mistake("shift_deviation", "torch.roll(flow.forward(z)[0], shift, dims=(1, 2))",
                "flow.forward(z)[0]", "compares f(T z) with f(z): the output is not shifted"),
    ),
    cheats=(
        Cheat("free_field_covariance", """\
def free_field_precision(L, m2):
return torch.zeros(L * L, L * L, dtype=torch.float64)


def free_field_covariance(L, m2):
return torch.zeros(L * L, L * L, dtype=torch.float64)
"""),
        Cheat("free_field_log_z", "def free_field_log_z(L, m2):\n    return 0.0\n"),
        Cheat("linear_coupling", """\
class LinearCoupling(torch.nn.Module):
def __init__(self, mask):
    super().__init__()
    self.weight = torch.nn.Parameter(torch.zeros(int((mask == 0).sum()), int(mask.sum())))

def forward(self, z):
    return torch.zeros_like(z), torch.zeros(z.shape[0], dtype=z.dtype)

def reverse(self, phi):
    return torch.zeros_like(phi), torch.zeros(phi.shape[0], dtype=phi.dtype)
"""),
        Cheat("shift_deviation", "def shift_deviation(flow, z, shift):\n    return 0.0\n"),
    ),
)
