"""The shared checks of lftutor.graders.core (issue 22): one scalar checker, one success line, exact
tolerances, and a tripwire that sees through the bijection base class's wrapper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import lftutor.bijections.coupling as coupling
import lftutor.bijections.planar as planar
from lftutor.graders import core
from lftutor.graders.core import GradingError

WHAT = "f(x) for a batch of 3"


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(GradingError) as err:
        fn(*args, **kwargs)
    return str(err.value)


# ------------------------------------------------------------------------------------ tolerances
def test_tolerances_take_zero_as_zero():
    assert core.tolerances(torch.float64, rtol=0, atol=0) == (0, 0)
    assert core.tolerances(torch.float32, rtol=0.0) == (0.0, 2e-4)
    assert core.tolerances(torch.float64) == (1e-9, 1e-9)
    assert core.tolerances(torch.float32, atol=1e-3) == (2e-4, 1e-3)


def test_close_with_zero_tolerance_is_exact():
    a = torch.ones(3, dtype=torch.float64)
    assert core.close(a, a.clone(), torch.float64, rtol=0, atol=0)
    assert not core.close(a + 1e-12, a, torch.float64, rtol=0, atol=0)
    assert core.close(a + 1e-12, a, torch.float64)


# ----------------------------------------------------------------------------------- number()
def test_number_accepts_numbers_in_every_form_by_default():
    for out in (1.5, np.float32(1.5), np.array([1.5]), torch.tensor(1.5), torch.tensor([1.5])):
        assert core.number(out, WHAT) == 1.5


def test_number_words_its_lessons_as_the_exercise_asks():
    text = _message(core.number, torch.zeros(3), WHAT, shape_lesson="one number: average it")
    assert text == f"{WHAT} returned a tensor of shape (3,); expected one number: average it."
    text = _message(core.number, "x", WHAT, type_lesson="a 0-dim tensor")
    assert text == f"{WHAT} returned a str; expected a 0-dim tensor."
    text = _message(core.number, torch.tensor(float("nan")), WHAT, not_finite="Work with logs.")
    assert text == f"{WHAT} returned nan: NaN or infinite. Work with logs."


def test_number_can_refuse_python_and_numpy_numbers():
    lesson = "keep it a tensor (no .item())."
    for out in (1.5, 3, np.float64(1.5)):
        assert _message(core.number, out, WHAT, python_number=lesson) == \
            f"{WHAT} returned a Python number; {lesson}"
    assert "returned a float32; expected a single number." in _message(
        core.number, np.float32(1.5), WHAT, python_number=lesson)
    assert core.number(torch.tensor(2.0), WHAT, python_number=lesson) == 2.0


def test_number_with_a_dtype_returns_the_tensor_in_the_graph():
    x = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    out = core.number(x * 2, WHAT, dtype=torch.float64)
    assert out.shape == () and out.requires_grad
    assert "keep the input's dtype" in _message(core.number, torch.tensor(1.0), WHAT, dtype=torch.float64)
    # an empty tensor is not one number (it used to reach a reshape and crash)
    assert "a tensor of shape (0,)" in _message(core.number, torch.zeros(0), WHAT, dtype=torch.float64)


def test_unit_4_and_unit_9_keep_their_messages():
    from lftutor.graders import amortized_inference, training

    text = _message(core.number, torch.zeros(3), WHAT, **training._SCALAR)
    assert text.endswith("expected a single number (a 0-dim tensor): average or sum over the batch.")
    text = _message(core.number, torch.tensor(float("inf")), WHAT, **training._SCALAR)
    assert text.endswith("With large log-weights exp() overflows; work with logs (torch.logsumexp).")
    text = _message(core.number, 0.5, WHAT, dtype=torch.float32, **amortized_inference._SCALAR)
    assert text == (f"{WHAT} returned a Python number; return a 0-dim torch tensor (no .item()): "
                    "training needs to differentiate it.")


# ------------------------------------------------------------------------- ok() and diagnose()
def test_ok_writes_the_hidden_suffix(capsys):
    core.ok("it works")
    core.ok("it works", True)
    assert capsys.readouterr().out == "\u2713 it works\n\u2713 it works (hidden checks)\n"


def test_no_grader_writes_the_hidden_suffix_itself():
    graders = Path(core.__file__).parent
    for path in graders.glob("*.py"):
        if path.name != "core.py":
            assert "(hidden checks)" not in path.read_text(), path.name


def test_diagnose_names_the_first_matching_mistake():
    out = torch.tensor([2.0, 4.0])
    variants = [(-out, "the sign"), (out.clone(), "doubled"), (out, "never reached")]
    assert core.diagnose(out, variants) == "doubled"
    assert core.diagnose(out, [(out + 1, "off by one")]) == ""


# --------------------------------------------------------------- the tripwire and the base class
def test_forbidden_codes_are_the_methods_own_not_the_base_class_wrapper():
    forward = coupling.AffineCoupling.forward
    assert hasattr(forward, "__wrapped__"), "the base class no longer wraps forward: update this test"
    shared = forward.__code__  # one code object for every layer's wrapped forward/reverse
    assert planar.Planar.forward.__code__ is shared
    for codes in (core.function_codes(forward), core.method_codes(coupling.AffineCoupling),
                  core.module_codes(coupling)):
        assert shared not in codes
        assert forward.__wrapped__.__code__ in codes


def test_forbidding_one_layer_does_not_refuse_another():
    codes = core.method_codes(coupling.AffineCoupling)
    layer = planar.Planar(2).double()
    z = torch.randn(4, 2, dtype=torch.float64)
    x, log_det = core.guarded_call("planar", layer.forward, (z,), codes=codes)
    assert x.shape == (4, 2) and log_det.shape == (4,)
    net = coupling.make_conv_net(hidden_sizes=[2], kernel_size=3)
    affine = coupling.AffineCoupling(net, coupling.make_checker_mask((4, 4), 0))
    text = _message(core.guarded_call, "answer", affine.forward, (torch.randn(2, 4, 4),), codes=codes)
    assert text.startswith("answer calls AffineCoupling.forward (coupling.py)"), text
