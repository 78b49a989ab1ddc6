r"""Graders of unit 9 (amortized inference: flows for a family of targets, VAEs with flow posteriors).

* :func:`check_reparametrized_elbo`: the ELBO of a batch from the encoder's
  :math:`\mu, \log\sigma`, fixed noise :math:`\epsilon` and a decoder,
  :math:`\frac1B\sum_b[\log p(x_b\mid z_b) + \log\mathcal N(z_b; 0, I) - \log q(z_b\mid x_b)]`
  with :math:`z = \mu + e^{\log\sigma}\epsilon`, and its gradients with respect to
  :math:`\mu` and :math:`\log\sigma` (the point of the reparametrization); an answer with the
  Gaussian KL in closed form (a valid estimator of the same ELBO, but not the one-sample value
  asked for) is recognised and told so;
* :func:`check_flow_log_density`: :math:`z_K` and
  :math:`\log q_K(z_K) = \log q_0(z_0) - \sum_k\log|\det\partial f_k/\partial z_{k-1}|` through
  conditional layers;
* :func:`check_iwae_estimate`: :math:`\log\frac1K\sum_k e^{\log w_k}` per image, in log space.

References are computed here from the formulas (arXiv:1505.05770, arXiv:1509.00519); the
machinery (captured functions, tripwire, kernel audit) is :mod:`lftutor.graders.core`'s.
"""

from __future__ import annotations

import math
import types

import torch as _torch
import torch.nn.functional as _F

import lftutor.amortized.bounds as _bounds
import lftutor.amortized.vae as _vae
import lftutor.bijections.conditional as _layers
import lftutor.bijections.flow as _flow
from lftutor.graders.core import (
    LOG_2PI,
    GradingError,
    T,
    begin,
    caller,
    capture_builtins,
    close,
    describe,
    diagnose,
    f64,
    function_codes,
    generator,
    make_read_only,
    max_abs_diff,
    method_codes,
    number,
    ok,
    randn,
    tensor_result,
)

capture_builtins(globals())

__all__ = ["GradingError", "check_flow_log_density", "check_iwae_estimate", "check_reparametrized_elbo"]

_L = types.SimpleNamespace(bce=_F.binary_cross_entropy_with_logits, sigmoid=_torch.sigmoid,
                           manual_seed=_torch.manual_seed, get_rng_state=_torch.get_rng_state,
                           set_rng_state=_torch.set_rng_state)

_FORBID = {
    "elbo": (function_codes(_bounds.elbo, _vae.bernoulli_log_likelihood, _layers.standard_normal_log_prob)
             | method_codes(_vae.VAE), set()),
    # Flow too: since the one container takes a context, Flow(prior, layers)(z0, context)
    # would compute the answer
    "flow": (method_codes(_layers.ConditionalFlow, _flow.Flow, _vae.VAE), set()),
    "iwae": (function_codes(_bounds.log_mean_exp, _bounds.iwae_log_likelihood), set()),
}
_call = caller(_FORBID)


def _normal_log_prob(z):
    return T.sub(T.mul(T.tsum(T.mul(z, z), dim=-1), -0.5), 0.5 * z.shape[-1] * LOG_2PI)


def _bern(logits, x):
    return T.neg(T.tsum(_L.bce(logits, x, reduction="none"), dim=-1))


#: How :func:`number` words its lessons for the batch ELBO (a 0-dim tensor in the autograd graph).
_SCALAR = dict(
    shape_lesson="the batch average, a single number (a 0-dim tensor): take .mean() over the images",
    python_number="return a 0-dim torch tensor (no .item()): training needs to differentiate it.",
)


# --------------------------------------------------------------------------------------------
# Exercise 1: the reparametrized ELBO of one batch
# --------------------------------------------------------------------------------------------
def _decoder(d, p, dtype, gen):
    """A fixed small decoder ``z (B, D) -> logits (B, P)``: a torch ``Linear`` layer (the student's
    code may not enter grader code, so the decoder is plain torch)."""
    layer = T.module_to(T.Linear(d, p), dtype)
    with T.no_grad():
        T.copy_(layer.weight, randn((p, d), dtype, gen))
        T.copy_(layer.bias, randn((p,), dtype, gen))
    return layer


def _elbo_reference(x, mu, log_sigma, eps, decoder, variant=""):
    sigma = T.exp(log_sigma)
    z = T.add(mu, T.mul(log_sigma if variant == "log_sigma_as_sigma" else sigma, eps))
    log_q = _normal_log_prob(eps)
    if variant != "no_jacobian":
        log_q = T.sub(log_q, T.tsum(log_sigma, dim=-1))
    if variant == "jacobian_sign":
        log_q = T.add(_normal_log_prob(eps), T.tsum(log_sigma, dim=-1))
    log_px = _bern(decoder(z), x)
    if variant == "sigmoid_twice":
        log_px = _bern(_L.sigmoid(decoder(z)), x)
    log_pz = _normal_log_prob(z)
    if variant == "no_prior":
        log_pz = T.mul(log_pz, 0.0)
    per = T.sub(T.add(log_px, log_pz), log_q)
    if variant.startswith("closed_form_kl"):
        # E_q[log p(x|z)] - KL(q || N(0, I)) with the Gaussian KL in closed form,
        # 1/2 sum_d (mu^2 + sigma^2 - 1 - 2 log sigma); "_logvar" reads log_sigma as log sigma^2
        log_var = log_sigma if variant.endswith("logvar") else T.mul(log_sigma, 2.0)
        kl = T.mul(T.tsum(T.sub(T.add(T.mul(mu, mu), T.exp(log_var)), T.add(log_var, 1.0)), dim=-1), 0.5)
        per = T.sub(log_px, kl)
    if variant == "sum":
        return T.tsum(per)
    return T.tmean(per)


_ELBO_MISTAKES = (
    ("log_sigma_as_sigma", "z uses log_sigma as if it were sigma: z = mu + exp(log_sigma) * eps."),
    ("no_jacobian", "log q is missing -sum(log_sigma): q(z|x) is the density of z = mu + sigma eps, so "
                    "log q = log N(eps; 0, I) - sum_d log sigma_d (change of variables)."),
    ("jacobian_sign", "the sign of sum(log_sigma) in log q is flipped: stretching by sigma lowers the "
                      "density, log q = log N(eps) - sum log sigma."),
    ("no_prior", "the prior term log N(z; 0, I) is missing: the ELBO is "
                 "E_q[log p(x|z) + log p(z) - log q(z|x)]."),
    ("sigmoid_twice", "the decoder returns logits: use -binary_cross_entropy_with_logits(logits, x) "
                      "summed over pixels (do not apply a sigmoid first)."),
    ("sum", "return the mean over the images of the batch, not the sum."),
    ("closed_form_kl", "you used the closed-form KL: log p(x|z) - KL(q || N(0, I)) with "
                       "KL = 1/2 sum_d (mu^2 + sigma^2 - 1 - 2 log sigma). That is a valid estimate of the "
                       "same ELBO (its expectation is equal, its noise smaller), but not the one asked for: "
                       "return the one-sample value log p(x|z) + log N(z; 0, I) - log q(z|x) at the given "
                       "z = mu + sigma eps, with log q(z|x) = log N(eps; 0, I) - sum log sigma. Only this "
                       "form carries over to the flow posteriors of section 3, whose KL has no closed form."),
    ("closed_form_kl_logvar", "you used the closed-form KL and read log_sigma as the log-variance "
                              "(exp(log_var) for sigma^2): here sigma^2 = exp(2 log_sigma). And the "
                              "exercise asks for the one-sample value log p(x|z) + log N(z; 0, I) - "
                              "log q(z|x) at the given z = mu + sigma eps, not the closed-form KL: only "
                              "that form carries over to the flow posteriors of section 3."),
)


def check_reparametrized_elbo(reparametrized_elbo, level: str = "visible") -> None:
    r"""Check ``reparametrized_elbo(x, mu, log_sigma, eps, decoder)``: a 0-dim tensor, the batch mean of
    :math:`\log p(x\mid z) + \log\mathcal N(z; 0, I) - \log q(z\mid x)` at :math:`z = \mu + \sigma\epsilon`,
    differentiable in ``mu`` and ``log_sigma``.

    ``x``: ``(B, P)`` of 0/1; ``mu``, ``log_sigma``, ``eps``: ``(B, D)``; ``decoder(z)`` returns logits
    ``(B, P)``. Visible: ``B = 5, D = 2, P = 6`` in float64; hidden: other sizes, float32, ``B = 1``.
    """
    hidden = begin(level)
    cases = [(5, 2, 6, T.float64)]
    if hidden:
        cases += [(3, 4, 10, T.float64), (8, 1, 64, T.float32), (1, 3, 5, T.float64)]
    for k, (b, d, p, dtype) in enumerate(cases):
        gen = generator(900 + k)
        x = T.to(T.rand((b, p), generator=gen) > 0.5, dtype)
        mu = randn((b, d), dtype, gen)
        log_sigma = T.sub(T.mul(randn((b, d), dtype, gen), 0.3), 0.7)
        eps = randn((b, d), dtype, gen)
        decoder = _decoder(d, p, dtype, gen)
        what = f"reparametrized_elbo(x of shape {(b, p)}, mu of shape {(b, d)}, {dtype})"
        mu_s = T.requires_grad_(T.clone(mu))
        ls_s = T.requires_grad_(T.clone(log_sigma))
        state = _L.get_rng_state()
        with T.enable_grad():
            out = _call("elbo", what, reparametrized_elbo, T.clone(x), mu_s, ls_s, T.clone(eps), decoder)
        _L.set_rng_state(state)
        value = number(out, what, dtype=dtype, **_SCALAR)
        mu_r = T.requires_grad_(f64(mu))
        ls_r = T.requires_grad_(f64(log_sigma))
        dec64 = T.module_to(T.Linear(d, p), T.float64)
        with T.no_grad():
            T.copy_(dec64.weight, f64(decoder.weight))
            T.copy_(dec64.bias, f64(decoder.bias))
        with T.enable_grad():
            expected = _elbo_reference(f64(x), mu_r, ls_r, f64(eps), dec64)
            g_mu, g_ls = T.grad(expected, (mu_r, ls_r))
        tol = dict(rtol=1e-8, atol=1e-8) if dtype == T.float64 else dict(rtol=1e-4, atol=1e-4)
        if not close(T.reshape(value, (1,)), T.reshape(expected, (1,)), dtype, **tol):
            inputs = (f64(x), f64(mu), f64(log_sigma), f64(eps), dec64)
            with T.no_grad():
                variants = [(T.reshape(_elbo_reference(*inputs, v), (1,)), msg) for v, msg in _ELBO_MISTAKES]
            message = diagnose(T.reshape(f64(value), (1,)), variants)
            raise GradingError(f"{what} = {T.item(f64(value)):.8g}, expected {T.item(expected):.8g}. "
                               + (message or "Per image: log p(x|z) = sum over pixels of x log sigmoid(l) + "
                                  "(1 - x) log(1 - sigmoid(l)), plus log N(z; 0, I), minus "
                                  "[log N(eps; 0, I) - sum log sigma]; then the mean over the batch. "
                                  "Use the eps you are given (no new random numbers)."))
        if mu_s.grad is None and ls_s.grad is None:
            with T.enable_grad():
                if not getattr(value, "requires_grad", False):
                    raise GradingError(f"{what} is not differentiable with respect to mu and log_sigma "
                                       "(no .item(), .detach() or torch.no_grad(): the point of the "
                                       "reparametrization z = mu + sigma eps is that gradients flow "
                                       "through z).")
                got = T.grad(value, (mu_s, ls_s), allow_unused=True)
        else:
            got = (mu_s.grad, ls_s.grad)
        for name, g, ref in (("mu", got[0], g_mu), ("log_sigma", got[1], g_ls)):
            if g is None:
                raise GradingError(f"{what}: no gradient reaches {name}. Build z = mu + exp(log_sigma) * "
                                   "eps from the tensors you are given (no .detach(), .item() or "
                                   "torch.no_grad()), so that autograd differentiates through the sample.")
            if not close(f64(g), ref, dtype, **tol):
                raise GradingError(f"{what}: the gradient with respect to {name} is wrong (max difference "
                                   f"{max_abs_diff(g, ref) if g is not None else float('nan'):.3g}); "
                                   "build z = mu + exp(log_sigma) * eps from the tensors you are given, so "
                                   "that autograd differentiates through the sample.")
    ok("reparametrized_elbo: value and gradients of the batch ELBO", hidden)


# --------------------------------------------------------------------------------------------
# Exercise 2: log q_K after K flow layers
# --------------------------------------------------------------------------------------------
def _layers_for(d, c, n_layers, dtype, seed):
    _L.manual_seed(seed)
    layers = []
    for i in range(n_layers):
        if i % 2:
            layer = _layers.ConditionalIAF(d, c, hidden=8, reverse_order=bool(i % 4 == 3))
        else:
            layer = _layers.ConditionalPlanar(d, c)
        with T.no_grad():
            for p in T.parameters(layer):
                T.copy_(p, T.add(p, T.mul(T.randn(tuple(p.shape)), 0.3)))
        layers.append(T.module_to(layer, dtype))
    return layers


def check_flow_log_density(flow_log_density, level: str = "visible") -> None:
    r"""Check ``flow_log_density(z0, log_q0, layers, context) -> (z_K, log_q_K)``: push ``z0`` ``(B, D)``
    through the conditional ``layers`` (each ``layer(z, context) -> (z, log_det)``) and return
    :math:`z_K` and :math:`\log q_0 - \sum_k \log|\det|`, both per sample.

    Visible: two planar layers, ``D = 2``, float64; hidden: planar and IAF layers mixed, ``K`` = 0, 1,
    5, float32.
    """
    hidden = begin(level)
    cases = [(6, 2, 3, 2, T.float64)]
    if hidden:
        cases += [(4, 3, 2, 5, T.float64), (5, 2, 4, 1, T.float32), (3, 4, 2, 0, T.float64),
                  (1, 2, 3, 3, T.float32)]
    for k, (b, d, c, n_layers, dtype) in enumerate(cases):
        gen = generator(950 + k)
        z0 = randn((b, d), dtype, gen)
        log_q0 = T.sub(_normal_log_prob(z0), 0.3)
        context = randn((b, c), dtype, gen)
        layers = _layers_for(d, c, n_layers, dtype, 960 + k)
        what = f"flow_log_density with {n_layers} layer(s), z0 of shape {(b, d)}, {dtype}"
        with T.no_grad():
            out = _call("flow", what, flow_log_density, T.clone(z0), T.clone(log_q0), list(layers),
                        T.clone(context))
            if not (isinstance(out, tuple) and len(out) == 2):
                raise GradingError(f"{what} returned {describe(out)}; expected a pair (z_K, log_q_K).")
            z = z0
            total = T.zeros(b, dtype=dtype)
            last = T.zeros(b, dtype=dtype)
            for layer in layers:
                z, ld = layer(z, context)
                total, last = T.add(total, ld), ld
            zk = tensor_result(out[0], f"the z_K returned by {what}", shape=(b, d), dtype=dtype)
            lq = tensor_result(out[1], f"the log_q_K returned by {what}", shape=(b,), dtype=dtype,
                               shape_hint="One log-density per sample, shape (batch,).")
            if not close(zk, z, dtype):
                hint = ("you returned z0: apply every layer in order, z = layer(z, context)[0]."
                        if close(zk, z0, dtype) else "apply the layers in the given order, each to the "
                        "output of the previous one, all with the same context.")
                raise GradingError(f"{what}: z_K is wrong (max difference {max_abs_diff(zk, z):.3g}); {hint}")
            expected = T.sub(log_q0, total)
            if not close(lq, expected, dtype):
                message = diagnose(f64(lq), [
                    (f64(T.add(log_q0, total)), "the log-dets are added; a layer that expands volume "
                                                "(log det > 0) spreads the same probability thinner, so "
                                                "log q_K = log q_0 - sum of log-dets."),
                    (f64(T.sub(log_q0, last)), "only the last layer's log-det is subtracted; sum all K."),
                    (f64(log_q0), "the log-dets are missing: log q_K = log q_0 - sum_k log|det J_k|."),
                    (f64(T.sub(_normal_log_prob(z), total)), "log q_0 is the density of z0 under the "
                                                             "base (given to you), not N(z_K; 0, I)."),
                ])
                raise GradingError(f"{what}: log_q_K is wrong (max difference "
                                   f"{max_abs_diff(lq, expected):.3g}). "
                                   + (message or "log q_K = log_q0 - (sum of the K log-dets)."))
    ok("flow_log_density: z_K and log q_0 minus the summed log-dets", hidden)


# --------------------------------------------------------------------------------------------
# Exercise 3: the importance-sampling estimate in log space
# --------------------------------------------------------------------------------------------
def check_iwae_estimate(iwae_estimate, level: str = "visible") -> None:
    r"""Check ``iwae_estimate(log_w) -> (B,)``: :math:`\log\frac1K\sum_k e^{\log w_{kb}}` for ``log_w``
    of shape ``(K, B)`` (samples along dimension 0), computed without underflow.

    Visible: ``K = 50``, log-weights near -750 (where ``exp`` underflows to 0), float64; hidden:
    ``K = 1000`` near -40, ``K = 1``, float32, one image.
    """
    hidden = begin(level)
    cases = [(50, 4, -750.0, 3.0, T.float64)]
    if hidden:
        cases += [(1000, 3, -40.0, 5.0, T.float64), (1, 5, -20.0, 1.0, T.float64),
                  (200, 2, -120.0, 4.0, T.float32), (7, 1, 3.0, 1.0, T.float64)]
    for k, (n, b, centre, spread, dtype) in enumerate(cases):
        gen = generator(980 + k)
        log_w = T.add(T.mul(randn((n, b), dtype, gen), spread), centre)
        what = f"iwae_estimate(log_w of shape {(n, b)}, values near {centre:g}, {dtype})"
        out = _call("iwae", what, iwae_estimate, T.clone(log_w))
        if isinstance(out, T.Tensor) and type(out) is T.Tensor and T.dim(out) == 1 and out.shape[0] == n \
                and n != b:
            raise GradingError(f"{what} returned shape {tuple(out.shape)}: you averaged over the images "
                               "(dimension 1); average over the K samples, dimension 0.")
        if isinstance(out, T.Tensor) and type(out) is T.Tensor and T.numel(out) and \
                not bool(T.item(T.tall(T.isfinite(f64(out))))):
            raise GradingError(f"{what} returned -inf or NaN: exp(log_w) underflows to 0 for log-weights "
                               "like -800. Stay in log space: log mean exp(a) = logsumexp(a) - log K "
                               "(torch.logsumexp subtracts the maximum first).")
        out = tensor_result(out, what, shape=(b,), dtype=dtype)
        ref = T.sub(T.logsumexp(f64(log_w), 0), math.log(n))
        if not close(out, ref, dtype):
            message = diagnose(f64(out), [
                (T.tmean(f64(log_w), 0), "that is the mean of the log-weights (the ELBO); the estimate "
                                         "averages the weights themselves: log((1/K) sum_k exp(log w_k))."),
                (T.logsumexp(f64(log_w), 0), "the 1/K is missing: subtract log K from the logsumexp."),
                (T.sub(T.logsumexp(f64(log_w), 0), n), "subtract log K, not K."),
            ])
            raise GradingError(f"{what}: wrong values (max difference {max_abs_diff(out, ref):.3g}). "
                               + (message or "log p(x) ~ logsumexp over the K samples - log K."))
    ok("iwae_estimate: log of the mean weight, in log space", hidden)


make_read_only(__name__)
