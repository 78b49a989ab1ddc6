"""A failed visible test, as a student sees it in a Jupyter kernel: the message first and short.

Before, an unanswered exercise printed a 45-line chained traceback through the grader's
internals (``guarded_call``, ``_call``, the grader's source lines) with the helpful
``GradingError`` on the last line. The kernel now shows the message alone, plus the student's
own failing lines when their code raised.
"""

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

SETUP = "import torch\nfrom lftutor.graders import training as grading"
UNANSWERED = "def ess(log_p, log_q):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
RAISING = "def ess(log_p, log_q):\n    n = log_p.shape[0]\n    return n / 0"
TEST = 'grading.check_ess(ess, level="visible")'


def _run(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True)
    try:
        client.execute()
    except CellExecutionError:  # pragma: no cover - allow_errors keeps going
        pass
    errors = [o for o in nb.cells[-1].outputs if o["output_type"] == "error"]
    assert len(errors) == 1, nb.cells[-1].outputs
    return errors[0]


@pytest.mark.slow
def test_an_unanswered_exercise_shows_the_lesson_first_and_no_grader_internals():
    error = _run(SETUP, UNANSWERED, TEST)
    text = "\n".join(error["traceback"])
    assert error["ename"] == "GradingError"
    first = error["traceback"][0]
    assert "GradingError" in first and "replace the line `raise NotImplementedError()`" in first
    for internal in ("guarded_call", "_call", "graders/", "core.py", "During handling"):
        assert internal not in text, internal
    assert len(text.splitlines()) <= 3, text


@pytest.mark.slow
def test_when_the_students_code_raises_its_own_line_is_still_shown():
    error = _run(SETUP, RAISING, TEST)
    text = "\n".join(error["traceback"])
    assert error["traceback"][0].count("GradingError") == 1 and "ZeroDivisionError" in error["traceback"][0]
    assert "return n / 0" in text and "Your code raised it here" in text
    assert "guarded_call" not in text and "core.py" not in text
