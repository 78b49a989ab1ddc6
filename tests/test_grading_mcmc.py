"""The graders of unit 5 (lftutor.graders.exact_sampling): right answers pass, typical mistakes fail with a
lesson, patched comparisons and calls into lftutor's own chain and statistics are refused.

The "student" answers are written here from the formulas, independently of lftutor.
"""

import math

import numpy as np
import pytest
import torch

import lftutor.lattice.mcmc
import lftutor.lattice.observables
import lftutor.statistics
import lftutor.training.metrics
from lftutor.graders import exact_sampling as grading_mcmc
from lftutor.graders.core import GradingError

LEVELS = ["visible", "hidden"]


# ----------------------------------------------------------------------------- student answers
def metropolis_step(log_w_current, log_w_proposal, u):
    return torch.log(u) < log_w_proposal - log_w_current


def metropolis_chain(log_w, u, *, step=metropolis_step):
    idx = torch.zeros(log_w.shape[0], dtype=torch.long)
    current = 0
    for i in range(1, log_w.shape[0]):
        if step(log_w[current], log_w[i], u[i]):
            current = i
        idx[i] = current
    return idx


def chi2_estimate(m, volume):
    m = m.double()
    return ((m**2).mean() - m.mean() ** 2) / volume


def chi2_jackknife(m, volume, bin_size, *, factor=True, estimate=chi2_estimate):
    n = m.shape[0] // bin_size
    data = m[: n * bin_size]
    thetas = torch.stack([estimate(torch.cat([data[: k * bin_size], data[(k + 1) * bin_size:]]),
                                   volume) for k in range(n)])
    ss = ((thetas - thetas.mean()) ** 2).sum()
    return estimate(data, volume), torch.sqrt(((n - 1) / n if factor else 1.0) * ss)


def cost_per_independent_sample(seconds, n_samples, tau_int):
    return seconds * 2 * tau_int / n_samples


# ----------------------------------------------------------------------------- right answers pass
@pytest.mark.parametrize("level", LEVELS)
def test_right_answers_pass(level, capsys):
    grading_mcmc.check_metropolis_step(metropolis_step, level=level)
    grading_mcmc.check_metropolis_chain(metropolis_chain, level=level)
    grading_mcmc.check_chi2_estimate(chi2_estimate, level=level)
    grading_mcmc.check_chi2_jackknife(chi2_jackknife, level=level)
    grading_mcmc.check_cost_per_independent_sample(cost_per_independent_sample, level=level)
    assert capsys.readouterr().out.count("\u2713") == 5


def test_other_right_answers_pass():
    """Equivalent formulations: float32 arithmetic, min(1, ratio) of the difference, numpy,
    the accepted-index list turned into a tensor, the estimate on all the data."""
    grading_mcmc.check_metropolis_step(
        lambda c, p, u: u < torch.clamp(torch.exp(p - c), max=1.0), level="hidden")

    def chain_list(log_w, u):
        lw, lu = log_w.tolist(), np.log(u.numpy())
        out, cur = [0], 0
        for i in range(1, len(lw)):
            if lu[i] < lw[i] - lw[cur]:
                cur = i
            out.append(cur)
        return torch.tensor(out[: len(lw)])

    grading_mcmc.check_metropolis_chain(chain_list, level="hidden")
    grading_mcmc.check_chi2_estimate(lambda m, v: float(np.var(m.numpy().astype(float)) / v),
                                     level="hidden")
    grading_mcmc.check_chi2_estimate(lambda m, v: torch.var(m.double(), correction=0) / v,
                                     level="hidden")
    grading_mcmc.check_chi2_jackknife(
        lambda m, v, b: (chi2_estimate(m, v).item(), chi2_jackknife(m, v, b)[1].item()),
        level="hidden")


# ----------------------------------------------------------------------------- typical mistakes
@pytest.mark.parametrize("wrong, message, level", [
    (lambda c, p, u: u < torch.exp(p) / torch.exp(c), "overflow", "visible"),
    (lambda c, p, u: torch.log(u) < c - p, "numerator", "visible"),
    (lambda c, p, u: torch.log(u) > p - c, "wrong way round", "visible"),
    (lambda c, p, u: p > c, "ignore u", "visible"),
    (lambda c, p, u: torch.clamp(torch.exp(p - c), max=1.0), "bool tensor", "visible"),
    (lambda c, p, u: (torch.log(u) < p - c).flatten(), "shape", "hidden"),
    (lambda c, p, u: torch.log(u).float() < (p - c).float(), None, "visible"),
])
def test_metropolis_step_mistakes(wrong, message, level):
    if message is None:  # float32 arithmetic on float64 log-weights near -1e4 is still right
        grading_mcmc.check_metropolis_step(wrong, level=level)
        return
    with pytest.raises(GradingError, match=message):
        grading_mcmc.check_metropolis_step(wrong, level=level)


def chain_vs_previous(log_w, u):
    idx = torch.zeros(log_w.shape[0], dtype=torch.long)
    current = 0
    for i in range(1, log_w.shape[0]):
        if metropolis_step(log_w[i - 1], log_w[i], u[i]):
            current = i
        idx[i] = current
    return idx


def chain_accepted_mask(log_w, u):
    idx = metropolis_chain(log_w, u)
    return torch.cat([torch.tensor([True]), idx[1:] != idx[:-1]])


def chain_minus_one(log_w, u):
    idx = metropolis_chain(log_w, u)
    moved = torch.cat([torch.tensor([True]), idx[1:] != idx[:-1]])
    return torch.where(moved, idx, -torch.ones_like(idx))


@pytest.mark.parametrize("wrong, message", [
    (chain_vs_previous, "state it holds now"),
    (chain_accepted_mask, "bool tensor"),
    (chain_minus_one, "not -1"),
    (lambda lw, u: metropolis_chain(lw, u, step=lambda c, p, x: torch.log(x) < c - p), "inverted"),
    (lambda lw, u: metropolis_chain(lw, u).double(), "integers"),
    (lambda lw, u: metropolis_chain(lw, u).tolist(), "Python list"),
    (lambda lw, u: metropolis_chain(lw, u) + 1, "first index is 0"),
    (lambda lw, u: metropolis_chain(lw, torch.roll(u, 1)), "u\\[i-1\\]"),
])
def test_metropolis_chain_mistakes(wrong, message):
    with pytest.raises(GradingError, match=message):
        grading_mcmc.check_metropolis_chain(wrong, level="visible")


@pytest.mark.parametrize("wrong, message, level", [
    (lambda m, v: chi2_estimate(m, v) * v, "divide by the volume", "visible"),
    (lambda m, v: (m.double() ** 2).mean() / v, "subtract <M>\\^2", "visible"),
    (lambda m, v: torch.var(m.double()) / v, "N - 1", "hidden"),
    (lambda m, v: chi2_estimate(m, v) / v, "twice", "visible"),
    (lambda m, v: torch.full((3,), 0.5), "single number", "visible"),
    (lambda m, v: ((m.float() ** 2).mean() - m.float().mean() ** 2) / v, "float64", "hidden"),
])
def test_chi2_estimate_mistakes(wrong, message, level):
    with pytest.raises(GradingError, match=message):
        grading_mcmc.check_chi2_estimate(wrong, level=level)


def jackknife_strided(m, volume, bin_size):
    n = m.shape[0] // bin_size
    data = m[: n * bin_size]
    keep = torch.arange(data.shape[0])
    thetas = torch.stack([chi2_estimate(data[keep % n != k], volume) for k in range(n)])
    return chi2_estimate(data, volume), torch.sqrt((n - 1) / n * ((thetas - thetas.mean()) ** 2).sum())


def jackknife_std_error(m, volume, bin_size):
    n = m.shape[0] // bin_size
    data = m[: n * bin_size]
    thetas = torch.stack([chi2_estimate(torch.cat([data[: k * bin_size], data[(k + 1) * bin_size:]]),
                                        volume) for k in range(n)])
    return chi2_estimate(data, volume), thetas.std(correction=0) / math.sqrt(n)


@pytest.mark.parametrize("wrong, message", [
    (lambda m, v, b: chi2_jackknife(m, v, b, factor=False), "\\(n - 1\\)/n is missing"),
    (lambda m, v, b: chi2_jackknife(m, v, 1), "whole bins"),
    (jackknife_strided, "consecutive"),
    (jackknife_std_error, "correlated"),
    (lambda m, v, b: (chi2_jackknife(m, v, b)[0], chi2_jackknife(m, v, b)[1] ** 2), "variance"),
    (lambda m, v, b: chi2_jackknife(m, v, b)[1], "pair"),
    (lambda m, v, b: (chi2_estimate(m, v) * v, chi2_jackknife(m, v, b)[1]), "the chi2 of"),
])
def test_chi2_jackknife_mistakes(wrong, message):
    with pytest.raises(GradingError, match=message):
        grading_mcmc.check_chi2_jackknife(wrong, level="visible")


@pytest.mark.parametrize("wrong, message", [
    (lambda t, n, tau: t * tau / n, "factor 2"),
    (lambda t, n, tau: n / (2 * tau * t), "per second"),
    (lambda t, n, tau: t / n, "ignored the autocorrelation"),
    (lambda t, n, tau: torch.tensor([t, n, tau]), "single number"),
])
def test_cost_mistakes(wrong, message):
    with pytest.raises(GradingError, match=message):
        grading_mcmc.check_cost_per_independent_sample(wrong, level="visible")


def test_not_implemented_says_what_to_do():
    def blank(*args):
        raise NotImplementedError()

    with pytest.raises(GradingError, match="raise NotImplementedError"):
        grading_mcmc.check_metropolis_step(blank)


# ----------------------------------------------------------------------------- cheats are refused
def test_patched_allclose_and_zeros_fail(monkeypatch):
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(torch, "equal", lambda *a, **k: True)
    monkeypatch.setattr(torch.testing, "assert_close", lambda *a, **k: None)
    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    with pytest.raises(GradingError, match="replaced"):
        grading_mcmc.check_metropolis_step(lambda c, p, u: torch.zeros(c.shape, dtype=torch.bool))
    with pytest.raises(GradingError, match="replaced"):
        grading_mcmc.check_chi2_estimate(lambda m, v: 0.0)


@pytest.mark.parametrize("check, zeros", [
    (grading_mcmc.check_metropolis_step, lambda c, p, u: torch.zeros(c.shape, dtype=torch.bool)),
    (grading_mcmc.check_metropolis_chain, lambda lw, u: torch.zeros(lw.shape[0], dtype=torch.long)),
    (grading_mcmc.check_chi2_estimate, lambda m, v: torch.tensor(0.0)),
    (grading_mcmc.check_chi2_jackknife, lambda m, v, b: (0.0, 0.0)),
    (grading_mcmc.check_cost_per_independent_sample, lambda t, n, tau: 0.0),
])
def test_zeros_fail_without_patching(check, zeros):
    with pytest.raises(GradingError):
        check(zeros, level="visible")


def test_calling_lftutor_mcmc_is_refused():
    with pytest.raises(GradingError, match="lftutor's own implementation"):
        grading_mcmc.check_metropolis_step(lftutor.lattice.mcmc.metropolis_accept)

    def via_reference(log_w, u):
        idx = torch.zeros(log_w.shape[0], dtype=torch.long)
        current = 0
        for i in range(1, log_w.shape[0]):
            if lftutor.lattice.mcmc.metropolis_accept(log_w[current], log_w[i], u[i]):
                current = i
            idx[i] = current
        return idx

    with pytest.raises(GradingError, match="metropolis_accept"):
        grading_mcmc.check_metropolis_chain(via_reference)

    def via_acceptance_rate(log_w, u):
        lftutor.training.metrics.acceptance_rate(log_w, torch.zeros_like(log_w))
        return metropolis_chain(log_w, u)

    with pytest.raises(GradingError, match="acceptance_rate"):
        grading_mcmc.check_metropolis_chain(via_acceptance_rate)


def test_calling_lftutor_statistics_is_refused():
    with pytest.raises(GradingError, match="lftutor's own implementation"):
        grading_mcmc.check_chi2_estimate(
            lambda m, v: lftutor.lattice.observables.chi2_from_chain(m.numpy(), v)["chi2"])

    def via_jackknife(m, volume, bin_size):
        return lftutor.statistics.jackknife(lambda x: float(np.var(x)) / volume, m.numpy(),
                                            bin_size=bin_size)

    with pytest.raises(GradingError, match="jackknife"):
        grading_mcmc.check_chi2_jackknife(via_jackknife)


def test_calling_the_grader_is_refused():
    with pytest.raises(GradingError, match="grader function"):
        grading_mcmc.check_cost_per_independent_sample(
            lambda t, n, tau: grading_mcmc.number(t * 2 * tau / n, "x"))


def test_module_is_read_only():
    with pytest.raises(GradingError, match="read-only"):
        grading_mcmc.check_chi2_estimate = lambda *a, **k: None
