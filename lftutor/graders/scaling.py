r"""Graders of unit 11 (scaling to larger lattices): what that notebook's test cells call.

The exercises, each compared with a reference kept here and computed independently of the
library function that does the same job (the tests check that the two agree):

* :func:`check_kl_per_site`: :math:`\kappa = -\log(\mathrm{ESS})/(2V)`, the KL divergence per site
  that an ESS means for Gaussian log-weights (:math:`\mathrm{ESS} = e^{-2\,\mathrm{KL}}`);
* :func:`check_extrapolate_ess`: the least-squares line :math:`\mathrm{KL}(V) = \kappa V` through
  the origin, and the ESS it predicts at another volume;
* :func:`check_zero_momentum_correlator`: :math:`C(t) = \frac1T\sum_{t_0}\langle s(t_0)s(t_0+t)\rangle
  - \bar s^2` from a chain of time-slice sums ``(N, T)``;
* :func:`check_pole_mass_estimate`: the plateau of
  :math:`m(t) = \mathrm{arccosh}\frac{C(t-1)+C(t+1)}{2C(t)}` over a window, what
  :func:`lftutor.lattice.observables.pole_mass` returns as ``m_p`` (arXiv:1904.12072, sec. IV);
* :func:`check_break_even_samples`: the independent samples after which a flow's training has paid
  for itself against HMC;
* :func:`check_transfer_weights`: weights of a small lattice's flow loaded into a larger one, the
  rule of :func:`lftutor.training.transfer.load_transferred` (parameters must match, geometry
  buffers are rebuilt, a mismatch is a ``ValueError`` that names the culprit).

Built on :mod:`lftutor.graders.core` (captured functions, tripwire, tamper check, audit);
read-only once imported.
"""

from __future__ import annotations

import dataclasses
import math

import torch as _torch

import lftutor.lattice.observables as _observables
import lftutor.training.transfer as _transfer
from lftutor.graders.core import (
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
    max_abs_diff,
    number,
    ok,
    tensor_result,
)
from lftutor.training import recipes as _recipes

capture_builtins(globals())

__all__ = ["GradingError", "check_break_even_samples", "check_extrapolate_ess", "check_kl_per_site",
           "check_pole_mass_estimate", "check_transfer_weights", "check_zero_momentum_correlator"]

# captured now, like core.T: a notebook that rebinds them later changes nothing here
_inv, _cholesky, _matmul, _eye = _torch.linalg.inv, _torch.linalg.cholesky, _torch.matmul, _torch.eye
_named_parameters, _named_buffers = _torch.nn.Module.named_parameters, _torch.nn.Module.named_buffers
_state_dict, _manual_seed, _fork_rng = _torch.nn.Module.state_dict, _torch.manual_seed, _torch.random.fork_rng
_FORBID = {
    # pole_mass, effective_mass, time_slice_correlator, two_point ...
    "observables": (frozenset(), {_observables.__file__}),
    "transfer": (frozenset(), {_transfer.__file__}),
    "numbers": (frozenset(), set()),
}
_call = caller(_FORBID)


def _agree(value: float, expected: float, rtol: float = 1e-9) -> bool:
    if math.isinf(expected):
        return value == expected
    return abs(value - expected) <= rtol * abs(expected) + 1e-300


def _lesson(value: float, expected: float, variants, what: str, formula: str) -> None:
    """Raise the lesson of the first typical mistake ``value`` matches, else the formula."""
    if _agree(value, expected):
        return
    for wrong, message in variants:
        if math.isfinite(wrong) and _agree(value, wrong, 1e-6) and not _agree(wrong, expected, 1e-6):
            raise GradingError(f"{what} = {value:.6g}, expected {expected:.6g}: {message}")
    raise GradingError(f"{what} = {value:.6g}, expected {expected:.6g} = {formula}.")


# --------------------------------------------------------------------------------------------
# Exercises 1 and 2: the KL per site and the ESS at another volume
# --------------------------------------------------------------------------------------------
def _kl_site(ess: float, volume: float) -> float:
    return -math.log(ess) / (2 * volume)


def check_kl_per_site(fn, level: str = "visible") -> None:
    r"""Check ``kl_per_site(ess, volume)``: :math:`-\log(\mathrm{ESS})/(2V)` (a float).

    Visible: two points. Hidden: a small ESS at ``V = 1024``, ``ESS = 1`` (zero), odd volumes.
    """
    hidden = begin(level)
    cases = [(0.6, 256), (0.94, 64)] + ([(0.036, 1024), (1.0, 64), (0.5, 100), (0.81, 144)]
                                        if hidden else [])
    for ess, volume in cases:
        what = f"kl_per_site({ess}, {volume})"
        value = number(_call("numbers", what, fn, ess, volume), what)
        expected = _kl_site(ess, volume)
        if expected == 0.0 and abs(value) <= 1e-15:
            continue
        variants = [
            (-math.log(ess) / volume, "the factor 1/2 is missing: for Gaussian log-weights of "
                                      "variance sigma^2, ESS = exp(-sigma^2) and KL = sigma^2 / 2, so "
                                      "ESS = exp(-2 KL)."),
            (math.log(ess) / (2 * volume), "the sign is wrong: ESS <= 1, so log ESS <= 0 and the KL "
                                           "divergence (never negative) is -log(ESS) / (2V)."),
            (-math.log(ess) / (2 * math.sqrt(volume)), "divide by the number of sites V = L^2, not by L."),
            (-math.log10(ess) / (2 * volume), "use the natural logarithm (math.log), not log10."),
            (-math.log(ess) * 2 / volume, "ESS = exp(-2 KL): KL = -log(ESS) / 2, divided by V."),
        ]
        _lesson(value, expected, variants, what, "-log(ESS) / (2 V)")
    ok("kl_per_site is -log(ESS) / (2V)", hidden)


def _extrapolate(volumes, ess_values, new_volume) -> float:
    kl = [-math.log(e) / 2 for e in ess_values]
    slope = sum(v * k for v, k in zip(volumes, kl, strict=True)) / sum(v * v for v in volumes)
    return math.exp(-2 * slope * new_volume)


def check_extrapolate_ess(fn, level: str = "visible") -> None:
    r"""Check ``extrapolate_ess(volumes, ess_values, new_volume)``.

    The total KL at each volume is :math:`-\log(\mathrm{ESS}_i)/2`; the line through the origin
    :math:`\mathrm{KL} = \kappa V` fitted by least squares has
    :math:`\kappa = \sum_i V_i\mathrm{KL}_i/\sum_i V_i^2`, and the answer is
    :math:`e^{-2\kappa V_{\rm new}}`. Visible: three lattices. Hidden: one lattice, points off
    the line, a prediction at a smaller volume.
    """
    hidden = begin(level)
    cases = [([64, 144, 256], [0.94, 0.82, 0.65], 1024)]
    if hidden:
        cases += [([64], [0.9], 256), ([36, 64, 100, 144], [0.97, 0.9, 0.85, 0.7], 196),
                  ([256, 1024], [0.6, 0.05], 64), ([64, 256], [0.8, 0.8], 4096)]
    for volumes, ess_values, new_volume in cases:
        what = f"extrapolate_ess({volumes}, {ess_values}, {new_volume})"
        value = number(_call("numbers", what, fn, list(volumes), list(ess_values), new_volume), what)
        expected = _extrapolate(volumes, ess_values, new_volume)
        per_site = sum(_kl_site(e, v) for v, e in zip(volumes, ess_values, strict=True)) / len(volumes)
        variants = [
            (math.exp(-2 * per_site * new_volume),
             "you averaged the KL per site of the lattices; the exercise fits the line KL = kappa V "
             "by least squares, kappa = sum_i V_i KL_i / sum_i V_i^2 (the large lattices weigh more)."),
            (_extrapolate(volumes, ess_values, new_volume) ** 0.5,
             "the factor 2 is missing: ESS = exp(-2 KL), with KL_i = -log(ESS_i) / 2."),
            (_extrapolate(volumes, ess_values, new_volume) ** 2, "KL_i = -log(ESS_i) / 2 and the "
             "prediction is exp(-2 kappa V): you doubled one of the two factors of 2."),
            (ess_values[-1] ** (new_volume / volumes[-1]),
             "you scaled from the last lattice alone; fit all of them (kappa by least squares)."),
            (_extrapolate([math.sqrt(v) for v in volumes], ess_values, math.sqrt(new_volume)),
             "the KL grows with the number of sites V = L^2, not with L."),
        ]
        _lesson(value, expected, variants, what,
                "exp(-2 kappa V_new), kappa = sum_i V_i KL_i / sum_i V_i^2, KL_i = -log(ESS_i) / 2")
    ok("extrapolate_ess fits KL = kappa V through the origin and predicts exp(-2 kappa V)", hidden)


# --------------------------------------------------------------------------------------------
# Exercises 3 and 4: the zero-momentum correlator and the pole mass
# --------------------------------------------------------------------------------------------
def free_slice_sums(n: int, t_len: int, m2: float, *, spatial: int = 8, offset: float = 0.0,
                    seed: int = 0):
    r"""Exact time-slice sums ``(n, t_len)`` of the free field on a ``spatial x t_len`` lattice.

    At zero spatial momentum the lattice operator is the 1-D :math:`-\partial_t^2 + m^2`, so
    :math:`\mathrm{Cov}(s) = L_s\,K^{-1}` with :math:`K = (2 + m^2) - \text{shifts}` and the pole
    mass is exactly :math:`\mathrm{arccosh}(1 + m^2/2)` (``tests/test_scaling.py``). ``offset``
    shifts every sum: the connected correlator must not see it.
    """
    k = _eye(t_len, dtype=T.float64) * (2 + m2)
    for t in range(t_len):
        k[t, (t + 1) % t_len] -= 1.0
        k[t, (t - 1) % t_len] -= 1.0
    chol = _cholesky(_inv(k) * spatial)
    z = T.randn((n, t_len), generator=generator(seed), dtype=T.float64)
    return _matmul(z, chol.T) + offset


def _correlator(sums, *, connected=True, average=True, per_slice_mean=False):
    """C(t) in float64; the keyword arguments model typical mistakes."""
    s = f64(sums)
    t_len = s.shape[1]
    out = []
    for t in range(t_len):
        shifted = T.roll(s, -t, 1)
        out.append(T.item(T.tmean(s * shifted)) if average else T.item(T.tmean(s[:, 0] * shifted[:, 0])))
    if connected:
        if per_slice_mean:
            mean = T.tmean(s, 0)
            out = [c - T.item(T.tmean(mean * T.roll(mean, -t, 0))) for t, c in enumerate(out)]
        else:
            out = [c - T.item(T.tmean(s)) ** 2 for c in out]
    return T.tensor(out, dtype=T.float64)


def _correlator_cases(hidden: bool):
    yield "4000 sums of an 8x8 free field, T = 8", free_slice_sums(4000, 8, 0.5, seed=1100)
    yield ("4000 sums with a mean of 5 (a broken phase)",
           free_slice_sums(4000, 8, 0.5, offset=5.0, seed=1101))
    if hidden:
        yield "2000 sums, T = 12", free_slice_sums(2000, 12, 1.0, spatial=6, seed=1102)
        yield "float32 sums, T = 6, mean -3", T.to(free_slice_sums(3000, 6, 0.8, offset=-3.0,
                                                                    seed=1103), T.float32)
        yield "two configurations, T = 4", free_slice_sums(2, 4, 0.5, offset=1.0, seed=1104)
        yield "1 configuration, T = 10", free_slice_sums(1, 10, 0.3, offset=0.5, seed=1105)


def check_zero_momentum_correlator(fn, level: str = "visible") -> None:
    r"""Check ``zero_momentum_correlator(sums)``: ``(N, T) -> (T,)``,
    :math:`C(t) = \frac1{NT}\sum_{n,t_0}s_n(t_0)s_n(t_0+t) - \bar s^2` with periodic :math:`t` and
    :math:`\bar s` the mean of all sums. Visible: free-field sums, with and without a mean.
    Hidden: other ``T``, float32, one or two configurations.
    """
    hidden = begin(level)
    for label, sums in _correlator_cases(hidden):
        dtype, t_len = sums.dtype, sums.shape[1]
        what = f"zero_momentum_correlator(sums) for {label} ({dtype})"
        expected = T.to(_correlator(sums), dtype)
        variants = [
            (T.to(_correlator(sums, connected=False), dtype),
             "subtract the square of the mean slice sum: C(t) is the connected correlator, "
             "mean(s(t0) s(t0 + t)) - mean(s)^2 (without it a nonzero mean adds a constant and "
             "the effective mass drops to 0)."),
            (T.to(_correlator(sums, average=False), dtype),
             "average over the source time t0 too: every t0 is as good as t0 = 0 on a periodic "
             "lattice, and the average is T times more data."),
            (T.to(_correlator(sums) * t_len, dtype),
             "average over t0 (divide by T), do not sum."),
            (T.to(_correlator(sums, per_slice_mean=True), dtype),
             "subtract the square of one number, the mean of all sums (over configurations and "
             "times): the theory is translation invariant, so every slice has the same mean."),
        ]
        out = tensor_result(_call("observables", what, fn, T.clone(sums)), what, shape=(t_len,),
                            dtype=dtype, shape_hint="One value per time separation t = 0 .. T-1.",
                            expected=expected, variants=variants)
        tol = 1e-9 if dtype == T.float64 else 1e-4
        if close(out, expected, dtype, rtol=tol, atol=tol * T.item(T.amax(T.abs(expected)))):
            continue
        for wrong, message in variants:
            if close(out, wrong, dtype, rtol=1e-4, atol=1e-6):
                raise GradingError(f"{what} is wrong: {message}")
        raise GradingError(f"{what} is wrong (largest error {max_abs_diff(out, expected):.3g}): "
                           "C(t) = mean over configurations and t0 of s(t0) s(t0 + t), minus the "
                           "squared mean of all sums.")
    ok("zero_momentum_correlator averages over configurations and t0 and subtracts mean(s)^2", hidden)


def _masses(c: list[float]) -> list[float]:
    t_len = len(c)
    out = []
    for t in range(t_len):
        arg = (c[t - 1] + c[(t + 1) % t_len]) / (2 * c[t])
        out.append(math.acosh(arg) if arg >= 1 else math.nan)
    return out


def reference_pole_mass(sums, t_min: int, t_max: int) -> float:
    r"""The plateau :math:`\frac{1}{t_{\max}-t_{\min}+1}\sum_{t=t_{\min}}^{t_{\max}} m(t)`,
    computed here from :func:`_correlator` (``m_p`` of ``pole_mass(sums, window=...)``)."""
    m = _masses(T.tolist(_correlator(sums)))
    return sum(m[t_min:t_max + 1]) / (t_max - t_min + 1)


def _pole_cases(hidden: bool):
    yield "20000 free-field sums, T = 8, m^2 = 0.5", free_slice_sums(20000, 8, 0.5, seed=1200), 1, 3
    if hidden:
        yield ("20000 sums with a mean of 4, T = 10, m^2 = 0.3",
               free_slice_sums(20000, 10, 0.3, offset=4.0, seed=1201), 2, 4)
        yield "20000 sums, T = 12, window 1..1", free_slice_sums(20000, 12, 0.4, seed=1202), 1, 1
        yield ("float32 sums, T = 8, window 2..3",
               T.to(free_slice_sums(20000, 8, 0.8, offset=-2.0, seed=1203), T.float32), 2, 3)


def check_pole_mass_estimate(fn, level: str = "visible") -> None:
    r"""Check ``pole_mass_estimate(sums, t_min, t_max)``: the mean of
    :math:`m(t) = \mathrm{arccosh}\frac{C(t-1)+C(t+1)}{2C(t)}` for ``t_min <= t <= t_max``.

    The data are exact free-field sums, whose pole mass :math:`\mathrm{arccosh}(1 + m^2/2)` the
    messages quote; the answer is compared with the estimate on the same data (what
    ``lftutor.lattice.observables.pole_mass(sums, window=(t_min, t_max))["m_p"]`` returns).
    Hidden: a nonzero mean, a one-point window, float32.
    """
    hidden = begin(level)
    for label, sums, t_min, t_max in _pole_cases(hidden):
        what = f"pole_mass_estimate(sums, {t_min}, {t_max}) for {label}"
        value = number(_call("observables", what, fn, T.clone(sums), t_min, t_max), what)
        expected = reference_pole_mass(sums, t_min, t_max)
        tol = 1e-9 if sums.dtype == T.float64 else 1e-4
        if abs(value - expected) <= tol * abs(expected):
            continue
        c = T.tolist(_correlator(sums))
        m = _masses(c)
        t_len = len(c)
        log_ratio = [math.log(c[t] / c[t + 1]) if c[t] > 0 and c[t + 1] > 0 else math.nan
                     for t in range(t_len - 1)]
        variants = [
            (sum(log_ratio[t_min:t_max + 1]) / (t_max - t_min + 1),
             "log(C(t) / C(t + 1)) is the effective mass of a pure exponential; on a periodic lattice "
             "C(t) is a cosh around T/2, and arccosh((C(t-1) + C(t+1)) / (2 C(t))) is exact for it."),
            (sum(m[t_min:t_max]) / max(1, t_max - t_min) if t_max > t_min else math.nan,
             "the window is inclusive: average m(t) for t = t_min .. t_max (range(t_min, t_max + 1))."),
            (reference_pole_mass(sums + 0.0, t_min, t_max) * t_len, "return m_p in lattice units, "
             "not m_p T (the notebook multiplies by L itself)."),
            (sum(math.acosh(x) if x >= 1 else math.nan for x in
                 [(c[t - 1] + c[t + 1]) / c[t] for t in range(t_min, t_max + 1)]) / (t_max - t_min + 1),
             "the argument of arccosh is (C(t-1) + C(t+1)) / (2 C(t)): the factor 2 is missing."),
        ]
        for wrong, message in variants:
            if math.isfinite(wrong) and abs(value - wrong) <= 1e-6 * abs(wrong):
                raise GradingError(f"{what} = {value:.6g}, expected {expected:.6g}: {message}")
        raise GradingError(f"{what} = {value:.6g}, expected {expected:.6g}: the mean of "
                           "m(t) = arccosh((C(t-1) + C(t+1)) / (2 C(t))) over t = t_min .. t_max, "
                           "C from your zero_momentum_correlator (check that exercise first).")
    ok("pole_mass_estimate is the plateau of the arccosh effective mass", hidden)


# --------------------------------------------------------------------------------------------
# Exercise 5: when does the training pay off?
# --------------------------------------------------------------------------------------------
def _break_even(train, hmc_step, hmc_tau, flow_step, flow_tau) -> float:
    c_hmc, c_flow = 2 * hmc_tau * hmc_step, 2 * flow_tau * flow_step
    return train / (c_hmc - c_flow) if c_hmc > c_flow else math.inf


def check_break_even_samples(fn, level: str = "visible") -> None:
    r"""Check ``break_even_samples(train_seconds, hmc_step_seconds, hmc_tau_int, flow_step_seconds,
    flow_tau_int)``: :math:`t_{\rm train}/(2\tau_{\rm HMC}t_{\rm HMC} - 2\tau_{\rm flow}t_{\rm flow})`,
    ``math.inf`` when an independent sample of the flow's chain costs at least as much as HMC's.
    Hidden: more values, equal costs, a flow that never pays off.
    """
    hidden = begin(level)
    cases = [(120.0, 0.004, 12.0, 0.0005, 1.4), (300.0, 0.002, 3.0, 0.002, 0.8)]
    if hidden:
        cases += [(600.0, 0.01, 40.5, 0.001, 2.5), (50.0, 0.001, 1.0, 0.004, 1.0),
                  (10.0, 0.002, 2.0, 0.004, 1.0), (0.0, 0.003, 5.0, 0.001, 1.0)]
    for args in cases:
        what = f"break_even_samples{args}"
        out = _call("numbers", what, fn, *args)
        expected = _break_even(*args)
        if math.isinf(expected):
            if isinstance(out, float) and math.isinf(out) and out > 0:
                continue
            raise GradingError(f"{what} returned {out!r}: here an independent sample of the flow's "
                               "chain costs at least as much as one of HMC's, so the training never "
                               "pays off; return math.inf (a negative or zero number of samples "
                               "means nothing).")
        value = number(out, what)
        train, hmc_step, hmc_tau, flow_step, flow_tau = args
        variants = [
            (train / (hmc_tau * hmc_step - flow_tau * flow_step),
             "the factor 2 is missing: a chain of N steps holds N / (2 tau_int) independent samples, "
             "so each costs 2 tau_int times the seconds per step."),
            (train / (2 * hmc_tau * hmc_step), "the flow's chain costs time too: divide the training "
                                               "by the difference of the two costs per independent sample."),
            ((2 * hmc_tau * hmc_step - 2 * flow_tau * flow_step) / train if train else math.nan,
             "inverted: the training seconds divided by the seconds saved per independent sample."),
            (train / (hmc_step - flow_step) if hmc_step != flow_step else math.nan,
             "compare the costs per *independent* sample, 2 tau_int times the seconds per step, "
             "not the seconds per step."),
        ]
        _lesson(value, expected, variants, what,
                "train_seconds / (2 tau_HMC t_HMC - 2 tau_flow t_flow)")
    ok("break_even_samples divides the training by the saving per independent sample", hidden)


# --------------------------------------------------------------------------------------------
# Exercise 6: a small lattice's weights in a larger flow
# --------------------------------------------------------------------------------------------
def _flow(recipe, size: int, seed: int):
    """A flow of ``recipe`` for ``size x size`` whose parameters are not the initial ones."""
    with _fork_rng():
        _manual_seed(seed)
        flow = recipe.build_flow((size, size))
        with T.no_grad():
            for _, p in _named_parameters(flow):
                p.add_(T.randn(tuple(p.shape), generator=generator(seed + 7), dtype=p.dtype) * 0.05)
    return flow


def _expected_transfer(flow, weights):
    """``(copied, rebuilt)`` as sets, or the names that make it an error (``("error", names)``)."""
    params = dict(_named_parameters(flow))
    buffers = dict(_named_buffers(flow))
    bad = sorted(set(params) - set(weights)) + sorted(set(weights) - set(params) - set(buffers))
    bad += [n for n, p in params.items() if n in weights and tuple(weights[n].shape) != tuple(p.shape)]
    if bad:
        return "error", bad
    state = _state_dict(flow)
    copied = {n for n, v in weights.items() if tuple(v.shape) == tuple(state[n].shape)}
    return copied, set(weights) - copied


def _transfer_cases(hidden: bool):
    fast, tutorial = _recipes.FAST, _recipes.TUTORIAL
    yield "fast-recipe weights of an 8x8 flow into a 12x12 flow", fast, 8, 12, None
    yield ("tutorial-recipe (affine) weights into a fast-recipe flow", fast, 8, 16,
           ("recipe", tutorial))
    if hidden:
        yield "fast-recipe weights of an 8x8 flow into a 16x16 flow", fast, 8, 16, None
        yield "weights into a flow of the same size", fast, 8, 8, None
        yield "tutorial-recipe (affine) weights of 8x8 into 16x16", tutorial, 8, 16, None
        narrow = dataclasses.replace(fast, hidden_sizes=(16, 16))
        yield ("weights of hidden width 16 into a flow of width 32 (same names, other shapes)",
               fast, 8, 16, ("recipe", narrow))
        yield "weights with one parameter missing", fast, 8, 16, ("drop", "flow.layers.2.net.2.bias")
        yield "weights with an extra tensor", fast, 8, 16, ("extra", "flow.layers.9.net.0.weight")


def check_transfer_weights(fn, level: str = "visible") -> None:
    r"""Check ``transfer_weights(flow, weights) -> {"copied": [...], "rebuilt": [...]}``.

    The rule (:func:`lftutor.training.transfer.load_transferred`): every parameter of ``flow``
    must be in ``weights`` with the same shape, and ``weights`` may hold nothing that is neither a
    parameter nor a buffer of ``flow``; else raise ``ValueError`` naming one culprit, and leave
    ``flow`` unchanged. Otherwise every tensor of ``weights`` whose shape matches the flow's is
    loaded (``copied``), the others (geometry buffers of another lattice) keep the flow's own
    values (``rebuilt``). Visible: 8x8 into 12x12, and weights of another recipe. Hidden: 16x16,
    the same size, the affine recipe, other widths, a missing and an extra tensor.
    """
    hidden = begin(level)
    for k, (label, recipe, small, big, twist) in enumerate(_transfer_cases(hidden)):
        source = recipe if twist is None or twist[0] != "recipe" else twist[1]
        weights = {n: T.clone(v) for n, v in _state_dict(_flow(source, small, 1300 + k)).items()}
        if twist and twist[0] == "drop":
            del weights[twist[1]]
        if twist and twist[0] == "extra":
            weights[twist[1]] = T.zeros((3, 3), dtype=T.float32)
        flow = _flow(recipe, big, 1350 + k)
        before = {n: T.clone(v) for n, v in _state_dict(flow).items()}
        given = {n: T.clone(v) for n, v in weights.items()}
        expected = _expected_transfer(flow, weights)
        what = f"transfer_weights(flow, weights) with {label}"
        if expected[0] == "error":
            try:
                fn_out = _call("transfer", what, fn, flow, given)
            except GradingError as err:
                cause = err.__cause__
                if not isinstance(cause, ValueError):
                    raise GradingError(f"{what} should raise ValueError (the weights belong to another "
                                       f"architecture), but {err}") from None
                message = str(cause)
                if not any(name in message for name in expected[1]):
                    raise GradingError(f"{what} raised ValueError({message!r}); say which tensor does "
                                       f"not fit, e.g. {expected[1][0]!r}, so that the user can tell "
                                       "which layer differs.") from None
                changed = [n for n, v in _state_dict(flow).items() if not T.equal(v, before[n])]
                if changed:
                    raise GradingError(f"{what} raised ValueError but had already changed "
                                       f"{changed[0]!r}: check everything before loading anything, "
                                       "so that a refused transfer leaves the flow as it was.") from None
                continue
            raise GradingError(f"{what} returned {describe(fn_out)} instead of raising ValueError: "
                               f"{expected[1][0]!r} does not fit (missing, unknown, or of another "
                               "shape). Loading only what fits would give a flow that silently keeps "
                               "random values in that layer; refuse it.")
        out = _call("transfer", what, fn, flow, given)
        if not (isinstance(out, dict) and set(out) == {"copied", "rebuilt"}):
            raise GradingError(f"{what} returned {describe(out)}; return a dict with the keys "
                               "'copied' and 'rebuilt' (lists of names).")
        state = _state_dict(flow)
        params = dict(_named_parameters(flow))
        for name, value in weights.items():
            if name in params and not T.equal(state[name], value):
                raise GradingError(f"{what}: parameter {name!r} does not hold the weights' values; "
                                   "every parameter must be loaded.")
            if name not in params and name in expected[0] and not T.equal(state[name], value):
                raise GradingError(f"{what}: buffer {name!r} has the same shape in both flows but "
                                   "was not copied; load every tensor whose shape fits.")
            if name in expected[1] and not T.equal(state[name], before[name]):
                raise GradingError(f"{what}: buffer {name!r} (shape {tuple(value.shape)} in the "
                                   f"weights, {tuple(before[name].shape)} in the flow) changed; "
                                   "geometry buffers belong to the new lattice, keep the flow's own.")
        if any(not T.equal(given[n], weights[n]) for n in weights) or set(given) != set(weights):
            raise GradingError(f"{what} changed the weights it was given; build a new state dict "
                               "(flow.state_dict()) and load that.")
        copied, rebuilt = set(out["copied"]), set(out["rebuilt"])
        if copied != expected[0] or rebuilt != expected[1]:
            wrong = sorted((copied ^ expected[0]) | (rebuilt ^ expected[1]))
            raise GradingError(f"{what}: the lists 'copied' and 'rebuilt' are wrong for {wrong[0]!r} "
                               f"(and {len(wrong) - 1} more): 'copied' names the tensors taken from "
                               "the weights, 'rebuilt' those of another shape that kept the flow's "
                               "values.")
    ok("transfer_weights loads every parameter, keeps the new lattice's geometry and refuses a "
       "mismatch", hidden)


make_read_only(__name__)
