import math

import pytest
import torch

from lftutor import SimpleNormal, acceptance_rate, ess, log_weights, reverse_kl


def test_equal_log_weights_give_ess_exactly_one():
    log_p = torch.full((100,), -3.2, dtype=torch.float64)
    log_q = torch.full((100,), 1.7, dtype=torch.float64)
    assert ess(log_p, log_q).item() == pytest.approx(1.0, abs=1e-14)


def test_one_dominant_weight_gives_one_over_n():
    log_p = torch.zeros(50, dtype=torch.float64)
    log_p[7] = 1000.0
    assert ess(log_p, torch.zeros(50, dtype=torch.float64)).item() == pytest.approx(1 / 50, rel=1e-12)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_huge_log_weights_give_finite_ess(scale):
    torch.manual_seed(0)
    log_p = scale + torch.randn(256, dtype=torch.float64)
    log_q = torch.zeros(256, dtype=torch.float64)
    value = ess(log_p, log_q).item()
    # independent computation with weights rescaled by hand
    w = torch.exp(log_p - log_p.max())
    expected = (w.mean() ** 2 / (w**2).mean()).item()
    assert math.isfinite(value) and value == pytest.approx(expected, rel=1e-10)


def test_ess_in_float32_with_large_weights():
    log_p = torch.tensor([3e3, 3e3 + 1.0, 3e3 - 2.0], dtype=torch.float32)
    value = ess(log_p, torch.zeros(3)).item()
    w = torch.exp(torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64))
    assert value == pytest.approx((w.mean() ** 2 / (w**2).mean()).item(), rel=1e-5)


def test_reverse_kl_of_prior_against_itself_is_the_normalisation_offset():
    # Target p = exp(-S) with S = -log r(z) + c: loss = mean(log r - (log r - c)) = c.
    prior = SimpleNormal.standard((4, 4), dtype=torch.float64)
    z = prior.sample_n(64)
    c = 2.5
    loss = reverse_kl(prior.log_prob(z) - c, prior.log_prob(z))
    assert loss.item() == pytest.approx(c, abs=1e-12)


def test_reverse_kl_matches_analytic_gaussian_kl():
    # q = N(0, s^2), p = N(0, 1) normalised: KL = log(1/s) + s^2/2 - 1/2.
    s = 0.6
    z = s * torch.randn(400_000, dtype=torch.float64)
    log_q = -0.5 * (z / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
    log_p = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
    expected = -math.log(s) + s**2 / 2 - 0.5
    assert reverse_kl(log_p.unsqueeze(0).T.squeeze(1), log_q).item() == pytest.approx(expected, abs=3e-3)


def test_log_weights_are_log_p_minus_log_q():
    log_p, log_q = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 3.0])
    torch.testing.assert_close(log_weights(log_p, log_q), torch.tensor([0.5, -1.0]))


def test_acceptance_is_one_for_an_exact_flow_and_low_for_a_bad_one():
    log_q = torch.randn(500, dtype=torch.float64)
    assert acceptance_rate(log_q + 3.0, log_q) == 1.0
    bad = acceptance_rate(10 * torch.randn(500, dtype=torch.float64), torch.zeros(500, dtype=torch.float64))
    assert bad < 0.3


def test_acceptance_matches_metropolis_rule_for_two_samples():
    # Two samples: the second is accepted with probability min(1, w1/w0) = exp(-1).
    g = torch.Generator().manual_seed(0)
    log_p = torch.tensor([0.0, -1.0], dtype=torch.float64)
    hits = sum(acceptance_rate(log_p, torch.zeros(2, dtype=torch.float64), generator=g) for _ in range(20000))
    assert hits / 20000 == pytest.approx(math.exp(-1), abs=0.015)
