"""Unit 7's graders: the notebook's reference answers pass, typical mistakes fail with a lesson."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lftutor.bijections.planar import Planar
from lftutor.graders import flows_2d as grading
from lftutor.graders.core import GradingError


# ---------------------------------------------------------------- reference answers (the notebook's)
def planar_forward(z, w, u, b):
    a = z @ w + b
    t = torch.tanh(a)
    x = z + t[:, None] * u
    log_det = torch.log(torch.abs(1 + (1 - t**2) * (w @ u)))
    return x, log_det


def constrain_u(w, u):
    wu = w @ u
    m = -1 + F.softplus(wu)
    return u + (m - wu) * w / (w @ w)


def radial_forward(z, z0, alpha, beta):
    d = z - z0
    r = d.norm(dim=1, keepdim=True)
    h = 1 / (alpha + r)
    x = z + beta * h * d
    dim = z.shape[1]
    log_det = (dim - 1) * torch.log(1 + beta * h) + torch.log(1 + beta * h - beta * h**2 * r)
    return x, log_det[:, 0]


def log_z_midpoint(potential, box, n):
    lo, hi = box
    h = (hi - lo) / n
    t = lo + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    x1, x2 = torch.meshgrid(t, t, indexing="ij")
    pts = torch.stack([x1.flatten(), x2.flatten()], dim=1)
    return (torch.logsumexp(-potential(pts), 0) + math.log(h * h)).item()


def exact_kl(log_q, u, log_z):
    return (log_q + u).mean().item() + log_z


ANSWERS = {
    "check_planar_forward": planar_forward,
    "check_constrain_u": constrain_u,
    "check_radial_forward": radial_forward,
    "check_log_z_midpoint": log_z_midpoint,
    "check_exact_kl": exact_kl,
}


@pytest.mark.parametrize("check", sorted(ANSWERS))
@pytest.mark.parametrize("level", ["visible", "hidden"])
def test_reference_answers_pass(check, level, capsys):
    getattr(grading, check)(ANSWERS[check], level)
    assert "\u2713" in capsys.readouterr().out


def _no_lemma_h_prime(z, w, u, b):
    x, _ = planar_forward(z, w, u, b)
    return x, torch.log(torch.abs(1 + torch.tanh(z @ w + b) * (w @ u)))


def _planar_along_w(z, w, u, b):
    x, ld = planar_forward(z, w, u, b)
    return z + torch.tanh(z @ w + b)[:, None] * w, ld


def _planar_summed(z, w, u, b):
    x, ld = planar_forward(z, w, u, b)
    return x, ld.sum()


def _softplus_only(w, u):
    wu = w @ u
    return u + (F.softplus(wu) - wu) * w / (w @ w)


def _norm_not_squared(w, u):
    wu = w @ u
    return u + (-1 + F.softplus(wu) - wu) * w / w.norm()


def _radial_power_d(z, z0, alpha, beta):
    x, ld = radial_forward(z, z0, alpha, beta)
    r = (z - z0).norm(dim=1)
    return x, ld + torch.log(1 + beta / (alpha + r))


def _no_area(potential, box, n):
    h = (box[1] - box[0]) / n
    return log_z_midpoint(potential, box, n) - math.log(h * h)


def _kl_minus_log_z(log_q, u, log_z):
    return (log_q + u).mean().item() - log_z


def _kl_via_lftutor(log_q, u, log_z):
    from lftutor.toy2d.targets import exact_kl as lib

    class Flow:
        def sample(self, n):
            return torch.zeros(n, 2, dtype=u.dtype), log_q

    class Target:
        def __call__(self, x):
            return u
        log_z = 0.0

    return lib(Flow(), Target(), n_samples=len(u), batch_size=len(u))["kl"] + log_z


MISTAKES = [
    ("check_planar_forward", _no_lemma_h_prime, "derivative"),
    ("check_planar_forward", _planar_along_w, "along u"),
    ("check_planar_forward", _planar_summed, "do not sum"),
    ("check_constrain_u", _softplus_only, "stricter than needed"),
    ("check_constrain_u", _norm_not_squared, r"\|\|w\|\|\^2"),
    ("check_constrain_u", lambda w, u: u.clone(), "constraint is missing"),
    ("check_radial_forward", _radial_power_d, "D - 1"),
    ("check_log_z_midpoint", _no_area, "area h\\^2 is missing"),
    ("check_exact_kl", _kl_minus_log_z, "plus sign"),
    ("check_exact_kl", lambda log_q, u, log_z: (log_q + u).mean().item(), "log Z is missing"),
    ("check_planar_forward", lambda z, w, u, b: Planar(z.shape[1]).to(z.dtype).forward(z), "lftutor's own"),
    ("check_exact_kl", _kl_via_lftutor, "lftutor's own"),
]


@pytest.mark.parametrize(("check", "answer", "lesson"), MISTAKES)
def test_typical_mistakes_fail_with_a_lesson(check, answer, lesson):
    with pytest.raises(GradingError, match=lesson):
        getattr(grading, check)(answer, "hidden")


def test_not_implemented_is_reported():
    def todo(*args):
        raise NotImplementedError()

    with pytest.raises(GradingError, match="NotImplementedError"):
        grading.check_exact_kl(todo, "visible")


def test_grader_module_is_read_only():
    with pytest.raises(GradingError, match="read-only"):
        grading.check_exact_kl = lambda *a: None
