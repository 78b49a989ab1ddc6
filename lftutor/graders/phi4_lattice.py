r"""Graders of unit 2 (the phi^4 lattice): the action, the Gaussian prior's log-density, the slope-one fit.

What the test cells of ``solutions/02_phi4_lattice`` call. The machinery (captured functions,
tripwire, tamper check, read-only module) is :mod:`lftutor.graders.core`'s.
"""

from __future__ import annotations

import lftutor.lattice.actions as _actions
import lftutor.lattice.priors as _priors
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
    generator,
    make_read_only,
    max_abs,
    max_abs_diff,
    module_codes,
    ok,
    randn,
    tensor_result,
)

capture_builtins(globals())

__all__ = ["GradingError", "check_gaussian_log_prob", "check_phi4_action", "check_slope_one_intercept"]

# What each exercise's answer may not call (captured now, so re-binding names later does not help).
_FORBID = {
    "phi4_action": (module_codes(_actions), {_actions.__file__}),
    "gaussian_log_prob": (module_codes(_priors), set()),
    "slope_one": (frozenset(), set()),
}
_call = caller(_FORBID, forbidden="the reference implementation of this very exercise")


def _ref_phi4(phi, m2, lam):
    phi = f64(phi)
    neighbours = T.zeros(tuple(phi.shape), dtype=T.float64)
    for mu in range(1, phi.dim()):
        neighbours = neighbours + T.roll(phi, 1, mu) + T.roll(phi, -1, mu)
    d = phi.dim() - 1
    density = phi * (2 * d * phi - neighbours) + m2 * phi**2 + lam * phi**4
    return T.tsum(T.flatten(density, 1), 1)


def _phi4_probe(action_fn, phi, m2, lam):
    out = _call("phi4_action", "phi4_action(phi, m2, lam)", action_fn, T.clone(phi), m2, lam)
    if not isinstance(out, T.Tensor) or tuple(out.shape) != (phi.shape[0],):
        return None
    return f64(out)


def _phi4_diagnosis(action_fn, L1, L2) -> str:
    """Probe the student's action with simple fields to name the likely mistake."""
    dtype = T.float64

    def field(*sites, value=1.0):
        phi = T.zeros((1, L1, L2), dtype=dtype)
        for i, j in sites:
            phi[0, i, j] = value
        return phi

    const = T.full((1, L1, L2), 0.7, dtype=dtype)
    volume = L1 * L2
    got = _phi4_probe(action_fn, field((1, 1)), 0.0, 0.0)
    if got is not None and abs(got[0].item() - 4.0) > 1e-6:
        return (f"a single site with phi = 1 (all else 0, m2 = lam = 0) has action 2d = 4 on a 2-D "
                f"lattice, yours gives {got[0].item():.4g}. The kinetic term has 2*phi(x) for each of "
                "the two directions, minus the neighbours on both sides.")
    if L1 > 2 and L2 > 2:
        inside = _phi4_probe(action_fn, field((1, 1), (1, 2)), 0.0, 0.0)
        across = _phi4_probe(action_fn, field((0, 0), (0, L2 - 1)), 0.0, 0.0)
        across2 = _phi4_probe(action_fn, field((0, 0), (L1 - 1, 0)), 0.0, 0.0)
        if inside is not None and abs(inside[0].item() - 6.0) > 1e-6:
            return (f"two neighbouring sites with phi = 1 have action 4 + 4 - 2 = 6 (m2 = lam = 0); "
                    f"yours gives {inside[0].item():.4g}. Each site must see its neighbours on both "
                    "sides, phi(x+mu) and phi(x-mu), in both directions.")
        if across is not None and across2 is not None and (
                abs(across[0].item() - 6.0) > 1e-6 or abs(across2[0].item() - 6.0) > 1e-6):
            return ("the lattice is periodic: sites (0, 0) and (0, L-1) are neighbours, as are (0, 0) "
                    "and (L-1, 0). Your action misses the neighbour across the boundary; torch.roll "
                    "wraps around, slicing or padding with zeros does not.")
    got = _phi4_probe(action_fn, const, 0.0, 0.0)
    if got is not None and abs(got[0].item()) > 1e-6:
        return ("for a constant field with m2 = lam = 0 the action must vanish (no gradients), but "
                f"yours gives {got[0].item():.4g}. Check the kinetic term: each site contributes "
                "phi(x) * sum_mu [2 phi(x) - phi(x+mu) - phi(x-mu)].")
    got = _phi4_probe(action_fn, const, 1.3, 0.0)
    if got is not None and abs(got[0].item() - 1.3 * 0.49 * volume) > 1e-6:
        return (f"the mass term is wrong: for a constant field phi = 0.7 with m2 = 1.3, lam = 0 the "
                f"action is m2 * phi^2 * V = {1.3 * 0.49 * volume:.4g}, yours gives {got[0].item():.4g}.")
    got = _phi4_probe(action_fn, const, 0.0, 2.0)
    if got is not None and abs(got[0].item() - 2.0 * 0.7**4 * volume) > 1e-6:
        if abs(got[0].item() - 2.0 * 0.49 * volume) < 1e-6:
            return "the quartic term uses phi^2; it should be lam * phi^4."
        return (f"the quartic term is wrong: for phi = 0.7, m2 = 0, lam = 2 the action is "
                f"lam * phi^4 * V = {2.0 * 0.7**4 * volume:.4g}, yours gives {got[0].item():.4g}.")
    return ""


def check_phi4_action(action_fn, level: str = "visible") -> None:
    r"""Check ``phi4_action(phi, m2, lam)``: shape ``(batch, L, L) -> (batch,)``, periodic."""
    hidden = begin(level)
    cases = [((5, 8, 8), T.float32, -4.0, 8.0)]
    if hidden:
        cases += [((3, 4, 4), T.float64, -4.0, 8.0), ((1, 6, 6), T.float64, 1.5, 0.0),
                  ((4, 4, 6), T.float64, -1.0, 0.5), ((2, 3, 5), T.float64, 0.3, 1.2),
                  ((2, 2, 2), T.float64, -2.0, 3.0), ((6, 8, 8), T.float32, -4.0, 8.0)]
    for seed, (shape, dtype, m2, lam) in enumerate(cases):
        gen = generator(40 + seed)
        phi = randn(shape, dtype, gen)
        if seed == len(cases) - 1 and hidden:
            phi[0] = 0.0  # an all-zero field in the batch: action exactly 0
        expected = _ref_phi4(phi, m2, lam)
        phi_in = T.clone(phi)
        out = _call("phi4_action", "phi4_action(phi, m2, lam)", action_fn, phi_in, m2, lam)
        what = f"phi4_action for phi of shape {shape} ({dtype}), m2={m2}, lam={lam}"
        hint = ""
        if isinstance(out, T.Tensor):
            if tuple(out.shape) == shape:
                hint = ("You returned the action density, one value per site; sum it over the lattice "
                        "(dims 1 and 2) to get one number per configuration.")
            elif out.dim() == 0:
                hint = "You summed over the batch too: return one action per configuration."
        out = tensor_result(out, what, shape=(shape[0],), dtype=dtype, shape_hint=hint)
        if not T.equal(phi_in, phi):
            raise GradingError("phi4_action changed its input phi in place; compute new tensors.")
        if close(out, expected, dtype):
            continue
        diagnosis = _phi4_diagnosis(action_fn, shape[1], shape[2])
        raise GradingError(f"{what} differs from the reference (max difference "
                           f"{max_abs_diff(out, expected):.3g}, relative to max |S| = "
                           f"{max_abs(expected):.3g}). {diagnosis}".rstrip())
    ok("phi4_action matches the reference action", hidden)


def check_gaussian_log_prob(log_prob_fn, level: str = "visible") -> None:
    r"""Check ``gaussian_log_prob(z)``: :math:`\sum_x [-z_x^2/2 - \tfrac12\log 2\pi]`, ``(batch,)``."""
    hidden = begin(level)
    cases = [((6, 8, 8), T.float32)]
    if hidden:
        cases += [((1, 4, 4), T.float64), ((3, 2, 6), T.float64), ((2, 5, 3), T.float32)]
    for seed, (shape, dtype) in enumerate(cases):
        z = randn(shape, dtype, generator(50 + seed)) * 1.3
        z64 = f64(z)
        sq = T.tsum(T.flatten(z64**2, 1), 1)
        volume = shape[1] * shape[2]
        expected = -0.5 * sq - 0.5 * volume * LOG_2PI
        out = _call("gaussian_log_prob", "gaussian_log_prob(z)", log_prob_fn, T.clone(z))
        what = f"gaussian_log_prob for z of shape {shape} ({dtype})"
        hint = ("You returned one value per site; sum over the lattice sites." if
                isinstance(out, T.Tensor) and tuple(out.shape) == shape else "")
        out = tensor_result(out, what, shape=(shape[0],), dtype=dtype, shape_hint=hint)
        if close(out, expected, dtype):
            continue
        msg = diagnose(out, [
            (-0.5 * sq, "the normalisation is missing: each site contributes -log(2 pi)/2 as well."),
            (-sq - 0.5 * volume * LOG_2PI, "the exponent of a unit Gaussian is -z^2/2, not -z^2."),
            (0.5 * sq + 0.5 * volume * LOG_2PI, "that is -log r(z); return log r(z) (negative)."),
            (-0.5 * sq - volume * LOG_2PI, "the normalisation per site is -log(2 pi)/2, not "
                                           "-log(2 pi)."),
            (-0.5 * sq - 0.5 * LOG_2PI, "the -log(2 pi)/2 appears once per site: multiply it by "
                                         "the number of sites."),
        ])
        raise GradingError(f"{what} differs from the reference (max difference "
                           f"{max_abs_diff(out, expected):.3g}). {msg}".rstrip())
    ok("gaussian_log_prob matches the unit Gaussian", hidden)


def check_slope_one_intercept(fit_fn, level: str = "visible") -> None:
    """Check ``slope_one_intercept(x, y)``: least-squares ``b`` of ``y = x + b`` (a float)."""
    hidden = begin(level)
    cases = [(1000, T.float64)]
    if hidden:
        cases += [(1, T.float64), (257, T.float32)]
    for seed, (n, dtype) in enumerate(cases):
        gen = generator(60 + seed)
        x = randn((n,), dtype, gen) * 50
        y = 2 * x + 300 + randn((n,), dtype, gen) * 10
        expected = T.item(T.tmean(f64(y)) - T.tmean(f64(x)))
        out = _call("slope_one", "slope_one_intercept(x, y)", fit_fn, T.clone(x), T.clone(y))
        if isinstance(out, T.Tensor) and T.numel(out) == 1:
            out = T.item(f64(out))
        if not isinstance(out, (float, int)) or isinstance(out, bool):
            raise GradingError(f"slope_one_intercept returned {describe(out)}; return one number "
                               "(a float or a one-element tensor).")
        if abs(out - expected) <= 1e-4 * max(1.0, abs(expected)):
            continue
        if abs(out + expected) <= 1e-4 * max(1.0, abs(expected)):
            raise GradingError("the intercept has the wrong sign: for y = x + b, b = mean(y) - "
                               "mean(x).")
        raise GradingError(f"slope_one_intercept gives {out:.5g}, expected {expected:.5g}. With the "
                           "slope fixed to 1, least squares gives b = mean(y - x).")
    ok("slope_one_intercept is the least-squares intercept", hidden)


make_read_only(__name__)
