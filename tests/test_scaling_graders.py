"""Unit 11's graders (lftutor.graders.scaling): right answers pass at both levels, typical mistakes
get their lesson, and the references agree with the library functions they stand in for."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lftutor.graders import scaling as grading
from lftutor.graders.core import GradingError
from lftutor.lattice.observables import pole_mass
from lftutor.training.recipes import FAST, TUTORIAL
from lftutor.training.transfer import load_transferred

LEVELS = ["visible", "hidden"]


# ---- answers as the solution notebook writes them ----------------------------------------------
def kl_per_site(ess, volume):
    return -math.log(ess) / (2 * volume)


def extrapolate_ess(volumes, ess_values, new_volume):
    kl = [kl_per_site(e, v) * v for v, e in zip(volumes, ess_values, strict=True)]
    kappa = sum(v * k for v, k in zip(volumes, kl, strict=True)) / sum(v * v for v in volumes)
    return math.exp(-2 * kappa * new_volume)


def zero_momentum_correlator(sums):
    t_len = sums.shape[1]
    products = torch.stack([(sums * torch.roll(sums, -t, dims=1)).mean() for t in range(t_len)])
    return products - sums.mean() ** 2


def pole_mass_estimate(sums, t_min, t_max, correlator=zero_momentum_correlator):
    c = correlator(sums).double()
    m = torch.acosh((torch.roll(c, 1) + torch.roll(c, -1)) / (2 * c))
    return m[t_min:t_max + 1].mean().item()


def break_even_samples(train_seconds, hmc_step_seconds, hmc_tau_int, flow_step_seconds, flow_tau_int):
    cost_hmc = 2 * hmc_tau_int * hmc_step_seconds
    cost_flow = 2 * flow_tau_int * flow_step_seconds
    if cost_flow >= cost_hmc:
        return math.inf
    return train_seconds / (cost_hmc - cost_flow)


def transfer_weights(flow, weights, *, check_shapes=True, copy_all=False):
    params = dict(flow.named_parameters())
    buffers = dict(flow.named_buffers())
    missing = [n for n in params if n not in weights]
    unknown = [n for n in weights if n not in params and n not in buffers]
    if missing or unknown:
        raise ValueError(f"weights of another architecture: missing {missing[:3]}, unknown {unknown[:3]}")
    if check_shapes:
        for name, p in params.items():
            if weights[name].shape != p.shape:
                raise ValueError(f"parameter {name!r}: {tuple(weights[name].shape)} vs {tuple(p.shape)}")
    state = flow.state_dict()
    copied, rebuilt = [], []
    for name, value in weights.items():
        if copy_all or value.shape == state[name].shape:
            state[name] = value
            copied.append(name)
        else:
            rebuilt.append(name)
    flow.load_state_dict(state)
    return {"copied": copied, "rebuilt": rebuilt}


RIGHT = [
    (grading.check_kl_per_site, kl_per_site),
    (grading.check_extrapolate_ess, extrapolate_ess),
    (grading.check_zero_momentum_correlator, zero_momentum_correlator),
    (grading.check_pole_mass_estimate, pole_mass_estimate),
    (grading.check_break_even_samples, break_even_samples),
    (grading.check_transfer_weights, transfer_weights),
]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("check, answer", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_right_answers_pass(check, answer, level, capsys):
    check(answer, level=level)
    assert "\u2713" in capsys.readouterr().out


# ---- typical mistakes and their lessons ---------------------------------------------------------
MISTAKES = [
    (grading.check_kl_per_site, lambda e, v: -math.log(e) / v, "factor 1/2 is missing"),
    (grading.check_kl_per_site, lambda e, v: math.log(e) / (2 * v), "sign is wrong"),
    (grading.check_kl_per_site, lambda e, v: -math.log(e) / (2 * math.sqrt(v)), "not by L"),
    (grading.check_extrapolate_ess,
     lambda vs, es, n: math.exp(-2 * n * sum(kl_per_site(e, v)
                                             for v, e in zip(vs, es, strict=True)) / len(vs)),
     "averaged the KL per site"),
    (grading.check_extrapolate_ess,
     lambda vs, es, n: extrapolate_ess(vs, es, n) ** 2, "doubled one of the two factors"),
    (grading.check_extrapolate_ess, lambda vs, es, n: es[-1] ** (n / vs[-1]), "last lattice alone"),
    (grading.check_zero_momentum_correlator,
     lambda s: torch.stack([(s * torch.roll(s, -t, dims=1)).mean() for t in range(s.shape[1])]),
     "subtract the square of the mean"),
    (grading.check_zero_momentum_correlator,
     lambda s: torch.stack([(s[:, 0] * s[:, t]).mean() for t in range(s.shape[1])]) - s.mean() ** 2,
     "average over the source time"),
    (grading.check_zero_momentum_correlator,
     lambda s: torch.stack([(s * torch.roll(s, -t, dims=1)).sum(1).mean() for t in range(s.shape[1])])
     - s.mean() ** 2 * s.shape[1], "do not sum"),
    (grading.check_pole_mass_estimate,
     lambda s, a, b: torch.log(zero_momentum_correlator(s)[a:b + 1]
                               / zero_momentum_correlator(s)[a + 1:b + 2]).mean().item(),
     "pure exponential"),
    (grading.check_pole_mass_estimate,
     lambda s, a, b: torch.acosh((torch.roll(c := zero_momentum_correlator(s), 1) + torch.roll(c, -1))
                                 / (2 * c))[a:b].mean().item(), "inclusive"),
    (grading.check_break_even_samples,
     lambda t, hs, ht, fs, ft: t / (ht * hs - ft * fs) if ft * fs < ht * hs else math.inf,
     "factor 2 is missing"),
    (grading.check_break_even_samples,
     lambda t, hs, ht, fs, ft: t / (2 * ht * hs - 2 * ft * fs), "return math.inf"),
    (grading.check_transfer_weights, lambda f, w: transfer_weights(f, w, copy_all=True),
     "raised RuntimeError"),
]


@pytest.mark.parametrize("check, answer, lesson", MISTAKES, ids=range(len(MISTAKES)))
def test_typical_mistakes_get_their_lesson(check, answer, lesson):
    with pytest.raises(GradingError, match=lesson):
        check(answer, level="hidden")


def test_a_silent_partial_load_of_other_widths_is_refused():
    # without the shape check, a parameter of another shape keeps its random values: the visible
    # check cannot see it (its mismatch has other names), the hidden one must
    grading.check_transfer_weights(lambda f, w: transfer_weights(f, w, check_shapes=False),
                                   level="visible")
    with pytest.raises(GradingError, match="instead of raising ValueError"):
        grading.check_transfer_weights(lambda f, w: transfer_weights(f, w, check_shapes=False),
                                       level="hidden")


def test_an_error_that_names_nothing_or_comes_too_late_is_refused():
    def vague(flow, weights):
        try:
            return transfer_weights(flow, weights)
        except ValueError:
            raise ValueError("does not fit") from None

    with pytest.raises(GradingError, match="say which tensor"):
        grading.check_transfer_weights(vague, level="visible")

    def late(flow, weights):
        with torch.no_grad():
            next(iter(flow.parameters())).add_(1.0)
        return transfer_weights(flow, weights)

    with pytest.raises(GradingError, match="already changed"):
        grading.check_transfer_weights(late, level="visible")


def test_the_library_is_refused():
    with pytest.raises(GradingError, match="load_transferred"):
        grading.check_transfer_weights(load_transferred, level="visible")

    def borrowed(sums, t_min, t_max):
        return pole_mass(sums.numpy(), window=(t_min, t_max))["m_p"]

    with pytest.raises(GradingError, match="pole_mass"):
        grading.check_pole_mass_estimate(borrowed, level="visible")


# ---- the references stand for the library ------------------------------------------------------
@pytest.mark.parametrize("t_len, m2, window, offset", [(8, 0.5, (1, 3), 0.0), (10, 0.3, (2, 4), 4.0),
                                                       (12, 0.4, (1, 1), 0.0)])
def test_the_pole_mass_reference_is_the_library_estimate(t_len, m2, window, offset):
    sums = grading.free_slice_sums(20000, t_len, m2, offset=offset, seed=7)
    library = pole_mass(sums.numpy(), window=window, bin_size=100)
    assert grading.reference_pole_mass(sums, *window) == pytest.approx(library["m_p"], rel=1e-10)
    # and the free field's exact pole mass, within the library's error
    assert abs(library["m_p"] - math.acosh(1 + m2 / 2)) < 5 * library["m_p_err"]


def test_the_transfer_reference_is_the_library_rule():
    for recipe, small, big in ((FAST, 8, 16), (FAST, 8, 8), (TUTORIAL, 8, 16)):
        weights = recipe.build_flow((small, small)).state_dict()
        flow = recipe.build_flow((big, big))
        expected = grading._expected_transfer(flow, weights)
        report = load_transferred(flow, weights)
        assert expected == (set(report["copied"]), set(report["rebuilt"]))
    with pytest.raises(ValueError):
        load_transferred(FAST.build_flow((16, 16)), TUTORIAL.build_flow((8, 8)).state_dict())
    assert grading._expected_transfer(FAST.build_flow((16, 16)),
                                      TUTORIAL.build_flow((8, 8)).state_dict())[0] == "error"


def test_the_kl_reference_is_the_scale_commands():
    from lftutor.commands.scale import _kl_per_site

    assert _kl_per_site(0.6, 16) == pytest.approx(kl_per_site(0.6, 256))
    assert np.isclose(extrapolate_ess([64], [0.9], 256), 0.9**4)
