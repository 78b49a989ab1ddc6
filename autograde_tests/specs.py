"""Per-unit knowledge the autograde tests need: one typical mistake per exercise, and cheats.

Every autograded test cell of every unit must be failed by some :class:`Mistake`; the test
fails and says so when a unit gains an exercise without one. A mistake is a string replacement
in the solution's answer; ``fails`` lists the test cells that must lose their points (by
default the test cells named ``test_<answer>`` or ``test_<answer>_*``); every other autograded
cell must keep full marks.

A :class:`Cheat` replaces a whole answer cell with code that patches the comparisons
(:data:`MONKEYPATCH`) and returns zeros of the right shape; it must earn nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Mistake:
    answer: str  # grade_id of the answer cell
    old: str
    new: str
    why: str  # the mistake in words
    fails: tuple[str, ...] = ()  # test cells that must score 0 (default: test_<answer>*)


@dataclass(frozen=True)
class Cheat:
    answer: str
    source: str  # the whole answer cell; MONKEYPATCH is prepended


@dataclass(frozen=True)
class UnitSpec:
    mistakes: tuple[Mistake, ...]
    cheats: tuple[Cheat, ...] = field(default=())


MONKEYPATCH = """\
import math
import numpy as np
import torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.isclose = lambda a, b, *args, **k: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)
torch.testing.assert_close = lambda *a, **k: None
np.allclose = lambda *a, **k: True
np.isclose = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
math.isclose = lambda *a, **k: True
"""

SPECS: dict[str, UnitSpec] = {
    "01_change_of_variables": UnitSpec(
        mistakes=(
            Mistake("box_muller", "torch.sqrt(-2.0 * torch.log(u[:, 0]))",
                    "torch.sqrt(-torch.log(u[:, 0]))", "radius without the factor 2"),
            Mistake("box_muller_log_det", "math.log(2.0 * math.pi) - torch.log(u[:, 0])",
                    "math.log(2.0 * math.pi) + torch.log(u[:, 0])", "log u1 with the wrong sign"),
            Mistake("simple_coupling_reverse", "return x, -s", "return x, s",
                    "reverse returns the forward log-det"),
        ),
        cheats=(
            Cheat("box_muller", "def box_muller(u):\n    return torch.zeros_like(u)\n"),
            Cheat("box_muller_log_det",
                  "def box_muller_log_det(u):\n    return torch.zeros(u.shape[0], dtype=u.dtype)\n"),
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
    ),
    "02_phi4_lattice": UnitSpec(
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
    ),
    "03_affine_coupling": UnitSpec(
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
    ),
    "04_training": UnitSpec(
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
    ),
    "fixture": UnitSpec(
        mistakes=(
            Mistake("square", "return x * x", "return x * abs(x)",
                    "wrong sign for negative numbers (only the hidden test sees it)"),
            Mistake("mean_energy", "** 2))", "))", "averages phi instead of phi^2"),
            Mistake("magnetization", "np.mean(phi)", "np.sum(phi)", "sum instead of mean"),
        ),
        cheats=(
            Cheat("mean_energy", "def mean_energy(phi):\n    return 0.0\n"),
        ),
    ),
    "06_free_field": UnitSpec(
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
    ),
    "05_exact_sampling": UnitSpec(
        mistakes=(
            Mistake("metropolis_step", "torch.log(u) < log_w_proposal - log_w_current",
                    "u < torch.exp(log_w_proposal) / torch.exp(log_w_current)",
                    "ratio of exponentials: nan for log-weights of size 1e4 (the chain uses the step)",
                    fails=("test_metropolis_step", "test_metropolis_chain")),
            Mistake("metropolis_chain", "metropolis_step(log_w[current], log_w[i], u[i])",
                    "metropolis_step(log_w[i - 1], log_w[i], u[i])",
                    "compares with the previous proposal instead of the state held"),
            Mistake("chi2_estimate", "((m**2).mean() - m.mean() ** 2) / volume", "(m**2).mean() / volume",
                    "forgets to subtract <M>^2 (the jackknife uses the estimate)",
                    fails=("test_chi2_estimate", "test_chi2_jackknife")),
            Mistake("chi2_jackknife", "(n_bins - 1) / n_bins * ", "",
                    "jackknife error without the factor (n-1)/n"),
            Mistake("cost_per_independent_sample", "seconds * 2 * tau_int / n_samples",
                    "seconds * tau_int / n_samples", "tau_int instead of 2 tau_int"),
        ),
        cheats=(
            Cheat("metropolis_step", "def metropolis_step(log_w_current, log_w_proposal, u):\n"
                                     "    return torch.zeros(u.shape, dtype=torch.bool)\n"),
            Cheat("metropolis_chain", "def metropolis_chain(log_w, u):\n"
                                      "    return torch.zeros(log_w.shape[0], dtype=torch.long)\n"),
            Cheat("chi2_estimate", "def chi2_estimate(m, volume):\n    return 0.0\n"),
            Cheat("chi2_jackknife", "def chi2_jackknife(m, volume, bin_size):\n    return 0.0, 0.0\n"),
            Cheat("cost_per_independent_sample",
                  "def cost_per_independent_sample(seconds, n_samples, tau_int):\n    return 0.0\n"),
        ),
    ),
}
