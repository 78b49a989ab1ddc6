r"""The graders' shared core: what every unit's grader module builds on.

A unit's graders live in ``lftutor/graders/<unit>.py`` (named like the unit's folder without its
number: ``solutions/04_training`` is graded by :mod:`lftutor.graders.training`). Each compares a
student's answer with a reference kept inside the grader, on random inputs, and raises
:class:`GradingError` (an ``AssertionError``) whose message says in plain words what is wrong.
``level="visible"`` runs the quick checks students see; ``level="hidden"`` (the autograder's)
runs more sizes, dtypes and edge cases, and audits the notebook's executed code.

What this module gives a grader module
--------------------------------------
* :class:`GradingError`; :data:`T`, the torch functions graders compute with, captured at import;
  :func:`capture_builtins` (``capture_builtins(globals())`` at the top of a grader module);
* :func:`guarded_call` and :func:`caller` (run the student's code under the tripwire);
  :func:`function_codes`, :func:`module_codes`, :func:`method_codes` (what an exercise may not
  call);
* :func:`begin` (level, tamper check, kernel audit), :func:`ok` (the success line);
* result checks: :func:`tensor_result` (with ``expected=``, a wrong dtype and wrong values are
  reported together), :func:`number`, :func:`returned` (the verb for a message), :func:`close`,
  :func:`max_abs_diff`, :func:`describe`, :func:`f64`; inputs: :func:`generator`, :func:`randn`;
* :func:`make_read_only` (the last line of a grader module).

How the graders resist cheating
-------------------------------
* **No borrowing the reference.** The student's code runs under a profiler hook that records
  every Python function it enters; calling the lftutor function the exercise asks for (or any
  function of :mod:`lftutor.graders`) is refused, whatever name it was imported under.
* **No patched comparisons.** Every torch function and builtin the graders use is captured at
  import time (the notebooks import their grader in a locked cell before any answer cell), so
  redefining ``torch.allclose``, ``numpy.allclose``, ``torch.testing.assert_close`` or
  ``torch.Tensor.__sub__`` afterwards changes nothing; such a redefinition is also detected and
  refused.
* **No fake tensors.** Answers must be plain ``torch.Tensor`` objects (a subclass could override
  ``__torch_function__``); inputs are cloned before the student sees them.
* **No rewriting the grader.** Grader modules refuse attribute assignment; test cells import
  them afresh; at the hidden level the code the kernel executed is audited
  (:func:`lftutor.graders.audit.audit_source`) for assignments to torch, numpy, lftutor or the
  grader, ``setattr``/``__dict__`` tricks, ``exec``/``eval``, ``importlib``. In-kernel defences
  can in principle be undone by code that runs earlier in the same kernel, so the same audit also
  runs outside the kernel, in ``nbgrader autograde`` (:class:`lftutor.graders.audit.AuditCells`):
  a notebook with such code scores zero on every autograded cell.

Failures read in one glance
---------------------------
In a Jupyter kernel, a :class:`GradingError` is shown as its message alone, followed, when the
student's own code raised, by the student's lines of the traceback and their exception: the
grader's internals are never shown (:func:`_show_grading_error`).
"""

from __future__ import annotations

import builtins as _builtins_module
import math
import sys
import traceback as _traceback
import types
from pathlib import Path

import numpy as _np
import torch as _torch
from torch import nn as _nn

from lftutor.graders.audit import audit_source

__all__ = [
    "GRADER_FILES", "LOG_2PI", "GradingError", "T", "all_finite", "audit_kernel_history", "begin", "caller",
    "capture_builtins", "close", "describe", "diagnose", "f64", "function_codes", "generator", "guarded_call",
    "make_read_only", "max_abs", "max_abs_diff", "method_codes", "module_codes", "number", "ok",
    "randn", "returned", "tensor_result", "tolerances",
]


class GradingError(AssertionError):
    """A check failed; the message says what is wrong and how to fix it."""


# --------------------------------------------------------------------------------------------
# Everything the graders compute with, captured now: later monkeypatching cannot reach it.
# Module globals shadow the builtins, so replacing ``builtins.abs`` later changes nothing here.
# --------------------------------------------------------------------------------------------
_BUILTIN_NAMES = (
    "abs", "all", "any", "bool", "callable", "dict", "divmod", "enumerate", "float",
    "frozenset", "getattr", "hasattr", "id", "int", "isinstance", "iter", "len", "list", "max",
    "min", "next", "pow", "print", "range", "repr", "reversed", "round", "set", "sorted", "str",
    "sum", "tuple", "type", "zip",
)
_BUILTINS = {name: getattr(_builtins_module, name) for name in _BUILTIN_NAMES}
globals().update(_BUILTINS)


def capture_builtins(namespace: dict) -> None:
    """Bind the builtins graders use (``abs``, ``isinstance``, ``len``, ...) as module globals of
    ``namespace`` (a grader module's ``globals()``), captured when this module was imported: a
    notebook that later replaces ``builtins.abs`` changes nothing in the grader."""
    namespace.update(_BUILTINS)


T = types.SimpleNamespace(  # captured torch functions and types
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
)
_setprofile, _getprofile = sys.setprofile, sys.getprofile
LOG_2PI = math.log(2 * math.pi)
#: Every module of lftutor.graders: the student's code may never enter them.
GRADER_FILES = frozenset({str(p) for p in Path(__file__).parent.glob("*.py")}
                         | {str(p.resolve()) for p in Path(__file__).parent.glob("*.py")})


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


class _Tripwire:
    """Profiler hook: records entries into forbidden code objects (or forbidden files)."""

    def __init__(self, codes, files):
        self.codes, self.files, self.hits = codes, files, []

    def __call__(self, frame, event, arg):
        if event == "call":
            code = frame.f_code
            if code in self.codes or code.co_filename in self.files:
                self.hits.append(f"{code.co_qualname} ({code.co_filename.rsplit('/', 1)[-1]})")


def _unwrapped(func):
    """``func`` under its wrappers (``__wrapped__``, as :func:`functools.wraps` leaves it).

    The bijection base class (:mod:`lftutor.bijections.base`) wraps every layer's ``forward`` and
    ``reverse`` in one checking function whose code object all layers share: forbidding that code
    would refuse every layer, the student's own included, and name the wrapper in the message.
    The tripwire forbids the method's own code instead, which every call still enters."""
    while hasattr(func, "__wrapped__"):
        func = func.__wrapped__
    return func


def function_codes(*functions) -> frozenset:
    """Code objects of ``functions``, each under its wrappers (for the tripwire)."""
    return frozenset(_unwrapped(f).__code__ for f in functions)


def module_codes(module) -> frozenset:
    """Code objects of every function and method defined in ``module`` (nested ones excepted),
    each under its wrappers."""
    name = module.__name__
    functions = [obj for obj in vars(module).values()
                 if isinstance(obj, types.FunctionType) and obj.__module__ == name]
    classes = [obj for obj in vars(module).values() if isinstance(obj, type) and obj.__module__ == name]
    return function_codes(*functions) | method_codes(*classes)


def method_codes(*classes) -> frozenset:
    """Code objects of every method (and property, cached property) defined in ``classes``, each
    under its wrappers."""
    codes = set()
    for cls in classes:
        for attr in vars(cls).values():
            # classmethod/staticmethod: .__func__; cached_property: .func
            func = _unwrapped(getattr(attr, "__func__", getattr(attr, "func", attr)))
            if isinstance(func, types.FunctionType):
                codes.add(func.__code__)
            elif isinstance(attr, property) and attr.fget is not None:
                codes.add(attr.fget.__code__)
    return frozenset(codes)


def caller(forbid: dict, *,
           forbidden: str = "lftutor's own implementation of what this exercise asks for"):
    """``call(exercise, what, fn, *args, **kwargs)`` for a grader module's table ``forbid``:
    ``{exercise: (codes, files)}``, what each exercise's answer may not call (captured when the
    grader module is imported, so re-binding names later does not help); ``forbidden`` names
    them in the message of a refused call."""
    def call(exercise: str, what: str, fn, *args, **kwargs):
        codes, files = forbid[exercise]
        return guarded_call(what, fn, args, kwargs, codes=codes, files=files, forbidden=forbidden)
    return call


def guarded_call(what: str, fn, args=(), kwargs=None, *, codes=frozenset(), files=(),
                 forbidden: str = "lftutor's own implementation of what this exercise asks for"):
    """Call ``fn(*args, **kwargs)`` with a profiler tripwire on ``codes`` and ``files``.

    Every module of :mod:`lftutor.graders` is always forbidden too. Failures turn
    into :class:`GradingError` with a lesson: a ``NotImplementedError`` left in place, another
    exception, switching off the tracing, returning a ``torch.Tensor`` subclass (which could
    override comparisons), or calling into ``forbidden`` (named in the message).

    Every unit's grader module runs answers through this one function (usually through the
    ``call`` that :func:`caller` makes), so the rules are the same everywhere.
    """
    hook = _Tripwire(codes, set(files) | GRADER_FILES)
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
        if isinstance(item, T.Tensor) and type(item) is not T.Tensor \
                and type(item) is not _nn.Parameter:
            raise GradingError(f"{what} returned an object of type {type(item).__name__}, a subclass "
                               "of torch.Tensor; return plain torch.Tensor objects.")
    if hook.hits:
        raise GradingError(
            f"{what} calls {hook.hits[0]}, {forbidden} (or a grader function). The point is to "
            "write it yourself from the formula: torch and numpy operations are fine, lftutor's "
            "answer is not.")
    return out


def f64(x):
    return T.to(T.detach(x), T.float64)


def max_abs_diff(a, b) -> float:
    if T.numel(a) == 0:
        return 0.0
    return T.item(T.amax(T.abs(T.sub(f64(a), f64(b)))))


def max_abs(a) -> float:
    return T.item(T.amax(T.abs(f64(a)))) if T.numel(a) else 0.0


def all_finite(a) -> bool:
    return bool(T.item(T.tall(T.isfinite(f64(a)))))


def tolerances(dtype, rtol=None, atol=None):
    """``(rtol, atol)`` for comparing answers of ``dtype``: the given ones, each ``None`` replaced
    by the default for that dtype (``1e-9`` in float64, ``2e-4`` otherwise); ``0`` means exact."""
    default = 1e-9 if dtype == T.float64 else 2e-4
    return (default if rtol is None else rtol), (default if atol is None else atol)


def close(a, b, dtype, *, rtol=None, atol=None) -> bool:
    """``max|a-b| <= atol + rtol * max|b|`` in float64; tensors must already share a shape."""
    if tuple(a.shape) != tuple(b.shape) or not all_finite(a):
        return False
    rtol, atol = tolerances(dtype, rtol, atol)
    return max_abs_diff(a, b) <= atol + rtol * max_abs(b)


def describe(x) -> str:
    if isinstance(x, T.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    if isinstance(x, _np.ndarray):
        return f"a NumPy array of shape {x.shape}"
    if isinstance(x, tuple):
        return f"a tuple of {len(x)} items"
    return f"a {type(x).__name__}"


def returned(what: str) -> str:
    """``what`` with the verb that fits it: ``"f(x) returned"`` for a call, ``"the z returned by
    f(x) is"`` for one item of a call's result (never "returned by ... returned")."""
    return f"{what} is" if " returned by " in what else f"{what} returned"


def tensor_result(out, what: str, *, shape, dtype, shape_hint: str = "", scalar_ok=False,
                  expected=None, variants=()):
    """Check that ``out`` is a plain tensor of the expected shape, dtype and finite values.

    ``expected`` (the reference values, optional) and ``variants`` (``(value, message)`` pairs of
    typical mistakes, as for :func:`diagnose`) let a wrong dtype be reported together with wrong
    values: a student whose answer has both problems learns of both in one run.
    """
    if scalar_ok and isinstance(out, (float, int)) and not isinstance(out, bool):
        out = T.tensor(float(out), dtype=T.float64)
        dtype = T.float64
    if isinstance(out, _np.ndarray):
        raise GradingError(f"{returned(what)} a NumPy array; return a torch.Tensor (no .numpy() or "
                           "grab() inside: the result must stay in torch, e.g. to be differentiated).")
    if isinstance(out, tuple) and len(out) and isinstance(out[0], T.Tensor):
        raise GradingError(f"{returned(what)} {describe(out)}; it should be a single tensor of "
                           f"shape {shape}.")
    if not isinstance(out, T.Tensor):
        raise GradingError(f"{returned(what)} {describe(out)}; expected a torch.Tensor of shape "
                           f"{shape}.")
    if type(out) is not T.Tensor and not isinstance(out, _nn.Parameter):
        raise GradingError(f"{returned(what)} an object of type {type(out).__name__}, a subclass of "
                           "torch.Tensor; return a plain torch.Tensor.")
    if tuple(out.shape) != tuple(shape):
        raise GradingError(f"{returned(what)} a tensor of shape {tuple(out.shape)}, expected "
                           f"{tuple(shape)}. {shape_hint}".rstrip())
    if not T.is_floating_point(out):
        raise GradingError(f"{returned(what)} a tensor of integers ({out.dtype}); expected floating "
                           "values." + _values_too(out, expected, variants))
    if not scalar_ok and out.dtype != dtype:
        raise GradingError(f"{returned(what)} a {out.dtype} tensor for a {dtype} input; keep the "
                           "input's dtype (build new tensors with torch.zeros_like / x.new_... rather "
                           "than a fixed dtype)." + _values_too(out, expected, variants))
    if not all_finite(out):
        raise GradingError(f"{returned(what)} a tensor with NaN or infinite values for finite inputs.")
    return out


def _values_too(out, expected, variants) -> str:
    """What is wrong with the values of an answer whose dtype is already wrong ("" if they are
    right, or if no reference was given): compared at float32 precision, the coarser of the two."""
    if expected is None or tuple(expected.shape) != tuple(out.shape):
        return ""
    if not all_finite(out):
        return " Its values are wrong too: NaN or infinite for finite inputs."
    if close(out, expected, T.float32):
        return ""
    lesson = diagnose(out, variants)
    return (" Its values are wrong too" + (f": {lesson.rstrip('.')}" if lesson else
            f" (largest error {max_abs_diff(out, expected):.3g}, more than the dtype explains)")
            + ". Fix both.")


def diagnose(out, variants) -> str:
    """The message of the first wrong variant that ``out`` matches, else ``""``.

    ``variants`` are ``(value, message)`` pairs: what a typical mistake would have returned and
    the lesson for it."""
    for value, message in variants:
        if tuple(value.shape) == tuple(out.shape) and close(out, value, T.float32, rtol=1e-4,
                                                               atol=1e-4):
            return message
    return ""


def generator(seed: int):
    return T.Generator().manual_seed(seed)


def randn(shape, dtype, gen):
    return T.randn(tuple(shape), generator=gen, dtype=dtype)


def begin(level: str) -> bool:
    if level not in ("visible", "hidden"):
        raise ValueError(f"expected level 'visible' or 'hidden', got {level!r}")
    _check_not_tampered()
    if level == "hidden":
        audit_kernel_history()
    return level == "hidden"


def ok(message: str, hidden: bool = False) -> None:
    """Print the success line of a check (``hidden``: say that the hidden checks passed)."""
    print(f"\u2713 {message}" + (" (hidden checks)" if hidden else ""))


def number(out, what: str, *, dtype=None,
           shape_lesson: str = "a single number (a float or a 0-dim tensor)",
           type_lesson: str = "a single number", python_number: str | None = None,
           not_finite: str = ""):
    """The one number an exercise answers, or a :class:`GradingError` with a lesson.

    Accepted: a one-element plain tensor; a Python number, a NumPy scalar or a one-element float
    array, unless ``python_number`` is given (the lesson when a Python number is refused, e.g. an
    answer that must stay differentiable). Returns a Python float, or, with ``dtype``, the answer
    itself as a 0-dim tensor (still in the autograd graph), checked like :func:`tensor_result`
    (a tensor of ``dtype``, finite values).

    The messages end with the exercise's own words: ``shape_lesson`` for a tensor of several
    numbers (``"... returned a tensor of shape (3,); expected <shape_lesson>."``), ``type_lesson``
    for something that is no number at all, ``not_finite`` after ``"...: NaN or infinite."``.
    """
    if isinstance(out, T.Tensor) and T.numel(out) != 1:
        raise GradingError(f"{returned(what)} a tensor of shape {tuple(out.shape)}; expected "
                           f"{shape_lesson}.")
    if python_number is not None and isinstance(out, (float, int)) and not isinstance(out, bool):
        raise GradingError(f"{returned(what)} a Python number; {python_number}")
    if dtype is not None:
        shape = tuple(out.shape) if isinstance(out, T.Tensor) else ()
        return T.reshape(tensor_result(out, what, shape=shape, dtype=dtype), ())
    if isinstance(out, T.Tensor) and type(out) is T.Tensor:
        out = T.item(f64(out))
    elif python_number is None and (
            (isinstance(out, _np.generic) and not isinstance(out, _np.bool_))
            or (isinstance(out, _np.ndarray) and out.size == 1 and out.dtype.kind == "f")):
        out = out.item()  # numbers from outside torch are fine where Python numbers are
    if isinstance(out, bool) or not isinstance(out, (float, int)):
        raise GradingError(f"{returned(what)} {describe(out)}; expected {type_lesson}.")
    out = float(out)
    if not math.isfinite(out):
        raise GradingError(f"{returned(what)} {out}: NaN or infinite." + (f" {not_finite}" if not_finite
                                                                          else ""))
    return out


def audit_kernel_history() -> None:
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


# --------------------------------------------------------------------------------------------
# Grader modules are read-only; failures are shown short in a Jupyter kernel.
# --------------------------------------------------------------------------------------------
def make_read_only(module_name: str) -> None:
    """Make the module ``module_name`` refuse attribute assignment and deletion (the last line of
    every grader module: ``make_read_only(__name__)``), so ``grading.check_x = ...`` raises."""
    module = sys.modules[module_name]

    class _ReadOnlyModule(types.ModuleType):
        def __setattr__(self, name, value):
            raise GradingError(f"{module_name} is read-only (tried to set {name!r}).")

        def __delattr__(self, name):
            raise GradingError(f"{module_name} is read-only (tried to delete {name!r}).")

    module.__class__ = _ReadOnlyModule


def _student_frames(error: BaseException) -> list:
    """The frames of ``error``'s traceback outside lftutor.graders (the student's code)."""
    frames = _traceback.extract_tb(error.__traceback__)
    return [f for f in frames if str(Path(f.filename).resolve()) not in GRADER_FILES
            and not f.filename.startswith("<frozen")]


def _show_grading_error(shell, etype, value, tb, tb_offset=None):
    """IPython's handler for :class:`GradingError`: the message first, the grader's frames never.

    When the student's code raised (``value.__cause__``), its own lines and exception follow, so
    the student still sees where their code failed.
    """
    red, reset = "\x1b[0;31m", "\x1b[0m"
    lines = [f"{red}{etype.__name__}{reset}: {value}"]
    cause = value.__cause__
    # an unanswered exercise (NotImplementedError): the message already says which line to replace
    if cause is not None and not isinstance(cause, (GradingError, NotImplementedError)):
        frames = _student_frames(cause)
        if frames:
            lines.append("\nYour code raised it here:\n" + "".join(_traceback.format_list(frames))
                         + f"{type(cause).__name__}: {cause}")
    # IPython discards a custom handler's return value in run_code: show it the way IPython shows
    # any traceback (in ipykernel, an `error` output: nbgrader counts the test as failed).
    shell._showtraceback(etype, value, lines)
    return lines


def _install_short_tracebacks() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "set_custom_exc"):
        shell.set_custom_exc((GradingError,), _show_grading_error)


_install_short_tracebacks()
make_read_only(__name__)
