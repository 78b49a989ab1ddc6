r"""Graders of unit 6 (the Gaussian free field): what that notebook's test cells call.

The free field :math:`S(\phi) = \tfrac12\phi^T K\phi`, :math:`K = -\Delta + m^2`, on a periodic
``L x L`` lattice is the one theory where everything is known exactly, so the exercises of the
unit are checked against exact answers kept inside this module:

* :func:`check_free_field_covariance`: :math:`\Sigma = K^{-1}` as a ``(V, V)`` float64 matrix;
* :func:`check_free_field_log_z`: :math:`\log Z = \tfrac V2\log 2\pi - \tfrac12\log\det K`;
* :func:`check_linear_coupling`: the additive coupling :math:`\phi_B = z_B + W z_A` (NICE,
  arXiv:1410.8516), its inverse and its log-det 0, given the same ``W``;
* :func:`check_shift_deviation`: :math:`\max|f(T z) - T f(z)|` for a lattice shift :math:`T`.

The machinery (captured functions, tamper check, kernel audit, tripwire, read-only module) is
:mod:`lftutor.graders.core`'s; the table ``_FORBID`` below says which of lftutor's answers each
exercise's code may not call.
"""

from __future__ import annotations

import types

import torch as _torch

import lftutor.bijections.coupling as _layers
import lftutor.bijections.free_field as _coupling_models
import lftutor.lattice.actions as _actions
from lftutor.graders.core import (
    LOG_2PI,
    GradingError,
    T,
    begin,
    caller,
    capture_builtins,
    close,
    describe,
    f64,
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

__all__ = [
    "GradingError",
    "check_free_field_covariance",
    "check_free_field_log_z",
    "check_linear_coupling",
    "check_shift_deviation",
]

_L = types.SimpleNamespace(
    inv=_torch.linalg.inv, slogdet=_torch.linalg.slogdet, eye=_torch.eye, matmul=_torch.matmul,
    nonzero=_torch.nonzero, transpose=_torch.transpose, setitem=_torch.Tensor.__setitem__,
    Parameter=_torch.nn.Parameter, tmean=_torch.mean, randperm=_torch.randperm,
)


# --------------------------------------------------------------------------------------------
# Running the student's code with the tripwire of lftutor.grading armed.
# --------------------------------------------------------------------------------------------
_FORBID = {
    "free_field": (method_codes(_actions.FreeFieldAction), {_actions.__file__}),
    "linear_coupling": (method_codes(_layers.AffineCoupling),
                        {_coupling_models.__file__}),
    "shift_deviation": (frozenset(), set()),
}
_call = caller(_FORBID)


# --------------------------------------------------------------------------------------------
# Exercise 1: covariance and log Z
# --------------------------------------------------------------------------------------------
def _precision(L: int, m2: float, *, periodic=True, laplacian_sign=-1.0, scale=1.0):
    """``scale * (laplacian_sign * Delta + m2)`` from explicit site loops, row-major sites."""
    V = L * L
    rows = [[0.0] * V for _ in range(V)]
    for i in range(L):
        for j in range(L):
            s = i * L + j
            rows[s][s] += scale * (m2 - laplacian_sign * 4.0)
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                ni, nj = i + di, j + dj
                if not periodic and not (0 <= ni < L and 0 <= nj < L):
                    continue
                rows[s][(ni % L) * L + nj % L] += scale * laplacian_sign
    return T.tensor(rows, dtype=T.float64)


def _log_z(K) -> float:
    return 0.5 * K.shape[0] * LOG_2PI - 0.5 * T.item(_L.slogdet(K)[1])


def _covariance_cases(hidden):
    cases = [(4, 0.25)]
    if hidden:
        cases += [(3, 1.0), (6, 0.1), (5, 2.5), (8, 0.25)]
    return cases


def check_free_field_covariance(covariance_fn, level: str = "visible") -> None:
    r"""Check ``free_field_covariance(L, m2)``: :math:`\Sigma = (-\Delta + m^2)^{-1}`, ``(V, V)`` float64.

    Sites are ordered like ``phi.flatten()`` of an ``(L, L)`` field (row-major), boundaries are
    periodic. Visible: ``L=4``; hidden: odd and even sizes from 3 to 8 and masses 0.1 to 2.5.
    """
    hidden = begin(level)
    for L, m2 in _covariance_cases(hidden):
        V = L * L
        what = f"free_field_covariance({L}, {m2})"
        out = _call("free_field", what, covariance_fn, L, m2)
        if isinstance(out, T.Tensor) and tuple(out.shape) in ((L, L), (L, L, L, L)):
            raise GradingError(f"{what} returned shape {tuple(out.shape)}; the covariance couples every "
                               f"site with every site: a ({V}, {V}) matrix, sites in the order of "
                               "phi.flatten() (site (i, j) is index i * L + j).")
        out = tensor_result(out, what, shape=(V, V), dtype=T.float64,
                                shape_hint=f"V = L * L = {V} sites.")
        K = _precision(L, m2)
        expected = _L.inv(K)
        if close(out, expected, T.float64, rtol=1e-8, atol=1e-10):
            continue
        variants = [
            (K, "you returned the precision matrix K = -Delta + m^2; the covariance is its inverse, "
                "torch.linalg.inv(K)."),
            (_L.inv(_precision(L, m2, periodic=False)),
             "the lattice is periodic: site (i, L-1) is a neighbour of (i, 0), and (L-1, j) of (0, j). "
             "Your matrix misses the couplings across the boundary (use % L on the neighbour index, "
             "or torch.roll, which wraps around)."),
            (_L.inv(_precision(L, m2, scale=2.0)),
             "your K is twice too large: with S = (1/2) phi^T K phi the kinetic part of K is "
             "4 phi(x) - sum of the 4 neighbours, without the factor 2 of unit 2's action."),
            (_L.inv(_precision(L, m2, laplacian_sign=1.0)),
             "the sign of the Laplacian is flipped: K = -Delta + m^2 has 4 + m^2 on the diagonal and "
             "-1 for each neighbour (K must be positive definite)."),
            (_L.inv(_precision(L, m2, scale=0.5)),
             "your K is half the right one: the diagonal is 4 + m^2 (2d + m^2 in d = 2), each "
             "neighbour -1."),
        ]
        for value, message in variants:
            if close(out, value, T.float64, rtol=1e-6, atol=1e-8):
                raise GradingError(f"{what} is not the free-field covariance. {message}")
        if not close(out, _L.transpose(out, 0, 1), T.float64, rtol=1e-8, atol=1e-10):
            raise GradingError(f"{what} is not symmetric; a covariance matrix is, and so is K.")
        raise GradingError(f"{what} differs from (-Delta + m^2)^(-1) (max difference "
                           f"{max_abs_diff(out, expected):.3g}, max entry "
                           f"{max_abs(expected):.3g}). Check K on a tiny lattice by hand: "
                           "diagonal 4 + m^2, -1 for each of the 4 periodic neighbours.")
    ok("free_field_covariance is the inverse of -Delta + m^2", hidden)


def check_free_field_log_z(log_z_fn, level: str = "visible") -> None:
    r"""Check ``free_field_log_z(L, m2)``: :math:`\tfrac V2\log 2\pi - \tfrac12\log\det K` (a float)."""
    hidden = begin(level)
    for L, m2 in _covariance_cases(hidden):
        V = L * L
        what = f"free_field_log_z({L}, {m2})"
        value = number(_call("free_field", what, log_z_fn, L, m2), what)
        K = _precision(L, m2)
        logdet = T.item(_L.slogdet(K)[1])
        expected = _log_z(K)
        tol = 1e-7 * max(1.0, abs(expected))
        if abs(value - expected) <= tol:
            continue
        variants = [
            (-expected, "that is -log Z: log Z = (V/2) log(2 pi) - (1/2) log det K."),
            (0.5 * V * LOG_2PI - logdet, "the determinant enters with a square root: -(1/2) log det "
                                         "K, not -log det K."),
            (0.5 * V * LOG_2PI + 0.5 * logdet, "the sign of the log-determinant is flipped: Z = "
                                               "(2 pi)^(V/2) det(K)^(-1/2), so -(1/2) log det K."),
            (-0.5 * logdet, "the (2 pi)^(V/2) of the Gaussian integral is missing: add (V/2) "
                            "log(2 pi)."),
            (0.5 * LOG_2PI - 0.5 * logdet, "the Gaussian integral gives a factor sqrt(2 pi) per "
                                            "site: (V/2) log(2 pi), not (1/2) log(2 pi)."),
            (V * LOG_2PI - 0.5 * logdet, "each site gives sqrt(2 pi): (V/2) log(2 pi), not "
                                          "V log(2 pi)."),
            (_log_z(_precision(L, m2, periodic=False)),
             "your K misses the couplings across the periodic boundary (see exercise 1)."),
            (_log_z(_precision(L, m2, scale=2.0)),
             "your K is twice too large (S = (1/2) phi^T K phi, see exercise 1)."),
        ]
        for wrong, message in variants:
            if abs(value - wrong) <= 1e-6 * max(1.0, abs(wrong)):
                raise GradingError(f"{what} = {value:.8g}, expected {expected:.8g}. {message}")
        raise GradingError(f"{what} = {value:.8g}, expected {expected:.8g} = (V/2) log(2 pi) - "
                           "(1/2) log det K (torch.linalg.slogdet gives log det K without overflow).")
    ok("free_field_log_z is exact", hidden)


# --------------------------------------------------------------------------------------------
# Exercise 2: the linear (additive) coupling layer
# --------------------------------------------------------------------------------------------
def _masks(hidden):
    """(label, mask) pairs: lexicographic and checkerboard halves (and a random one, hidden)."""
    out = []
    for L in ((4,) if not hidden else (4, 6)):
        V = L * L
        lex = [1.0 if s < V // 2 else 0.0 for s in range(V)]
        checker = [1.0 if (s // L + s % L) % 2 == 0 else 0.0 for s in range(V)]
        out.append((f"the lexicographic {L}x{L} mask", T.reshape(T.tensor(lex), (L, L))))
        out.append((f"the checkerboard {L}x{L} mask", T.reshape(T.tensor(checker), (L, L))))
    if hidden:
        gen = generator(601)
        order = T.tolist(_L.randperm(36, generator=gen))
        rand = [0.0] * 36
        for s in order[:18]:
            rand[s] = 1.0
        out.append(("a random 6x6 half", T.reshape(T.tensor(rand), (6, 6))))
    return out


def _coupling_matrix(mask, W, sign):
    """``I + sign * P_B^T W P_A`` (float64, ``(V, V)``): the layer as a matrix on flat fields."""
    flat = T.flatten(mask)
    idx_a = T.flatten(_L.nonzero(flat == 1))
    idx_b = T.flatten(_L.nonzero(flat == 0))
    V = T.numel(flat)
    M = _L.eye(V, dtype=T.float64)
    _L.setitem(M, (T.unsqueeze(idx_b, 1), T.unsqueeze(idx_a, 0)), sign * f64(W))
    return M


def _apply(M, x):
    flat = T.flatten(f64(x), 1)
    return T.reshape(_L.matmul(flat, _L.transpose(M, 0, 1)), tuple(x.shape))


def _pair(out, what, x, dtype):
    n = x.shape[0]
    if not (isinstance(out, tuple) and len(out) == 2):
        raise GradingError(f"{what} returned {describe(out)}; every bijection returns a pair "
                           "(field, log_det).")
    field, log_det = out
    field = tensor_result(field, f"the field returned by {what}", shape=tuple(x.shape),
                              dtype=dtype)
    if isinstance(log_det, (float, int)) or (isinstance(log_det, T.Tensor) and log_det.dim() == 0):
        raise GradingError(f"the log_det returned by {what} is a single number; return one per "
                           f"configuration, shape ({n},), e.g. z.new_zeros(z.shape[0]).")
    log_det = tensor_result(log_det, f"the log_det returned by {what}", shape=(n,), dtype=dtype,
                                shape_hint="One log-Jacobian per configuration, shape (batch,).")
    return field, log_det


def check_linear_coupling(layer_cls, level: str = "visible") -> None:
    r"""Check ``LinearCoupling(mask)``: :math:`\phi_A = z_A`, :math:`\phi_B = z_B + W z_A`, log-det 0.

    The grader builds the layer, writes random values into ``layer.weight`` (shape
    ``(n_B, n_A)``), and compares ``forward`` and ``reverse`` with the matrix
    :math:`I + P_B^T W P_A` and its inverse; it checks the round trip, the log-dets and that
    gradients reach ``weight``. Visible: two 4x4 masks in float32; hidden: 6x6 and a random half,
    float64, a batch of one.
    """
    hidden = begin(level)
    if not isinstance(layer_cls, type):
        raise GradingError("pass the class LinearCoupling itself (not an instance or a function).")
    cases = [(label, mask, dtype, n) for label, mask in _masks(hidden)
             for dtype, n in (((T.float32, 16),) + (((T.float64, 1),) if hidden else ()))]
    for seed, (label, mask, dtype, n) in enumerate(cases):
        gen = generator(610 + seed)
        L = mask.shape[0]
        layer = _linear_coupling(layer_cls, label, mask, dtype)
        W = randn(tuple(layer.weight.shape), dtype, gen) * 0.5
        with T.no_grad():
            T.copy_(layer.weight, W)
        z = randn((n, L, L), dtype, gen)
        where = f"{label}, batch {n}, {dtype}"
        phi = _check_coupling_forward(layer, mask, W, z, where, dtype)
        _check_coupling_reverse(layer, mask, W, z, phi, where, dtype)
        _check_weight_gradient(layer, mask, z, randn((n, L, L), dtype, gen), where, dtype)
    ok("LinearCoupling is the additive coupling z_B + W z_A, inverted by reverse, log-det 0", hidden)


def _linear_coupling(layer_cls, label: str, mask, dtype):
    """``layer_cls(mask)`` in ``dtype``, once its ``weight`` is checked: a ``torch.nn.Parameter`` of
    shape ``(n_B, n_A)`` (updated sites, frozen sites), and its ``forward`` and ``reverse`` exist."""
    L = mask.shape[0]
    n_a = int(T.item(T.tsum(mask)))
    layer = _call("linear_coupling", f"LinearCoupling({label})", layer_cls, T.clone(mask))
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, _L.Parameter):
        raise GradingError("LinearCoupling has no parameter self.weight; keep the __init__ as "
                           "given (torch.nn.Parameter of shape (n_B, n_A)).")
    if tuple(weight.shape) != (L * L - n_a, n_a):
        raise GradingError(f"layer.weight has shape {tuple(weight.shape)}, expected "
                           f"({L * L - n_a}, {n_a}) = (updated sites, frozen sites).")
    for name in ("forward", "reverse"):
        if not callable(getattr(layer, name, None)):
            raise GradingError(f"LinearCoupling has no method {name}; define it inside the class.")
    T.module_to(layer, dtype)
    return layer


def _check_coupling_forward(layer, mask, W, z, where: str, dtype):
    """``forward(z)`` keeps the frozen sites, adds ``W z_A`` to the updated ones (the matrix
    :math:`I + P_B^T W P_A`) and returns log-det 0; returns the right ``phi`` (float64)."""
    L = mask.shape[0]
    A, A_inv = _coupling_matrix(mask, W, 1.0), _coupling_matrix(mask, W, -1.0)
    with T.no_grad():
        out = _call("linear_coupling", "LinearCoupling.forward", layer.forward, T.clone(z))
    phi, ld = _pair(out, f"forward(z) ({where})", z, dtype)
    frozen = T.reshape(mask, (1, L, L))
    if not close(phi * frozen, z * frozen, dtype):
        raise GradingError(f"forward(z) ({where}) changed frozen sites (mask 1); they pass "
                           "through unchanged: phi_A = z_A.")
    expected = _apply(A, z)
    if not close(phi, expected, dtype):
        variants = [
            (_apply(_coupling_matrix(mask, _L.transpose(W, 0, 1), 1.0), z),
             "you multiplied by the transpose of W: phi_B[i] = z_B[i] + sum_j W[i, j] z_A[j], "
             "i.e. z_A @ W.T in batch form."),
            (_apply(A_inv, z), "the shift has the wrong sign: forward adds W z_A, reverse "
                               "subtracts it."),
            (_apply(A, z) - z * (1 - frozen), "phi_B must be z_B + W z_A: you dropped z_B."),
        ]
        hint = next((m for v, m in variants if close(phi, v, dtype)), "")
        raise GradingError(f"forward(z) ({where}) is not z_B + W z_A on the updated sites (max "
                           f"difference {max_abs_diff(phi, expected):.3g}). {hint}".rstrip())
    if max_abs(ld) != 0.0:
        raise GradingError(f"the log_det of forward(z) ({where}) is not 0: a shift-only coupling "
                           "has a unit triangular Jacobian, det = 1, log det = 0 for every "
                           "configuration.")
    return expected


def _check_coupling_reverse(layer, mask, W, z, phi, where: str, dtype) -> None:
    """``reverse(phi)`` of the right ``phi = forward(z)`` gives ``z`` back (it subtracts
    ``W phi_A``), with log-det 0."""
    L = mask.shape[0]
    A, A_inv = _coupling_matrix(mask, W, 1.0), _coupling_matrix(mask, W, -1.0)
    frozen = T.reshape(mask, (1, L, L))
    with T.no_grad():
        out = _call("linear_coupling", "LinearCoupling.reverse", layer.reverse, T.to(phi, dtype))
    z_back, ld_back = _pair(out, f"reverse(phi) ({where})", z, dtype)
    if not close(z_back, z, dtype):
        hint = ""
        if close(z_back, _apply(A, phi), dtype):
            hint = "reverse adds W phi_A like forward does; it must subtract it: z_B = phi_B - W phi_A."
        elif close(z_back, _apply(A_inv, phi) - phi * (1 - frozen), dtype):
            hint = "z_B = phi_B - W phi_A: you dropped phi_B."
        raise GradingError(f"reverse(forward(z)) ({where}) does not give z back (max difference "
                           f"{max_abs_diff(z_back, z):.3g}). {hint}".rstrip())
    if max_abs(ld_back) != 0.0:
        raise GradingError(f"the log_det of reverse(phi) ({where}) is not 0 (the inverse of a "
                           "volume-preserving map preserves volume too).")


def _check_weight_gradient(layer, mask, z, c, where: str, dtype) -> None:
    r"""Gradients reach ``layer.weight`` (training could not learn ``W`` otherwise):
    :math:`\partial_W \sum c\,\phi = c_B^T z_A`, summed over the batch."""
    weight = layer.weight
    with T.enable_grad():
        out = _call("linear_coupling", "LinearCoupling.forward", layer.forward, T.clone(z))
        phi = out[0]
        if not getattr(phi, "requires_grad", False):
            raise GradingError(f"forward(z) ({where}) is not differentiable with respect to "
                               "layer.weight (no grad_fn): compute with torch operations on "
                               "self.weight, without .detach(), .data or torch.no_grad().")
        (grad,) = T.grad(T.tsum(phi * c), (weight,), allow_unused=True)
    flat_m = T.flatten(mask)
    idx_a = T.flatten(_L.nonzero(flat_m == 1))
    idx_b = T.flatten(_L.nonzero(flat_m == 0))
    c_b = T.flatten(f64(c), 1)[:, idx_b]
    z_a = T.flatten(f64(z), 1)[:, idx_a]
    grad_expected = _L.matmul(_L.transpose(c_b, 0, 1), z_a)
    if grad is None or not close(grad, grad_expected, dtype):
        raise GradingError(f"the gradient of forward(z) ({where}) with respect to layer.weight is "
                           "wrong or missing: training could not learn W. Use self.weight in "
                           "forward as it is (no copies, .detach() or .data).")


# --------------------------------------------------------------------------------------------
# Exercise 3: equivariance under lattice shifts
# --------------------------------------------------------------------------------------------
def _random_model(kind: str, L: int, seed: int):
    """A free-field model in float64 whose parameters are random (a fresh model is the identity)."""
    gen = generator(seed)
    if kind == "equivariant":
        flow = _coupling_models.equivariant_linear_model((L, L), n_layers=4, radius=1,
                                                          dtype=T.float64)
    else:
        flow = _coupling_models.linear_coupling_model((L, L), n_layers=2, dtype=T.float64)
    with T.no_grad():
        for p in T.parameters(flow):
            T.copy_(p, randn(tuple(p.shape), T.float64, gen) * 0.2)
    return flow


def _deviation(flow, z, shift, *, dims=(1, 2), out_shift=None, reduce="max", shift_output=True):
    out_shift = shift if out_shift is None else out_shift
    with T.no_grad():
        a = flow.forward(T.roll(z, shift, dims))[0]
        b = flow.forward(z)[0]
    if shift_output:
        b = T.roll(b, out_shift, dims)
    diff = T.abs(T.sub(f64(a), f64(b)))
    return T.item(T.amax(diff)) if reduce == "max" else T.item(_L.tmean(diff))


def check_shift_deviation(deviation_fn, level: str = "visible") -> None:
    r"""Check ``shift_deviation(flow, z, shift)``: :math:`\max_{b,x}|f(T z) - T f(z)|`.

    ``T`` rolls the lattice dimensions (1 and 2) of ``z`` by ``shift = (dx, dy)``; ``f(z)`` is
    ``flow.forward(z)[0]``. Compared with the exact value on the equivariant model (random
    weights) for shifts that it does and does not commute with; hidden: more shifts, and the
    lexicographic linear model, which commutes with no shift.
    """
    hidden = begin(level)
    L = 8  # not 6: there a roll by -2 and by +4 give the same maximum, hiding a mistake
    cases = [("equivariant", (2, 0)), ("equivariant", (1, 0))]
    if hidden:
        cases += [("equivariant", (0, -2)), ("equivariant", (2, 4)), ("equivariant", (0, 3)),
                  ("equivariant", (1, 2)), ("equivariant", (0, 0)), ("linear", (2, 0)),
                  ("linear", (1, 1))]
    for seed, (kind, shift) in enumerate(cases):
        flow = _random_model(kind, L, 620 + seed)
        z = randn((4, L, L), T.float64, generator(640 + seed))
        expected = _deviation(flow, z, shift)
        what = f"shift_deviation(flow, z, shift={shift}) for the {kind} model"
        out = _call("shift_deviation", what, deviation_fn, flow, T.clone(z), shift)
        if isinstance(out, T.Tensor) and T.numel(out) > 1:
            raise GradingError(f"{what} returned a tensor of shape {tuple(out.shape)}; reduce it to "
                               "one number, the largest absolute deviation (.abs().max()).")
        value = number(out, what)
        if abs(value - expected) <= 1e-8 + 1e-6 * expected:
            continue
        variants = [
            (_deviation(flow, z, shift, shift_output=False),
             "you compared f(T z) with f(z); equivariance means f(T z) = T f(z): shift the output "
             "too, by the same amount."),
            (_deviation(flow, z, shift, dims=(0, 1)),
             "you rolled dimensions 0 and 1; dimension 0 is the batch. The lattice dimensions of a "
             "(batch, L, L) field are 1 and 2."),
            (_deviation(flow, z, shift, out_shift=(-shift[0], -shift[1])),
             "you shifted the output in the opposite direction; compare f(T z) with T f(z), the same "
             "shift on both sides."),
            (_deviation(flow, z, shift, reduce="mean"),
             "you returned the mean deviation; the exercise asks for the largest one (a single bad "
             "site breaks equivariance)."),
        ]
        for wrong, message in variants:
            if abs(value - wrong) <= 1e-8 + 1e-6 * abs(wrong) and abs(wrong - expected) > 1e-8:
                raise GradingError(f"{what} = {value:.6g}, expected {expected:.6g}. {message}")
        raise GradingError(f"{what} = {value:.6g}, expected {expected:.6g} = max |f(T z) - T f(z)| "
                           "with T = torch.roll(., shift, dims=(1, 2)) and f(z) = flow.forward(z)[0].")
    ok("shift_deviation measures how far the flow is from commuting with a shift", hidden)


make_read_only(__name__)
