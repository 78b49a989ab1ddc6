"""Autograde spec of unit 11_scaling: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
    mistakes=(
        Mistake("kl_per_site", "-math.log(ess) / (2 * volume)", "-math.log(ess) / volume",
                "forgets the 1/2 of ESS = exp(-2 KL) (extrapolate_ess uses it: its prediction is "
                "squared)", fails=("test_kl_per_site", "test_extrapolate_ess")),
        Mistake("extrapolate_ess",
                "kappa = sum(v * k for v, k in zip(volumes, kl, strict=True)) / sum(v * v for v in volumes)",
                "kappa = sum(k / v for v, k in zip(volumes, kl, strict=True)) / len(volumes)",
                "averages the KL per site instead of the least-squares slope through the origin"),
        Mistake("zero_momentum_correlator", "return products - sums.mean() ** 2", "return products",
                "the correlator is not connected (pole_mass_estimate uses it: a nonzero mean drags "
                "the mass down)", fails=("test_zero_momentum_correlator", "test_pole_mass_estimate")),
        Mistake("pole_mass_estimate", "m[t_min:t_max + 1]", "m[t_min:t_max]",
                "an exclusive window: t_max left out (a one-point window gives nan)"),
        Mistake("break_even_samples", "    if cost_flow >= cost_hmc:\n        return math.inf\n", "",
                "no math.inf when the flow never pays off: a negative number of samples"),
        Mistake("transfer_weights", "if value.shape == state[name].shape:", "if True:",
                "copies the geometry buffers of the small lattice too (load_state_dict refuses them)"),
    ),
    cheats=(
        Cheat("kl_per_site", "def kl_per_site(ess, volume):\n    return 0.0\n"),
        Cheat("extrapolate_ess", "def extrapolate_ess(volumes, ess_values, new_volume):\n    return 1.0\n"),
        Cheat("zero_momentum_correlator", "def zero_momentum_correlator(sums):\n"
                                          "    return torch.zeros(sums.shape[1], dtype=sums.dtype)\n"),
        Cheat("pole_mass_estimate", "def pole_mass_estimate(sums, t_min, t_max):\n    return 0.5\n"),
        Cheat("break_even_samples", "def break_even_samples(*args):\n    return 0.0\n"),
        Cheat("transfer_weights", "def transfer_weights(flow, weights):\n"
                                  "    return {'copied': [], 'rebuilt': []}\n"),
    ),
)
