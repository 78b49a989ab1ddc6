"""End-to-end autograding of every unit (real nbgrader, real kernels, one run per unit).

Each unit of ``solutions/`` (and the fixture unit) is graded once with a class of fake students
(see ``harness.make_cases``); each test below checks one promise of ``python -m lftutor grade``.
"""

from __future__ import annotations

import csv

import pytest

from autograde_tests import students as st
from autograde_tests.conftest import UNITS
from autograde_tests.specs import SPECS
from lftutor.instructor.feedback import BEGIN, find_hidden_code, html_to_text, identifying_lines, split_hidden

pytestmark = pytest.mark.slow
units = pytest.mark.parametrize("unit", UNITS)


def scores(result) -> dict:
    return result["cells"]


def full(graded) -> dict:
    return graded.report["max_scores"]


def _assert_scores(graded, student, expected: dict):
    result = graded.result(student)
    assert result["status"] == "graded", f"{student}: {result['reason']}"
    wrong = {cell: (scores(result).get(cell), want) for cell, want in expected.items()
             if scores(result).get(cell) != want}
    assert not wrong, (f"{graded.unit}/{student} ({graded.cases[student].note}): "
                       f"cell: (got, expected) {wrong}")


def _executed_to_the_end(nb) -> list[str]:
    """Problems: code cells not executed, or stopped by the timeout."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if cell.get("execution_count") is None:
            problems.append(f"cell {i} was not executed")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") == "CellTimeoutError":
                problems.append(f"cell {i} ({st.grade_id(cell)}) timed out")
    return problems


@units
def test_every_autograded_cell_is_in_the_gradebook(graded, unit):
    g = graded(unit)
    assert set(full(g)) == set(st.autograded_ids(g.release))
    assert all(points > 0 for points in full(g).values())


@units
def test_solution_scores_full_marks(graded, unit):
    g = graded(unit)
    _assert_scores(g, "solution", full(g))
    assert not g.result("solution")["repaired"]
    assert _executed_to_the_end(g.autograded("solution")) == []


@units
def test_untouched_release_scores_zero_and_runs_to_the_end(graded, unit):
    g = graded(unit)
    _assert_scores(g, "release", dict.fromkeys(full(g), 0.0))
    assert g.result("release")["timed_out"] == []
    assert _executed_to_the_end(g.autograded("release")) == []


@units
def test_each_typical_mistake_loses_only_its_exercise(graded, unit):
    g = graded(unit)
    spec = SPECS.get(unit)
    assert spec is not None, f"add the typical mistakes of {unit} to autograde_tests/specs.py"
    covered = {cell for case in g.cases.values() if case.expect == "mistake" for cell in case.zero_cells}
    missing = set(full(g)) - covered
    assert not missing, (f"{unit}: no typical mistake fails {sorted(missing)}: add one to "
                         "autograde_tests/specs.py")
    for student, case in g.cases.items():
        if case.expect != "mistake":
            continue
        expected = dict(full(g))
        expected.update(dict.fromkeys(case.zero_cells, 0.0))
        _assert_scores(g, student, expected)


@units
def test_tampered_tests_are_restored_and_graded_from_the_source(graded, unit):
    g = graded(unit)
    _assert_scores(g, "tamperloop", full(g))  # deleted/relabelled/emptied tests still ran
    repaired = set(g.result("tamperloop")["repaired"])
    assert {f"{gid} ({problem})" for gid, problem in g.tampered.items()} <= repaired
    # emptied, relabelled or unlabelled tests around wrong answers earn nothing
    _assert_scores(g, "cheat", dict.fromkeys(full(g), 0.0))
    assert len(g.result("cheat")["repaired"]) == len(full(g))


@units
def test_student_originals_are_kept(graded, unit):
    g = graded(unit)
    originals = g.root / "grading" / unit / "originals" / "tamperloop"
    kept = sorted(originals.glob("*.ipynb"))
    assert [p.name for p in kept] == [g.notebook_name]
    assert kept[0].read_bytes() == g.originals["tamperloop"]
    assert not (g.root / "grading" / unit / "originals" / "solution").exists()  # nothing to repair


@units
def test_endless_loop_is_stopped_and_the_rest_is_graded(graded, unit):
    g = graded(unit)
    result = g.result("tamperloop")
    first_answer = st.answer_ids(g.release)[0]
    assert len(result["timed_out"]) == 1 and first_answer in result["timed_out"][0]
    _assert_scores(g, "tamperloop", full(g))
    problems = _executed_to_the_end(g.autograded("tamperloop"))
    assert len(problems) == 1 and "timed out" in problems[0]


@units
def test_corrupted_notebook_fails_only_that_student(graded, unit):
    g = graded(unit)
    result = g.result("corrupt")
    assert result["status"] == "failed"
    assert "is not a valid notebook" in result["reason"] and "corrupt" in result["reason"]
    others = [s for s in g.report["students"] if s["student"] != "corrupt"]
    assert others and all(s["status"] == "graded" for s in others)
    assert g.exit_code == 3  # some student failed


@units
def test_monkeypatching_answer_earns_nothing(graded, unit):
    g = graded(unit)
    assert SPECS.get(unit) and SPECS[unit].cheats, f"add a Cheat for {unit} to autograde_tests/specs.py"
    _assert_scores(g, "cheat", dict.fromkeys(full(g), 0.0))


def _hidden_lines(g) -> list[str]:
    hidden, visible = [], []
    for cell in g.solution.cells:
        v, h = split_hidden(cell.source)
        hidden += h
        visible.append(v)
    return identifying_lines(hidden, "\n".join(visible))


@units
def test_feedback_shows_no_hidden_test_code(graded, unit):
    g = graded(unit)
    hidden = _hidden_lines(g)
    if st.hidden_test_ids(g.solution):
        assert hidden, "hidden tests found but no line to look for"
    checked = 0
    for result in g.report["students"]:
        if result["status"] != "graded":
            continue
        page = g.feedback_html(result["student"])
        assert BEGIN not in page
        leaks = find_hidden_code(html_to_text(page), hidden)
        assert not leaks, f"{result['student']}'s feedback shows hidden test code: {leaks}"
        checked += 1
    assert checked >= 5


@units
def test_feedback_says_in_words_what_failed(graded, unit):
    """A failing hidden check shows its exception type and message, not its traceback."""
    g = graded(unit)
    for student, case in g.cases.items():
        if case.expect != "mistake":
            continue
        nb = g.autograded(student)
        text = html_to_text(g.feedback_html(student))
        for cell in nb.cells:
            if st.grade_id(cell) not in case.zero_cells:
                continue
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            assert errors, f"{student}: {st.grade_id(cell)} scored 0 without an error"
            message = " ".join(f"{errors[-1]['ename']}: {errors[-1]['evalue']}".split())
            assert message in " ".join(text.split()), f"{student}: feedback lacks {message!r}"


def test_grades_csv_matches_the_report(graded):
    g = graded(UNITS[-1])
    with open(g.report["csv_path"], newline="", encoding="utf-8") as fh:
        rows = {row["student_id"]: row for row in csv.DictReader(fh)}
    for result in g.report["students"]:
        row = rows[result["student"]]
        assert row["status"] == result["status"]
        if result["status"] == "graded":
            assert float(row["score"]) == result["score"]
            for cell, value in result["cells"].items():
                assert float(row[cell]) == value


def test_fixture_feedback_quotes_the_hidden_message(graded):
    """The fixture's square() mistake is caught only by a hidden assert: its message reaches
    the student, its code does not."""
    g = graded("fixture")
    text = html_to_text(g.feedback_html("typical-square"))
    assert "AssertionError: square() is wrong for negative numbers" in text
    assert "HIDDEN_CANARY_SQUARE" not in text
    assert "hidden tests: run by the grader, not shown" in text


def _nbgrader_feedback(g, folder, *, nbgrader_defaults: bool) -> str:
    """Feedback made by nbgrader's own API (as the formgrader's button does), as text."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    from lftutor.instructor.nbgrader_api import load_config, make_api

    cfg = load_config(g.root)
    cfg.CourseDirectory.feedback_directory = str(folder)
    if nbgrader_defaults:
        cfg.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor]
    result = make_api(cfg).generate_feedback("fixture", "typical-square", force=True)
    assert result["success"], result
    return html_to_text((folder / "typical-square" / "fixture" / "fixture.html").read_text())


def test_plain_nbgrader_feedback_would_leak(graded, tmp_path, restore_environ):
    """Control for the leak detector: with nbgrader's default feedback preprocessors the same
    autograded notebook does show the hidden tests, and the detector finds them."""
    g = graded("fixture")
    text = _nbgrader_feedback(g, tmp_path / "plain_feedback", nbgrader_defaults=True)
    assert find_hidden_code(text, _hidden_lines(g))


def test_course_config_hides_hidden_tests_in_nbgrader_feedback(graded, tmp_path, restore_environ):
    """nbgrader_config.py's own feedback preprocessors (used by the formgrader's button and
    `nbgrader generate_feedback`) hide the hidden tests but keep their failure message."""
    g = graded("fixture")
    text = _nbgrader_feedback(g, tmp_path / "course_feedback", nbgrader_defaults=False)
    assert not find_hidden_code(text, _hidden_lines(g))
    assert "AssertionError: square() is wrong for negative numbers" in text
