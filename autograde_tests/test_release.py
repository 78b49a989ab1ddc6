"""course/ is exactly what nbgrader generates from solutions/, and leaks nothing."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest

from autograde_tests import students as st
from autograde_tests.conftest import make_course
from autograde_tests.harness import REPO
from lftutor import cli
from lftutor.instructor import release as rel


def test_course_release_is_up_to_date(restore_environ):
    problems = rel.check_release_up_to_date(REPO)
    assert problems == [], "course/ is out of date with solutions/ (run `make release`):\n" + \
        "\n".join(problems)


@pytest.fixture
def course(tmp_path, restore_environ):
    make_course(tmp_path, ["fixture"])
    return tmp_path


def test_fresh_release_passes_the_check(course):
    assert rel.check_release_up_to_date(course) == []
    assert cli.main(["release", "--course-root", str(course), "--check"]) == 0


def test_release_has_no_solutions_hidden_tests_or_outputs(course):
    text = (course / "course" / "fixture" / "fixture.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "HIDDEN_CANARY"):
        assert marker not in text
    nb = nbformat.read(course / "course" / "fixture" / "fixture.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_check_reports_an_edited_release_cell(course):
    path = course / "course" / "fixture" / "fixture.ipynb"
    nb = nbformat.read(path, as_version=4)
    st.cell_by_id(nb, "test_square").source += "\nassert True"
    nbformat.write(nb, path)
    problems = rel.check_release_up_to_date(course)
    assert len(problems) == 1 and "test_square" in problems[0] and "source" in problems[0]
    assert cli.main(["release", "--course-root", str(course), "--check"]) == 1


def test_check_reports_altered_metadata_and_outputs(course):
    path = course / "course" / "fixture" / "fixture.ipynb"
    nb = nbformat.read(path, as_version=4)
    st.cell_by_id(nb, "test_mean_energy").metadata["nbgrader"]["points"] = 30
    st.cell_by_id(nb, "setup").outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    nbformat.write(nb, path)
    problems = "\n".join(rel.check_release_up_to_date(course))
    assert "test_mean_energy" in problems and "metadata" in problems
    assert "has outputs" in problems


def test_check_reports_leaks_stale_and_missing_units(course):
    (course / "course" / "fixture" / "notes.txt").write_text("### BEGIN HIDDEN TESTS\n")
    shutil.copytree(course / "course" / "fixture", course / "course" / "old_unit")
    problems = "\n".join(rel.check_release_up_to_date(course))
    assert "contains 'BEGIN HIDDEN TESTS'" in problems
    assert "notes.txt: not generated from solutions/" in problems
    assert "old_unit: no such unit" in problems
    shutil.rmtree(course / "course")
    problems = rel.check_release_up_to_date(course)
    assert problems == [f"{course / 'course' / 'fixture'}: missing (run `make release`)"]


def test_release_regenerates_and_strips_outputs(course):
    src = course / "solutions" / "fixture" / "fixture.ipynb"
    nb = nbformat.read(src, as_version=4)
    st.cell_by_id(nb, "setup").outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    st.cell_by_id(nb, "setup").execution_count = 3
    nbformat.write(nb, src)
    assert cli.main(["release", "--course-root", str(course), "fixture"]) == 0
    released = json.loads((course / "course" / "fixture" / "fixture.ipynb").read_text())
    assert all(c.get("outputs", []) == [] and c.get("execution_count") is None
               for c in released["cells"] if c["cell_type"] == "code")


def test_release_refuses_to_ship_a_hidden_test_marker(course):
    (course / "solutions" / "fixture" / "data.txt").write_text("# BEGIN HIDDEN TESTS: the answers\n")
    with pytest.raises(rel.ReleaseError, match="leaks"):
        rel.generate_release(course_root=course, log=lambda *_: None)
    assert cli.main(["release", "--course-root", str(course)]) == 1


def test_release_rejects_unknown_units(course):
    with pytest.raises(rel.ReleaseError, match="expected units from"):
        rel.generate_release(["nope"], course_root=course)


def test_in_process_alembic_head_matches_nbgrader():
    """lftutor stamps new gradebooks with the schema head read in-process; nbgrader's own
    (slow) way runs `alembic heads` in a subprocess. They must agree."""
    import os
    import subprocess
    import sys

    from nbgrader import api

    from lftutor.instructor.nbgrader_api import alembic_head

    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    with api._temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
        out = subprocess.check_output(["alembic", "-c", ini, "heads"], env=env, text=True)
    assert alembic_head() == out.split("\n")[0].split(" ")[0]


def _accidental_code_blocks(source: str) -> list[str]:
    """Markdown lines that a renderer shows as code because they are indented by 4+ spaces after
    a blank line (outside fenced blocks). Our notebooks fence their code, so these are slips."""
    found, fenced, previous = [], False, ""
    for line in source.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("    ") and line.strip() and not previous.strip():
            found.append(line.strip()[:60])
        previous = line
    return found


def test_accidental_code_blocks_are_found():
    assert _accidental_code_blocks("# Title\n\n        # Unit 1\n") == ["# Unit 1"]
    assert _accidental_code_blocks("a\n\n```\n\n    code\n```\n- item\n    continued") == []


@pytest.mark.parametrize("path", sorted((REPO / "solutions").glob("*/*.ipynb")),
                         ids=lambda p: p.parent.name)
def test_markdown_renders_as_text(path):
    nb = nbformat.read(path, as_version=4)
    slips = [(i, line) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
             for line in _accidental_code_blocks(c.source)]
    assert slips == [], f"{path.name}: markdown lines indented into code blocks (cell, line): {slips}"


def test_saved_weights_are_neither_released_nor_reported(course):
    """Running a notebook in place saves weights beside it (unit 4 does): in solutions/ they are
    not released (CourseDirectory.ignore), in course/ they are the student's, not a stale file."""
    (course / "solutions" / "fixture" / "flow.pt").write_bytes(b"weights")
    (course / "course" / "fixture" / "my_flow.pt").write_bytes(b"student weights")
    assert rel.check_release_up_to_date(course) == []
    rel.generate_release(course_root=course, log=lambda *_: None)
    assert not (course / "course" / "fixture" / "flow.pt").exists()
    # an unexpected file of another kind is still reported
    (course / "course" / "fixture" / "stale.ipynb").write_text("{}")
    assert any("stale.ipynb" in p for p in rel.check_release_up_to_date(course))
