"""Repairing submissions (no kernel): locked and test cells go back, answers and scratch stay."""

from __future__ import annotations

import copy

import nbformat
import pytest

from autograde_tests import students as st
from autograde_tests.conftest import make_course
from lftutor.instructor.repair import MARKER, Repair, repair_file, repair_notebook


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("repair")
    make_course(root, ["fixture"])
    return root


@pytest.fixture
def release(course):
    return nbformat.read(course / "course" / "fixture" / "fixture.ipynb", as_version=4)


@pytest.fixture
def solved(course, release):
    solution = nbformat.read(course / "solutions" / "fixture" / "fixture.ipynb", as_version=4)
    return st.solved(release, solution)


def ids(nb):
    return [st.grade_id(c) for c in nb.cells]


def test_intact_submission_is_left_alone(solved, release):
    out, repairs = repair_notebook(solved, release)
    assert out is solved and repairs == []


def test_deleted_test_comes_back_in_place(solved, release):
    out, repairs = repair_notebook(st.delete_cell(solved, "test_square"), release)
    assert repairs == [Repair("test_square", "deleted")]
    assert ids(out) == ids(release)
    assert st.cell_by_id(out, "test_square").source == st.cell_by_id(release, "test_square").source


def test_edited_and_relabelled_tests_are_restored(solved, release):
    nb = st.edit_cell(solved, "test_square", "pass")
    nb = st.relabel_cell(nb, "test_mean_energy")
    out, repairs = repair_notebook(nb, release)
    assert repairs == [Repair("test_square", "source edited"),
                       Repair("test_mean_energy", "metadata altered")]
    for gid in ("test_square", "test_mean_energy"):
        assert st.cell_by_id(out, gid) == st.cell_by_id(release, gid)


def test_unlabelled_copy_of_a_test_is_not_run_twice(solved, release):
    out, repairs = repair_notebook(st.strip_metadata(solved, "test_magnetization"), release)
    assert repairs == [Repair("test_magnetization", "metadata altered")]
    sources = [c.source for c in out.cells]
    assert sources.count(st.cell_by_id(release, "test_magnetization").source) == 1


def test_unlabelled_edited_test_stays_as_student_code_and_the_original_runs(solved, release):
    out, repairs = repair_notebook(st.strip_metadata(solved, "test_square", "pass"), release)
    assert repairs == [Repair("test_square", "deleted")]
    assert ids(out).count("test_square") == 1
    assert "pass" in [c.source for c in out.cells]
    assert len({c.id for c in out.cells}) == len(out.cells), "cell ids must stay unique"
    nbformat.validate(out)


def test_moved_test_goes_back_after_its_answer(solved, release):
    nb = copy.deepcopy(solved)
    test = nb.cells.pop(ids(nb).index("test_square"))
    nb.cells.append(test)
    out, repairs = repair_notebook(nb, release)
    assert Repair("test_square", "moved") in repairs
    assert ids(out) == ids(release)


def test_answers_and_scratch_cells_are_kept_where_they_were(solved, release):
    nb = st.set_answer(solved, "square", "def square(x):\n    return x ** 2  # mine")
    scratch = nbformat.v4.new_code_cell("print(square(5))  # trying things")
    nb.cells.insert(ids(nb).index("square") + 1, scratch)
    nb = st.delete_cell(nb, "test_square")
    out, _ = repair_notebook(nb, release)
    pos = ids(out).index("square")
    assert out.cells[pos].source.endswith("# mine")
    assert out.cells[pos + 1].source == scratch.source
    assert ids(out)[pos + 2] == "test_square"


def test_answer_metadata_is_reset_but_the_answer_kept(solved, release):
    nb = copy.deepcopy(solved)
    st.cell_by_id(nb, "square").metadata["nbgrader"]["points"] = 50
    st.cell_by_id(nb, "square").metadata["nbgrader"]["grade"] = True
    out, _ = repair_notebook(nb, release)
    cell = st.cell_by_id(out, "square")
    assert cell.metadata["nbgrader"] == st.cell_by_id(release, "square").metadata["nbgrader"]
    assert cell.source == st.cell_by_id(solved, "square").source


def test_repair_file_keeps_the_original_once(tmp_path, course, solved):
    release_path = course / "course" / "fixture" / "fixture.ipynb"
    path = tmp_path / "fixture.ipynb"
    st.write(st.delete_cell(solved, "test_square"), path)
    original = path.read_bytes()
    backups = tmp_path / "originals"
    assert repair_file(path, release_path, backups) == [Repair("test_square", "deleted")]
    assert (backups / "fixture.ipynb").read_bytes() == original
    repaired = nbformat.read(path, as_version=4)
    assert repaired.metadata[MARKER]["original"] == str(backups / "fixture.ipynb")
    # grading again: nothing new to repair, the earlier repair is still reported, backup intact
    assert repair_file(path, release_path, backups) == [Repair("test_square", "deleted")]
    assert (backups / "fixture.ipynb").read_bytes() == original
    assert sorted(p.name for p in backups.iterdir()) == ["fixture.ipynb"]


def test_repair_file_raises_on_a_broken_file(tmp_path, course):
    path = tmp_path / "fixture.ipynb"
    path.write_text('{"cells": [')
    with pytest.raises(Exception):  # noqa: B017 - nbformat raises several types
        repair_file(path, course / "course" / "fixture" / "fixture.ipynb", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_deleted_manually_graded_answer_comes_back_empty(course):
    """Unit 1 has a markdown answer graded by hand: without its cell it could not be graded."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("Explain.", metadata={"nbgrader": {
            "grade": True, "solution": True, "locked": False, "points": 2, "grade_id": "why",
            "schema_version": 3, "task": False}}),
        nbformat.v4.new_code_cell("x = 1"),
    ])
    out, repairs = repair_notebook(st.delete_cell(nb, "why"), nb)
    assert repairs == [Repair("why", "deleted")]
    assert ids(out) == ["why", None]
