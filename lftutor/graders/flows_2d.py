r"""Graders of unit 7 (flows on 2-D densities): what that notebook's test cells call.

* :func:`check_planar_forward`: :math:`x = z + u\tanh(w^\top z + b)` and its log-det by the
  matrix determinant lemma, :math:`\log|1 + (1 - \tanh^2(w^\top z + b))\, w^\top u|`
  (arXiv:1505.05770);
* :func:`check_constrain_u`: :math:`\hat u = u + [m(w^\top u) - w^\top u]\, w/\|w\|^2`,
  :math:`m(s) = -1 + \log(1 + e^s)`;
* :func:`check_radial_forward`: :math:`x = z + \beta(z - z_0)/(\alpha + r)` and
  :math:`(D-1)\log(1 + \beta h) + \log(1 + \beta h - \beta r/(\alpha + r)^2)`;
* :func:`check_log_z_midpoint`: :math:`\log\int e^{-U}` by the midpoint rule on a square;
* :func:`check_exact_kl`: :math:`\frac1N\sum_i[\log q(x_i) + U(x_i)] + \log Z`;
* :func:`check_sylvester_forward`: :math:`x = z + QR\tanh(\tilde R Q^\top z + b)` and its log-det
  by Sylvester's determinant identity, :math:`\sum_m\log|1 + h'(a_m) R_{mm}\tilde R_{mm}|`
  (arXiv:1803.05649).

References are computed here from the formulas; the machinery (captured torch functions, the
tripwire that refuses lftutor's own answers, the kernel audit) is :mod:`lftutor.graders.core`'s.
"""

from __future__ import annotations

import types

import torch as _torch
import torch.nn.functional as _F

import lftutor.bijections.planar as _planar
import lftutor.bijections.radial as _radial
import lftutor.bijections.sylvester as _sylvester
import lftutor.toy2d.targets as _targets
from lftutor.graders.core import (
    GradingError,
    T,
    all_finite,
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
    max_abs,
    max_abs_diff,
    method_codes,
    number,
    ok,
    randn,
    tensor_result,
)

capture_builtins(globals())

__all__ = ["GradingError", "check_constrain_u", "check_exact_kl", "check_log_z_midpoint",
           "check_planar_forward", "check_radial_forward", "check_sylvester_forward"]

_L = types.SimpleNamespace(tanh=_torch.tanh, softplus=_F.softplus, dot=_torch.dot,
                           norm=_torch.linalg.vector_norm, matmul=_torch.matmul, log1p=_torch.log1p,
                           lt=_torch.lt, tany=_torch.any, logical_not=_torch.logical_not,
                           logical_and=_torch.logical_and, isnan=_torch.isnan,
                           diagonal=_torch.diagonal, triu=_torch.triu, qr=_torch.linalg.qr,
                           transpose=_torch.transpose, diag_embed=_torch.diag_embed)

_FORBID = {
    "planar": (method_codes(_planar.Planar), set()),
    "radial": (method_codes(_radial.Radial), set()),
    "log_z": (function_codes(_targets.log_z_grid, _targets.grid), set()),
    "kl": (function_codes(_targets.exact_kl), set()),
    "sylvester": (method_codes(_sylvester.Sylvester), set()),
}
_call = caller(_FORBID)


def _pair(out, what, n, d, dtype):
    if not (isinstance(out, tuple) and len(out) == 2):
        raise GradingError(f"{what} returned {describe(out)}; a bijection returns a pair (x, log_det).")
    x, log_det = out
    x = tensor_result(x, f"the x returned by {what}", shape=(n, d), dtype=dtype)
    if isinstance(log_det, T.Tensor) and tuple(log_det.shape) in ((), (1,)) and n > 1:
        raise GradingError(f"the log_det returned by {what} is a single number; return one per "
                           f"sample, shape ({n},): do not sum or average over the batch.")
    log_det = tensor_result(log_det, f"the log_det returned by {what}", shape=(n,), dtype=dtype,
                            shape_hint="One log-determinant per sample, shape (batch,).")
    return x, log_det


def _cases(hidden, seed):
    """(n, D, dtype) triples."""
    out = [(5, 2, T.float64)]
    if hidden:
        out += [(7, 3, T.float64), (4, 5, T.float32), (1, 2, T.float64), (9, 2, T.float32)]
    return out


# --------------------------------------------------------------------------------------------
# Exercise 1: the planar map and its log-det
# --------------------------------------------------------------------------------------------
def _planar_reference(z, w, u, b):
    z, w, u, b = f64(z), f64(w), f64(u), f64(b)
    a = T.add(_L.matmul(z, w), b)
    t = _L.tanh(a)
    wu = _L.dot(w, u)
    x = T.add(z, T.mul(T.unsqueeze(t, 1), u))
    slope = T.sub(1.0, T.mul(t, t))
    return x, t, slope, wu, T.log(T.abs(T.add(1.0, T.mul(slope, wu))))


# Positions a = w.z + b of the samples of a folded layer (w.u = -3): 1 + h'(a) w.u < 0 for
# |a| < atanh(sqrt(2/3)) = 1.146 and > 0 outside; none lies near the zero itself.
_FOLD_WU = -3.0
_FOLD_A = (0.0, 2.0, 0.5, -2.5, -0.3, 1.6, -0.8, 3.0)


def _planar_inputs(n, d, dtype, gen, fold):
    """``(z, w, u, b)``; ``fold``: ``w.u = -3`` and samples on both sides of the fold."""
    w = randn((d,), dtype, gen)
    u = randn((d,), dtype, gen)
    b = T.mul(randn((), dtype, gen), 0.5)
    w64, u64 = f64(w), f64(u)
    ww = T.item(_L.dot(w64, w64))
    if not fold:
        z = T.mul(randn((n, d), dtype, gen), 1.5)
        if T.item(_L.dot(w64, u64)) < -0.5:  # keep w.u > -1 (and away from it), as u_hat would be
            u = T.neg(u)
        return z, w, u, b
    u = T.to(T.add(u64, T.mul(w64, (_FOLD_WU - T.item(_L.dot(w64, u64))) / ww)), dtype)
    perp = T.mul(randn((n, d), T.float64, gen), 1.5)
    perp = T.sub(perp, T.mul(T.unsqueeze(T.div(_L.matmul(perp, w64), ww), 1), w64))
    a = T.tensor(list(_FOLD_A[:n]), dtype=T.float64)
    along = T.div(T.sub(a, T.item(f64(b))), ww)
    z = T.to(T.add(perp, T.mul(T.unsqueeze(along, 1), w64)), dtype)
    return z, w, u, b


def check_planar_forward(planar_forward, level: str = "visible") -> None:
    r"""Check ``planar_forward(z, w, u, b) -> (x, log_det)``: ``z`` ``(batch, D)``, ``w``, ``u``
    ``(D,)``, ``b`` a 0-dim tensor.

    Most cases have :math:`w^\top u > -0.5`, as the constrained :math:`\hat u` would; one (visible)
    or two (hidden) have :math:`w^\top u = -3`, a layer that folds the plane: there
    :math:`1 + h'(a)\,w^\top u` is negative for :math:`|a| < 1.15`, so ``log`` without ``abs``
    gives NaN, and the log of the absolute determinant, which is still defined point by point,
    is what the formula asks for. Visible: D = 2 in float64; hidden: D = 2, 3, 5, float32 and
    float64, a batch of one.
    """
    hidden = begin(level)
    cases = [(n, d, dtype, False) for n, d, dtype in _cases(hidden, 0)] + [(6, 2, T.float64, True)]
    if hidden:
        cases += [(8, 3, T.float32, True)]
    for k, (n, d, dtype, fold) in enumerate(cases):
        gen = generator(700 + k)
        z, w, u, b = _planar_inputs(n, d, dtype, gen, fold)
        what = (f"planar_forward(z of shape {(n, d)}, {dtype}"
                + (", w.u = -3: a layer that folds the plane)" if fold else ")"))
        out = _call("planar", what, planar_forward, T.clone(z), T.clone(w), T.clone(u), T.clone(b))
        ref_x, t, slope, wu_t, ref_ld = _planar_reference(z, w, u, b)
        if (fold and isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], T.Tensor)
                and tuple(out[1].shape) == (n,) and not all_finite(out[1])):
            det = T.add(1.0, T.mul(slope, wu_t))
            nan = _L.isnan(f64(out[1]))
            negative = _L.lt(det, 0.0)
            if T.item(_L.tany(nan)) and not T.item(_L.tany(_L.logical_and(nan, _L.logical_not(negative)))):
                raise GradingError(
                    f"{what}: log_det is NaN for the samples where 1 + h'(a) w.u < 0. For w.u < -1 "
                    "the determinant is negative near a = 0 (section 3: the layer folds the plane), "
                    "and the log of a negative number is NaN. The formula is log|det J|: take the "
                    "absolute value first, torch.log(torch.abs(1 + h'(a) w.u)).")
        x, log_det = _pair(out, what, n, d, dtype)
        if not close(x, ref_x, dtype):
            message = diagnose(f64(x), [
                (T.add(f64(z), T.mul(T.unsqueeze(t, 1), f64(w))),
                 "x moves along w; it must move along u: x = z + u * tanh(w.z + b)."),
                (T.add(f64(z), T.mul(T.unsqueeze(_L.tanh(_L.matmul(f64(z), f64(w))), 1), f64(u))),
                 "the bias b is missing inside tanh: tanh(w.z + b)."),
            ])
            raise GradingError(f"{what}: x is wrong (max difference {max_abs_diff(x, ref_x):.3g}). "
                               + (message or "x = z + u * tanh(z @ w + b), with u broadcast over the batch."))
        if not close(log_det, ref_ld, dtype):
            message = diagnose(f64(log_det), [
                (T.mul(T.ones(n, dtype=T.float64), T.log(T.abs(T.add(1.0, wu_t)))),
                 "the factor h'(w.z + b) = 1 - tanh^2(w.z + b) is missing: the Jacobian is "
                 "I + h'(a) u w^T, so det = 1 + h'(a) w.u."),
                (T.log(T.abs(T.add(1.0, T.mul(t, wu_t)))),
                 "you used h = tanh where the lemma needs its derivative h' = 1 - tanh^2."),
                (T.abs(T.add(1.0, T.mul(slope, wu_t))),
                 "that is |det|; return its logarithm."),
                (T.log(T.abs(T.add(1.0, T.mul(slope, T.mul(wu_t, wu_t))))),
                 "det(I + a c^T) = 1 + c^T a: here a = h' u and c = w, so 1 + h' w.u (not (w.u)^2)."),
            ])
            raise GradingError(f"{what}: log_det is wrong (max difference "
                               f"{max_abs_diff(log_det, ref_ld):.3g}). " + (message or (
                                   "By the matrix determinant lemma, log|det J| = "
                                   "log|1 + (1 - tanh^2(w.z + b)) w.u|.")))
    ok("planar_forward: the map and its log-det by the matrix determinant lemma", hidden)


# --------------------------------------------------------------------------------------------
# Exercise 2: the constraint on u
# --------------------------------------------------------------------------------------------
def check_constrain_u(constrain_u, level: str = "visible") -> None:
    r"""Check ``constrain_u(w, u) -> u_hat`` (shape ``(D,)``): :math:`w^\top\hat u = -1 +
    \mathrm{softplus}(w^\top u)` and the part of :math:`u` orthogonal to :math:`w` unchanged.

    Visible: three cases in D = 2; hidden: D = 2, 3, 6, float32, :math:`w^\top u` from -30 to 800.
    The large ones (100 in float32, 800 in float64) are where a naive ``log(1 + exp(s))``
    overflows (:math:`e^s` is infinite above 88.7 in float32, 709.8 in float64); ``softplus``
    returns :math:`s` there.
    """
    hidden = begin(level)
    cases = [(2, T.float64, 0.7), (2, T.float64, -4.0), (2, T.float32, 100.0)]
    if hidden:
        cases += [(3, T.float64, -30.0), (6, T.float64, 2.5), (2, T.float32, -1.5), (3, T.float32, 30.0),
                  (2, T.float64, 0.0), (3, T.float64, 800.0)]
    for k, (d, dtype, target_wu) in enumerate(cases):
        gen = generator(710 + k)
        w = randn((d,), dtype, gen)
        u = randn((d,), dtype, gen)
        w64, u64 = f64(w), f64(u)
        ww = T.item(_L.dot(w64, w64))
        # shift u along w so that w.u = target_wu
        u64 = T.add(u64, T.mul(w64, (target_wu - T.item(_L.dot(w64, u64))) / ww))
        u = T.to(u64, dtype)
        wu = T.item(_L.dot(w64, f64(u)))
        what = f"constrain_u(w, u) with D = {d}, w.u = {wu:.3g}, {dtype}"
        out = _call("planar", what, constrain_u, T.clone(w), T.clone(u))
        if (isinstance(out, T.Tensor) and tuple(out.shape) == (d,) and not all_finite(out)
                and wu > 50):
            raise GradingError(
                f"{what}: u_hat has infinite or NaN entries. For large w.u, e^(w.u) overflows "
                f"({'above 88.7 in float32' if dtype == T.float32 else 'above 709.8 in float64'}), "
                "so log(1 + exp(w.u)) is inf. F.softplus computes the same log(1 + e^s) without "
                "overflow (it returns s itself for large s): m = -1 + F.softplus(w.u).")
        out = tensor_result(out, what, shape=(d,), dtype=dtype)
        m = -1.0 + T.item(_L.softplus(T.tensor(wu, dtype=T.float64)))
        ref = T.add(f64(u), T.mul(w64, (m - wu) / ww))
        rtol, atol = (1e-8, 1e-9) if dtype == T.float64 else (1e-4, 1e-4)
        if close(out, ref, dtype, rtol=rtol, atol=atol):
            continue
        got_wu = T.item(_L.dot(w64, f64(out)))
        perp_changed = max_abs_diff(T.sub(f64(out), T.mul(w64, got_wu / ww)),
                                    T.sub(f64(u), T.mul(w64, wu / ww))) > 1e-3 * (1 + max_abs(u))
        if perp_changed:
            raise GradingError(f"{what}: u_hat changed the part of u orthogonal to w. Only the "
                               "component along w should change: add a multiple of w / ||w||^2.")
        sp = m + 1.0
        lessons = [
            (sp, "w.u_hat = softplus(w.u) > 0: that is invertible too, but stricter than needed; "
                 "m(s) = -1 + softplus(s) allows every w.u_hat > -1."),
            (-1.0 + T.item(T.exp(T.tensor(wu, dtype=T.float64))) if wu < 50 else 1e300,
             "m(s) = -1 + log(1 + e^s) (softplus), not -1 + e^s."),
            (wu, "u_hat = u: the constraint is missing."),
        ]
        for wrong, lesson in lessons:
            if abs(got_wu - wrong) <= 1e-3 * (1 + abs(wrong)):
                raise GradingError(f"{what}: w.u_hat = {got_wu:.6g}, expected {m:.6g}. {lesson}")
        raise GradingError(f"{what}: w.u_hat = {got_wu:.6g}, expected m(w.u) = -1 + softplus(w.u) = "
                           f"{m:.6g}. With u_hat = u + (m - w.u) w / ||w||^2, w.u_hat = m exactly "
                           "(check the division by ||w||^2, not ||w||).")
    ok("constrain_u: w.u_hat = -1 + softplus(w.u) > -1, the rest of u unchanged", hidden)


# --------------------------------------------------------------------------------------------
# Exercise 3: the radial flow
# --------------------------------------------------------------------------------------------
def check_radial_forward(radial_forward, level: str = "visible") -> None:
    r"""Check ``radial_forward(z, z0, alpha, beta) -> (x, log_det)``; ``alpha > 0`` and
    ``beta > -alpha`` are 0-dim tensors. Visible: D = 2; hidden: D = 1 to 5, both dtypes."""
    hidden = begin(level)
    cases = _cases(hidden, 1)
    if hidden:
        cases = [*cases, (6, 1, T.float64)]
    for k, (n, d, dtype) in enumerate(cases):
        gen = generator(720 + k)
        z = T.mul(randn((n, d), dtype, gen), 2.0)
        z0 = randn((d,), dtype, gen)
        alpha = T.add(T.abs(randn((), dtype, gen)), 0.2)
        beta = T.add(T.neg(alpha), T.add(T.abs(randn((), dtype, gen)), 0.1))
        what = f"radial_forward(z of shape {(n, d)}, {dtype})"
        out = _call("radial", what, radial_forward, T.clone(z), T.clone(z0), T.clone(alpha), T.clone(beta))
        x, log_det = _pair(out, what, n, d, dtype)
        z64, c64, a64, b64 = f64(z), f64(z0), f64(alpha), f64(beta)
        diff = T.sub(z64, c64)
        r = _L.norm(diff, dim=1)
        h = T.div(1.0, T.add(a64, r))
        ref_x = T.add(z64, T.mul(T.unsqueeze(T.mul(b64, h), 1), diff))
        one = T.add(1.0, T.mul(b64, h))
        last = T.sub(one, T.mul(b64, T.mul(T.mul(h, h), r)))
        ref_ld = T.add(T.mul(float(d - 1), T.log(one)), T.log(last))
        if not close(x, ref_x, dtype):
            raise GradingError(f"{what}: x is wrong (max difference {max_abs_diff(x, ref_x):.3g}). "
                               "x = z + beta * (z - z0) / (alpha + r) with r = ||z - z0|| per sample "
                               "(the norm over the last dimension, keepdim for broadcasting).")
        if not close(log_det, ref_ld, dtype):
            message = diagnose(f64(log_det), [
                (T.add(T.mul(float(d), T.log(one)), T.log(last)),
                 "the power of (1 + beta h) is D - 1, not D: D - 1 directions orthogonal to z - z0 "
                 "are only scaled by 1 + beta h; the radial one gets the extra h' r term."),
                (T.mul(float(d), T.log(one)),
                 "the radial direction has 1 + beta h + beta h'(r) r, with h' = -1/(alpha + r)^2; "
                 "you used 1 + beta h for every direction."),
                (T.add(T.mul(float(d - 1), T.log(one)), T.log(T.add(one, T.mul(b64, T.mul(T.mul(h, h), r))))),
                 "h'(r) = -1/(alpha + r)^2 is negative: 1 + beta h - beta r / (alpha + r)^2."),
            ])
            raise GradingError(f"{what}: log_det is wrong (max difference "
                               f"{max_abs_diff(log_det, ref_ld):.3g}). " + (message or (
                                   "log|det J| = (D-1) log(1 + beta h) + log(1 + beta h + beta h' r), "
                                   "h = 1/(alpha + r), h' = -1/(alpha + r)^2.")))
    ok("radial_forward: the map and its log-det", hidden)


# --------------------------------------------------------------------------------------------
# Exercise 4: log Z by quadrature
# --------------------------------------------------------------------------------------------
def _midpoint(potential, box, n):
    pts, area = _targets.grid(box, n)
    return T.item(T.logsumexp(T.neg(potential(pts)), 0)) + _log(area)


def check_log_z_midpoint(log_z_midpoint, level: str = "visible") -> None:
    r"""Check ``log_z_midpoint(potential, box, n) -> float``: :math:`\log\int e^{-U}` by the midpoint
    rule on an ``n x n`` grid over the square ``box = (lo, hi)``.

    Visible: a unit Gaussian mixture (exact log Z = 0) and U1; hidden: U2-U4, boxes and ``n``."""
    hidden = begin(level)
    cases = [("mixture", None, 200), ("U1", None, 300)]
    if hidden:
        cases += [("U2", None, 250), ("U4", (-7.0, 7.0), 320), ("U3", None, 301),
                  ("mixture", (-10.0, 9.0), 151)]
    for name, box, n in cases:
        target = _targets.get_target(name)
        box = target.box if box is None else box
        what = f"log_z_midpoint({name}, box={box}, n={n})"
        value = number(_call("log_z", what, log_z_midpoint, target, box, n), what)
        expected = _midpoint(target, box, n)
        if abs(value - expected) <= 1e-5 * (1 + abs(expected)):
            continue
        h = (box[1] - box[0]) / n
        no_area = expected - 2 * _log(h)
        lessons = [
            (no_area, "the cell area h^2 is missing: the integral is sum_i e^(-U(x_i)) h^2, "
                      "h = (hi - lo) / n, so add log(h^2)."),
            (expected - _log(h), "the cell of a 2-D grid has area h^2, not h."),
            (_exp(expected), "that is Z; return log Z."),
            (-expected, "that is -log Z."),
        ]
        for wrong, lesson in lessons:
            if abs(value - wrong) <= 1e-4 * (1 + abs(wrong)):
                raise GradingError(f"{what} = {value:.8g}, expected {expected:.8g}. {lesson}")
        if abs(value - expected) < 0.05:
            raise GradingError(f"{what} = {value:.8g}, expected {expected:.8g}: close, so probably the "
                               "grid points. Midpoints: x_i = lo + (i + 1/2) h, i = 0..n-1, "
                               "h = (hi - lo) / n, in both coordinates (n * n points).")
        raise GradingError(f"{what} = {value:.8g}, expected {expected:.8g} = log(sum_i exp(-U(x_i)) "
                           "h^2) over the n x n midpoints (torch.logsumexp avoids overflow).")
    ok("log_z_midpoint agrees with the midpoint rule", hidden)


def _log(x: float) -> float:
    return float(T.item(T.log(T.tensor(x, dtype=T.float64))))


def _exp(x: float) -> float:
    return float(T.item(T.exp(T.tensor(min(x, 700.0), dtype=T.float64))))


# --------------------------------------------------------------------------------------------
# Exercise 5: the exact KL
# --------------------------------------------------------------------------------------------
def check_exact_kl(exact_kl, level: str = "visible") -> None:
    r"""Check ``exact_kl(log_q, u, log_z) -> float`` = :math:`\frac1N\sum_i(\log q_i + U_i) + \log Z`
    for ``log_q``, ``u`` of shape ``(N,)`` and a float ``log_z``."""
    hidden = begin(level)
    cases = [(1000, T.float64, 1.8775)]
    if hidden:
        cases += [(10, T.float32, 2.7861), (1, T.float64, -0.3), (5000, T.float32, 0.0)]
    for k, (n, dtype, log_z) in enumerate(cases):
        gen = generator(730 + k)
        u = T.add(T.abs(randn((n,), dtype, gen)), 0.5)
        log_q = T.sub(T.mul(randn((n,), dtype, gen), 0.3), T.add(u, log_z - 0.1))
        what = f"exact_kl(log_q, u, log_z={log_z}) with N = {n}, {dtype}"
        value = number(_call("kl", what, exact_kl, T.clone(log_q), T.clone(u), log_z), what)
        mean = T.item(T.tmean(T.add(f64(log_q), f64(u))))
        expected = mean + log_z
        tol = 1e-9 if dtype == T.float64 else 1e-5
        if abs(value - expected) <= tol * (1 + abs(expected)):
            continue
        lessons = [
            (mean - log_z, "log Z enters with a plus sign: log p = -U - log Z, so log q - log p = "
                           "log q + U + log Z."),
            (mean, "log Z is missing: without it the loss is only the KL up to a constant."),
            (T.item(T.tmean(T.sub(f64(log_q), f64(u)))) + log_z, "log p = -U, so log q - log p = log q + U."),
            (T.item(T.tsum(T.add(f64(log_q), f64(u)))) + log_z, "average over the samples (mean), "
                                                                 "do not sum."),
        ]
        for wrong, lesson in lessons:
            if abs(value - wrong) <= 1e-5 * (1 + abs(wrong)):
                raise GradingError(f"{what} = {value:.8g}, expected {expected:.8g}. {lesson}")
        raise GradingError(f"{what} = {value:.8g}, expected {expected:.8g} = mean(log_q + u) + log_z.")
    ok("exact_kl = mean(log q + U) + log Z", hidden)



# --------------------------------------------------------------------------------------------
# Exercise 7: the Sylvester layer and Sylvester's determinant identity
# --------------------------------------------------------------------------------------------
def _sylvester_inputs(n, d, m, dtype, gen):
    """``(z, q, r, r_tilde, b)``: ``q`` (D, M) with orthonormal columns, ``r``, ``r_tilde``
    (M, M) upper triangular with :math:`R_{mm}\tilde R_{mm} > -1`, ``b`` (M,)."""
    z = T.mul(randn((n, d), T.float64, gen), 1.5)
    q, _ = _L.qr(randn((d, m), T.float64, gen))
    r = _L.triu(T.mul(randn((m, m), T.float64, gen), 0.7), 1)
    rt = _L.triu(T.mul(randn((m, m), T.float64, gen), 0.7), 1)
    # diagonals: products R_mm Rt_mm in (-0.9, 1.4), some negative, none near -1
    dr = T.add(T.mul(T.rand((m,), generator=gen, dtype=T.float64), 1.6), -0.8)
    drt = T.add(T.mul(T.rand((m,), generator=gen, dtype=T.float64), 1.2), 0.3)
    r = T.add(r, _L.diag_embed(dr))
    rt = T.add(rt, _L.diag_embed(drt))
    b = T.mul(randn((m,), T.float64, gen), 0.5)
    return tuple(T.to(v, dtype) for v in (z, q, r, rt, b))


def _sylvester_reference(z, q, r, rt, b):
    z, q, r, rt, b = f64(z), f64(q), f64(r), f64(rt), f64(b)
    a = T.add(_L.matmul(_L.matmul(z, q), _L.transpose(rt, 0, 1)), b)
    t = _L.tanh(a)
    x = T.add(z, _L.matmul(_L.matmul(t, _L.transpose(r, 0, 1)), _L.transpose(q, 0, 1)))
    slope = T.sub(1.0, T.mul(t, t))
    diag = T.mul(_L.diagonal(r), _L.diagonal(rt))
    log_det = T.tsum(T.log(T.abs(T.add(1.0, T.mul(slope, diag)))), dim=1)
    return x, t, slope, diag, log_det


def check_sylvester_forward(sylvester_forward, level: str = "visible") -> None:
    r"""Check ``sylvester_forward(z, q, r, r_tilde, b) -> (x, log_det)``:
    :math:`x = z + QR\tanh(\tilde R Q^\top z + b)` row by row (``x = z + tanh(z Q R~^T + b) R^T
    Q^T``) and :math:`\log|\det J| = \sum_m\log|1 + h'(a_m)R_{mm}\tilde R_{mm}|`.

    ``z`` ``(batch, D)``, ``q`` ``(D, M)`` with orthonormal columns, ``r``, ``r_tilde`` ``(M, M)``
    upper triangular, ``b`` ``(M,)``. Visible: D = M = 2 and D = 3, M = 2 in float64; hidden
    also D = M = 4 in float32, M = 1 (a planar layer) and D = 5, M = 3 in float32.
    """
    hidden = begin(level)
    cases = [(5, 2, 2, T.float64), (6, 3, 2, T.float64)]
    if hidden:
        cases += [(7, 4, 4, T.float32), (1, 3, 1, T.float64), (9, 5, 3, T.float32)]
    for k, (n, d, m, dtype) in enumerate(cases):
        gen = generator(740 + k)
        z, q, r, rt, b = _sylvester_inputs(n, d, m, dtype, gen)
        what = f"sylvester_forward(z of shape {(n, d)}, M = {m}, {dtype})"
        out = _call("sylvester", what, sylvester_forward, T.clone(z), T.clone(q), T.clone(r),
                    T.clone(rt), T.clone(b))
        if (m > 1 and isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], T.Tensor)
                and tuple(out[1].shape) == (n, m)):
            raise GradingError(f"the log_det returned by {what} has shape {(n, m)}: one term per "
                               "diagonal entry. The determinant of a triangular matrix is the "
                               "product of its diagonal, so log|det| is their sum: .sum(dim=1).")
        x, log_det = _pair(out, what, n, d, dtype)
        ref_x, t, slope, diag, ref_ld = _sylvester_reference(z, q, r, rt, b)
        z64, q64, r64, rt64, b64 = f64(z), f64(q), f64(r), f64(rt), f64(b)
        if not close(x, ref_x, dtype):
            zq = _L.matmul(z64, q64)
            qt = _L.transpose(q64, 0, 1)
            t_no_t = _L.tanh(T.add(_L.matmul(zq, rt64), b64))
            message = diagnose(f64(x), [
                (T.add(z64, _L.matmul(_L.matmul(t_no_t, _L.transpose(r64, 0, 1)), qt)),
                 "the argument of tanh uses R~ where the row-vector form needs its transpose: "
                 "a = z @ q @ r_tilde.T + b (column form R~ Q^T z, for each row z)."),
                (T.add(z64, _L.matmul(_L.matmul(t, r64), qt)),
                 "the update uses R where the row-vector form needs its transpose: "
                 "tanh(a) @ r.T @ q.T (column form Q R h)."),
                (T.add(z64, _L.matmul(_L.matmul(_L.tanh(_L.matmul(zq, _L.transpose(rt64, 0, 1))),
                                                _L.transpose(r64, 0, 1)), qt)),
                 "the bias b is missing inside tanh."),
            ])
            raise GradingError(f"{what}: x is wrong (max difference {max_abs_diff(x, ref_x):.3g}). "
                               + (message or "x = z + tanh(z @ q @ r_tilde.T + b) @ r.T @ q.T."))
        if not close(log_det, ref_ld, dtype):
            rank_one = T.log(T.abs(T.add(1.0, T.tsum(T.mul(slope, diag), dim=1))))
            message = diagnose(f64(log_det), [
                (T.tsum(T.log(T.abs(T.add(1.0, T.mul(t, diag)))), dim=1),
                 "you used h = tanh where the determinant needs its derivative h' = 1 - tanh^2."),
                (rank_one,
                 "that is log|1 + sum_m h'_m R_mm R~_mm|, the rank-one lemma of the planar layer. "
                 "Here the correction has rank M: det(I_M + diag(h') R~ R) is the product of the "
                 "M diagonal entries 1 + h'_m R~_mm R_mm, so log|det| is the sum of their logs."),
                (T.tsum(T.log(T.abs(T.add(1.0, T.mul(slope, _L.diagonal(rt64))))), dim=1),
                 "only R~'s diagonal appears; the diagonal of the triangular R~ R is R~_mm R_mm."),
                (T.tsum(T.log(T.abs(T.add(1.0, slope))), dim=1),
                 "the diagonal entries R_mm R~_mm are missing: 1 + h'_m R~_mm R_mm."),
                (T.tsum(T.abs(T.add(1.0, T.mul(slope, diag))), dim=1),
                 "take the log of each |1 + h'_m R~_mm R_mm| before summing."),
            ])
            raise GradingError(f"{what}: log_det is wrong (max difference "
                               f"{max_abs_diff(log_det, ref_ld):.3g}). " + (message or (
                                   "By Sylvester's identity, log|det J| = sum_m "
                                   "log|1 + h'(a_m) R_mm R~_mm|, a = z @ q @ r_tilde.T + b.")))
    ok("sylvester_forward: the map and its log-det by Sylvester's identity", hidden)

make_read_only(__name__)
