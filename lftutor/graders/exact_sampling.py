r"""Graders of unit 5 (exact sampling): what that notebook's test cells call.

A flow :math:`q` only approximates :math:`p \propto e^{-S}`; the exercises of the unit turn its
samples into an exact Markov chain and measure what that chain costs:

* :func:`check_metropolis_step`: the independence-Metropolis test in log space,
  accept iff :math:`\log u < \log w' - \log w` (arXiv:1904.12072, eq. 9), safe for log-weights
  of size :math:`10^4`;
* :func:`check_metropolis_chain`: a whole chain over a batch of proposals, as the index of the
  proposal held after each step, compared with an internal chain driven by the same uniforms;
* :func:`check_chi2_estimate`: :math:`\chi_2 = (\langle M^2\rangle - \langle M\rangle^2)/V`;
* :func:`check_chi2_jackknife`: :math:`\chi_2` with its binned-jackknife error;
* :func:`check_cost_per_independent_sample`: seconds :math:`\times\,2\tau_{\rm int}/N`.

The machinery (captured functions, tamper check, kernel audit, tripwire, read-only module) is
:mod:`lftutor.graders.core`'s; the table ``_FORBID`` below says which of lftutor's answers each
exercise's code may not call.
"""

from __future__ import annotations

import math
import sys
import types

import numpy as _np
import torch as _torch

import lftutor.lattice.mcmc as _mcmc
import lftutor.lattice.observables as _observables
import lftutor.statistics as _statistics
import lftutor.training.metrics as _metrics
from lftutor.graders.core import (
    GradingError,
    T,
    begin,
    caller,
    capture_builtins,
    describe,
    f64,
    function_codes,
    generator,
    make_read_only,
    max_abs,
    number,
    ok,
    randn,
)

capture_builtins(globals())

__all__ = [
    "GradingError",
    "check_chi2_estimate",
    "check_chi2_jackknife",
    "check_cost_per_independent_sample",
    "check_metropolis_chain",
    "check_metropolis_step",
]

_M = types.SimpleNamespace(
    bool=_torch.bool, long=_torch.long, int32=_torch.int32, logical_not=_torch.logical_not,
    ne=_torch.ne, lt=_torch.lt, gt=_torch.gt, nonzero=_torch.nonzero, is_tensor=_torch.is_tensor,
    np_generic=_np.generic, np_ndarray=_np.ndarray, Parameter=_torch.nn.Parameter,
)


# --------------------------------------------------------------------------------------------
# Running the student's code with the tripwire of lftutor.grading armed.
# --------------------------------------------------------------------------------------------
_FORBID = {
    # lftutor.lattice.mcmc holds metropolis_accept and flow_metropolis; acceptance_rate and evaluate run
    # the same chain internally.
    "metropolis": (function_codes(_metrics.acceptance_rate, sys.modules["lftutor.training.loop"].evaluate),
                   {_mcmc.__file__}),
    # susceptibility, chi2_from_chain, jackknife, mean_with_error, tau_int...
    "chi2": (frozenset(), {_observables.__file__, _statistics.__file__}),
    "cost": (frozenset(), set()),
}
_call = caller(_FORBID)


# --------------------------------------------------------------------------------------------
# Exercise 1: the accept/reject step
# --------------------------------------------------------------------------------------------
def _decisions(log_w_current, log_w_proposal, u):
    """Reference decisions, and the entries far enough from the boundary that rounding in the
    student's dtype (float32 log-weights of size 3000 differ by ~1e-3) cannot flip them."""
    current, proposal = f64(log_w_current), f64(log_w_proposal)
    diff = proposal - current
    log_u = T.log(f64(u))
    accept = _M.lt(log_u, diff)
    eps = 1.2e-7 if log_w_current.dtype == T.float32 else 2.3e-16
    slack = 4 * eps * (T.abs(current) + T.abs(proposal) + T.abs(log_u)) + 1e4 * eps
    finite = T.isfinite(diff)
    margin = T.where(finite, T.abs(diff - log_u), T.ones(tuple(diff.shape), dtype=T.float64))
    slack = T.where(finite, slack, T.zeros(tuple(diff.shape), dtype=T.float64))
    return accept, _M.gt(margin, slack)


def _step_cases(hidden: bool):
    gen = generator(500)
    cases = []

    def pair(shape, dtype, *, scale=1.5, offset=0.0):
        current = randn(shape, T.float64, gen) * scale + offset
        proposal = randn(shape, T.float64, gen) * scale + offset
        u = T.rand(tuple(shape), generator=gen, dtype=T.float64) * 0.999 + 5e-4
        return T.to(current, dtype), T.to(proposal, dtype), T.to(u, dtype)

    cases.append(("moderate log-weights, shape (256,)", *pair((256,), T.float64)))
    cases.append(("log-weights near -10^4 (log p = -S without log Z), shape (128,)",
                  *pair((128,), T.float64, offset=-1e4)))
    if hidden:
        cases.append(("float32 log-weights near +3000, shape (64,)",
                      *pair((64,), T.float32, offset=3000.0)))
        cases.append(("float32 log-weights near -3000, shape (4, 5)",
                      *pair((4, 5), T.float32, offset=-3000.0)))
        cases.append(("0-dim tensors (one step of a chain)", *pair((), T.float64, scale=0.3)))
        cur, prop, u = pair((32,), T.float64, offset=-50.0)
        cases.append(("a current log-weight of -inf (the chain's start: always accept)",
                      T.full((32,), -math.inf, dtype=T.float64), prop, u))
        cases.append(("equal log-weights (always accept, since u < 1)", prop, T.clone(prop), u))
        cases.append(("differences of +-200 (exp overflows in float32)",
                      *pair((100,), T.float32, scale=100.0)))
    return cases


def check_metropolis_step(step_fn, level: str = "visible") -> None:
    r"""Check ``metropolis_step(log_w_current, log_w_proposal, u)``: a bool tensor, True where
    :math:`u < \min(1, w'/w)`, i.e. :math:`\log u < \log w' - \log w`.

    Visible: moderate log-weights and log-weights near :math:`-10^4` in float64. Hidden: float32
    near :math:`\pm3000`, other shapes (0-dim, ``(4, 5)``), a current log-weight of
    :math:`-\infty`, equal log-weights, differences of :math:`\pm200`. Entries whose decision a
    rounding error could flip are not compared.
    """
    hidden = begin(level)
    for label, current, proposal, u in _step_cases(hidden):
        expected, clear = _decisions(current, proposal, u)
        shape = tuple(current.shape)
        what = f"metropolis_step(...) with {label} ({current.dtype})"
        c_in, p_in, u_in = T.clone(current), T.clone(proposal), T.clone(u)
        out = _call("metropolis", "metropolis_step(log_w_current, log_w_proposal, u)", step_fn,
                    c_in, p_in, u_in)
        if not (T.equal(c_in, current) and T.equal(p_in, proposal) and T.equal(u_in, u)):
            raise GradingError(f"{what} changed its inputs in place; compute new tensors.")
        if isinstance(out, bool) or isinstance(out, _M.np_generic):
            if shape == ():
                out = T.tensor(bool(out))
            else:
                raise GradingError(f"{what} returned a single {type(out).__name__}; decide every "
                                   f"entry at once with tensor operations, a bool tensor of shape "
                                   f"{shape}.")
        if not isinstance(out, T.Tensor):
            raise GradingError(f"{what} returned {describe(out)}; expected a bool tensor of shape "
                               f"{shape}.")
        if tuple(out.shape) != shape:
            raise GradingError(f"{what} returned shape {tuple(out.shape)}, expected {shape}: one "
                               "decision per entry, the same shape as the inputs.")
        if out.dtype != _M.bool:
            raise GradingError(f"{what} returned {out.dtype} values; return the decision itself, a "
                               "bool tensor (a comparison such as `a < b` gives one), not the "
                               "acceptance probability.")
        got = T.getitem(out, clear)
        if T.equal(got, T.getitem(expected, clear)):
            continue
        wrong = [
            (T.to(T.log(f64(u)) < f64(current) - f64(proposal), _M.bool),
             "you accept with probability w/w' instead of w'/w: the proposal's weight goes in the "
             "numerator, log u < log w_proposal - log w_current."),
            (T.to(T.log(f64(u)) > f64(proposal) - f64(current), _M.bool),
             "the comparison is the wrong way round: accept when u is *below* w'/w (a likely "
             "proposal is accepted almost always)."),
            (T.to(f64(proposal) > f64(current), _M.bool),
             "you accept only proposals with a larger weight and ignore u: a proposal with a "
             "smaller weight must still be accepted, with probability w'/w."),
        ]
        for value, message in wrong:
            if T.equal(got, T.getitem(value, clear)):
                raise GradingError(f"{what} gives wrong decisions: {message}")
        n_wrong = int(T.item(T.tsum(T.to(_M.ne(got, T.getitem(expected, clear)), T.float64))))
        if abs(max_abs(current)) > 100 or abs(max_abs(proposal - current)) > 100:
            hint = ("Large log-weights make torch.exp overflow (inf/inf = nan) or underflow "
                    "(0/0 = nan), and comparisons with nan are False. Never exponentiate a "
                    "log-weight alone: compare log u with the difference log w' - log w.")
        else:
            hint = "Accept iff log u < log w_proposal - log w_current."
        raise GradingError(f"{what} gives {n_wrong} wrong decision(s) out of "
                           f"{int(T.item(T.tsum(T.to(clear, T.float64))))}. {hint}")
    ok("metropolis_step accepts with probability min(1, w'/w), in log space", hidden)


# --------------------------------------------------------------------------------------------
# Exercise 2: a whole independence-Metropolis chain
# --------------------------------------------------------------------------------------------
def _chain(log_w, log_u, *, compare_with="current", u_shift=0, rejected="held"):
    """Index held after each step (Python floats; proposal 0 starts the chain). The keyword
    arguments model typical mistakes."""
    n = len(log_w)
    idx, current = [0] * n, 0
    for i in range(1, n):
        ref = log_w[current] if compare_with == "current" else log_w[i - 1]
        lu = log_u[i - u_shift] if i - u_shift >= 0 else log_u[i]
        if lu < log_w[i] - ref:
            current = i
            idx[i] = i
        else:
            idx[i] = current if rejected == "held" else -1
    return idx


def _chain_inputs(n, dtype, gen, *, scale, offset=0.0, margin=1e-3):
    """Log-weights and uniforms such that no decision of the reference chain is a near tie."""
    lw = T.tolist(T.to(T.to(randn((n,), T.float64, gen) * scale + offset, dtype),
                         T.float64))
    u = T.tolist(T.rand((n,), generator=gen, dtype=T.float64) * 0.998 + 1e-3)
    current = 0
    for i in range(1, n):
        d = lw[i] - lw[current] - math.log(u[i])
        if abs(d) < margin:  # nudge u away from the boundary (keeps it uniform enough for a test)
            u[i] = min(0.999, u[i] * math.exp(4 * margin)) if d < 0 else u[i] * math.exp(-4 * margin)
        if math.log(u[i]) < lw[i] - lw[current]:
            current = i
    return (T.to(T.tensor(lw, dtype=T.float64), dtype), T.to(T.tensor(u, dtype=T.float64), dtype))


def _chain_cases(hidden: bool):
    gen = generator(520)
    cases = [("200 proposals with log-weights of spread 1.5", *_chain_inputs(200, T.float64, gen,
                                                                                  scale=1.5))]
    if hidden:
        cases.append(("2000 proposals, log-weights near -10^4",
                      *_chain_inputs(2000, T.float64, gen, scale=1.0, offset=-1e4)))
        cases.append(("500 float32 proposals, log-weights near -3000",
                      *_chain_inputs(500, T.float32, gen, scale=2.0, offset=-3000.0, margin=1e-2)))
        cases.append(("a single proposal", *_chain_inputs(1, T.float64, gen, scale=1.0)))
        lw, u = _chain_inputs(300, T.float64, gen, scale=0.0)
        cases.append(("equal log-weights (every proposal is accepted)", lw, u))
        lw, u = _chain_inputs(300, T.float64, gen, scale=0.5)
        lw[37] = 40.0  # one proposal the chain should never leave
        cases.append(("one dominant proposal at index 37", lw, u))
        cases.append(("400 proposals with log-weights of spread 4 (many rejections)",
                      *_chain_inputs(400, T.float64, gen, scale=4.0)))
    return cases


def check_metropolis_chain(chain_fn, level: str = "visible") -> None:
    r"""Check ``metropolis_chain(log_w, u)``: the index of the proposal held after each step.

    ``log_w`` (``(N,)``) are the log-weights of ``N`` proposals in the order they are made and
    ``u`` (``(N,)``) the uniforms; proposal 0 starts the chain, and at step ``i >= 1`` proposal
    ``i`` replaces the current state ``c`` iff ``log u[i] < log_w[i] - log_w[c]``. The answer, a
    ``torch.long`` tensor ``(N,)``, is compared with the grader's chain on the same uniforms.
    Visible: 200 proposals. Hidden: log-weights near :math:`-10^4`, float32, a single proposal,
    equal weights, a dominant proposal, many rejections.
    """
    hidden = begin(level)
    for label, log_w, u in _chain_cases(hidden):
        n = log_w.shape[0]
        lw, lu = T.tolist(f64(log_w)), [math.log(x) for x in T.tolist(f64(u))]
        expected = _chain(lw, lu)
        what = f"metropolis_chain(log_w, u) with {label} ({log_w.dtype})"
        lw_in, u_in = T.clone(log_w), T.clone(u)
        out = _call("metropolis", "metropolis_chain(log_w, u)", chain_fn, lw_in, u_in)
        if not (T.equal(lw_in, log_w) and T.equal(u_in, u)):
            raise GradingError(f"{what} changed its inputs in place; compute new tensors.")
        if isinstance(out, (list, tuple)):
            raise GradingError(f"{what} returned a Python {type(out).__name__}; return a tensor, "
                               "e.g. torch.tensor(indices) or a torch.empty(N, dtype=torch.long) "
                               "filled in the loop.")
        if not isinstance(out, T.Tensor):
            raise GradingError(f"{what} returned {describe(out)}; expected a torch.long tensor "
                               f"of shape ({n},).")
        if tuple(out.shape) != (n,):
            raise GradingError(f"{what} returned shape {tuple(out.shape)}, expected ({n},): one index "
                               "per step, the proposal the chain holds after that step.")
        if out.dtype == _M.bool:
            raise GradingError(f"{what} returned a bool tensor, presumably which steps accepted; "
                               "return the index of the proposal the chain holds after each step "
                               "(after a rejection: the index held before).")
        if T.is_floating_point(out):
            raise GradingError(f"{what} returned {out.dtype} values; indices are integers "
                               "(dtype=torch.long), so that they can index the proposals.")
        got = T.tolist(out)
        if got == expected:
            continue
        if n and got[0] != 0:
            raise GradingError(f"{what} starts at index {got[0]}; proposal 0 starts the chain (it "
                               "is always accepted: there is no state before it), so the first "
                               "index is 0.")
        variants = [
            (_chain(lw, lu, compare_with="previous"),
             "you compared proposal i with proposal i-1. After a rejection the chain still holds an "
             "older state: compare with the log-weight of the state it holds now."),
            (_chain(lw, lu, u_shift=1),
             "step i must use u[i] (you used u[i-1]): the grader feeds the same uniforms to its own "
             "chain."),
            (_chain(lw, lu, rejected="minus_one"),
             "after a rejection, record the index the chain keeps (the current state), not -1."),
            (_chain([-x for x in lw], lu),
             "the weights are inverted: accept with probability min(1, w_proposal / w_current)."),
        ]
        for value, message in variants:
            if got == value and value != expected:
                raise GradingError(f"{what} is not the reference chain: {message}")
        first = next(i for i in range(n) if got[i] != expected[i])
        raise GradingError(f"{what} first differs from the reference chain at step {first}: you hold "
                           f"proposal {got[first]}, the chain should hold {expected[first]}. At each "
                           "step i >= 1 run your metropolis_step on (log-weight of the current state, "
                           "log_w[i], u[i]); move to i if it accepts, else stay.")
    ok("metropolis_chain reproduces the reference chain step by step", hidden)


# --------------------------------------------------------------------------------------------
# Exercises 3 and 4: chi_2 and its jackknife error
# --------------------------------------------------------------------------------------------
def _ar1(n, gen, *, rho, mean=0.0, scale=5.0):
    """An autocorrelated series, like magnetizations along a Markov chain (float64 list)."""
    noise = T.tolist(randn((n,), T.float64, gen))
    out, x = [], 0.0
    for e in noise:
        x = rho * x + math.sqrt(1 - rho * rho) * e
        out.append(mean + scale * x)
    return out


def _chi2(values, volume) -> float:
    n = len(values)
    mean = sum(values) / n
    return sum((v - mean) ** 2 for v in values) / n / volume


def _jackknife(values, volume, bin_size, *, factor=True, contiguous=True):
    """Binned jackknife of chi_2 from bin sums (O(N)); ``contiguous=False`` models strided bins."""
    n_bins = len(values) // bin_size
    data = values[: n_bins * bin_size]
    s1, s2 = [0.0] * n_bins, [0.0] * n_bins
    for j, v in enumerate(data):
        k = j // bin_size if contiguous else j % n_bins
        s1[k] += v
        s2[k] += v * v
    total1, total2, kept = sum(s1), sum(s2), len(data) - bin_size
    thetas = []
    for k in range(n_bins):
        mean = (total1 - s1[k]) / kept
        thetas.append(((total2 - s2[k]) / kept - mean * mean) / volume)
    centre = sum(thetas) / n_bins
    ss = sum((t - centre) ** 2 for t in thetas)
    return _chi2(data, volume), math.sqrt(((n_bins - 1) / n_bins if factor else 1.0) * ss)


def _chi2_cases(hidden: bool):
    gen = generator(540)
    cases = [("1000 magnetizations of an 8x8 lattice", _ar1(1000, gen, rho=0.6, mean=1.5), 64,
              T.float64)]
    if hidden:
        cases += [("two magnetizations", [3.0, -1.0], 16, T.float64),
                  ("500 float32 magnetizations of a 4x4 lattice", _ar1(500, gen, rho=0.0, mean=-4.0),
                   16, T.float32),
                  ("300 magnetizations near +40 (a broken phase)",
                   _ar1(300, gen, rho=0.9, mean=40.0, scale=2.0), 64, T.float64),
                  ("constant magnetizations (chi_2 = 0)", [2.5] * 50, 64, T.float64)]
    return cases


def check_chi2_estimate(chi2_fn, level: str = "visible") -> None:
    r"""Check ``chi2_estimate(m, volume)``: :math:`(\overline{M^2} - \overline{M}^2)/V` from
    magnetizations ``m`` of shape ``(N,)``, averages over the ``N`` measurements (divide by
    ``N``, not ``N - 1``). Returns a number (float or 0-dim tensor).

    Visible: 1000 values, ``V = 64``. Hidden: two values, float32, a large mean (compute in
    float64), a constant chain.
    """
    hidden = begin(level)
    for label, values, volume, dtype in _chi2_cases(hidden):
        m = T.to(T.tensor(values, dtype=T.float64), dtype)
        vals = T.tolist(f64(m))
        expected = _chi2(vals, volume)
        what = f"chi2_estimate(m, {volume}) with {label} ({dtype})"
        m_in = T.clone(m)
        value = number(_call("chi2", "chi2_estimate(m, volume)", chi2_fn, m_in, volume), what)
        if not T.equal(m_in, m):
            raise GradingError(f"{what} changed m in place; compute new tensors.")
        scale = max(abs(expected), sum(v * v for v in vals) / len(vals) / volume * 1e-3, 1e-12)
        tol = (1e-9 if dtype == T.float64 else 1e-4) * scale + 1e-12
        if abs(value - expected) <= tol:
            continue
        n = len(vals)
        mean_sq = sum(v * v for v in vals) / n
        variants = [
            (expected * volume, "you forgot to divide by the volume V: chi_2 is the variance of M "
                                "per site."),
            (expected * n / (n - 1) if n > 1 else math.nan,
             "you divided by N - 1 (torch.var's default): the exercise's averages divide by N "
             "(torch.var(m, correction=0), or the two means)."),
            (mean_sq / volume, "you forgot to subtract <M>^2: chi_2 is the connected part, "
                               "(<M^2> - <M>^2) / V."),
            (expected / volume, "you divided by V twice (or used the magnetization per site): "
                                "chi_2 = (<M^2> - <M>^2) / V with M the sum over sites."),
            (expected * volume * volume, "chi_2 = (<M^2> - <M>^2) / V: divide by V."),
        ]
        for wrong, message in variants:
            if math.isfinite(wrong) and abs(value - wrong) <= 1e-4 * max(abs(wrong), 1e-12) \
                    and abs(wrong - expected) > tol:
                raise GradingError(f"{what} = {value:.8g}, expected {expected:.8g}. "
                                   f"{message[0].upper()}{message[1:]}")
        hint = (" With a large mean, <M^2> and <M>^2 nearly cancel: convert m to float64 first "
                "(m.double()) or average (m - m.mean())^2." if dtype == T.float32 or
                abs(sum(vals) / n) > 10 else "")
        raise GradingError(f"{what} = {value:.8g}, expected {expected:.8g} = (mean(m^2) - "
                           f"mean(m)^2) / V.{hint}")
    ok("chi2_estimate is (<M^2> - <M>^2) / V", hidden)


def _jack_cases(hidden: bool):
    gen = generator(560)
    cases = [("2000 autocorrelated magnetizations, bins of 50",
              _ar1(2000, gen, rho=0.8, mean=1.0), 64, 50, T.float64)]
    if hidden:
        cases += [("1030 values, bins of 40 (the last 30 values are dropped)",
                   _ar1(1030, gen, rho=0.7, mean=-2.0), 64, 40, T.float64),
                  ("bins of 1 (the plain jackknife)", _ar1(200, gen, rho=0.0, mean=0.5), 16, 1,
                   T.float64),
                  ("two bins", _ar1(100, gen, rho=0.5), 64, 50, T.float64),
                  ("600 float32 values, bins of 20", _ar1(600, gen, rho=0.6, mean=3.0), 16, 20,
                   T.float32)]
    return cases


def check_chi2_jackknife(jack_fn, level: str = "visible") -> None:
    r"""Check ``chi2_jackknife(m, volume, bin_size) -> (chi2, error)``: the binned jackknife.

    With ``n = N // bin_size`` bins of consecutive measurements (the last ``N % bin_size`` values
    dropped), :math:`\hat\chi_{2,(k)}` is the estimate without bin ``k`` and
    :math:`\sigma^2 = \frac{n-1}{n}\sum_k(\hat\chi_{2,(k)} - \bar\chi_2)^2`; ``chi2`` is the
    estimate on the kept data (on all the data is accepted too). Visible: 2000 autocorrelated
    values in bins of 50. Hidden: a leftover, bins of 1, two bins, float32.
    """
    hidden = begin(level)
    for label, values, volume, bin_size, dtype in _jack_cases(hidden):
        m = T.to(T.tensor(values, dtype=T.float64), dtype)
        vals = T.tolist(f64(m))
        chi2, err = _jackknife(vals, volume, bin_size)
        what = f"chi2_jackknife(m, {volume}, bin_size={bin_size}) with {label} ({dtype})"
        m_in = T.clone(m)
        out = _call("chi2", "chi2_jackknife(m, volume, bin_size)", jack_fn, m_in, volume, bin_size)
        if not T.equal(m_in, m):
            raise GradingError(f"{what} changed m in place; compute new tensors.")
        if not (isinstance(out, tuple) and len(out) == 2):
            raise GradingError(f"{what} returned {describe(out)}; return a pair "
                               "(chi2, error).")
        value = number(out[0], f"the chi2 of {what}")
        error = number(out[1], f"the error of {what}")
        rtol = 1e-8 if dtype == T.float64 else 1e-4
        rtol_err = 1e-7 if dtype == T.float64 else 2e-3
        all_data = _chi2(vals, volume)
        if abs(value - chi2) > rtol * abs(chi2) and abs(value - all_data) > rtol * abs(all_data):
            raise GradingError(f"the chi2 of {what} = {value:.8g}, expected {chi2:.8g}: "
                               "chi2_estimate(m, volume) of exercise 3 on the whole series (or on "
                               "the part that fills the bins).")
        if abs(error - err) <= rtol_err * err + 1e-14:
            continue
        n_bins = len(vals) // bin_size
        variants = [
            (_jackknife(vals, volume, bin_size, factor=False)[1],
             f"the factor (n - 1)/n is missing (n = {n_bins} bins): the leave-one-out estimates "
             "scatter n - 1 times less than independent estimates would, and the factor puts that "
             "back."),
            (_jackknife(vals, volume, bin_size, factor=False)[1] / n_bins,
             "you took the standard error of the leave-one-out estimates, std / sqrt(n); they are "
             "strongly correlated (each shares all but one bin with the others), so the jackknife "
             "variance is (n - 1)/n times the sum of squared deviations."),
            (_jackknife(vals, volume, 1)[1] if bin_size > 1 else math.nan,
             "you left out single measurements: leave out whole bins of bin_size consecutive "
             "values, so that the error accounts for the autocorrelation."),
            (_jackknife(vals, volume, bin_size, contiguous=False)[1],
             "your bins are not consecutive: bin k holds m[k*bin_size:(k+1)*bin_size]. Consecutive "
             "measurements are correlated, which is why they must share a bin."),
            (err * err, "you returned the variance; the error is its square root."),
        ]
        for wrong, message in variants:
            if math.isfinite(wrong) and abs(error - wrong) <= 1e-6 * abs(wrong) + 1e-14 \
                    and abs(wrong - err) > 1e-6 * err:
                raise GradingError(f"the error of {what} = {error:.6g}, expected {err:.6g}: "
                                   f"{message}")
        raise GradingError(f"the error of {what} = {error:.6g}, expected {err:.6g} = sqrt((n-1)/n * "
                           "sum_k (chi2_(k) - mean_k chi2_(k))^2), chi2_(k) computed without bin k "
                           f"(n = {n_bins} bins of {bin_size}; drop the last N % bin_size values).")
    ok("chi2_jackknife gives chi_2 with its binned-jackknife error", hidden)


# --------------------------------------------------------------------------------------------
# Exercise 6: cost per independent sample
# --------------------------------------------------------------------------------------------
def check_cost_per_independent_sample(cost_fn, level: str = "visible") -> None:
    r"""Check ``cost_per_independent_sample(seconds, n_samples, tau_int)``:
    :math:`t\cdot 2\tau_{\rm int}/N`, the seconds per statistically independent sample
    (:math:`\tau_{\rm int} = 1/2` for independent samples). Hidden: more values, ``tau_int = 0.5``.
    """
    hidden = begin(level)
    cases = [(12.0, 6000, 3.5)]
    if hidden:
        cases += [(0.8, 1000, 0.5), (95.0, 250000, 41.2), (7, 10, 2)]
    for seconds, n, tau in cases:
        expected = seconds * 2 * tau / n
        what = f"cost_per_independent_sample({seconds}, {n}, {tau})"
        value = number(_call("cost", "cost_per_independent_sample(seconds, n_samples, tau_int)",
                              cost_fn, seconds, n, tau), what)
        if abs(value - expected) <= 1e-9 * expected:
            continue
        variants = [
            (seconds * tau / n, "the factor 2 is missing: with tau_int = 1/2 + sum_t rho(t), a chain "
                                "of N samples holds N / (2 tau_int) independent ones."),
            (n / (2 * tau * seconds), "you returned independent samples per second; the exercise "
                                      "asks for its inverse, seconds per independent sample."),
            (n / (2 * tau), "that is the number of independent samples; divide the seconds by it."),
            (seconds / n, "you ignored the autocorrelation: each sample is worth only 1/(2 tau_int) "
                          "of an independent one."),
        ]
        for wrong, message in variants:
            if abs(value - wrong) <= 1e-9 * abs(wrong) and abs(wrong - expected) > 1e-12:
                raise GradingError(f"{what} = {value:.6g}, expected {expected:.6g}. "
                                   f"{message[0].upper()}{message[1:]}")
        raise GradingError(f"{what} = {value:.6g}, expected {expected:.6g} = seconds * 2 tau_int / N.")
    ok("cost_per_independent_sample is seconds * 2 tau_int / N", hidden)


make_read_only(__name__)
