r"""Graders of unit 4 (training): the reverse-KL loss, the ESS, log Z from the log-weights.

What the test cells of ``solutions/04_training`` call. The machinery (captured functions,
tripwire, tamper check, read-only module) is :mod:`lftutor.graders.core`'s.
"""

from __future__ import annotations

import math

import lftutor.training.loop as _train
import lftutor.training.metrics as _metrics
from lftutor.graders.core import (
    GradingError,
    T,
    begin,
    caller,
    capture_builtins,
    close,
    f64,
    function_codes,
    generator,
    make_read_only,
    number,
    ok,
    randn,
)

capture_builtins(globals())

__all__ = ["GradingError", "check_ess", "check_log_z", "check_reverse_kl"]

# What each exercise's answer may not call (captured now, so re-binding names later does not help).
_FORBID = {
    "reverse_kl": (function_codes(_metrics.reverse_kl, _train.train), set()),
    "ess": (function_codes(_metrics.ess, _train.evaluate), set()),
    "log_z": (frozenset(), set()),
}
_call = caller(_FORBID, forbidden="the reference implementation of this very exercise")


def _log_pair(n, dtype, gen, *, scale=1.0, offset=0.0):
    log_q = randn((n,), dtype, gen) * 3 * scale - 40 * scale
    log_p = log_q + randn((n,), dtype, gen) * scale + offset
    return log_p, log_q


#: How :func:`number` words its lessons for the three exercises of this unit (one number each).
_SCALAR = dict(
    shape_lesson="a single number (a 0-dim tensor): average or sum over the batch",
    type_lesson="a single number as a 0-dim torch tensor",
    not_finite="With large log-weights exp() overflows; work with logs (torch.logsumexp).",
)


def check_reverse_kl(kl_fn, level: str = "visible") -> None:
    r"""Check ``reverse_kl(log_p, log_q)``: :math:`\frac1N\sum_i (\log q_i - \log p_i)`, differentiable."""
    hidden = begin(level)
    cases = [(64, T.float32, 1.0)]
    if hidden:
        cases += [(1, T.float64, 1.0), (257, T.float64, 100.0), (8, T.float32, 0.01)]
    for seed, (n, dtype, scale) in enumerate(cases):
        log_p, log_q = _log_pair(n, dtype, generator(90 + seed), scale=scale)
        expected = T.item(T.tmean(f64(log_q) - f64(log_p)))
        lp = T.requires_grad_(T.clone(log_p))
        lq = T.requires_grad_(T.clone(log_q))
        what = f"reverse_kl(log_p, log_q) for a batch of {n} ({dtype})"
        out = _call("reverse_kl", "reverse_kl(log_p, log_q)", kl_fn, lp, lq)
        value = number(out, what, **_SCALAR, python_number="keep the loss a torch tensor (no .item()) so "
                       "that loss.backward() can compute gradients.")
        tol = 1e-9 if dtype == T.float64 else 1e-4
        if abs(value - expected) > tol * max(1.0, abs(expected)):
            if abs(value + expected) <= tol * max(1.0, abs(expected)):
                raise GradingError("the sign is flipped: the reverse KL averages log q - log p over "
                                   "samples of q (it is >= 0 up to the constant log Z).")
            if n > 1 and abs(value - n * expected) <= tol * max(1.0, abs(n * expected)):
                raise GradingError("you summed over the batch; take the mean so the loss does not grow "
                                   "with the batch size.")
            raise GradingError(f"{what} gives {value:.6g}, expected {expected:.6g} = mean(log_q - "
                               "log_p).")
        if not getattr(out, "requires_grad", False):
            raise GradingError(f"{what} is not differentiable (no grad_fn): do not detach or rebuild "
                               "the tensor; torch operations on log_q and log_p keep the graph.")
        grad_p, grad_q = T.grad(out, (lp, lq), allow_unused=True)
        if grad_q is None or grad_p is None or not close(grad_q, T.full((n,), 1.0 / n, dtype=dtype),
                                                          dtype) \
                or not close(grad_p, T.full((n,), -1.0 / n, dtype=dtype), dtype):
            raise GradingError(f"the gradient of {what} is wrong: d loss / d log_q should be 1/N for "
                               "every sample and d loss / d log_p should be -1/N.")
    ok("reverse_kl is the batch mean of log q - log p, differentiable", hidden)


def _ref_ess(log_p, log_q):
    lw = f64(log_p) - f64(log_q)
    n = lw.shape[0]
    return math.exp(T.item(2 * T.logsumexp(lw, 0) - T.logsumexp(2 * lw, 0)) - math.log(n))


def check_ess(ess_fn, level: str = "visible") -> None:
    """Check ``ess(log_p, log_q)``: normalised effective sample size in ``[1/N, 1]``, overflow-safe."""
    hidden = begin(level)
    gen = generator(100)
    cases = []
    lp, lq = _log_pair(256, T.float32, gen, scale=0.5)
    cases.append(("random log-weights", lp, lq, T.float32))
    lp, lq = _log_pair(128, T.float64, gen, scale=1.0, offset=-1e4)
    cases.append(("log-weights near -10^4 (as log p = -S, ignoring log Z, makes them)", lp, lq,
                  T.float64))
    if hidden:
        lq = randn((50,), T.float64, gen)
        cases.append(("equal weights (ESS must be 1)", lq + 3.0, lq, T.float64))
        lw = T.full((40,), -50.0, dtype=T.float64)
        lw[7] = 0.0
        cases.append(("one dominant weight (ESS must be ~1/N)", lw, T.zeros(40, dtype=T.float64),
                      T.float64))
        lp, lq = _log_pair(300, T.float64, gen, scale=1.0, offset=1e4)
        cases.append(("log-weights near +10^4", lp, lq, T.float64))
        lp, lq = _log_pair(200, T.float32, gen, scale=1.0, offset=-3e3)
        cases.append(("float32 log-weights near -3000", lp, lq, T.float32))
        cases.append(("a single sample (ESS = 1)", T.tensor([-2.0], dtype=T.float64),
                      T.tensor([1.0], dtype=T.float64), T.float64))
    for label, log_p, log_q, dtype in cases:
        expected = _ref_ess(log_p, log_q)
        what = f"ess(log_p, log_q) with {label}, batch {log_p.shape[0]} ({dtype})"
        out = _call("ess", "ess(log_p, log_q)", ess_fn, T.clone(log_p), T.clone(log_q))
        value = number(out, what, **_SCALAR)
        n = log_p.shape[0]
        rtol = 1e-7 if dtype == T.float64 else 2e-2
        if abs(value - expected) <= rtol * expected + 1e-12:
            continue
        if value > 1 + 1e-6:
            extra = (" You returned N * ESS: divide by the batch size."
                     if abs(value - n * expected) <= rtol * n * expected else
                     " It must lie between 1/N and 1.")
            raise GradingError(f"{what} gives {value:.6g} > 1.{extra}")
        if value > 0 and abs(1 / value - expected) <= rtol * expected:
            raise GradingError(f"{what} gives the inverse of the ESS: (mean w)^2 / mean(w^2), not the "
                               "other way round.")
        raise GradingError(f"{what} gives {value:.6g}, expected {expected:.6g}. ESS = (sum w)^2 / "
                           "(N sum w^2) with w = exp(log_p - log_q); compute it from logsumexp of "
                           "log w and of 2 log w so that large log-weights do not overflow.")
    ok("ess is right and overflow-safe", hidden)


def _ref_log_z(log_p, log_q):
    lw = f64(log_p) - f64(log_q)
    return T.item(T.logsumexp(lw, 0)) - math.log(lw.shape[0])


def check_log_z(log_z_fn, level: str = "visible") -> None:
    r"""Check ``estimate_log_z(log_p, log_q)``: :math:`\log\frac1N\sum_i e^{\log p_i - \log q_i}`."""
    hidden = begin(level)
    gen = generator(110)
    cases = []
    lp, lq = _log_pair(512, T.float64, gen, scale=1.0, offset=5.0)
    cases.append(("moderate log-weights", lp, lq, T.float64))
    lp, lq = _log_pair(256, T.float64, gen, scale=1.0, offset=-2e3)
    cases.append(("log-weights near -2000", lp, lq, T.float64))
    if hidden:
        lp, lq = _log_pair(1, T.float64, gen)
        cases.append(("a single sample", lp, lq, T.float64))
        lp, lq = _log_pair(300, T.float32, gen, scale=1.0, offset=800.0)
        cases.append(("float32 log-weights near +800", lp, lq, T.float32))
        lq = randn((30,), T.float64, gen)
        cases.append(("constant log-weights 7.5 (log Z = 7.5 exactly)", lq + 7.5, lq, T.float64))
    for label, log_p, log_q, dtype in cases:
        expected = _ref_log_z(log_p, log_q)
        what = f"estimate_log_z(log_p, log_q) with {label}, batch {log_p.shape[0]} ({dtype})"
        out = _call("log_z", "estimate_log_z(log_p, log_q)", log_z_fn, T.clone(log_p),
                    T.clone(log_q))
        value = number(out, what, **_SCALAR)
        tol = (1e-8 if dtype == T.float64 else 1e-5) * max(1.0, abs(expected)) + 1e-8
        if abs(value - expected) <= tol:
            continue
        lw = f64(log_p) - f64(log_q)
        n = lw.shape[0]
        mean_lw = T.item(T.tmean(lw))
        if abs(value + expected) <= tol:
            raise GradingError(f"{what} has the wrong sign: you returned -log Z (the offset of S from "
                               "-log q). log Z = log mean(w), w = p/q = exp(log_p - log_q).")
        if abs(value - mean_lw) <= tol and n > 1:
            raise GradingError(f"{what} gives mean(log w) = {value:.6g}; that is only a lower bound on "
                               "log Z (Jensen's inequality). Take the log of the mean of the weights: "
                               "logsumexp(log w) - log N.")
        if abs(value - (expected + math.log(n))) <= tol:
            raise GradingError(f"{what} forgot the 1/N: log Z ~ logsumexp(log w) - log N.")
        raise GradingError(f"{what} gives {value:.6g}, expected {expected:.6g} = logsumexp(log_p - "
                           "log_q) - log N.")
    ok("estimate_log_z is the log-mean-exp of the log-weights", hidden)


make_read_only(__name__)
