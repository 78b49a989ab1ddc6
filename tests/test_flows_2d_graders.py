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


def sylvester_forward(z, q, r, r_tilde, b):
    t = torch.tanh(z @ q @ r_tilde.T + b)
    x = z + t @ r.T @ q.T
    log_det = torch.log(torch.abs(1 + (1 - t**2) * torch.diagonal(r) * torch.diagonal(r_tilde))).sum(dim=1)
    return x, log_det


ANSWERS = {
    "check_planar_forward": planar_forward,
    "check_constrain_u": constrain_u,
    "check_radial_forward": radial_forward,
    "check_log_z_midpoint": log_z_midpoint,
    "check_exact_kl": exact_kl,
    "check_sylvester_forward": sylvester_forward,
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


def _planar_no_abs(z, w, u, b):
    x, _ = planar_forward(z, w, u, b)
    return x, torch.log(1 + (1 - torch.tanh(z @ w + b) ** 2) * (w @ u))


def _constrain_naive_softplus(w, u):
    wu = w @ u
    return u + (-1 + torch.log(1 + torch.exp(wu)) - wu) * w / (w @ w)


def _sylvester_rank_one(z, q, r, r_tilde, b):
    t = torch.tanh(z @ q @ r_tilde.T + b)
    x, _ = sylvester_forward(z, q, r, r_tilde, b)
    return x, torch.log(torch.abs(1 + ((1 - t**2) * torch.diagonal(r) * torch.diagonal(r_tilde)).sum(dim=1)))


def _sylvester_no_transpose(z, q, r, r_tilde, b):
    _, log_det = sylvester_forward(z, q, r, r_tilde, b)
    t = torch.tanh(z @ q @ r_tilde + b)
    return z + t @ r.T @ q.T, log_det


def _sylvester_tanh_not_derivative(z, q, r, r_tilde, b):
    t = torch.tanh(z @ q @ r_tilde.T + b)
    x, _ = sylvester_forward(z, q, r, r_tilde, b)
    return x, torch.log(torch.abs(1 + t * torch.diagonal(r) * torch.diagonal(r_tilde))).sum(dim=1)


def _sylvester_not_summed(z, q, r, r_tilde, b):
    t = torch.tanh(z @ q @ r_tilde.T + b)
    x, _ = sylvester_forward(z, q, r, r_tilde, b)
    return x, torch.log(torch.abs(1 + (1 - t**2) * torch.diagonal(r) * torch.diagonal(r_tilde)))


def _sylvester_via_lftutor(z, q, r, r_tilde, b):
    from lftutor.bijections.sylvester import Sylvester

    layer = Sylvester(z.shape[1], m=q.shape[1]).to(z.dtype)
    return layer.forward(z)


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
    ("check_planar_forward", _planar_no_abs, "absolute value"),
    ("check_constrain_u", _constrain_naive_softplus, "overflow"),
    ("check_sylvester_forward", _sylvester_rank_one, "rank-one lemma"),
    ("check_sylvester_forward", _sylvester_no_transpose, "transpose"),
    ("check_sylvester_forward", _sylvester_tanh_not_derivative, "derivative"),
    ("check_sylvester_forward", _sylvester_not_summed, "sum"),
    ("check_sylvester_forward", _sylvester_via_lftutor, "lftutor's own"),
]


@pytest.mark.parametrize(("check", "answer", "lesson"), MISTAKES)
def test_typical_mistakes_fail_with_a_lesson(check, answer, lesson):
    with pytest.raises(GradingError, match=lesson):
        getattr(grading, check)(answer, "hidden")


@pytest.mark.parametrize("level", ["visible", "hidden"])
@pytest.mark.parametrize(("check", "answer"), [("check_planar_forward", _planar_no_abs),
                                               ("check_constrain_u", _constrain_naive_softplus)])
def test_issue_25_mistakes_fail_already_in_the_visible_test(check, answer, level):
    """log without abs() and a naive log(1 + e^s) used to pass every check (w.u > -0.5 and
    |w.u| <= 30 only); the folded layer and w.u = 100 in float32 now catch them."""
    with pytest.raises(GradingError):
        getattr(grading, check)(answer, level)


def test_folded_planar_case_has_determinants_of_both_signs():
    """The w.u = -3 inputs put samples on both sides of the fold, away from det = 0: the
    determinant from autograd (independent of the grader's formula) is negative for some samples,
    positive for others, and |det| > 0.2 everywhere."""
    z, w, u, b = grading._planar_inputs(8, 3, torch.float64, torch.Generator().manual_seed(0), True)
    assert abs(float(w @ u) + 3) < 1e-12
    dets = torch.stack([torch.linalg.det(torch.autograd.functional.jacobian(
        lambda t: planar_forward(t[None], w, u, b)[0][0], zi)) for zi in z])
    assert (dets < 0).any() and (dets > 0).any()
    assert dets.abs().min() > 0.2


def test_sylvester_reference_log_det_matches_autograd():
    """The answer that passes check_sylvester_forward has the log|det| of the autograd Jacobian
    (slogdet of the full D x D matrix, no identity used), on the grader's own inputs with M < D."""
    for d, m in ((3, 2), (5, 3), (4, 4), (3, 1)):
        gen = torch.Generator().manual_seed(d + m)
        z, q, r, rt, b = grading._sylvester_inputs(4, d, m, torch.float64, gen)
        assert torch.allclose(q.T @ q, torch.eye(m, dtype=torch.float64))
        assert torch.equal(r, torch.triu(r)) and torch.equal(rt, torch.triu(rt))
        _, log_det = sylvester_forward(z, q, r, rt, b)

        def layer(t, q=q, r=r, rt=rt, b=b):
            return sylvester_forward(t[None], q, r, rt, b)[0][0]

        for zi, ldi in zip(z, log_det, strict=True):
            jac = torch.autograd.functional.jacobian(layer, zi)
            assert abs(torch.linalg.slogdet(jac).logabsdet.item() - ldi.item()) < 1e-10


def test_not_implemented_is_reported():
    def todo(*args):
        raise NotImplementedError()

    with pytest.raises(GradingError, match="NotImplementedError"):
        grading.check_exact_kl(todo, "visible")


def test_grader_module_is_read_only():
    with pytest.raises(GradingError, match="read-only"):
        grading.check_exact_kl = lambda *a: None
