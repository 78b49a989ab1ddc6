"""Messages of lftutor.graders.core's result checks (issue 25, item 21): a wrong dtype and wrong
values are reported together, and an item of a result reads "the z returned by f(x) is ...",
never "the z returned by f(x) returned ..."."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lftutor.graders import core
from lftutor.graders.core import GradingError

X64 = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64)


def _message(out, **kwargs) -> str:
    with pytest.raises(GradingError) as err:
        core.tensor_result(out, kwargs.pop("what", "f(x)"), shape=(6,), dtype=torch.float64, **kwargs)
    return str(err.value)


def test_wrong_dtype_with_right_values_names_only_the_dtype():
    text = _message(X64.float(), expected=X64)
    assert "torch.float32 tensor for a torch.float64 input" in text
    assert "wrong too" not in text


def test_wrong_dtype_and_wrong_values_are_reported_at_once():
    text = _message((2 * X64).float(), expected=X64)
    assert "torch.float32 tensor for a torch.float64 input" in text
    assert "values are wrong too (largest error 1" in text and "Fix both" in text


def test_wrong_dtype_and_a_known_mistake_name_the_mistake():
    variants = [(-X64, "the sign is reversed."), (2 * X64, "you doubled it.")]
    text = _message((2 * X64).float(), expected=X64, variants=variants)
    assert "values are wrong too: you doubled it. Fix both." in text
    assert "sign" not in text


def test_integers_and_wrong_values_are_reported_at_once():
    text = _message(torch.arange(6), expected=X64)
    assert "a tensor of integers (torch.int64)" in text and "values are wrong too" in text


def test_without_a_reference_the_dtype_message_is_unchanged():
    text = _message((2 * X64).float())
    assert text.startswith("f(x) returned a torch.float32 tensor") and "wrong too" not in text


@pytest.mark.parametrize("out,says", [
    (np.zeros(6), "is a NumPy array"),
    ((X64, X64), "is a tuple of 2 items"),
    (X64[:3], "is a tensor of shape (3,), expected (6,)"),
    (X64.float(), "is a torch.float32 tensor"),
    (X64 / 0, "is a tensor with NaN or infinite values"),
])
def test_an_item_of_a_result_reads_as_one_sentence(out, says):
    what = "the log_det returned by forward(z)"
    text = _message(out, what=what)
    assert text.startswith(f"{what} {says}"), text
    assert not re.search(r"returned by .* returned", text), text


def test_number_reads_as_one_sentence_too():
    with pytest.raises(GradingError) as err:
        core.number("a string", "the loss returned by step()")
    assert str(err.value).startswith("the loss returned by step() is a str"), err.value


def test_no_grader_builds_a_returned_by_returned_sentence():
    """Sentences that graders write themselves: none says "returned by ... returned"."""
    graders = Path(core.__file__).parent
    for path in graders.glob("*.py"):
        for line in path.read_text().splitlines():
            assert not re.search(r"returned by \{[^}]*\} returned", line), f"{path.name}: {line.strip()}"
