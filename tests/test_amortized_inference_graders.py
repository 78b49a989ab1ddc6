"""Unit 9's graders: the notebook's reference answers pass, typical mistakes fail with a lesson,
calling the package's own answer is refused."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lftutor.amortized.bounds import log_mean_exp
from lftutor.graders import amortized_inference as grading
from lftutor.graders.core import GradingError

LOG_2PI = math.log(2 * math.pi)


def reparametrized_elbo(x, mu, log_sigma, eps, decoder):
    z = mu + torch.exp(log_sigma) * eps
    log_q = (-0.5 * eps**2 - 0.5 * LOG_2PI).sum(-1) - log_sigma.sum(-1)
    log_px = -F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").sum(-1)
    log_pz = (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1)
    return (log_px + log_pz - log_q).mean()


def flow_log_density(z0, log_q0, layers, context):
    z, log_q = z0, log_q0
    for layer in layers:
        z, log_det = layer(z, context)
        log_q = log_q - log_det
    return z, log_q


def iwae_estimate(log_w):
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


@pytest.mark.parametrize("level", ["visible", "hidden"])
def test_reference_answers_pass(level, capsys):
    grading.check_reparametrized_elbo(reparametrized_elbo, level)
    grading.check_flow_log_density(flow_log_density, level)
    grading.check_iwae_estimate(iwae_estimate, level)
    assert capsys.readouterr().out.count("\u2713") == 3


def _elbo_variant(kind):
    def elbo(x, mu, log_sigma, eps, decoder):
        sigma = log_sigma if kind == "sigma" else torch.exp(log_sigma)
        z = mu + sigma * eps
        log_q = (-0.5 * eps**2 - 0.5 * LOG_2PI).sum(-1)
        if kind != "jacobian":
            log_q = log_q - log_sigma.sum(-1)
        logits = decoder(z)
        log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        log_pz = (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1) * (0.0 if kind == "prior" else 1.0)
        per = log_px + log_pz - log_q
        if kind == "detach":
            return per.mean().detach()
        if kind == "item":
            return per.mean().item()
        if kind == "per_image":
            return per
        return per.sum() if kind == "sum" else per.mean()
    return elbo


@pytest.mark.parametrize(("kind", "lesson"), [
    ("sigma", r"exp\(log_sigma\)"),
    ("jacobian", r"sum\(log_sigma\)"),
    ("prior", "prior term"),
    ("sum", "mean over the images"),
    ("detach", "differentiable"),
    ("item", "0-dim torch tensor"),
    ("per_image", "batch average"),
])
def test_elbo_mistakes_are_named(kind, lesson):
    with pytest.raises(GradingError, match=lesson):
        grading.check_reparametrized_elbo(_elbo_variant(kind), "visible")


def _closed_form_kl_elbo(log_sigma_is_log_var=False):
    """The common variant E_q[log p(x|z)] - KL(q || N(0, I)) with the KL from torch.distributions."""
    def elbo(x, mu, log_sigma, eps, decoder):
        sigma = torch.exp(log_sigma)
        z = mu + sigma * eps
        log_px = -F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").sum(-1)
        scale = torch.exp(0.5 * log_sigma) if log_sigma_is_log_var else sigma
        q = torch.distributions.Normal(mu, scale)
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
        return (log_px - kl).mean()
    return elbo


@pytest.mark.parametrize("level", ["visible", "hidden"])
def test_closed_form_kl_is_named(level):
    with pytest.raises(GradingError, match="you used the closed-form KL: log p"):
        grading.check_reparametrized_elbo(_closed_form_kl_elbo(), level)
    with pytest.raises(GradingError, match="closed-form KL and read log_sigma as the log-variance"):
        grading.check_reparametrized_elbo(_closed_form_kl_elbo(log_sigma_is_log_var=True), level)


def test_closed_form_kl_estimates_the_same_elbo():
    """What the grader's message claims: averaged over eps, the one-sample ELBO and the closed-form-KL
    ELBO agree (both estimate E_q[log p(x|z)] - KL), while at one eps they differ."""
    torch.manual_seed(0)
    b, d, p, n = 4, 3, 8, 200_000
    x = (torch.rand(b, p) > 0.5).double()
    mu, log_sigma = torch.randn(b, d).double(), (0.3 * torch.randn(b, d) - 0.7).double()
    decoder = torch.nn.Linear(d, p).double()
    eps = torch.randn(n, b, d).double()
    with torch.no_grad():
        one_sample = reparametrized_elbo(x.expand(n, b, p), mu.expand(n, b, d), log_sigma.expand(n, b, d),
                                         eps, decoder)
        closed = _closed_form_kl_elbo()(x.expand(n, b, p), mu.expand(n, b, d), log_sigma.expand(n, b, d),
                                        eps, decoder)
        single = [f(x, mu, log_sigma, eps[0], decoder) for f in (reparametrized_elbo, _closed_form_kl_elbo())]
    # each is a mean over n * b terms with per-term spread of a few nats: s.e. about 0.01
    assert abs(one_sample - closed) < 0.05
    assert abs(single[0] - single[1]) > 1e-3


def test_flow_mistakes_are_named():
    def plus(z0, log_q0, layers, context):
        z, log_q = z0, log_q0
        for layer in layers:
            z, ld = layer(z, context)
            log_q = log_q + ld
        return z, log_q

    def last_only(z0, log_q0, layers, context):
        z, ld = z0, torch.zeros_like(log_q0)
        for layer in layers:
            z, ld = layer(z, context)
        return z, log_q0 - ld

    def no_move(z0, log_q0, layers, context):
        return z0, log_q0

    with pytest.raises(GradingError, match="log-dets are added"):
        grading.check_flow_log_density(plus, "visible")
    with pytest.raises(GradingError, match="last layer"):
        grading.check_flow_log_density(last_only, "visible")
    with pytest.raises(GradingError, match="you returned z0"):
        grading.check_flow_log_density(no_move, "visible")


def test_iwae_mistakes_are_named():
    with pytest.raises(GradingError, match="underflows"):
        grading.check_iwae_estimate(lambda w: torch.log(torch.exp(w).mean(0)), "visible")
    with pytest.raises(GradingError, match="mean of the log-weights"):
        grading.check_iwae_estimate(lambda w: w.mean(0), "visible")
    with pytest.raises(GradingError, match="1/K is missing"):
        grading.check_iwae_estimate(lambda w: torch.logsumexp(w, 0), "visible")
    with pytest.raises(GradingError, match="dimension 0"):
        grading.check_iwae_estimate(lambda w: torch.logsumexp(w, 1) - math.log(w.shape[1]), "visible")


def test_the_package_answer_is_refused():
    with pytest.raises(GradingError, match="calls"):
        grading.check_iwae_estimate(lambda w: log_mean_exp(w, 0), "visible")


def test_the_package_flow_is_refused_but_its_layers_are_not():
    """Calling the layers one by one is the exercise; ConditionalFlow does all of it for you."""
    from lftutor.bijections.conditional import ConditionalFlow

    def with_package_flow(z0, log_q0, layers, context):
        z, log_det = ConditionalFlow(z0.shape[1], layers)(z0, context)
        return z, log_q0 - log_det

    with pytest.raises(GradingError, match="calls ConditionalFlow"):
        grading.check_flow_log_density(with_package_flow, "visible")

    def with_plain_flow(z0, log_q0, layers, context):  # the one container takes a context too
        from lftutor.bijections.flow import Flow
        from lftutor.lattice.priors import SimpleNormal

        prior = SimpleNormal(torch.zeros(z0.shape[1]), torch.ones(z0.shape[1]))
        z, log_det = Flow(prior, layers)(z0, context)
        return z, log_q0 - log_det

    with pytest.raises(GradingError, match="calls Flow"):
        grading.check_flow_log_density(with_plain_flow, "visible")
    grading.check_flow_log_density(flow_log_density, "hidden")  # the layers' own calls pass


def test_grader_module_is_read_only():
    with pytest.raises(GradingError, match="read-only"):
        grading.check_iwae_estimate = lambda *a: None
