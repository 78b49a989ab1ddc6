"""Make student submissions out of a unit's release and solution notebooks.

A submission starts from the release (what students download) and fills answer cells with
the solution's code (``### BEGIN/END SOLUTION`` lines dropped), possibly mutated by string
replacements; tampering helpers edit, re-label or delete locked test cells.
"""

from __future__ import annotations

import copy
import re

import nbformat

SOLUTION_LINE = re.compile(r"^\s*(#+|<!--)\s*(BEGIN|END) SOLUTION.*$")


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def answer_ids(nb) -> list[str]:
    """grade_ids of the answer (solution) cells, in notebook order."""
    return [grade_id(c) for c in nb.cells if nbgrader(c).get("solution")]


def autograded_ids(nb) -> list[str]:
    """grade_ids of the autograded test cells (code grade cells that are not answers)."""
    return [grade_id(c) for c in nb.cells
            if c.cell_type == "code" and nbgrader(c).get("grade") and not nbgrader(c).get("solution")]


def hidden_test_ids(nb) -> list[str]:
    return [grade_id(c) for c in nb.cells if "BEGIN HIDDEN TESTS" in c.source]


def solution_code(cell) -> str:
    """The solution cell's source without its BEGIN/END SOLUTION marker lines."""
    return "\n".join(line for line in cell.source.split("\n") if not SOLUTION_LINE.match(line))


def cell_by_id(nb, gid: str):
    for cell in nb.cells:
        if grade_id(cell) == gid:
            return cell
    raise KeyError(f"no cell with grade_id {gid!r}")


def solved(release, solution):
    """The release with every answer cell holding the solution's answer."""
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        if nbgrader(cell).get("solution"):
            cell.source = solution_code(cell_by_id(solution, grade_id(cell)))
    return nb


def replace_in_answer(nb, gid: str, old: str, new: str):
    """A copy of ``nb`` whose answer ``gid`` has ``old`` replaced by ``new`` (``old`` must occur)."""
    nb = copy.deepcopy(nb)
    cell = cell_by_id(nb, gid)
    if old not in cell.source:
        raise AssertionError(f"mutation of {gid}: {old!r} does not occur in\n{cell.source}")
    cell.source = cell.source.replace(old, new)
    return nb


def set_answer(nb, gid: str, source: str):
    nb = copy.deepcopy(nb)
    cell_by_id(nb, gid).source = source
    return nb


def append_to_answer(nb, gid: str, code: str):
    nb = copy.deepcopy(nb)
    cell = cell_by_id(nb, gid)
    cell.source = cell.source.rstrip("\n") + "\n" + code
    return nb


def delete_cell(nb, gid: str):
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if grade_id(c) != gid]
    return nb


def edit_cell(nb, gid: str, source: str):
    nb = copy.deepcopy(nb)
    cell_by_id(nb, gid).source = source
    return nb


def relabel_cell(nb, gid: str):
    """Make test cell ``gid`` look like an editable, ungraded answer cell worth 0 points: the
    edits that make plain nbgrader stop with "Inconsistent checksums"."""
    nb = copy.deepcopy(nb)
    md = cell_by_id(nb, gid).metadata
    md["nbgrader"].update(grade=False, solution=True, locked=False, points=0)
    md["editable"] = md["deletable"] = True
    return nb


def strip_metadata(nb, gid: str, source: str | None = None):
    """Remove nbgrader metadata from cell ``gid`` (optionally replacing its source)."""
    nb = copy.deepcopy(nb)
    cell = cell_by_id(nb, gid)
    del cell.metadata["nbgrader"]
    if source is not None:
        cell.source = source
    return nb


def write(nb, path) -> None:
    nbformat.write(nb, str(path))
