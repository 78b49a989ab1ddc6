"""Exact sampling and error analysis against exactly known answers."""

import itertools
import math

import numpy as np
import pytest
import torch

from lftutor import Flow, FreeFieldAction, ScalarPhi4Action, SimpleNormal
from lftutor.lattice.mcmc import flow_metropolis, hmc, metropolis_accept, phi4_force
from lftutor.lattice.observables import (
    effective_mass,
    ising_energy,
    magnetization,
    susceptibility,
    time_slice_correlator,
    two_point,
)
from lftutor.statistics import autocorrelation, jackknife, mean_with_error, reweight, tau_int


def ar1(a: float, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal(n) * math.sqrt(1 - a * a)
    x = np.empty(n)
    x[0] = rng.standard_normal()
    for t in range(1, n):
        x[t] = a * x[t - 1] + eps[t]
    return x


@pytest.mark.parametrize("a", [0.0, 0.5, 0.8])
def test_tau_int_of_ar1_matches_the_exact_value(a):
    exact = 0.5 * (1 + a) / (1 - a)  # 1/2 + sum_t a^t
    assert tau_int(ar1(a, 200_000)) == pytest.approx(exact, rel=0.1)


def test_autocorrelation_of_ar1_decays_geometrically():
    rho = autocorrelation(ar1(0.7, 200_000, seed=1))
    np.testing.assert_allclose(rho[:4], [1, 0.7, 0.49, 0.343], atol=0.02)


def test_error_of_the_mean_accounts_for_autocorrelation():
    # Spread of means over independent AR(1) chains vs the predicted error.
    a, n = 0.8, 5000
    means = [ar1(a, n, seed=s).mean() for s in range(60)]
    predicted = mean_with_error(ar1(a, n, seed=100))["err"]
    assert np.std(means) == pytest.approx(predicted, rel=0.3)
    naive = np.std(ar1(a, n, seed=100)) / math.sqrt(n)
    assert predicted > 2.5 * naive


def test_jackknife_of_the_mean_is_the_standard_error():
    x = np.random.default_rng(0).standard_normal(1000)
    est, err = jackknife(np.mean, x)
    assert est == pytest.approx(x.mean()) and err == pytest.approx(x.std(ddof=1) / math.sqrt(1000))


def test_binned_jackknife_grows_the_error_for_correlated_data():
    x = ar1(0.9, 50_000)
    _, err1 = jackknife(np.mean, x, bin_size=1)
    _, err_b = jackknife(np.mean, x, bin_size=500)
    assert err_b / err1 == pytest.approx(math.sqrt(1.9 / 0.1), rel=0.25)


def test_jackknife_bad_input():
    with pytest.raises(ValueError, match="at least 2 bins"):
        jackknife(np.mean, np.zeros(10), bin_size=10)
    with pytest.raises(ValueError, match="equal length"):
        jackknife(lambda a, b: 0.0, np.zeros(10), np.zeros(9))


def test_reweighting_recovers_a_wider_gaussian():
    # samples from N(0,1), target N(0, 1.2^2): <x^2> = 1.44
    x = np.random.default_rng(3).standard_normal(200_000)
    log_w = -0.5 * x**2 / 1.44 + 0.5 * x**2
    r = reweight(x**2, log_w)
    assert abs(r["mean"] - 1.44) < 3 * r["err"] + 1e-3 and 0.5 < r["ess"] < 1


def test_metropolis_accept_rule():
    u = torch.tensor([0.5, 0.5, 0.5])
    got = metropolis_accept(torch.zeros(3), torch.tensor([1.0, math.log(0.6), math.log(0.4)]), u)
    assert got.tolist() == [True, True, False]


def _gaussian_flow(shape=(4, 4)):
    return Flow(SimpleNormal.standard(shape, dtype=torch.float64), [])


def test_flow_metropolis_with_an_exact_flow_accepts_everything():
    chain = flow_metropolis(_gaussian_flow(), lambda p: 0.5 * (p**2).flatten(1).sum(1), 2500, batch_size=1000)
    assert chain.acceptance == 1.0 and chain.configs.shape == (2500, 4, 4) and chain.accepted.all()


def test_flow_metropolis_rejections_repeat_the_previous_configuration_across_batches():
    torch.manual_seed(0)
    chain = flow_metropolis(_gaussian_flow(), lambda p: 0.25 * (p**2).flatten(1).sum(1), 1000, batch_size=64)
    assert 0.05 < chain.acceptance < 0.95
    for i in range(1, 1000):
        same = torch.equal(chain.configs[i], chain.configs[i - 1])
        assert same != bool(chain.accepted[i]), f"step {i}"


def test_flow_metropolis_samples_the_target_exactly():
    # q = N(0,1) per site, p = N(0, 1.5) per site on 2x2 sites: chi_2 = Var(M)/V = 1.5.
    torch.manual_seed(1)
    chain = flow_metropolis(_gaussian_flow((2, 2)), lambda p: 0.5 * (p**2).flatten(1).sum(1) / 1.5, 40_000,
                            batch_size=4000, observable=magnetization)
    m = chain.configs.numpy()
    tau = tau_int(m)
    assert tau > 1  # rejections correlate the chain
    chi, err = jackknife(lambda m: (np.mean(m**2) - np.mean(m) ** 2) / 4, m, bin_size=int(20 * tau) + 1)
    assert abs(chi - 1.5) < 3 * err and err < 0.05


def test_phi4_force_matches_autograd():
    phi = torch.randn(3, 4, 6, dtype=torch.float64, requires_grad=True)
    grad = torch.autograd.grad(ScalarPhi4Action(-4, 8)(phi).sum(), phi)[0]
    torch.testing.assert_close(phi4_force(phi.detach(), -4, 8), grad)


def test_hmc_on_the_free_field_gives_the_exact_susceptibility():
    # For S = 1/2 phi^T K phi, chi_2 = 1^T Sigma 1 / V = 1/m2 (the zero mode).
    torch.manual_seed(2)
    gff = FreeFieldAction(0.5, (4, 4))
    chain = hmc(gff, torch.zeros(16, 4, 4, dtype=torch.float64), 1500, step_size=0.2, n_leapfrog=8,
                observable=magnetization)
    assert 0.6 < chain.acceptance <= 1.0
    m = chain.configs[100:]
    series = m.T.reshape(-1).numpy()
    chi, err = jackknife(lambda m: np.mean(m**2) / 16, series, bin_size=100)
    assert abs(chi - 2.0) < 3 * err and err < 0.1


def test_hmc_with_tiny_steps_accepts_nearly_everything():
    chain = hmc(ScalarPhi4Action(-4, 8), torch.zeros(4, 4, 4, dtype=torch.float64), 20, step_size=0.005,
                n_leapfrog=5, force=lambda p: phi4_force(p, -4, 8))
    assert chain.acceptance > 0.95


def test_two_point_function_against_an_explicit_sum():
    phi = torch.randn(50, 3, 4, dtype=torch.float64)
    g = two_point(phi)
    mean = phi.mean(0)
    for x in itertools.product(range(3), range(4)):
        total = 0.0
        for y in itertools.product(range(3), range(4)):
            yx = ((y[0] + x[0]) % 3, (y[1] + x[1]) % 4)
            total += (phi[:, y[0], y[1]] * phi[:, yx[0], yx[1]]).mean() - mean[y] * mean[yx]
        assert g[x].item() == pytest.approx(total.item() / 12, abs=1e-12)
    assert susceptibility(phi).item() == pytest.approx(g.sum().item(), rel=1e-10)
    assert ising_energy(g).item() == pytest.approx(0.5 * (g[1, 0] + g[0, 1]).item())
    torch.testing.assert_close(time_slice_correlator(g), g.sum(0))


def test_effective_mass_of_a_cosh_is_exact():
    T, m = 16, 0.4
    t = torch.arange(T, dtype=torch.float64)
    c = torch.cosh(m * (t - T / 2))
    em = effective_mass(c)
    torch.testing.assert_close(em[1:-1], torch.full((T - 2,), m, dtype=torch.float64))
