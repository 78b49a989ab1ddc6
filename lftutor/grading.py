r"""Graders of the course's exercises: what the notebooks' test cells call.

Every ``check_*`` function compares a student's answer with a reference kept inside this module,
on random inputs (several lattice sizes, float32 and float64, edge cases), and raises
:class:`GradingError` (an ``AssertionError``) whose message says in plain words what is wrong.
``level="visible"`` runs the quick checks students see; ``level="hidden"`` (the autograder's)
runs more sizes, dtypes and edge cases, and audits the notebook's executed code.

How the graders resist cheating
-------------------------------
* **No borrowing the reference.** The student's code runs under a profiler hook that records
  every Python function it enters; calling the lftutor function the exercise asks for (or any
  function of this module) is refused, whatever name it was imported under.
* **No patched comparisons.** Every torch function and builtin this module uses is captured at
  import time (the notebooks import it in a locked cell before any answer cell), so redefining
  ``torch.allclose``, ``numpy.allclose``, ``torch.testing.assert_close`` or ``torch.Tensor.__sub__``
  afterwards changes nothing here; such a redefinition is also detected and refused.
* **No fake tensors.** Answers must be plain ``torch.Tensor`` objects (a subclass could override
  ``__torch_function__``); inputs are cloned before the student sees them.
* **No rewriting the grader.** This module refuses attribute assignment; test cells import it
  afresh (``from lftutor import grading``); at the hidden level the code the kernel executed is
  audited (:func:`audit_source`) for assignments to torch, numpy, lftutor or the grader,
  ``setattr``/``__dict__`` tricks, ``exec``/``eval``, ``importlib``. In-kernel defences can in
  principle be undone by code that runs earlier in the same kernel, so the same audit also runs
  outside the kernel, in ``nbgrader autograde`` (:class:`lftutor.graders.audit.AuditCells`): a
  notebook with such code scores zero on every autograded cell.
"""

from __future__ import annotations

import builtins as _builtins_module
import math
import sys
import types

import numpy as _np
import torch as _torch
from torch import nn as _nn

import lftutor.bijections.box_muller as _cov
import lftutor.bijections.coupling as _layers
import lftutor.lattice.actions as _actions
import lftutor.lattice.priors as _priors
import lftutor.training.metrics as _metrics
from lftutor.graders.audit import audit_notebook, audit_source

# ``lftutor.training.loop`` (the attribute) is the function train(); the module is in sys.modules.
_train = sys.modules["lftutor.training.loop"]

__all__ = [
    "GradingError",
    "audit_notebook",
    "audit_source",
    "check_affine_reverse",
    "check_affine_stack",
    "check_box_muller",
    "check_box_muller_log_det",
    "check_checker_mask",
    "check_ess",
    "check_gaussian_log_prob",
    "check_log_z",
    "check_phi4_action",
    "check_reverse_kl",
    "check_simple_coupling_reverse",
    "check_slope_one_intercept",
]


class GradingError(AssertionError):
    """A check failed; the message says what is wrong and how to fix it."""


# --------------------------------------------------------------------------------------------
# Everything this module computes with, captured now: later monkeypatching cannot reach it.
# Module globals shadow the builtins, so replacing ``builtins.abs`` later changes nothing here.
# --------------------------------------------------------------------------------------------
abs = _builtins_module.abs  # noqa: A001
all = _builtins_module.all  # noqa: A001
any = _builtins_module.any  # noqa: A001
callable = _builtins_module.callable  # noqa: A001
enumerate = _builtins_module.enumerate  # noqa: A001
float = _builtins_module.float  # noqa: A001
getattr = _builtins_module.getattr  # noqa: A001
hasattr = _builtins_module.hasattr  # noqa: A001
id = _builtins_module.id  # noqa: A001
int = _builtins_module.int  # noqa: A001
isinstance = _builtins_module.isinstance  # noqa: A001
len = _builtins_module.len  # noqa: A001
list = _builtins_module.list  # noqa: A001
max = _builtins_module.max  # noqa: A001
min = _builtins_module.min  # noqa: A001
print = _builtins_module.print  # noqa: A001
range = _builtins_module.range  # noqa: A001
repr = _builtins_module.repr  # noqa: A001
set = _builtins_module.set  # noqa: A001
sorted = _builtins_module.sorted  # noqa: A001
str = _builtins_module.str  # noqa: A001
tuple = _builtins_module.tuple  # noqa: A001
type = _builtins_module.type  # noqa: A001
zip = _builtins_module.zip  # noqa: A001

_T = types.SimpleNamespace(
    Tensor=_torch.Tensor, Generator=_torch.Generator, float32=_torch.float32,
    float64=_torch.float64, no_grad=_torch.no_grad, enable_grad=_torch.enable_grad,
    as_tensor=_torch.as_tensor, tensor=_torch.tensor, zeros=_torch.zeros, ones=_torch.ones,
    randn=_torch.randn, rand=_torch.rand, arange=_torch.arange, full=_torch.full,
    sub=_torch.sub, add=_torch.add, mul=_torch.mul, div=_torch.div, neg=_torch.neg,
    abs=_torch.abs, amax=_torch.amax, exp=_torch.exp, log=_torch.log, sqrt=_torch.sqrt,
    cos=_torch.cos, sin=_torch.sin, roll=_torch.roll, stack=_torch.stack, cat=_torch.cat,
    logsumexp=_torch.logsumexp, isfinite=_torch.isfinite, where=_torch.where,
    tsum=_torch.sum, tmean=_torch.mean, tall=_torch.all, meshgrid=_torch.meshgrid, equal=_torch.equal,
    grad=_torch.autograd.grad,
    item=_torch.Tensor.item, to=_torch.Tensor.to, clone=_torch.Tensor.clone,
    detach=_torch.Tensor.detach, flatten=_torch.Tensor.flatten, dim=_torch.Tensor.dim,
    numel=_torch.Tensor.numel, unsqueeze=_torch.Tensor.unsqueeze, squeeze=_torch.Tensor.squeeze,
    reshape=_torch.Tensor.reshape, requires_grad_=_torch.Tensor.requires_grad_,
    is_floating_point=_torch.Tensor.is_floating_point, copy_=_torch.Tensor.copy_,
    getitem=_torch.Tensor.__getitem__, tolist=_torch.Tensor.tolist,
    ModuleList=_nn.ModuleList, Module=_nn.Module, Sequential=_nn.Sequential,
    Linear=_nn.Linear, ReLU=_nn.ReLU, Tanh=_nn.Tanh, ConvNd=_nn.modules.conv._ConvNd,
    parameters=_nn.Module.parameters, modules=_nn.Module.modules, module_to=_nn.Module.to,
    make_conv_net=_layers.make_conv_net,
)
_setprofile, _getprofile = sys.setprofile, sys.getprofile
_LOG_2PI = math.log(2 * math.pi)


def _tamper_watchlist() -> dict[str, object]:
    """Objects whose identity must not change while an answer is graded."""
    watched = {}
    for name in ("allclose", "isclose", "equal", "abs", "max", "amax", "sub", "roll", "exp",
                 "log", "logsumexp", "sum", "mean", "stack", "isfinite", "all", "any"):
        watched[f"torch.{name}"] = getattr(_torch, name)
    watched["torch.testing.assert_close"] = _torch.testing.assert_close
    for name in ("__sub__", "__rsub__", "__eq__", "__abs__", "abs", "max", "item", "sum", "mean",
                 "allclose", "isclose", "equal", "all", "any", "tolist"):
        watched[f"torch.Tensor.{name}"] = getattr(_torch.Tensor, name)
    watched["torch.nn.Module.__call__"] = _nn.Module.__call__
    for cls in (_nn.Conv1d, _nn.Conv2d, _nn.Conv3d, _nn.Linear, _nn.Sequential, _nn.Tanh,
                _nn.ReLU, _nn.LeakyReLU):
        watched[f"torch.nn.{cls.__name__}.forward"] = cls.forward
    for name in ("allclose", "isclose", "array_equal"):
        watched[f"numpy.{name}"] = getattr(_np, name)
    watched["numpy.testing.assert_allclose"] = _np.testing.assert_allclose
    for name in ("abs", "max", "min", "sum", "isinstance", "float", "len", "getattr", "print"):
        watched[f"builtins.{name}"] = getattr(_builtins_module, name)
    return watched


_WATCHED = _tamper_watchlist()


def _resolve(dotted: str):
    root, *rest = dotted.split(".")
    obj = {"torch": _torch, "numpy": _np, "builtins": _builtins_module}[root]
    for part in rest:
        obj = getattr(obj, part, None)
    return obj


def _check_not_tampered() -> None:
    changed = [name for name, obj in _WATCHED.items() if _resolve(name) is not obj]
    if changed:
        raise GradingError(
            f"this notebook replaced {', '.join(changed)}. The graders compare with their own copies "
            "of these functions, so a replacement cannot change a result, and answers are not graded "
            "while torch, numpy or builtins are patched. Remove that code, restart the kernel and "
            "run all cells.")


# --------------------------------------------------------------------------------------------
# Running the student's code: refuse calls into the reference.
# --------------------------------------------------------------------------------------------
_GRADING_FILE = __file__


class _Tripwire:
    """Profiler hook: records entries into forbidden code objects (or forbidden files)."""

    def __init__(self, codes, files):
        self.codes, self.files, self.hits = codes, files, []

    def __call__(self, frame, event, arg):
        if event == "call":
            code = frame.f_code
            if code in self.codes or code.co_filename in self.files:
                self.hits.append(f"{code.co_qualname} ({code.co_filename.rsplit('/', 1)[-1]})")


def _codes(*functions) -> frozenset:
    return frozenset(f.__code__ for f in functions)


def _file_codes(module) -> frozenset:
    """Code objects of every function and method defined in ``module`` (nested ones excepted)."""
    found = set()
    for obj in vars(module).values():
        if isinstance(obj, types.FunctionType) and obj.__module__ == module.__name__:
            found.add(obj.__code__)
        elif isinstance(obj, type) and obj.__module__ == module.__name__:
            for attr in vars(obj).values():
                func = getattr(attr, "__func__", attr)
                if isinstance(func, types.FunctionType):
                    found.add(func.__code__)
                elif isinstance(attr, property) and attr.fget is not None:
                    found.add(attr.fget.__code__)
    return frozenset(found)


# What each exercise may not call (captured now, so re-binding the names later does not help).
_FORBID = {
    "box_muller": (_file_codes(_cov), {_cov.__file__}),
    "phi4_action": (_file_codes(_actions), {_actions.__file__}),
    "gaussian_log_prob": (_file_codes(_priors), set()),
    "simple_coupling": (_codes(_layers.SimpleCouplingLayer.forward,
                               _layers.SimpleCouplingLayer.reverse,
                               _layers.SimpleCouplingLayer.scale), set()),
    "checker_mask": (_codes(_layers.make_checker_mask), set()),
    "affine_reverse": (_codes(_layers.AffineCoupling.reverse, _layers.AffineCoupling.forward,
                              _layers.AffineCoupling._s_t), set()),
    "affine_stack": (_codes(_layers.make_phi4_affine_layers), set()),
    "reverse_kl": (_codes(_metrics.reverse_kl, _train.train), set()),
    "ess": (_codes(_metrics.ess, _train.evaluate), set()),
    "log_z": (frozenset(), set()),
    "slope_one": (frozenset(), set()),
}


def _call(exercise: str, what: str, fn, *args, **kwargs):
    """Call the student's ``fn`` with the tripwire armed; translate failures into lessons."""
    codes, files = _FORBID[exercise]
    return guarded_call(what, fn, args, kwargs, codes=codes, files=files,
                        forbidden="the reference implementation of this very exercise")


def guarded_call(what: str, fn, args=(), kwargs=None, *, codes=frozenset(), files=(),
                 forbidden: str = "lftutor's own implementation of what this exercise asks for",
                 grader_files=()):
    """Call ``fn(*args, **kwargs)`` with a profiler tripwire on ``codes`` and ``files``.

    The grader modules (this file and ``grader_files``) are always forbidden too. Failures turn
    into :class:`GradingError` with a lesson: a ``NotImplementedError`` left in place, another
    exception, switching off the tracing, returning a ``torch.Tensor`` subclass (which could
    override comparisons), or calling into ``forbidden`` (named in the message).

    Every unit's grader (``grading``, ``grading_gff``, ``grading_mcmc``) runs answers through
    this one function, so the rules are the same everywhere.
    """
    hook = _Tripwire(codes, set(files) | {_GRADING_FILE, *grader_files})
    previous = _getprofile()
    _setprofile(hook)
    try:
        out = fn(*args, **(kwargs or {}))
    except GradingError:
        raise
    except NotImplementedError as err:
        raise GradingError(f"{what} still raises NotImplementedError: replace the line "
                           "`raise NotImplementedError()` with your code.") from err
    except Exception as err:
        raise GradingError(f"{what} raised {type(err).__name__}: {err}") from err
    finally:
        current = _getprofile()
        _setprofile(previous)
    if current is not hook:
        raise GradingError(f"{what} switched off the grader's call tracing (sys.setprofile); "
                           "answers must not touch the interpreter's hooks.")
    for item in (out, *(out if isinstance(out, (tuple, list)) else ())):
        if isinstance(item, _T.Tensor) and type(item) is not _T.Tensor \
                and type(item) is not _nn.Parameter:
            raise GradingError(f"{what} returned an object of type {type(item).__name__}, a subclass "
                               "of torch.Tensor; return plain torch.Tensor objects.")
    if hook.hits:
        raise GradingError(
            f"{what} calls {hook.hits[0]}, {forbidden} (or a grader function). The point is to "
            "write it yourself from the formula: torch and numpy operations are fine, lftutor's "
            "answer is not.")
    return out


# --------------------------------------------------------------------------------------------
# Comparing results with captured primitives only.
# --------------------------------------------------------------------------------------------
def _f64(x):
    return _T.to(_T.detach(x), _T.float64)


def _max_abs_diff(a, b) -> float:
    if _T.numel(a) == 0:
        return 0.0
    return _T.item(_T.amax(_T.abs(_T.sub(_f64(a), _f64(b)))))


def _max_abs(a) -> float:
    return _T.item(_T.amax(_T.abs(_f64(a)))) if _T.numel(a) else 0.0


def _all_finite(a) -> bool:
    return bool(_T.item(_T.tall(_T.isfinite(_f64(a)))))


def _tolerances(dtype, rtol=None, atol=None):
    if dtype == _T.float64:
        return rtol or 1e-9, atol or 1e-9
    return rtol or 2e-4, atol or 2e-4


def _close(a, b, dtype, *, rtol=None, atol=None) -> bool:
    """``max|a-b| <= atol + rtol * max|b|`` in float64; tensors must already share a shape."""
    if tuple(a.shape) != tuple(b.shape) or not _all_finite(a):
        return False
    rtol, atol = _tolerances(dtype, rtol, atol)
    return _max_abs_diff(a, b) <= atol + rtol * _max_abs(b)


def _describe(x) -> str:
    if isinstance(x, _T.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    if isinstance(x, _np.ndarray):
        return f"a NumPy array of shape {x.shape}"
    if isinstance(x, tuple):
        return f"a tuple of {len(x)} items"
    return f"a {type(x).__name__}"


def _tensor_result(out, what: str, *, shape, dtype, shape_hint: str = "", scalar_ok=False):
    """Check that ``out`` is a plain tensor of the expected shape, dtype and finite values."""
    if scalar_ok and isinstance(out, (float, int)) and not isinstance(out, bool):
        out = _T.tensor(float(out), dtype=_T.float64)
        dtype = _T.float64
    if isinstance(out, _np.ndarray):
        raise GradingError(f"{what} returned a NumPy array; return a torch.Tensor (no .numpy() or "
                           "grab() inside: the result must stay in torch, e.g. to be differentiated).")
    if isinstance(out, tuple) and len(out) and isinstance(out[0], _T.Tensor):
        raise GradingError(f"{what} returned {_describe(out)}; it should return a single tensor of "
                           f"shape {shape}.")
    if not isinstance(out, _T.Tensor):
        raise GradingError(f"{what} returned {_describe(out)}; expected a torch.Tensor of shape "
                           f"{shape}.")
    if type(out) is not _T.Tensor and not isinstance(out, _nn.Parameter):
        raise GradingError(f"{what} returned an object of type {type(out).__name__}, a subclass of "
                           "torch.Tensor; return a plain torch.Tensor.")
    if tuple(out.shape) != tuple(shape):
        raise GradingError(f"{what} returned a tensor of shape {tuple(out.shape)}, expected "
                           f"{tuple(shape)}. {shape_hint}".rstrip())
    if not _T.is_floating_point(out):
        raise GradingError(f"{what} returned integers ({out.dtype}); expected floating values.")
    if not scalar_ok and out.dtype != dtype:
        raise GradingError(f"{what} returned {out.dtype} for a {dtype} input; keep the input's dtype "
                           "(build new tensors with torch.zeros_like / x.new_... rather than a fixed "
                           "dtype).")
    if not _all_finite(out):
        raise GradingError(f"{what} returned NaN or infinite values for finite inputs.")
    return out


def _generator(seed: int):
    return _T.Generator().manual_seed(seed)


def _randn(shape, dtype, gen):
    return _T.randn(tuple(shape), generator=gen, dtype=dtype)


def _begin(level: str) -> bool:
    if level not in ("visible", "hidden"):
        raise ValueError(f"expected level 'visible' or 'hidden', got {level!r}")
    _check_not_tampered()
    if level == "hidden":
        _audit_kernel_history()
    return level == "hidden"


def _ok(message: str) -> None:
    print(f"\u2713 {message}")


# ============================================================================================
# Unit 1: change of variables
# ============================================================================================
def _ref_box_muller(u, *, angle=2 * math.pi):
    radius = _T.sqrt(-2 * _T.log(u[:, 0]))
    phase = angle * u[:, 1]
    return _T.stack((radius * _T.cos(phase), radius * _T.sin(phase)), dim=-1)


def _uniform_points(n, dtype, gen, *, extreme=False):
    u = _T.rand((n, 2), generator=gen, dtype=_T.float64) * 0.98 + 0.01
    if extreme:
        u = _T.cat((u, _T.tensor([[1e-12, 0.25], [1 - 1e-6, 0.75], [0.5, 1e-9], [0.3, 1 - 1e-9]],
                                 dtype=_T.float64)))
    return _T.to(u, dtype)


def check_box_muller(box_muller, level: str = "visible") -> None:
    """Check ``box_muller(u)``: ``(batch, 2)`` uniform points to standard normal points."""
    hidden = _begin(level)
    cases = [(256, _T.float32, False)]
    if hidden:
        cases += [(1, _T.float64, False), (100, _T.float64, True), (7, _T.float32, True)]
    for seed, (n, dtype, extreme) in enumerate(cases):
        u = _uniform_points(n, dtype, _generator(10 + seed), extreme=extreme)
        expected = _ref_box_muller(_T.to(u, _T.float64))
        u_in = _T.clone(u)
        out = _call("box_muller", "box_muller(u)", box_muller, u_in)
        what = f"box_muller(u) for u of shape {tuple(u.shape)} ({dtype})"
        out = _tensor_result(out, what, shape=(u.shape[0], 2), dtype=dtype,
                             shape_hint="Stack z_1 and z_2 as the two columns: torch.stack((z1, z2), "
                                        "dim=-1).")
        if not _T.equal(u_in, u):
            raise GradingError("box_muller(u) changed its input u in place; compute new tensors.")
        if _close(out, expected, dtype, rtol=1e-5 if dtype == _T.float32 else None):
            continue
        u64 = _T.to(u, _T.float64)
        if _close(out, _ref_box_muller(u64, angle=math.pi), _T.float64, rtol=1e-4, atol=1e-4):
            raise GradingError("box_muller uses the angle pi*u_2: then z_2 >= 0 and only half the "
                               "plane is covered. The standard map uses the full turn 2*pi*u_2.")
        swapped = _ref_box_muller(u64)[:, [1, 0]]
        if _close(out, swapped, _T.float64, rtol=1e-4, atol=1e-4):
            raise GradingError("box_muller has cos and sin swapped: z_1 uses cos(2 pi u_2), "
                               "z_2 uses sin(2 pi u_2).")
        radius_ok = _close(out[:, 0] ** 2 + out[:, 1] ** 2, -2 * _T.log(u64[:, 0]), _T.float64,
                           rtol=1e-4, atol=1e-4)
        if not radius_ok:
            raise GradingError("the radius of box_muller(u) is wrong: z_1^2 + z_2^2 should be "
                               "-2 ln(u_1) (natural log, the square root of -2 ln u_1 as radius).")
        raise GradingError(f"{what} has the right radius but the wrong angle: the angle is "
                           f"2*pi*u_2 (max difference {_max_abs_diff(out, expected):.3g}).")
    _ok("box_muller matches the reference" + (" (hidden checks)" if hidden else ""))


def _autograd_log_det(u):
    """``log|det dz/du|`` of the Box-Muller map per point, from autograd (float64)."""
    with _T.enable_grad():
        u = _T.requires_grad_(_T.clone(_T.to(_T.detach(u), _T.float64)))
        z = _ref_box_muller(u)
        row0 = _T.grad(_T.tsum(z[:, 0]), u, retain_graph=True)[0]
        row1 = _T.grad(_T.tsum(z[:, 1]), u)[0]
    det = row0[:, 0] * row1[:, 1] - row0[:, 1] * row1[:, 0]
    return _T.detach(_T.log(_T.abs(det)))


def check_box_muller_log_det(log_det_fn, level: str = "visible") -> None:
    """Check ``box_muller_log_det(u) -> log|det dz/du|`` against the autograd Jacobian."""
    hidden = _begin(level)
    cases = [(128, _T.float32, False)]
    if hidden:
        cases += [(1, _T.float64, False), (50, _T.float64, True), (9, _T.float32, True)]
    for seed, (n, dtype, extreme) in enumerate(cases):
        u = _uniform_points(n, dtype, _generator(20 + seed), extreme=extreme)
        expected = _autograd_log_det(u)
        n = u.shape[0]
        out = _call("box_muller", "box_muller_log_det(u)", log_det_fn, _T.clone(u))
        what = f"box_muller_log_det(u) for u of shape {tuple(u.shape)} ({dtype})"
        if isinstance(out, _T.Tensor) and tuple(out.shape) == (n, 2, 2):
            raise GradingError(f"{what} returned the 2x2 Jacobian matrices; return log|det J|, one "
                               "number per point (e.g. via the formula you derived).")
        out = _tensor_result(out, what, shape=(n,), dtype=dtype,
                             shape_hint="One value per point: log|det J| has shape (batch,).")
        if _close(out, expected, dtype, rtol=1e-5 if dtype == _T.float32 else None):
            continue
        hint = _diagnose(out, expected, [
            (_T.exp(expected), "you returned |det J| itself; the exercise asks for its logarithm."),
            (-expected, "the sign is flipped: that is log|det du/dz| of the inverse map. The map "
                        "u -> z stretches the plane near u_1 = 0, where log|det| must be large."),
            (expected - math.log(2), "you are missing a factor 2 inside the log: with the angle "
                                     "2*pi*u_2 the determinant is 2*pi/u_1."),
            (expected + 2 * _T.log(_T.to(u[:, 0], _T.float64)),
             "the u_1 dependence is inverted: |det J| = 2 pi / u_1, not 2 pi u_1."),
        ])
        raise GradingError(f"{what} disagrees with the autograd Jacobian (max difference "
                           f"{_max_abs_diff(out, expected):.3g}). {hint}".rstrip())
    _ok("box_muller_log_det matches log|det| of the autograd Jacobian"
        + (" (hidden checks)" if hidden else ""))


def _diagnose(out, expected, variants) -> str:
    """The message of the first wrong variant that ``out`` matches, else ``""``."""
    for value, message in variants:
        if tuple(value.shape) == tuple(out.shape) and _close(out, value, _T.float32, rtol=1e-4,
                                                               atol=1e-4):
            return message
    return ""


def _simple_s_net(gen, dtype):
    net = _T.Sequential(_T.Linear(1, 8), _T.ReLU(), _T.Linear(8, 8), _T.ReLU(), _T.Linear(8, 1),
                        _T.Tanh())
    with _T.no_grad():
        for p in _T.parameters(net):
            _T.copy_(p, 1.5 * _T.randn(tuple(p.shape), generator=gen))
    return _T.module_to(net, dtype)


def check_simple_coupling_reverse(layer_cls, level: str = "visible") -> None:
    """Check ``SimpleCouplingLayer.reverse``: inverse of ``(x1, x2) -> (e^{s(x2)} x1, x2)``."""
    hidden = _begin(level)
    if not isinstance(layer_cls, type):
        raise GradingError("pass the class SimpleCouplingLayer itself (not an instance or a function).")
    cases = [(200, _T.float32)]
    if hidden:
        cases += [(1, _T.float64), (64, _T.float64), (33, _T.float32)]
    for seed, (n, dtype) in enumerate(cases):
        gen = _generator(30 + seed)
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
        y = _randn((n, 2), dtype, gen) * 1.5
        with _T.no_grad():
            s = _T.squeeze(net(_T.unsqueeze(y[:, 1], -1)), -1)
            s_wrong = _T.squeeze(net(_T.unsqueeze(y[:, 0], -1)), -1)
        x_expected = _T.stack((_T.exp(-s) * y[:, 0], y[:, 1]), dim=-1)
        what = f"reverse(y) for y of shape {tuple(y.shape)} ({dtype})"
        with _T.no_grad():
            out = _call("simple_coupling", "SimpleCouplingLayer.reverse", layer.reverse, _T.clone(y))
        if not (isinstance(out, tuple) and len(out) == 2):
            raise GradingError(f"{what} returned {_describe(out)}; like forward, reverse must return "
                               "a pair (x, log_det).")
        x, log_det = out
        x = _tensor_result(x, f"the x returned by {what}", shape=(n, 2), dtype=dtype)
        if isinstance(log_det, _T.Tensor) and tuple(log_det.shape) == (n, 1):
            raise GradingError(f"the log_det returned by {what} has shape (batch, 1); squeeze the "
                               "last dimension so it has shape (batch,), like forward's.")
        log_det = _tensor_result(log_det, f"the log_det returned by {what}", shape=(n,), dtype=dtype,
                                 shape_hint="One log-Jacobian per point, shape (batch,).")
        if not _close(x[:, 1], y[:, 1], dtype):
            raise GradingError("reverse changed the second coordinate; the coupling layer leaves "
                               "x_2 unchanged, so x_2 = y_2.")
        if not _close(x, x_expected, dtype):
            hint = _diagnose(x, x_expected, [
                (_T.stack((_T.exp(s) * y[:, 0], y[:, 1]), -1),
                 "you multiplied by e^{s}; the inverse undoes the scaling, x_1 = e^{-s(y_2)} y_1."),
                (_T.stack((_T.exp(-s_wrong) * y[:, 0], y[:, 1]), -1),
                 "s must be evaluated on the frozen coordinate y_2 (= x_2), not on y_1."),
                (_T.stack((y[:, 0] - s, y[:, 1]), -1),
                 "the layer scales x_1 by e^{s}; undo it by multiplying with e^{-s}, not by "
                 "subtracting s."),
            ])
            raise GradingError(f"the x returned by {what} is not the inverse of forward (max "
                               f"difference {_max_abs_diff(x, x_expected):.3g}). {hint}".rstrip())
        if not _close(log_det, -s, dtype):
            hint = _diagnose(log_det, -s, [
                (s, "log_det has the wrong sign: the reverse map shrinks where forward stretches, "
                    "so its log-Jacobian is -s(y_2)."),
                (-s_wrong, "evaluate s on y_2 for the log-Jacobian too."),
            ])
            raise GradingError(f"the log_det returned by {what} is wrong (max difference "
                               f"{_max_abs_diff(log_det, -s):.3g}). {hint}".rstrip())
    _ok("SimpleCouplingLayer.reverse inverts forward, with the right log-Jacobian"
        + (" (hidden checks)" if hidden else ""))


# ============================================================================================
# Unit 2: the phi^4 action and the Gaussian prior
# ============================================================================================
def _ref_phi4(phi, m2, lam):
    phi = _f64(phi)
    neighbours = _T.zeros(tuple(phi.shape), dtype=_T.float64)
    for mu in range(1, phi.dim()):
        neighbours = neighbours + _T.roll(phi, 1, mu) + _T.roll(phi, -1, mu)
    d = phi.dim() - 1
    density = phi * (2 * d * phi - neighbours) + m2 * phi**2 + lam * phi**4
    return _T.tsum(_T.flatten(density, 1), 1)


def _phi4_probe(action_fn, phi, m2, lam):
    out = _call("phi4_action", "phi4_action(phi, m2, lam)", action_fn, _T.clone(phi), m2, lam)
    if not isinstance(out, _T.Tensor) or tuple(out.shape) != (phi.shape[0],):
        return None
    return _f64(out)


def _phi4_diagnosis(action_fn, L1, L2) -> str:
    """Probe the student's action with simple fields to name the likely mistake."""
    dtype = _T.float64

    def field(*sites, value=1.0):
        phi = _T.zeros((1, L1, L2), dtype=dtype)
        for i, j in sites:
            phi[0, i, j] = value
        return phi

    const = _T.full((1, L1, L2), 0.7, dtype=dtype)
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
    hidden = _begin(level)
    cases = [((5, 8, 8), _T.float32, -4.0, 8.0)]
    if hidden:
        cases += [((3, 4, 4), _T.float64, -4.0, 8.0), ((1, 6, 6), _T.float64, 1.5, 0.0),
                  ((4, 4, 6), _T.float64, -1.0, 0.5), ((2, 3, 5), _T.float64, 0.3, 1.2),
                  ((2, 2, 2), _T.float64, -2.0, 3.0), ((6, 8, 8), _T.float32, -4.0, 8.0)]
    for seed, (shape, dtype, m2, lam) in enumerate(cases):
        gen = _generator(40 + seed)
        phi = _randn(shape, dtype, gen)
        if seed == len(cases) - 1 and hidden:
            phi[0] = 0.0  # an all-zero field in the batch: action exactly 0
        expected = _ref_phi4(phi, m2, lam)
        phi_in = _T.clone(phi)
        out = _call("phi4_action", "phi4_action(phi, m2, lam)", action_fn, phi_in, m2, lam)
        what = f"phi4_action for phi of shape {shape} ({dtype}), m2={m2}, lam={lam}"
        hint = ""
        if isinstance(out, _T.Tensor):
            if tuple(out.shape) == shape:
                hint = ("You returned the action density, one value per site; sum it over the lattice "
                        "(dims 1 and 2) to get one number per configuration.")
            elif out.dim() == 0:
                hint = "You summed over the batch too: return one action per configuration."
        out = _tensor_result(out, what, shape=(shape[0],), dtype=dtype, shape_hint=hint)
        if not _T.equal(phi_in, phi):
            raise GradingError("phi4_action changed its input phi in place; compute new tensors.")
        if _close(out, expected, dtype):
            continue
        diagnosis = _phi4_diagnosis(action_fn, shape[1], shape[2])
        raise GradingError(f"{what} differs from the reference (max difference "
                           f"{_max_abs_diff(out, expected):.3g}, relative to max |S| = "
                           f"{_max_abs(expected):.3g}). {diagnosis}".rstrip())
    _ok("phi4_action matches the reference action" + (" (hidden checks)" if hidden else ""))


def check_gaussian_log_prob(log_prob_fn, level: str = "visible") -> None:
    r"""Check ``gaussian_log_prob(z)``: :math:`\sum_x [-z_x^2/2 - \tfrac12\log 2\pi]`, ``(batch,)``."""
    hidden = _begin(level)
    cases = [((6, 8, 8), _T.float32)]
    if hidden:
        cases += [((1, 4, 4), _T.float64), ((3, 2, 6), _T.float64), ((2, 5, 3), _T.float32)]
    for seed, (shape, dtype) in enumerate(cases):
        z = _randn(shape, dtype, _generator(50 + seed)) * 1.3
        z64 = _f64(z)
        sq = _T.tsum(_T.flatten(z64**2, 1), 1)
        volume = shape[1] * shape[2]
        expected = -0.5 * sq - 0.5 * volume * _LOG_2PI
        out = _call("gaussian_log_prob", "gaussian_log_prob(z)", log_prob_fn, _T.clone(z))
        what = f"gaussian_log_prob for z of shape {shape} ({dtype})"
        hint = ("You returned one value per site; sum over the lattice sites." if
                isinstance(out, _T.Tensor) and tuple(out.shape) == shape else "")
        out = _tensor_result(out, what, shape=(shape[0],), dtype=dtype, shape_hint=hint)
        if _close(out, expected, dtype):
            continue
        msg = _diagnose(out, expected, [
            (-0.5 * sq, "the normalisation is missing: each site contributes -log(2 pi)/2 as well."),
            (-sq - 0.5 * volume * _LOG_2PI, "the exponent of a unit Gaussian is -z^2/2, not -z^2."),
            (0.5 * sq + 0.5 * volume * _LOG_2PI, "that is -log r(z); return log r(z) (negative)."),
            (-0.5 * sq - volume * _LOG_2PI, "the normalisation per site is -log(2 pi)/2, not "
                                           "-log(2 pi)."),
            (-0.5 * sq - 0.5 * _LOG_2PI, "the -log(2 pi)/2 appears once per site: multiply it by "
                                         "the number of sites."),
        ])
        raise GradingError(f"{what} differs from the reference (max difference "
                           f"{_max_abs_diff(out, expected):.3g}). {msg}".rstrip())
    _ok("gaussian_log_prob matches the unit Gaussian" + (" (hidden checks)" if hidden else ""))


def check_slope_one_intercept(fit_fn, level: str = "visible") -> None:
    """Check ``slope_one_intercept(x, y)``: least-squares ``b`` of ``y = x + b`` (a float)."""
    hidden = _begin(level)
    cases = [(1000, _T.float64)]
    if hidden:
        cases += [(1, _T.float64), (257, _T.float32)]
    for seed, (n, dtype) in enumerate(cases):
        gen = _generator(60 + seed)
        x = _randn((n,), dtype, gen) * 50
        y = 2 * x + 300 + _randn((n,), dtype, gen) * 10
        expected = _T.item(_T.tmean(_f64(y)) - _T.tmean(_f64(x)))
        out = _call("slope_one", "slope_one_intercept(x, y)", fit_fn, _T.clone(x), _T.clone(y))
        if isinstance(out, _T.Tensor) and _T.numel(out) == 1:
            out = _T.item(_f64(out))
        if not isinstance(out, (float, int)) or isinstance(out, bool):
            raise GradingError(f"slope_one_intercept returned {_describe(out)}; return one number "
                               "(a float or a one-element tensor).")
        if abs(out - expected) <= 1e-4 * max(1.0, abs(expected)):
            continue
        if abs(out + expected) <= 1e-4 * max(1.0, abs(expected)):
            raise GradingError("the intercept has the wrong sign: for y = x + b, b = mean(y) - "
                               "mean(x).")
        raise GradingError(f"slope_one_intercept gives {out:.5g}, expected {expected:.5g}. With the "
                           "slope fixed to 1, least squares gives b = mean(y - x).")
    _ok("slope_one_intercept is the least-squares intercept" + (" (hidden checks)" if hidden else ""))


# ============================================================================================
# Unit 3: checkerboards and affine couplings
# ============================================================================================
def _ref_mask(shape, parity):
    coords = _T.meshgrid(*[_T.arange(n) for n in shape], indexing="ij")
    total = parity
    for c in coords:
        total = total + c
    return _T.to(total % 2 == 0, _T.float64)


def check_checker_mask(mask_fn, level: str = "visible") -> None:
    """Check ``checker_mask(shape, parity)``: 1 where ``(i + j + parity)`` is even."""
    hidden = _begin(level)
    cases = [((8, 8), 0), ((8, 8), 1)]
    if hidden:
        cases += [((2, 2), 0), ((4, 6), 1), ((6, 4), 0), ((2, 8), 1)]
    for shape, parity in cases:
        expected = _ref_mask(shape, parity)
        out = _call("checker_mask", "checker_mask(shape, parity)", mask_fn, tuple(shape), parity)
        what = f"checker_mask({shape}, {parity})"
        if not isinstance(out, _T.Tensor) or type(out) is not _T.Tensor:
            raise GradingError(f"{what} returned {_describe(out)}; expected a torch.Tensor of shape "
                               f"{shape}.")
        if tuple(out.shape) != tuple(shape):
            raise GradingError(f"{what} has shape {tuple(out.shape)}, expected {shape}.")
        values = _f64(out)
        if not bool(_T.item(((values == 0) | (values == 1)).all())):
            raise GradingError(f"{what} must contain only 0s and 1s.")
        if _T.equal(values, expected):
            continue
        if _T.equal(values, 1 - expected):
            raise GradingError(f"{what} is the complement of the expected mask: with parity 0 the "
                               "site (0, 0) is 1, with parity 1 it is 0.")
        if not bool(_T.item((values[1:, :] != values[:-1, :]).all())) or \
                not bool(_T.item((values[:, 1:] != values[:, :-1]).all())):
            raise GradingError(f"{what} is not a checkerboard: neighbouring sites, along rows and "
                               "along columns, must always differ.")
        raise GradingError(f"{what} differs from the expected checkerboard.")
    _ok("checker_mask gives the right checkerboards" + (" (hidden checks)" if hidden else ""))


def _conv_net(gen, dtype, *, hidden=(4,), kernel=3):
    net = _T.make_conv_net(hidden_sizes=list(hidden), kernel_size=kernel)
    with _T.no_grad():
        for p in _T.parameters(net):
            _T.copy_(p, p + 0.4 * _T.randn(tuple(p.shape), generator=gen))
    return _T.module_to(net, dtype)


def _ref_affine(net, mask, x, *, direction, net_input=None):
    """Reference forward/reverse of an affine coupling, plus two wrong variants for diagnosis."""
    m = _T.to(mask, x.dtype)
    with _T.no_grad():
        out = net(_T.unsqueeze(m * x if net_input is None else net_input, 1))
    s, t = out[:, 0], out[:, 1]
    if direction == "forward":
        y = m * x + (1 - m) * (x * _T.exp(s) + t)
        ld = _T.tsum(_T.flatten((1 - m) * s, 1), 1)
    else:
        y = m * x + (1 - m) * (x - t) * _T.exp(-s)
        ld = -_T.tsum(_T.flatten((1 - m) * s, 1), 1)
    return y, ld, s, t


def check_affine_reverse(coupling_cls, level: str = "visible") -> None:
    """Check ``AffineCoupling.reverse``: ``phi -> (z, log|det dz/dphi|)``, the inverse of forward."""
    hidden = _begin(level)
    if not isinstance(coupling_cls, type):
        raise GradingError("pass the class AffineCoupling itself (not an instance).")
    cases = [((16, 4, 4), _T.float32, 0), ((16, 4, 4), _T.float32, 1)]
    if hidden:
        cases += [((1, 6, 6), _T.float64, 1), ((5, 4, 8), _T.float64, 0), ((3, 8, 8), _T.float32, 1),
                  ((2, 2, 2), _T.float64, 0)]
    for seed, (shape, dtype, parity) in enumerate(cases):
        gen = _generator(70 + seed)
        net = _conv_net(gen, dtype)
        mask = _T.to(_ref_mask(shape[1:], parity), dtype)
        layer = _call("affine_reverse", "AffineCoupling(net, mask)", coupling_cls, net, _T.clone(mask))
        if not callable(getattr(layer, "reverse", None)):
            raise GradingError("AffineCoupling has no method reverse(self, phi); define it inside the "
                               "class, indented like forward.")
        phi = _randn(shape, dtype, gen) * 1.2
        z_exp, ld_exp, s, t = _ref_affine(net, mask, phi, direction="reverse")
        what = f"reverse(phi) for phi of shape {shape} ({dtype}, parity {parity})"
        with _T.no_grad():
            out = _call("affine_reverse", "AffineCoupling.reverse", layer.reverse, _T.clone(phi))
        if not (isinstance(out, tuple) and len(out) == 2):
            raise GradingError(f"{what} returned {_describe(out)}; like forward it must return a pair "
                               "(z, log_det).")
        z, ld = out
        z = _tensor_result(z, f"the z returned by {what}", shape=shape, dtype=dtype)
        hint = ""
        if isinstance(ld, _T.Tensor) and tuple(ld.shape) == shape:
            hint = "You returned a log-Jacobian per site; sum it over the lattice (not the batch)."
        elif isinstance(ld, _T.Tensor) and ld.dim() == 0:
            hint = "You summed over the batch too; one log-Jacobian per configuration."
        ld = _tensor_result(ld, f"the log_det returned by {what}", shape=(shape[0],), dtype=dtype,
                            shape_hint=hint)
        m = _T.to(mask, _T.float64)
        if not _close(_f64(z) * m, _f64(phi) * m, dtype):
            raise GradingError(f"{what} changed frozen sites (mask = 1); they must be copied "
                               "unchanged: z = m*phi + (1-m)*(...).")
        if not _close(z, z_exp, dtype):
            m_ = _T.to(mask, dtype)
            with _T.no_grad():
                unmasked = net(_T.unsqueeze(phi, 1))
            variants = [
                (m_ * phi + (1 - m_) * (phi * _T.exp(-s) - t),
                 "undo the shift before the scaling: forward did z*e^s + t, so z = (phi - t)*e^{-s}."),
                (m_ * phi + (1 - m_) * (phi - t) * _T.exp(s),
                 "the scaling has the wrong sign: divide by e^{s}, i.e. multiply by e^{-s}."),
                (m_ * phi + (1 - m_) * (phi + t) * _T.exp(-s),
                 "the shift has the wrong sign: subtract t."),
                (m_ * phi + (1 - m_) * (phi - unmasked[:, 1]) * _T.exp(-unmasked[:, 0]),
                 "the network must see only the frozen sites, net(m*phi): in forward it saw m*z, "
                 "and since frozen sites are unchanged the same s and t come back."),
            ]
            raise GradingError(f"the z returned by {what} is not the inverse of forward (max difference "
                               f"{_max_abs_diff(z, z_exp):.3g}). {_diagnose(z, z_exp, variants)}".rstrip())
        if not _close(ld, ld_exp, dtype):
            variants = [
                (-ld_exp, "the log-Jacobian has the wrong sign: reverse undoes forward, so its "
                          "log-det is -sum over updated sites of s."),
                (-_T.tsum(_T.flatten(s, 1), 1), "only the updated sites (mask 0) contribute: use "
                                                 "(1 - m) * s before summing."),
                (-_T.tsum(_T.flatten(_T.to(mask, dtype) * s, 1), 1),
                 "you summed s over the frozen sites; use the updated ones, (1 - m) * s."),
            ]
            raise GradingError(f"the log_det returned by {what} is wrong (max difference "
                               f"{_max_abs_diff(ld, ld_exp):.3g}). {_diagnose(ld, ld_exp, variants)}"
                               .rstrip())
    _ok("AffineCoupling.reverse inverts forward, with the right log-Jacobian"
        + (" (hidden checks)" if hidden else ""))


def _convs(net):
    return [mod for mod in _T.modules(net) if isinstance(mod, _T.ConvNd)]


def check_affine_stack(make_layers, level: str = "visible") -> None:
    """Check ``make_affine_stack(n_layers=, lattice_shape=, hidden_sizes=, kernel_size=)``."""
    hidden = _begin(level)
    cases = [(4, (4, 4), [4, 4], 3)]
    if hidden:
        cases += [(1, (4, 4), [8], 3), (3, (6, 6), [3, 5, 2], 3), (6, (4, 8), [4], 5),
                  (2, (2, 2), [2, 2], 1)]
    for seed, (n_layers, shape, hidden_sizes, kernel) in enumerate(cases):
        call = (f"make_affine_stack(n_layers={n_layers}, lattice_shape={shape}, "
                f"hidden_sizes={hidden_sizes}, kernel_size={kernel})")
        layers = _call("affine_stack", call, make_layers, n_layers=n_layers, lattice_shape=shape,
                       hidden_sizes=list(hidden_sizes), kernel_size=kernel)
        if isinstance(layers, (list, tuple)) and all(isinstance(x, _T.Module) for x in layers):
            raise GradingError(f"{call} returned a Python {type(layers).__name__}; wrap the layers in "
                               "torch.nn.ModuleList so that their parameters are registered (and "
                               "trained).")
        if not isinstance(layers, _T.ModuleList):
            raise GradingError(f"{call} returned {_describe(layers)}; expected a torch.nn.ModuleList "
                               "of coupling layers.")
        if len(layers) != n_layers:
            raise GradingError(f"{call} returned {len(layers)} layers, expected {n_layers}.")
        nets, masks = [], []
        for i, layer in enumerate(layers):
            for attr in ("net", "mask", "forward", "reverse"):
                if not hasattr(layer, attr):
                    raise GradingError(f"layer {i} of {call} has no attribute {attr!r}; build each "
                                       "layer as AffineCoupling(net, mask).")
            mask = layer.mask
            if not isinstance(mask, _T.Tensor) or tuple(mask.shape) != tuple(shape):
                raise GradingError(f"layer {i} has a mask of {_describe(mask)}, expected shape {shape}.")
            mask = _f64(mask)
            parities = [p for p in (0, 1) if _T.equal(mask, _ref_mask(shape, p))]
            if not parities:
                raise GradingError(f"layer {i}'s mask is not a checkerboard; use "
                                   "make_checker_mask(lattice_shape, parity).")
            masks.append(parities[0])
            nets.append(layer.net)
        for i in range(n_layers - 1):
            if masks[i] == masks[i + 1]:
                raise GradingError(f"layers {i} and {i + 1} use the same parity: the sites frozen in "
                                   "one layer stay frozen in the next, so half of the lattice is never "
                                   "updated by that pair. Alternate the parity: i % 2.")
        param_ids = [{id(p) for p in _T.parameters(net)} for net in nets]
        for i in range(n_layers):
            for j in range(i):
                if nets[i] is nets[j] or param_ids[i] & param_ids[j]:
                    raise GradingError(f"layers {j} and {i} share one network; create a new "
                                       "make_conv_net(...) inside the loop so every layer has its own "
                                       "parameters.")
        for i, net in enumerate(nets):
            convs = _convs(net)
            channels = [c.out_channels for c in convs]
            if channels != [*hidden_sizes, 2] or (convs and convs[0].in_channels != 1):
                raise GradingError(f"layer {i}'s network has convolutions with output channels "
                                   f"{channels}, expected {[*hidden_sizes, 2]} (hidden sizes, then 2 "
                                   "channels for s and t) and 1 input channel.")
            if any(tuple(c.kernel_size) != (kernel,) * len(shape) for c in convs):
                raise GradingError(f"layer {i}'s network does not use kernel_size={kernel}.")
            if any(c.padding_mode != "circular" for c in convs):
                raise GradingError(f"layer {i}'s network pads with zeros; use circular padding so the "
                                   "network respects the periodic lattice (make_conv_net does).")
        # Every layer must act like the reference affine coupling with its own net and mask.
        gen = _generator(80 + seed)
        for dtype in ((_T.float32, _T.float64) if hidden else (_T.float32,)):
            x = _randn((3, *shape), dtype, gen)
            for i, layer in enumerate(layers):
                _T.module_to(layer, dtype)
                with _T.no_grad():
                    out = _call("affine_stack", f"layer {i}'s forward", layer.forward, _T.clone(x))
                y_exp, ld_exp, _, _ = _ref_affine(layer.net, layer.mask, x, direction="forward")
                if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], _T.Tensor)
                        and _close(out[0], y_exp, dtype) and isinstance(out[1], _T.Tensor)
                        and _close(out[1], ld_exp, dtype)):
                    raise GradingError(f"layer {i}'s forward is not the affine coupling "
                                       "m*z + (1-m)*(z*e^s + t); build the layers with "
                                       "AffineCoupling(net, mask).")
                x = y_exp
            _T.module_to(layers, _T.float32)
    _ok("make_affine_stack builds alternating affine couplings" + (" (hidden checks)" if hidden else ""))


# ============================================================================================
# Unit 4: loss, ESS, log Z
# ============================================================================================
def _log_pair(n, dtype, gen, *, scale=1.0, offset=0.0):
    log_q = _randn((n,), dtype, gen) * 3 * scale - 40 * scale
    log_p = log_q + _randn((n,), dtype, gen) * scale + offset
    return log_p, log_q


def _scalar_result(out, what, *, allow_float):
    if isinstance(out, _T.Tensor) and type(out) is _T.Tensor:
        if _T.numel(out) != 1 or out.dim() > 1:
            raise GradingError(f"{what} returned a tensor of shape {tuple(out.shape)}; expected a "
                               "single number (a 0-dim tensor): average or sum over the batch.")
        if not _all_finite(out):
            raise GradingError(f"{what} returned {_T.item(_f64(out))}: NaN or infinite. With large "
                               "log-weights exp() overflows; work with logs (torch.logsumexp).")
        return _T.item(_f64(out))
    if allow_float and isinstance(out, (float, int)) and not isinstance(out, bool):
        if not math.isfinite(out):
            raise GradingError(f"{what} returned {out}: NaN or infinite. With large log-weights "
                               "exp() overflows; work with logs (torch.logsumexp).")
        return float(out)
    raise GradingError(f"{what} returned {_describe(out)}; expected a single number as a 0-dim "
                       "torch tensor.")


def check_reverse_kl(kl_fn, level: str = "visible") -> None:
    r"""Check ``reverse_kl(log_p, log_q)``: :math:`\frac1N\sum_i (\log q_i - \log p_i)`, differentiable."""
    hidden = _begin(level)
    cases = [(64, _T.float32, 1.0)]
    if hidden:
        cases += [(1, _T.float64, 1.0), (257, _T.float64, 100.0), (8, _T.float32, 0.01)]
    for seed, (n, dtype, scale) in enumerate(cases):
        log_p, log_q = _log_pair(n, dtype, _generator(90 + seed), scale=scale)
        expected = _T.item(_T.tmean(_f64(log_q) - _f64(log_p)))
        lp = _T.requires_grad_(_T.clone(log_p))
        lq = _T.requires_grad_(_T.clone(log_q))
        what = f"reverse_kl(log_p, log_q) for a batch of {n} ({dtype})"
        out = _call("reverse_kl", "reverse_kl(log_p, log_q)", kl_fn, lp, lq)
        if isinstance(out, (float, int)) and not isinstance(out, bool):
            raise GradingError(f"{what} returned a Python number; keep the loss a torch tensor (no "
                               ".item()) so that loss.backward() can compute gradients.")
        value = _scalar_result(out, what, allow_float=False)
        tol = 1e-9 if dtype == _T.float64 else 1e-4
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
        grad_p, grad_q = _T.grad(out, (lp, lq), allow_unused=True)
        if grad_q is None or grad_p is None or not _close(grad_q, _T.full((n,), 1.0 / n, dtype=dtype),
                                                          dtype) \
                or not _close(grad_p, _T.full((n,), -1.0 / n, dtype=dtype), dtype):
            raise GradingError(f"the gradient of {what} is wrong: d loss / d log_q should be 1/N for "
                               "every sample and d loss / d log_p should be -1/N.")
    _ok("reverse_kl is the batch mean of log q - log p, differentiable" + (
        " (hidden checks)" if hidden else ""))


def _ref_ess(log_p, log_q):
    lw = _f64(log_p) - _f64(log_q)
    n = lw.shape[0]
    return math.exp(_T.item(2 * _T.logsumexp(lw, 0) - _T.logsumexp(2 * lw, 0)) - math.log(n))


def check_ess(ess_fn, level: str = "visible") -> None:
    """Check ``ess(log_p, log_q)``: normalised effective sample size in ``[1/N, 1]``, overflow-safe."""
    hidden = _begin(level)
    gen = _generator(100)
    cases = []
    lp, lq = _log_pair(256, _T.float32, gen, scale=0.5)
    cases.append(("random log-weights", lp, lq, _T.float32))
    lp, lq = _log_pair(128, _T.float64, gen, scale=1.0, offset=-1e4)
    cases.append(("log-weights near -10^4 (as log p = -S, ignoring log Z, makes them)", lp, lq,
                  _T.float64))
    if hidden:
        lq = _randn((50,), _T.float64, gen)
        cases.append(("equal weights (ESS must be 1)", lq + 3.0, lq, _T.float64))
        lw = _T.full((40,), -50.0, dtype=_T.float64)
        lw[7] = 0.0
        cases.append(("one dominant weight (ESS must be ~1/N)", lw, _T.zeros(40, dtype=_T.float64),
                      _T.float64))
        lp, lq = _log_pair(300, _T.float64, gen, scale=1.0, offset=1e4)
        cases.append(("log-weights near +10^4", lp, lq, _T.float64))
        lp, lq = _log_pair(200, _T.float32, gen, scale=1.0, offset=-3e3)
        cases.append(("float32 log-weights near -3000", lp, lq, _T.float32))
        cases.append(("a single sample (ESS = 1)", _T.tensor([-2.0], dtype=_T.float64),
                      _T.tensor([1.0], dtype=_T.float64), _T.float64))
    for label, log_p, log_q, dtype in cases:
        expected = _ref_ess(log_p, log_q)
        what = f"ess(log_p, log_q) with {label}, batch {log_p.shape[0]} ({dtype})"
        out = _call("ess", "ess(log_p, log_q)", ess_fn, _T.clone(log_p), _T.clone(log_q))
        value = _scalar_result(out, what, allow_float=True)
        n = log_p.shape[0]
        rtol = 1e-7 if dtype == _T.float64 else 2e-2
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
    _ok("ess is right and overflow-safe" + (" (hidden checks)" if hidden else ""))


def _ref_log_z(log_p, log_q):
    lw = _f64(log_p) - _f64(log_q)
    return _T.item(_T.logsumexp(lw, 0)) - math.log(lw.shape[0])


def check_log_z(log_z_fn, level: str = "visible") -> None:
    r"""Check ``estimate_log_z(log_p, log_q)``: :math:`\log\frac1N\sum_i e^{\log p_i - \log q_i}`."""
    hidden = _begin(level)
    gen = _generator(110)
    cases = []
    lp, lq = _log_pair(512, _T.float64, gen, scale=1.0, offset=5.0)
    cases.append(("moderate log-weights", lp, lq, _T.float64))
    lp, lq = _log_pair(256, _T.float64, gen, scale=1.0, offset=-2e3)
    cases.append(("log-weights near -2000", lp, lq, _T.float64))
    if hidden:
        lp, lq = _log_pair(1, _T.float64, gen)
        cases.append(("a single sample", lp, lq, _T.float64))
        lp, lq = _log_pair(300, _T.float32, gen, scale=1.0, offset=800.0)
        cases.append(("float32 log-weights near +800", lp, lq, _T.float32))
        lq = _randn((30,), _T.float64, gen)
        cases.append(("constant log-weights 7.5 (log Z = 7.5 exactly)", lq + 7.5, lq, _T.float64))
    for label, log_p, log_q, dtype in cases:
        expected = _ref_log_z(log_p, log_q)
        what = f"estimate_log_z(log_p, log_q) with {label}, batch {log_p.shape[0]} ({dtype})"
        out = _call("log_z", "estimate_log_z(log_p, log_q)", log_z_fn, _T.clone(log_p),
                    _T.clone(log_q))
        value = _scalar_result(out, what, allow_float=True)
        tol = (1e-8 if dtype == _T.float64 else 1e-5) * max(1.0, abs(expected)) + 1e-8
        if abs(value - expected) <= tol:
            continue
        lw = _f64(log_p) - _f64(log_q)
        n = lw.shape[0]
        mean_lw = _T.item(_T.tmean(lw))
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
    _ok("estimate_log_z is the log-mean-exp of the log-weights" + (" (hidden checks)" if hidden else ""))


# ============================================================================================
# Auditing the code the kernel executed (the pure-AST audit lives in lftutor.graders.audit)
# ============================================================================================
def _audit_kernel_history() -> None:
    """Audit the code this IPython kernel has executed (hidden level only)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    history = list(getattr(shell.history_manager, "input_hist_parsed", []) or [])
    if len(history) < getattr(shell, "execution_count", 0):
        raise GradingError("the kernel's input history was altered; restart the kernel and run all "
                           "cells.")
    findings = []
    for number, source in enumerate(history):
        findings += [f"cell [{number}], {f}" for f in audit_source(source or "")]
    if findings:
        raise GradingError("the notebook runs code that could interfere with grading, which answers "
                           "must not do:\n  " + "\n  ".join(findings[:8])
                           + "\nRemove it, restart the kernel and run all cells.")


# Read-only from here on: `grading.check_x = ...` in a notebook raises.
class _ReadOnlyModule(types.ModuleType):
    def __setattr__(self, name, value):
        raise GradingError(f"lftutor.grading is read-only (tried to set {name!r}).")

    def __delattr__(self, name):
        raise GradingError(f"lftutor.grading is read-only (tried to delete {name!r}).")


sys.modules[__name__].__class__ = _ReadOnlyModule
