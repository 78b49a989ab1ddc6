r"""Graders of unit 1 (change of variables): Box-Muller, its log-det, samples through it, the reverse of a
simple coupling layer.

What the test cells of ``solutions/01_change_of_variables`` call. The machinery (captured functions,
tripwire, tamper check, read-only module) is :mod:`lftutor.graders.core`'s.
"""

from __future__ import annotations

import math

import lftutor.bijections.box_muller as _cov
import lftutor.bijections.coupling as _layers
from lftutor.graders.core import (
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
    module_codes,
    ok,
    randn,
    tensor_result,
)

capture_builtins(globals())

__all__ = ["GradingError", "check_box_muller", "check_box_muller_log_det", "check_sample_u_and_z",
           "check_simple_coupling_reverse"]

# What each exercise's answer may not call (captured now, so re-binding names later does not help).
_FORBID = {
    "box_muller": (module_codes(_cov), {_cov.__file__}),
    "simple_coupling": (function_codes(_layers.SimpleCouplingLayer.forward,
                               _layers.SimpleCouplingLayer.reverse,
                               _layers.SimpleCouplingLayer.scale), set()),
}
_call = caller(_FORBID, forbidden="the reference implementation of this very exercise")


def _ref_box_muller(u, *, angle=2 * math.pi):
    radius = T.sqrt(-2 * T.log(u[:, 0]))
    phase = angle * u[:, 1]
    return T.stack((radius * T.cos(phase), radius * T.sin(phase)), dim=-1)


def _uniform_points(n, dtype, gen, *, extreme=False):
    u = T.rand((n, 2), generator=gen, dtype=T.float64) * 0.98 + 0.01
    if extreme:
        u = T.cat((u, T.tensor([[1e-12, 0.25], [1 - 1e-6, 0.75], [0.5, 1e-9], [0.3, 1 - 1e-9]],
                                 dtype=T.float64)))
    return T.to(u, dtype)


def _point_sets(hidden: bool, first_seed: int, visible, more) -> list:
    """The inputs ``u`` of a Box-Muller check, one per case ``(n, dtype, extreme)``: ``visible``,
    then ``more`` at the hidden level; case ``k`` is drawn with the seed ``first_seed + k``."""
    cases = [visible] + (more if hidden else [])
    return [_uniform_points(n, dtype, generator(first_seed + k), extreme=extreme)
            for k, (n, dtype, extreme) in enumerate(cases)]


def check_box_muller(box_muller, level: str = "visible") -> None:
    """Check ``box_muller(u)``: ``(batch, 2)`` uniform points to standard normal points."""
    hidden = begin(level)
    for u in _point_sets(hidden, 10, (256, T.float32, False),
                         [(1, T.float64, False), (100, T.float64, True), (7, T.float32, True)]):
        dtype = u.dtype
        expected = _ref_box_muller(T.to(u, T.float64))
        u_in = T.clone(u)
        out = _call("box_muller", "box_muller(u)", box_muller, u_in)
        what = f"box_muller(u) for u of shape {tuple(u.shape)} ({dtype})"
        out = tensor_result(out, what, shape=(u.shape[0], 2), dtype=dtype,
                             shape_hint="Stack z_1 and z_2 as the two columns: torch.stack((z1, z2), "
                                        "dim=-1).")
        if not T.equal(u_in, u):
            raise GradingError("box_muller(u) changed its input u in place; compute new tensors.")
        if close(out, expected, dtype, rtol=1e-5 if dtype == T.float32 else None):
            continue
        u64 = T.to(u, T.float64)
        if close(out, _ref_box_muller(u64, angle=math.pi), T.float64, rtol=1e-4, atol=1e-4):
            raise GradingError("box_muller uses the angle pi*u_2: then z_2 >= 0 and only half the "
                               "plane is covered. The standard map uses the full turn 2*pi*u_2.")
        swapped = _ref_box_muller(u64)[:, [1, 0]]
        if close(out, swapped, T.float64, rtol=1e-4, atol=1e-4):
            raise GradingError("box_muller has cos and sin swapped: z_1 uses cos(2 pi u_2), "
                               "z_2 uses sin(2 pi u_2).")
        radius_ok = close(out[:, 0] ** 2 + out[:, 1] ** 2, -2 * T.log(u64[:, 0]), T.float64,
                           rtol=1e-4, atol=1e-4)
        if not radius_ok:
            raise GradingError("the radius of box_muller(u) is wrong: z_1^2 + z_2^2 should be "
                               "-2 ln(u_1) (natural log, the square root of -2 ln u_1 as radius).")
        raise GradingError(f"{what} has the right radius but the wrong angle: the angle is "
                           f"2*pi*u_2 (max difference {max_abs_diff(out, expected):.3g}).")
    ok("box_muller matches the reference", hidden)


def _autograd_log_det(u):
    """``log|det dz/du|`` of the Box-Muller map per point, from autograd (float64)."""
    with T.enable_grad():
        u = T.requires_grad_(T.clone(T.to(T.detach(u), T.float64)))
        z = _ref_box_muller(u)
        row0 = T.grad(T.tsum(z[:, 0]), u, retain_graph=True)[0]
        row1 = T.grad(T.tsum(z[:, 1]), u)[0]
    det = row0[:, 0] * row1[:, 1] - row0[:, 1] * row1[:, 0]
    return T.detach(T.log(T.abs(det)))


def check_box_muller_log_det(log_det_fn, level: str = "visible") -> None:
    """Check ``box_muller_log_det(u) -> log|det dz/du|`` against the autograd Jacobian."""
    hidden = begin(level)
    for u in _point_sets(hidden, 20, (128, T.float32, False),
                         [(1, T.float64, False), (50, T.float64, True), (9, T.float32, True)]):
        dtype = u.dtype
        expected = _autograd_log_det(u)
        n = u.shape[0]
        out = _call("box_muller", "box_muller_log_det(u)", log_det_fn, T.clone(u))
        what = f"box_muller_log_det(u) for u of shape {tuple(u.shape)} ({dtype})"
        if isinstance(out, T.Tensor) and tuple(out.shape) == (n, 2, 2):
            raise GradingError(f"{what} returned the 2x2 Jacobian matrices; return log|det J|, one "
                               "number per point (e.g. via the formula you derived).")
        out = tensor_result(out, what, shape=(n,), dtype=dtype,
                             shape_hint="One value per point: log|det J| has shape (batch,).")
        if close(out, expected, dtype, rtol=1e-5 if dtype == T.float32 else None):
            continue
        hint = diagnose(out, [
            (T.exp(expected), "you returned |det J| itself; the exercise asks for its logarithm."),
            (-expected, "the sign is flipped: that is log|det du/dz| of the inverse map. The map "
                        "u -> z stretches the plane near u_1 = 0, where log|det| must be large."),
            (expected - math.log(2), "you are missing a factor 2 inside the log: with the angle "
                                     "2*pi*u_2 the determinant is 2*pi/u_1."),
            (expected + 2 * T.log(T.to(u[:, 0], T.float64)),
             "the u_1 dependence is inverted: |det J| = 2 pi / u_1, not 2 pi u_1."),
        ])
        raise GradingError(f"{what} disagrees with the autograd Jacobian (max difference "
                           f"{max_abs_diff(out, expected):.3g}). {hint}".rstrip())
    ok("box_muller_log_det matches log|det| of the autograd Jacobian", hidden)


def check_sample_u_and_z(u, z, box_muller, n_points: int, level: str = "visible") -> None:
    r"""Check exercise 4: ``u`` is ``(n_points, 2)`` uniform on the unit square and ``z`` is the
    student's own ``box_muller(u)`` (so a wrong ``box_muller`` does not cost this exercise).

    Visible: shapes, ``0 <= u <= 1``, not constant, and ``z == box_muller(u)``; hidden also: each
    column's mean within 5 standard errors of 1/2, its variance near 1/12, the two columns
    uncorrelated (what ``torch.rand`` gives; a squeezed or copied column fails).
    """
    hidden = begin(level)
    n = int(n_points)
    if not isinstance(u, T.Tensor):
        raise GradingError(f"u is {describe(u)}; draw it as a torch tensor: u = torch.rand(n_points, 2).")
    if tuple(u.shape) != (n, 2):
        raise GradingError(f"u has shape {tuple(u.shape)}, expected ({n}, 2): n_points points of the "
                           "unit square, one per row, u = torch.rand(n_points, 2).")
    if not T.is_floating_point(u):
        raise GradingError(f"u holds integers ({u.dtype}); torch.rand draws floats in [0, 1).")
    u64 = f64(u)
    low, high = -T.item(T.amax(T.neg(u64))), T.item(T.amax(u64))
    if low < 0 or high > 1:
        raise GradingError(f"u has values in [{low:.3g}, {high:.3g}], outside the unit square: draw "
                           "uniform numbers with torch.rand (torch.randn draws normal ones).")
    if high - low < 0.5:
        raise GradingError(f"u only spans [{low:.3g}, {high:.3g}]: it should fill the unit square "
                           "(u = torch.rand(n_points, 2)).")
    if not isinstance(z, T.Tensor) or tuple(z.shape) != (n, 2):
        raise GradingError(f"z is {describe(z)}; expected the ({n}, 2) tensor z = box_muller(u).")
    expected = _call("box_muller", "box_muller(u)", box_muller, T.clone(u))
    if not isinstance(expected, T.Tensor) or tuple(expected.shape) != (n, 2):
        raise GradingError(f"your box_muller(u) returned {describe(expected)}, not a ({n}, 2) tensor; "
                           "fix exercise 1 first.")
    finite = T.isfinite(f64(expected))
    same = T.equal(T.isfinite(f64(z)), finite) and close(
        T.getitem(f64(z), finite), T.getitem(f64(expected), finite), T.float64, rtol=1e-6, atol=1e-6)
    if not same:
        raise GradingError("z is not box_muller(u) for the u you drew: map these very points, "
                           "z = box_muller(u), rather than drawing new random numbers (the plot "
                           "below shows u and z side by side, point for point).")
    if hidden:
        se = (1 / 12 / n) ** 0.5
        for col in (0, 1):
            c = u64[:, col]
            mean, var = T.item(T.tmean(c)), T.item(T.tmean((c - T.tmean(c)) ** 2))
            if abs(mean - 0.5) > 5 * se or abs(var - 1 / 12) > 0.2 / 12:
                raise GradingError(f"column {col} of u has mean {mean:.3f} and variance {var:.4f}; "
                                   "uniform numbers on [0, 1) have 1/2 and 1/12: draw them with "
                                   "torch.rand(n_points, 2), unscaled.")
        a, b = u64[:, 0] - 0.5, u64[:, 1] - 0.5
        corr = T.item(T.tmean(a * b)) / (T.item(T.tmean(a * a)) * T.item(T.tmean(b * b))) ** 0.5
        if abs(corr) > 5 / n**0.5:
            raise GradingError(f"the two columns of u are correlated ({corr:.2f}); draw them "
                               "independently, torch.rand(n_points, 2).")
    ok("u is uniform on the unit square and z = box_muller(u)", hidden)


def _simple_s_net(gen, dtype):
    net = T.Sequential(T.Linear(1, 8), T.ReLU(), T.Linear(8, 8), T.ReLU(), T.Linear(8, 1),
                        T.Tanh())
    with T.no_grad():
        for p in T.parameters(net):
            T.copy_(p, 1.5 * T.randn(tuple(p.shape), generator=gen))
    return T.module_to(net, dtype)


def check_simple_coupling_reverse(layer_cls, level: str = "visible") -> None:
    """Check ``SimpleCouplingLayer.reverse``: inverse of ``(x1, x2) -> (e^{s(x2)} x1, x2)``."""
    hidden = begin(level)
    if not isinstance(layer_cls, type):
        raise GradingError("pass the class SimpleCouplingLayer itself (not an instance or a function).")
    cases = [(200, T.float32)]
    if hidden:
        cases += [(1, T.float64), (64, T.float64), (33, T.float32)]
    for seed, (n, dtype) in enumerate(cases):
        gen = generator(30 + seed)
        layer = _call("simple_coupling", "SimpleCouplingLayer()", layer_cls)
        if not callable(getattr(layer, "reverse", None)):
            raise GradingError("SimpleCouplingLayer has no method reverse(self, y); define it inside "
                               "the class, indented like forward.")
        net = _simple_s_net(gen, dtype)
        try:
            layer.s = net
        except Exception as err:  # noqa: BLE001 - any failure means the class is unusable
            raise GradingError(f"could not set layer.s ({err}); keep self.s as the scale network.") \
                from err
        y = randn((n, 2), dtype, gen) * 1.5
        with T.no_grad():
            s = T.squeeze(net(T.unsqueeze(y[:, 1], -1)), -1)
            s_wrong = T.squeeze(net(T.unsqueeze(y[:, 0], -1)), -1)
        x_expected = T.stack((T.exp(-s) * y[:, 0], y[:, 1]), dim=-1)
        what = f"reverse(y) for y of shape {tuple(y.shape)} ({dtype})"
        with T.no_grad():
            out = _call("simple_coupling", "SimpleCouplingLayer.reverse", layer.reverse, T.clone(y))
        if not (isinstance(out, tuple) and len(out) == 2):
            raise GradingError(f"{what} returned {describe(out)}; like forward, reverse must return "
                               "a pair (x, log_det).")
        x, log_det = out
        x = tensor_result(x, f"the x returned by {what}", shape=(n, 2), dtype=dtype)
        if isinstance(log_det, T.Tensor) and tuple(log_det.shape) == (n, 1):
            raise GradingError(f"the log_det returned by {what} has shape (batch, 1); squeeze the "
                               "last dimension so it has shape (batch,), like forward's.")
        log_det = tensor_result(log_det, f"the log_det returned by {what}", shape=(n,), dtype=dtype,
                                 shape_hint="One log-Jacobian per point, shape (batch,).")
        if not close(x[:, 1], y[:, 1], dtype):
            raise GradingError("reverse changed the second coordinate; the coupling layer leaves "
                               "x_2 unchanged, so x_2 = y_2.")
        if not close(x, x_expected, dtype):
            hint = diagnose(x, [
                (T.stack((T.exp(s) * y[:, 0], y[:, 1]), -1),
                 "you multiplied by e^{s}; the inverse undoes the scaling, x_1 = e^{-s(y_2)} y_1."),
                (T.stack((T.exp(-s_wrong) * y[:, 0], y[:, 1]), -1),
                 "s must be evaluated on the frozen coordinate y_2 (= x_2), not on y_1."),
                (T.stack((y[:, 0] - s, y[:, 1]), -1),
                 "the layer scales x_1 by e^{s}; undo it by multiplying with e^{-s}, not by "
                 "subtracting s."),
            ])
            raise GradingError(f"the x returned by {what} is not the inverse of forward (max "
                               f"difference {max_abs_diff(x, x_expected):.3g}). {hint}".rstrip())
        if not close(log_det, -s, dtype):
            hint = diagnose(log_det, [
                (s, "log_det has the wrong sign: the reverse map shrinks where forward stretches, "
                    "so its log-Jacobian is -s(y_2)."),
                (-s_wrong, "evaluate s on y_2 for the log-Jacobian too."),
            ])
            raise GradingError(f"the log_det returned by {what} is wrong (max difference "
                               f"{max_abs_diff(log_det, -s):.3g}). {hint}".rstrip())
    ok("SimpleCouplingLayer.reverse inverts forward, with the right log-Jacobian", hidden)


make_read_only(__name__)
