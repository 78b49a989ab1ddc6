r"""Graders of unit 10 (U(1) gauge theory in two dimensions): what that notebook's test cells call.

Links are angles ``theta`` of shape ``(batch, 2, L0, L1)``, ``theta[:, mu, x0, x1]`` the link
from :math:`x` to :math:`x+\hat\mu`. The exercises, each compared with a reference kept here:

* :func:`check_plaquette_angles`:
  :math:`\theta_P(x)=\theta_0(x)+\theta_1(x+\hat0)-\theta_0(x+\hat1)-\theta_1(x)`, periodic;
* :func:`check_gauge_transform`: :math:`\theta_\mu(x)\to\alpha(x)+\theta_\mu(x)-\alpha(x+\hat\mu)`;
* :func:`check_topological_charge`: :math:`Q=\frac1{2\pi}\sum_x[\theta_P(x)]_{(-\pi,\pi]}`;
* :func:`check_metropolis_chain`: the independence-Metropolis chain of an observable.

Built on :mod:`lftutor.graders.core` (captured torch functions, tripwire, tamper check, audit);
read-only once imported.
"""

from __future__ import annotations

import math

import torch as _torch

import lftutor.lattice.mcmc as _mcmc
import lftutor.lattice.u1 as _u1
from lftutor.graders.core import (
    GradingError,
    T,
    begin,
    caller,
    capture_builtins,
    close,
    generator,
    make_read_only,
    max_abs_diff,
    module_codes,
    ok,
    tensor_result,
)

capture_builtins(globals())

__all__ = ["GradingError", "check_gauge_transform", "check_metropolis_chain", "check_plaquette_angles",
           "check_topological_charge"]

_TWO_PI = 2 * math.pi
_ceil, _floor, _remainder = _torch.ceil, _torch.floor, _torch.remainder  # captured now, like core.T
_FORBID = {
    "u1": (module_codes(_u1), {_u1.__file__}),
    "metropolis": (module_codes(_mcmc), {_mcmc.__file__, _u1.__file__}),
}
_call = caller(_FORBID)


def _links(n, shape, dtype, seed):
    gen = generator(seed)
    return T.mul(T.sub(T.mul(T.rand((n, 2, *shape), generator=gen, dtype=T.float64), 2.0), 1.0),
                 3.0 * math.pi).to(dtype)  # angles in (-3 pi, 3 pi): wrapping matters


def _roll(x, shift, dim):
    return T.roll(x, shift, dim)


def _plaq(theta, *, s0=-1, s1=-1, sign=1.0):
    t0, t1 = theta[:, 0], theta[:, 1]
    p = t0 + _roll(t1, s0, 1) - _roll(t0, s1, 2) - t1
    return p * sign


def _wrap(x):
    return x - _TWO_PI * _ceil((x - math.pi) / _TWO_PI)


def _shapes(hidden):
    return [(4, 4)] + ([(3, 5), (6, 4), (2, 2), (8, 8)] if hidden else [])


def _dtypes(hidden):
    return [T.float64] + ([T.float32] if hidden else [])


def _compare(out, expected, variants, what: str, dtype, lesson: str) -> None:
    """``out`` (a checked tensor) is ``expected``; else the lesson of the first typical mistake
    (``variants``: ``(value, message)`` pairs) that it matches, else its largest error and ``lesson``."""
    if close(out, expected, dtype):
        return
    for wrong, message in variants:
        if close(out, wrong, dtype):
            raise GradingError(f"{what} is wrong: {message}")
    raise GradingError(f"{what} is wrong (largest error {max_abs_diff(out, expected):.3g}); {lesson}")


# --------------------------------------------------------------------------------------------
def check_plaquette_angles(fn, level: str = "visible") -> None:
    r"""Check ``plaquette_angles(theta)``: ``(batch, 2, L0, L1) -> (batch, L0, L1)``, not wrapped.

    Visible: 4x4, float64; hidden: rectangular and tiny lattices, float32.
    """
    hidden = begin(level)
    for i, shape in enumerate(_shapes(hidden)):
        for dtype in _dtypes(hidden):
            theta = _links(3, shape, dtype, 1000 + i)
            what = f"plaquette_angles(theta) for theta of shape {tuple(theta.shape)} ({dtype})"
            expected = _plaq(theta)
            variants = [
                (_plaq(theta, sign=-1.0), "your plaquettes have the opposite sign: go around the square "
                 "counter-clockwise, theta_0(x) + theta_1(x + 0hat) - theta_0(x + 1hat) - theta_1(x)."),
                (_plaq(theta, s0=1, s1=1), "you rolled by +1: torch.roll(t, 1, dim)[x] is t[x - 1]; the "
                 "neighbour x + mu-hat is torch.roll(t, -1, dim)."),
                (_plaq(theta, s0=-1, s1=1), "theta_0(x + 1hat) needs torch.roll(theta_0, -1, dims=2) "
                 "(dimension 2 of a (batch, L0, L1) tensor is direction 1)."),
                (theta[:, 0] + _roll(theta[:, 1], -1, 2) - _roll(theta[:, 0], -1, 1) - theta[:, 1],
                 "you shifted along the wrong lattice directions: theta_1 is taken at x + 0hat "
                 "(dims=1) and theta_0 at x + 1hat (dims=2)."),
                (_wrap(expected), "do not wrap the plaquettes here: return the plain sum of four link "
                 "angles (wrapping comes with the topological charge)."),
            ]
            out = tensor_result(_call("u1", what, fn, T.clone(theta)), what, shape=(3, *shape), dtype=dtype,
                                shape_hint="One angle per plaquette: (batch, L0, L1).",
                                expected=expected, variants=variants)
            _compare(out, expected, variants, what, dtype,
                     "theta_P(x) = theta_0(x) + theta_1(x + 0hat) - theta_0(x + 1hat) - theta_1(x), "
                     "with periodic boundaries (torch.roll).")
    ok("plaquette_angles: orientation and periodic boundaries are right", hidden)


# --------------------------------------------------------------------------------------------
def _gauge(theta, alpha, *, shift=-1, sign=1.0, swap=False):
    a0 = alpha - _roll(alpha, shift, 1 if not swap else 2)
    a1 = alpha - _roll(alpha, shift, 2 if not swap else 1)
    return theta + sign * T.stack([a0, a1], 1)


def check_gauge_transform(fn, level: str = "visible") -> None:
    r"""Check ``gauge_transform(theta, alpha)`` with ``alpha`` of shape ``(batch, L0, L1)``."""
    hidden = begin(level)
    for i, shape in enumerate(_shapes(hidden)):
        for dtype in _dtypes(hidden):
            theta = _links(2, shape, dtype, 1100 + i)
            alpha = _links(1, shape, dtype, 1150 + i)[:, 0].expand(2, *shape).contiguous()
            alpha = alpha + T.arange(2, dtype=dtype).view(2, 1, 1)  # different per sample
            what = f"gauge_transform(theta, alpha) on a {shape[0]}x{shape[1]} lattice ({dtype})"
            expected = _gauge(theta, alpha)
            variants = [
                (_gauge(theta, alpha, sign=-1.0), "the signs are reversed: theta_mu(x) -> alpha(x) + "
                 "theta_mu(x) - alpha(x + mu-hat), the link from x to x + mu-hat picks up the angle at its "
                 "start with +."),
                (_gauge(theta, alpha, shift=1), "alpha(x + mu-hat) is torch.roll(alpha, -1, dims=1 + mu); "
                 "rolling by +1 gives alpha(x - mu-hat)."),
                (_gauge(theta, alpha, swap=True), "direction 0 shifts along dimension 1 of alpha and "
                 "direction 1 along dimension 2; you swapped them."),
                (theta, "you returned theta unchanged: the links do change, only the plaquettes do not."),
            ]
            out = tensor_result(_call("u1", what, fn, T.clone(theta), T.clone(alpha)), what,
                                shape=tuple(theta.shape), dtype=dtype, expected=expected, variants=variants)
            _compare(out, expected, variants, what, dtype,
                     "expected theta_mu(x) + alpha(x) - alpha(x + mu-hat), periodic.")
    ok("gauge_transform moves the links and leaves every plaquette alone", hidden)


# --------------------------------------------------------------------------------------------
def _boundary_links(shape, dtype):
    r"""One link at exactly :math:`\pi`, all others 0: its two plaquettes are :math:`+\pi` and
    :math:`-\pi` (the float ``math.pi``, the representable value the wrapping formulas treat as
    :math:`\pi`). Wrapped into :math:`(-\pi,\pi]` both become :math:`+\pi`, so :math:`Q = 1`; into
    :math:`[-\pi,\pi)` both become :math:`-\pi` (:math:`Q=-1`); left where they are, :math:`Q=0`."""
    theta = T.zeros((1, 2, *shape), dtype=dtype)
    theta[0, 0, 1, 1] = math.pi
    return theta


def _charge_cases(hidden):
    yield "random links", _links(4, (4, 4), T.float64, 1200)
    for k, shape in ([(1, (4, 4)), (-2, (4, 4))] + ([(3, (4, 6)), (0, (3, 3))] if hidden else [])):
        l0, l1 = shape
        b = _TWO_PI * k / (l0 * l1)
        theta = T.zeros((1, 2, l0, l1), dtype=T.float64)
        theta[0, 1] = b * T.arange(l0, dtype=T.float64)[:, None]
        theta[0, 0, l0 - 1] = -b * l0 * T.arange(l1, dtype=T.float64)
        yield f"a configuration of charge {k} on {l0}x{l1}", theta
    yield "one link at exactly pi (plaquettes +pi and -pi)", _boundary_links((4, 4), T.float64)
    if hidden:
        yield "random links in float32", _links(5, (6, 4), T.float32, 1201)
        # per sample: the boundary configuration between two random ones, on a rectangle, float32
        mixed = T.cat([_links(1, (3, 5), T.float32, 1202), _boundary_links((3, 5), T.float32),
                       _links(1, (3, 5), T.float32, 1203)])
        yield "a batch with one link at exactly pi in its second configuration (float32)", mixed


def _wrap_low(x):
    """Into [-pi, pi): the mistake of wrapping to the wrong closed end."""
    return x - _TWO_PI * _floor((x + math.pi) / _TWO_PI)


def check_topological_charge(fn, level: str = "visible") -> None:
    r"""Check ``topological_charge(theta)``: ``(batch,)``, plaquettes wrapped into :math:`(-\pi,\pi]`.

    Visible: random links, configurations of known charge, and one link at exactly :math:`\pi`
    (plaquettes at :math:`\pm\pi`: the end of the interval matters); hidden: more lattices,
    float32, and that boundary case inside a batch.
    """
    hidden = begin(level)
    for label, theta in _charge_cases(hidden):
        dtype = theta.dtype
        what = f"topological_charge(theta) for {label}"
        p = _plaq(theta)
        expected = T.tsum(T.flatten(_wrap(p), 1), 1) / _TWO_PI
        if "exactly pi" in label:  # where the end of the interval matters
            variants = [
                (T.tsum(T.flatten(_wrap_low(p), 1), 1) / _TWO_PI, "you wrapped into [-pi, pi): an angle "
                 "of exactly -pi must become +pi, and +pi must stay (the interval is (-pi, pi], closed "
                 "at +pi). Check where your formula sends +-pi, e.g. x - 2 pi ceil((x - pi) / (2 pi))."),
                (T.tsum(T.flatten(T.where(p == -math.pi, p, _wrap(p)), 1), 1) / _TWO_PI, "you left a "
                 "plaquette of exactly -pi at -pi (atan2(sin, cos), torch.round or a clamp do that): the "
                 "interval is (-pi, pi], so -pi must become +pi, and +pi must stay."),
            ]
        else:
            variants = [(T.tsum(T.flatten(p, 1), 1) / _TWO_PI, "you summed the plaquettes without "
                         "wrapping them: the raw sum is always 0 on a periodic lattice. Wrap each angle "
                         "into (-pi, pi] first.")]
        variants += [
            (T.tsum(T.flatten(_remainder(p, _TWO_PI), 1), 1) / _TWO_PI, "you wrapped into [0, 2 pi); "
             "the charge needs the angle nearest to 0, in (-pi, pi]."),
            (T.tsum(T.flatten(_wrap(p), 1), 1), "divide the sum of wrapped angles by 2 pi."),
            (T.tsum(T.flatten(T.sin(p), 1), 1) / _TWO_PI, "sin(theta_P) is a smooth stand-in that is "
             "not an integer; use the wrapped angle itself."),
        ]
        out = tensor_result(_call("u1", what, fn, T.clone(theta)), what, shape=(theta.shape[0],),
                            dtype=dtype, shape_hint="One charge per configuration: (batch,).",
                            expected=expected, variants=variants)
        if close(out, expected, dtype, atol=1e-4 if dtype == T.float32 else 1e-8):
            continue
        for wrong, message in variants:
            if close(out, wrong, dtype, atol=1e-4):
                raise GradingError(f"{what} is wrong: {message}")
        raise GradingError(f"{what} = {T.tolist(out)}, expected {T.tolist(expected)}: "
                           "Q = sum_x wrap(theta_P(x)) / (2 pi), wrap into (-pi, pi].")
    ok("topological_charge is an integer, with the plaquettes wrapped into (-pi, pi]", hidden)


# --------------------------------------------------------------------------------------------
def _chain(values, log_w, u, *, flip=False, drop=False):
    out, kept = [], []
    cur_v, cur_lw = None, -math.inf
    for i in range(values.shape[0]):
        lw = T.item(log_w[i])
        ratio = (cur_lw - lw) if flip else (lw - cur_lw)
        if cur_v is None or math.log(T.item(u[i])) < ratio:
            cur_v, cur_lw = values[i], lw
            kept.append(values[i])
        out.append(cur_v)
    return T.stack(kept if drop else out)


def check_metropolis_chain(fn, level: str = "visible") -> None:
    r"""Check ``metropolis_chain(values, log_w, u)``: the chain of ``values`` (``(n,)``)."""
    hidden = begin(level)
    sizes = [(12, 0.5)] + ([(40, 2.0), (25, 0.1), (1, 1.0), (30, 5.0)] if hidden else [])
    for seed, (n, spread) in enumerate(sizes):
        gen = generator(1300 + seed)
        values = T.randn((n,), generator=gen, dtype=T.float64)
        log_w = spread * T.randn((n,), generator=gen, dtype=T.float64)
        u = T.rand((n,), generator=gen, dtype=T.float64)
        what = f"metropolis_chain(values, log_w, u) for {n} proposals"
        expected = _chain(values, log_w, u)
        out = tensor_result(_call("metropolis", what, fn, T.clone(values), T.clone(log_w), T.clone(u)),
                            what, shape=(n,), dtype=T.float64, expected=expected,
                            shape_hint="One entry per proposal: repeat the current value on a rejection.")
        if close(out, expected, T.float64):
            continue
        dropped = _chain(values, log_w, u, drop=True)
        if tuple(out.shape) == tuple(dropped.shape) and close(out, dropped, T.float64):
            raise GradingError(f"{what} is wrong: on a rejection the chain stays where it is and the "
                               "current value counts again; do not skip it.")
        if close(out, _chain(values, log_w, u, flip=True), T.float64):
            raise GradingError(f"{what} is wrong: accept when log u < log w(proposal) - log w(current); "
                               "you used the opposite difference.")
        if close(out, values, T.float64):
            raise GradingError(f"{what} is wrong: you accepted every proposal; compare log u with the "
                               "log-weight difference.")
        raise GradingError(f"{what} is wrong; the first proposal starts the chain, then proposal i "
                           "replaces the current state iff log(u[i]) < log_w[i] - log_w[current].")
    ok("metropolis_chain keeps the current value on rejections and accepts with min(1, w'/w)", hidden)


make_read_only(__name__)
