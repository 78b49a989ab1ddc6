r"""Graders of unit 8 (continuous normalizing flows): what that notebook's test cells call.

* :func:`check_hutchinson_trace`: ``hutchinson_trace(f, z, v) -> (f(z), v^T J v)`` per sample;
* :func:`check_trace_variance`: the variance of the one-probe estimate of :math:`\operatorname{tr}A`,
  :math:`2\|A_s\|_F^2` (Gaussian) and :math:`2\sum_{i\ne j}(A_s)_{ij}^2` (Rademacher);
* :func:`check_augmented_dynamics`: the right-hand side :math:`(f(z,t), -\operatorname{tr}\,
  \partial f/\partial z)` of the ODE for :math:`(z, \log p)` (arXiv:1806.07366, theorem 1);
* :func:`check_push_forward`: :math:`x = z(t_1)` from :math:`dz/dt = f(z,t)`, :math:`z(0)=z`.

The references are computed here from closed forms (a field whose Jacobian is known) or, for the
ODE solve, with torchdiffeq at tight tolerance in float64. Calls into lftutor's continuous-flow
and trace modules are refused (:mod:`lftutor.graders.core`'s tripwire).
"""

from __future__ import annotations

import types
from copy import deepcopy as _deepcopy
from functools import partial as _partial

import torch as _torch
from torchdiffeq import odeint as _odeint

import lftutor.bijections.continuous as _continuous
import lftutor.bijections.trace as _trace
from lftutor.graders.core import (
    GradingError,
    T,
    begin,
    caller,
    capture_builtins,
    close,
    describe,
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

__all__ = ["GradingError", "check_augmented_dynamics", "check_hutchinson_trace", "check_push_forward",
           "check_trace_variance"]

_L = types.SimpleNamespace(matmul=_torch.matmul, tanh=_torch.tanh, diagonal=_torch.diagonal,
                           transpose=_torch.transpose, trace=_torch.trace, sign=_torch.sign,
                           Parameter=_torch.nn.Parameter, linspace=_torch.linspace)

_TRACE_CODES = function_codes(_trace.hutchinson_trace, _trace.exact_trace, _trace.hutchinson_variance)
_FORBID = {
    "hutchinson_trace": (_TRACE_CODES, set()),
    "trace_variance": (_TRACE_CODES, set()),
    "augmented_dynamics": (_TRACE_CODES | method_codes(_continuous._Dynamics), set()),
    "push_forward": (method_codes(_continuous.ContinuousFlow, _continuous._Plain), set()),
}
_call = caller(_FORBID)


def _field(dim: int, units: int, dtype, gen, *, linear: bool = False):
    """A test field with random weights: lftutor's planar field (or a linear one), whose Jacobian
    :func:`_jacobian` knows in closed form. Its code lives outside the graders, so the student's
    code may call it."""
    if linear:
        return _continuous.LinearField(randn((dim, dim), dtype, gen))
    field = T.module_to(_continuous.PlanarField(dim, n_units=units, gate_hidden=4), dtype)
    with T.no_grad():
        for p in T.parameters(field):
            T.copy_(p, randn(tuple(p.shape), dtype, gen) * 0.8)
    return field


def _field_and_points(seed: int, dim: int, n: int, dtype, *, linear: bool = False):
    """``(gen, field, z)``: a :func:`_field` of 3 units and ``n`` points ``z`` of shape ``(n, dim)``,
    both drawn from ``gen``, the generator of ``seed`` (which the check may draw more from)."""
    gen = generator(seed)
    field = _field(dim, 3, dtype, gen, linear=linear)
    return gen, field, randn((n, dim), dtype, gen)


def _jacobian(field, t, z):
    """``(batch, D, D)``: ``J[b, j, i] = d f_j / d z_i`` of a :func:`_field`."""
    if isinstance(field, _continuous.LinearField):
        return T.unsqueeze(field.a, 0) + 0 * T.unsqueeze(T.unsqueeze(z[:, 0], 1), 2)
    s = (1 - _L.tanh(_L.matmul(z, _L.transpose(field.w, 0, 1)) + field.b) ** 2) * field.gates(t)  # (b, K)
    ut = _L.transpose(field.u, 0, 1)                                                           # (D, K)
    return _L.matmul(T.unsqueeze(ut, 0) * T.unsqueeze(s, 1), field.w)


def _pair(out, what: str, n: int, dim: int, dtype, second: str):
    if not (isinstance(out, tuple) and len(out) == 2):
        raise GradingError(f"{what} returned {describe(out)}; it returns a pair (dz/dt of shape "
                           f"({n}, {dim}), {second} of shape ({n},)).")
    first = tensor_result(out[0], f"the first item returned by {what}", shape=(n, dim), dtype=dtype)
    if isinstance(out[1], T.Tensor) and tuple(out[1].shape) == (n, dim):
        raise GradingError(f"the second item returned by {what} has shape ({n}, {dim}); {second} is one "
                           f"number per sample, shape ({n},): sum over the dimension.")
    sec = tensor_result(out[1], f"the second item returned by {what}", shape=(n,), dtype=dtype,
                        shape_hint="One value per sample.")
    return first, sec


# --------------------------------------------------------------------------------------------
# Exercise 1: Hutchinson's estimator
# --------------------------------------------------------------------------------------------
def check_hutchinson_trace(fn, level: str = "visible") -> None:
    r"""Check ``hutchinson_trace(f, z, v)``: ``(f(z), sum_i v_i (J v)_i)``, ``J`` the Jacobian of ``f``.

    ``f`` maps ``(batch, D)`` to ``(batch, D)`` row by row. Visible: a linear and a non-linear
    field, ``D = 2``, float32, Gaussian probes; hidden: ``D = 1, 3, 5``, float64, Rademacher probes,
    a batch of one.
    """
    hidden = begin(level)
    cases = [(2, 8, T.float32, False), (2, 8, T.float32, True)]
    if hidden:
        cases += [(3, 5, T.float64, True), (5, 1, T.float64, True), (1, 4, T.float64, True),
                  (4, 6, T.float32, False)]
    for k, (dim, n, dtype, nonlinear) in enumerate(cases):
        gen, field, z = _field_and_points(800 + k, dim, n, dtype, linear=not nonlinear)
        t = T.tensor(0.3, dtype=dtype)
        v = randn((n, dim), dtype, gen)
        if hidden and k % 2 == 0:
            v = _L.sign(v)
        what = f"hutchinson_trace(f, z, v) (D = {dim}, batch {n}, {dtype})"
        with T.no_grad():
            fz = field(t, z)
            jac = _jacobian(field, t, z)
            jv = T.squeeze(_L.matmul(jac, T.unsqueeze(v, 2)), 2)
            expected = T.tsum(v * jv, 1)
        out = _call("hutchinson_trace", what, fn, _partial(field, t), T.clone(z), T.clone(v))
        value, est = _pair(out, what, n, dim, dtype, "the estimate")
        if not close(value, fz, dtype):
            raise GradingError(f"the first item returned by {what} is not f(z) (max difference "
                               f"{max_abs_diff(value, fz):.3g}): torch.func.jvp(f, (z,), (v,)) returns "
                               "the pair (f(z), J v); return f(z) as it is.")
        if close(est, expected, dtype):
            continue
        exact = _L.diagonal(jac, 0, 1, 2).sum(-1)
        variants = [
            (T.tsum(jv, 1), "you summed J v over the dimension; the estimate is v . (J v), "
                            "(v * jv).sum(dim=1)."),
            (T.tsum(v * v, 1), "v . v does not involve f: multiply v with the Jacobian-vector product "
                               "J v that torch.func.jvp returns as its second item."),
            (-expected, "the sign is flipped: the estimate of tr J is +v^T J v."),
            (exact, "that is the exact trace: the grader gives you one probe v per sample, and the "
                    "estimate for it is v^T J v (it differs from tr J for each probe, equals it on "
                    "average)."),
            (T.tsum(v * fz, 1), "v . f(z) is not v^T J v: use the second item of torch.func.jvp, the "
                                "derivative of f along v."),
        ]
        hint = next((m for val, m in variants if close(est, val, dtype)), "")
        raise GradingError(f"the estimate returned by {what} differs from v^T J v (max difference "
                           f"{max_abs_diff(est, expected):.3g}). {hint}".rstrip())
    ok("hutchinson_trace returns f(z) and v^T J v", hidden)


def _variance(a, kind):
    sym = 0.5 * (a + _L.transpose(a, 0, 1))
    total = 2 * T.tsum(sym * sym)
    if kind == "rademacher":
        total = total - 2 * T.tsum(_L.diagonal(sym) ** 2)
    return T.item(total)


def check_trace_variance(fn, level: str = "visible") -> None:
    r"""Check ``trace_variance(a, kind)``: :math:`\operatorname{Var}[v^\top A v]` for one probe.

    Gaussian: :math:`2\operatorname{tr}(A_s^2)`; Rademacher: the same minus
    :math:`2\sum_i A_{ii}^2`; :math:`A_s = (A + A^\top)/2`. Visible: 2x2 and 3x3 matrices; hidden:
    also 1x1, symmetric, diagonal and 6x6 float32 matrices.
    """
    hidden = begin(level)
    gen = generator(820)
    mats = [randn((2, 2), T.float64, gen), randn((3, 3), T.float64, gen)]
    if hidden:
        sym = randn((4, 4), T.float64, gen)
        mats += [randn((1, 1), T.float64, gen), sym + _L.transpose(sym, 0, 1),
                 T.tensor([[2.0, 0.0], [0.0, -3.0]], dtype=T.float64), T.to(randn((6, 6), T.float64, gen),
                                                                            T.float32)]
    for a in mats:
        for kind in ("gaussian", "rademacher"):
            what = f"trace_variance(a of shape {tuple(a.shape)}, {kind!r})"
            value = number(_call("trace_variance", what, fn, T.clone(a), kind), what)
            a64 = f64(a)
            expected = _variance(a64, kind)
            tol = (1e-9 if a.dtype == T.float64 else 1e-4) * max(1.0, abs(expected))
            if abs(value - expected) <= tol:
                continue
            frob = T.item(T.tsum(a64 * a64))
            sym = 0.5 * (a64 + _L.transpose(a64, 0, 1))
            diag2 = T.item(T.tsum(_L.diagonal(a64) ** 2))
            variants = [
                (2 * frob, "2 ||A||_F^2 forgets to symmetrise: v^T A v = v^T A_s v with A_s = (A + A^T)/2, "
                           "and the variance is 2 ||A_s||_F^2."),
                (0.5 * expected, "a factor 2 is missing: for one Gaussian coordinate Var(v^2) = 2."),
                (_variance(a64, "gaussian"), "with random signs v_i^2 = 1 exactly, so the diagonal of A "
                                             "adds no noise: subtract 2 sum_i A_ii^2."),
                (_variance(a64, "rademacher"), "that is the Rademacher formula; Gaussian probes also "
                                               "have noise from the diagonal: 2 ||A_s||_F^2 in total."),
                (2 * frob - 2 * diag2, "symmetrise A first: A_s = (A + A^T)/2, then 2 sum_{i != j} "
                                       "(A_s)_ij^2."),
                (T.item(T.tsum(sym * sym)), "a factor 2 is missing: Var(v^T A_s v) = 2 ||A_s||_F^2."),
            ]
            hint = next((m for val, m in variants if abs(value - val) <= 1e-6 * max(1.0, abs(val))), "")
            raise GradingError(f"{what} = {value:.6g}, expected {expected:.6g}. {hint}".rstrip())
    ok("trace_variance matches 2 tr(A_s^2) (Gaussian) and 2 sum_{i != j} (A_s)_ij^2 (Rademacher)",
       hidden)


# --------------------------------------------------------------------------------------------
# Exercise 2: the augmented dynamics of (z, log p)
# --------------------------------------------------------------------------------------------
def check_augmented_dynamics(fn, level: str = "visible") -> None:
    r"""Check ``augmented_dynamics(field, t, state)``: ``(f(z, t), -tr df/dz)`` for ``state = (z, log p)``.

    Visible: ``D = 2``, float32; hidden: ``D = 1, 3``, float64, called under ``torch.no_grad()``
    too, and the gradient of the trace with respect to the field's parameters (training needs
    ``create_graph=True``).
    """
    hidden = begin(level)
    cases = [(2, 6, T.float32, 0.25)]
    if hidden:
        cases += [(3, 4, T.float64, 0.8), (1, 5, T.float64, 0.0), (2, 1, T.float64, 0.6)]
    for k, (dim, n, dtype, t) in enumerate(cases):
        gen, field, z = _field_and_points(840 + k, dim, n, dtype)
        logp = randn((n,), dtype, gen)
        tt = T.tensor(t, dtype=dtype)
        what = f"augmented_dynamics(field, t={t}, (z, log_p)) (D = {dim}, batch {n}, {dtype})"
        with T.no_grad():
            fz = field(tt, z)
            jac = _jacobian(field, tt, z)
        exact = _L.diagonal(jac, 0, 1, 2).sum(-1)
        with T.enable_grad():
            out = _call("augmented_dynamics", what, fn, field, tt, (T.clone(z), T.clone(logp)))
        dz, dlogp = _pair(out, what, n, dim, dtype, "d log p / dt")
        if not close(dz, fz, dtype):
            raise GradingError(f"dz/dt returned by {what} is not field(t, z) (max difference "
                               f"{max_abs_diff(dz, fz):.3g}).")
        if not close(dlogp, -exact, dtype):
            variants = [
                (exact, "the sign is flipped: the density decreases where the flow spreads points "
                        "out, d log p / dt = -tr(df/dz)."),
                (-T.tsum(T.tsum(jac, 1), 1), "you summed every entry of the Jacobian (the gradient of "
                                             "f.sum()); the trace is the sum of d f_i / d z_i only."),
                (-_L.diagonal(jac, 0, 1, 2)[:, 0], "only the first diagonal entry: loop over every "
                                                   "dimension i and add d f_i / d z_i."),
                (T.zeros(n, dtype=dtype), "d log p / dt is 0: compute the trace of the Jacobian."),
            ]
            hint = next((m for val, m in variants if close(dlogp, val, dtype)), "")
            raise GradingError(f"d log p / dt returned by {what} is not -tr(df/dz) (max difference "
                               f"{max_abs_diff(dlogp, -exact):.3g}). {hint}".rstrip())
        if hidden:
            with T.no_grad():
                out = _call("augmented_dynamics", what + " under torch.no_grad()", fn, field, tt,
                            (T.clone(z), T.clone(logp)))
            _, dlogp_ng = _pair(out, what, n, dim, dtype, "d log p / dt")
            if not close(dlogp_ng, -exact, dtype):
                raise GradingError(f"{what} under torch.no_grad() gives a different d log p / dt: the "
                                   "solver evaluates log-densities without gradients; keep the "
                                   "`with torch.enable_grad()` block of the template.")
            with T.enable_grad():
                out = _call("augmented_dynamics", what, fn, field, tt, (T.clone(z), T.clone(logp)))
                params = tuple(T.parameters(field))
                if not getattr(out[1], "requires_grad", False):
                    raise GradingError(f"d log p / dt returned by {what} cannot be differentiated with "
                                       "respect to the field's parameters: pass create_graph=True to "
                                       "torch.autograd.grad, training needs the gradient of the trace.")
                got = T.grad(T.tsum(out[1]), params, allow_unused=True)
                ref = T.grad(T.tsum(-_L.diagonal(_jacobian(field, tt, z), 0, 1, 2)), params)
            for g, r in zip(got, ref, strict=True):
                if g is None or not close(g, r, dtype, rtol=1e-6 if dtype == T.float64 else 1e-3):
                    raise GradingError(f"the gradient of d log p / dt ({what}) with respect to the "
                                       "field's parameters is wrong or missing: use create_graph=True "
                                       "and no .detach() on the trace.")
    ok("augmented_dynamics returns (f(z, t), -tr df/dz)", hidden)


# --------------------------------------------------------------------------------------------
# Exercise 3: sampling by integrating forward
# --------------------------------------------------------------------------------------------
def check_push_forward(fn, level: str = "visible") -> None:
    r"""Check ``push_forward(field, z, t1)``: :math:`z(t_1)` for :math:`dz/dt = f(z,t)`, :math:`z(0)=z`.

    Compared with a float64 dopri5 solve at tolerance 1e-10. Visible: ``D = 2``, ``t1 = 1``;
    hidden: other end times, ``D = 3``, float64, a batch of one.
    """
    hidden = begin(level)
    cases = [(2, 16, T.float32, 1.0)]
    if hidden:
        cases += [(2, 5, T.float64, 0.5), (3, 1, T.float64, 1.5), (2, 8, T.float32, 2.0)]
    for k, (dim, n, dtype, t1) in enumerate(cases):
        _, field, z = _field_and_points(860 + k, dim, n, dtype)
        what = f"push_forward(field, z, t1={t1}) (D = {dim}, batch {n}, {dtype})"
        with T.no_grad():
            ref_field = T.module_to(_deepcopy(field), T.float64)
            times = T.tensor([0.0, t1], dtype=T.float64)
            x = _odeint(ref_field, f64(z), times, rtol=1e-10, atol=1e-10)[-1]
            back = _odeint(ref_field, f64(z), times.flip(0), rtol=1e-10, atol=1e-10)[-1]
            out = _call("push_forward", what, fn, field, T.clone(z), t1)
        if isinstance(out, T.Tensor) and out.dim() == 3:
            raise GradingError(f"{what} returned shape {tuple(out.shape)}, the whole trajectory; return "
                               "only the last state, x = z(t1): odeint(...)[-1].")
        if isinstance(out, tuple):
            raise GradingError(f"{what} returned {describe(out)}; return only x = z(t1), shape ({n}, {dim}).")
        out = tensor_result(out, what, shape=(n, dim), dtype=dtype)
        tol = 1e-4 if dtype == T.float32 else 1e-6
        if close(out, x, dtype, rtol=tol, atol=tol):
            continue
        with T.no_grad():
            euler = f64(z) + t1 * ref_field(T.tensor(0.0, dtype=T.float64), f64(z))
        variants = [
            (back, "you integrated backwards, from t1 to 0 (that is data -> latent); sampling goes "
                   "forward: times [0, t1]."),
            (f64(z), "you returned z unchanged; integrate dz/dt = field(t, z) from 0 to t1."),
            (euler, "one Euler step z + t1 f(0, z) is not accurate enough: use torchdiffeq.odeint."),
        ]
        hint = next((m for val, m in variants if close(out, T.to(val, dtype), dtype, rtol=tol, atol=tol)), "")
        raise GradingError(f"{what} differs from the solution of the ODE at t1 (max difference "
                           f"{max_abs_diff(out, x):.3g}). {hint}".rstrip())
    ok("push_forward integrates latent points to data", hidden)


make_read_only(__name__)
