"""Autograde spec of unit 05_exact_sampling: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
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
)
