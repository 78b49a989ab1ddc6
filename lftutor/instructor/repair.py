"""Put a submission's locked and graded cells back as the release had them.

Plain nbgrader 0.9.6 grades a submission only as well as the submission keeps its structure:
a deleted test cell earns no score, and a test cell whose nbgrader metadata was edited stops
the whole autograde with "Inconsistent checksums". :func:`repair_notebook` rebuilds the
notebook around the student's answers:

* every *protected* cell of the release (locked, graded-but-not-answer, or task) is emitted,
  source and metadata, at its place in the release order;
* every *answer* cell (``solution: true``) found by its ``grade_id`` keeps the student's source,
  with the release's nbgrader metadata;
* every other student cell (scratch work, unlocked markdown) stays, right after the answer or
  protected cell it followed in the submission; copies of protected cells are dropped.

The student's own file is never lost: :func:`repair_file` backs it up before rewriting it.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

#: Notebook metadata key recording that lftutor rewrote a submission (and where the original is).
MARKER = "lftutor_repair"


@dataclass(frozen=True)
class Repair:
    """One protected cell that had to be put back: its ``grade_id`` and what was wrong."""

    grade_id: str
    problem: str  # "deleted", "source edited", "metadata altered", "cell type changed", "moved"

    def __str__(self) -> str:
        return f"{self.grade_id} ({self.problem})"


def _nbgrader(cell) -> dict | None:
    """The cell's nbgrader metadata if it is well formed enough to name a cell, else None."""
    md = cell.get("metadata", {}).get("nbgrader")
    if isinstance(md, dict) and isinstance(md.get("grade_id"), str):
        return md
    return None


def _grade_id(cell) -> str | None:
    md = _nbgrader(cell)
    return md["grade_id"] if md else None


def is_protected(cell) -> bool:
    """Locked cells, graded cells that are not answers, and task cells: students may not
    change them, the grader restores them."""
    md = _nbgrader(cell)
    if md is None:
        return False
    if md.get("solution"):
        return False
    return bool(md.get("locked") or md.get("grade") or md.get("task"))


def is_answer(cell) -> bool:
    md = _nbgrader(cell)
    return bool(md and md.get("solution"))


def _norm(source: str) -> str:
    return source.replace("\r\n", "\n").strip()


def _fresh_copy(cell):
    cell = copy.deepcopy(cell)
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def _problem(student_cell, release_cell) -> str | None:
    if student_cell.cell_type != release_cell.cell_type:
        return "cell type changed"
    if _norm(student_cell.source) != _norm(release_cell.source):
        return "source edited"
    ignore = {"checksum"}  # nbgrader recomputes it anyway

    def meta(cell):
        return {k: v for k, v in cell.metadata.get("nbgrader", {}).items() if k not in ignore}

    if meta(student_cell) != meta(release_cell):
        return "metadata altered"
    return None


def repair_notebook(submitted, release):
    """Rebuild ``submitted`` (a notebook node) around the protected cells of ``release``.

    Returns ``(notebook, repairs)``; ``repairs`` lists the protected cells that were missing,
    edited, re-typed or moved, and is empty when the submission was intact (the notebook
    returned is then ``submitted`` itself, untouched).

    Student cells are placed by anchors: protected and answer cells by ``grade_id``, other
    release cells (instructions) by identical source; each remaining student cell follows the
    anchor it followed in the submission.
    """
    anchors = _Anchors.of(release)
    placed = _place_cells(submitted, anchors)
    _find_deleted_and_moved(anchors, placed)
    if not placed.problems and not placed.changed:
        return submitted, []
    return _rebuild(submitted, anchors, placed)


@dataclass
class _Anchors:
    """The release's cells and how a student cell is matched to one of them."""

    cells: list
    index_of: dict[str, int]  # grade_id -> release index of its (first) protected or answer cell
    protected_ids: set[str]
    protected_by_source: dict[str, str]  # normalised source of a protected cell -> its grade_id
    plain_by_source: dict[str, list[int]]  # normalised source of an instruction -> release indices

    @classmethod
    def of(cls, release) -> _Anchors:
        cells = list(release.cells)
        index_of = {}
        for i, cell in enumerate(cells):
            gid = _grade_id(cell)
            if gid is not None and (is_protected(cell) or is_answer(cell)):
                index_of.setdefault(gid, i)
        tracked = set(index_of.values())
        protected_ids = {gid for gid, i in index_of.items() if is_protected(cells[i])}
        protected_by_source = {_norm(cells[index_of[gid]].source): gid for gid in protected_ids
                               if _norm(cells[index_of[gid]].source)}
        plain_by_source: dict[str, list[int]] = defaultdict(list)
        for i, cell in enumerate(cells):
            if i not in tracked and _norm(cell.source):
                plain_by_source[_norm(cell.source)].append(i)
        return cls(cells, index_of, protected_ids, protected_by_source, plain_by_source)


@dataclass
class _Placement:
    """Where the submission's cells go in the repaired notebook, and what was wrong."""

    kept: dict[int, object] = field(default_factory=dict)  # release index -> the student's cell
    attached: dict[int, list] = field(default_factory=lambda: defaultdict(list))  # cells after it
    problems: dict[str, str] = field(default_factory=dict)  # grade_id -> Repair.problem
    seen: set[str] = field(default_factory=set)  # grade_ids of tracked cells found
    order: list[int] = field(default_factory=list)  # their release indices, in submission order
    changed: bool = False  # the notebook must be rewritten even without a problem


def _place_cells(submitted, anchors: _Anchors) -> _Placement:
    """Walk the submission once, matching each cell to its anchor (see :func:`repair_notebook`)."""
    placed = _Placement()
    current = -1  # release index of the last anchor met; -1: before the first
    for cell in submitted.cells:
        gid = _grade_id(cell)
        if gid in anchors.index_of and gid not in placed.seen:
            current = _place_tracked(cell, gid, anchors, placed)
        else:
            current = _place_untracked(cell, gid, current, anchors, placed)
    return placed


def _place_tracked(cell, gid: str, anchors: _Anchors, placed: _Placement) -> int:
    """A protected or answer cell, first with its grade_id: note a protected cell's problem, keep
    an answer (the student's source, the release's type and metadata). Returns its release index."""
    placed.seen.add(gid)
    current = anchors.index_of[gid]
    placed.order.append(current)
    release_cell = anchors.cells[current]
    if gid in anchors.protected_ids:
        problem = _problem(cell, release_cell)
        if problem:
            placed.problems[gid] = problem
    else:
        if (cell.cell_type != release_cell.cell_type
                or cell.metadata["nbgrader"] != release_cell.metadata["nbgrader"]):
            placed.changed = True
        cell = copy.deepcopy(cell)
        cell.metadata["nbgrader"] = copy.deepcopy(release_cell.metadata["nbgrader"])
        placed.kept[current] = cell
    return current


def _place_untracked(cell, gid: str | None, current: int, anchors: _Anchors, placed: _Placement) -> int:
    """Not a cell the grader tracks (any more): plain student work from here on. Drops copies of
    protected cells, anchors an instruction cell of the release, attaches anything else to the
    current anchor. Returns the anchor for the cells that follow."""
    if "nbgrader" in cell.get("metadata", {}):
        cell = copy.deepcopy(cell)
        del cell.metadata["nbgrader"]
        placed.changed = True
        if gid in anchors.protected_ids:  # a second copy of a protected cell
            return current
    source = _norm(cell.source)
    twin = anchors.protected_by_source.get(source)
    if twin is not None:  # a protected cell stripped of (or with altered) metadata
        if twin not in placed.seen:
            placed.problems.setdefault(twin, "metadata altered")
        placed.changed = True
        return current
    free = [i for i in anchors.plain_by_source.get(source, []) if i not in placed.kept]
    if free:  # an instruction cell of the release: it anchors what follows
        placed.kept[free[0]] = cell
        return free[0]
    placed.attached[current].append(cell)
    return current


def _find_deleted_and_moved(anchors: _Anchors, placed: _Placement) -> None:
    """Add the tracked cells the submission lacks, and the protected cells out of order."""
    for gid in set(anchors.index_of) - placed.seen:
        if (gid in anchors.protected_ids
                or anchors.cells[anchors.index_of[gid]].metadata["nbgrader"].get("grade")):
            placed.problems.setdefault(gid, "deleted")  # a test, or a manually graded answer
    if placed.order != sorted(placed.order):
        placed.changed = True
        for gid in anchors.protected_ids & placed.seen:
            if _moved(gid, anchors.index_of, placed.order):
                placed.problems.setdefault(gid, "moved")


def _rebuild(submitted, anchors: _Anchors, placed: _Placement):
    """The repaired notebook in release order, and the repairs sorted by release position."""
    cells = list(placed.attached[-1])
    for i, release_cell in enumerate(anchors.cells):
        gid = _grade_id(release_cell)
        if gid in anchors.protected_ids and anchors.index_of[gid] == i:
            cells.append(_fresh_copy(release_cell))
        elif i in placed.kept:
            cells.append(placed.kept[i])
        elif placed.problems.get(gid) == "deleted" and anchors.index_of[gid] == i:
            # a deleted, manually graded answer: give back the empty answer cell to grade
            cells.append(_fresh_copy(release_cell))
        cells.extend(placed.attached[i])
    repaired = copy.deepcopy(submitted)
    repaired.cells = _unique_ids(cells)
    ordered = [Repair(gid, placed.problems[gid]) for gid in
               sorted(placed.problems, key=lambda g: anchors.index_of[g])]
    return repaired, ordered


def _unique_ids(cells: list) -> list:
    """Give a fresh id to a student cell whose id is also the id of a restored cell (a student
    cell that replaced a test cell keeps the test's id): nbformat wants unique cell ids."""
    taken = {c.get("id") for c in cells}
    seen: set[str] = set()
    out = []
    for cell in cells:
        cid = cell.get("id")
        if cid is not None and cid in seen:
            n = 0
            while f"{cid}-{n}" in taken:
                n += 1
            cell = copy.deepcopy(cell)
            cell["id"] = f"{cid}-{n}"
            taken.add(cell["id"])
        seen.add(cell.get("id"))
        out.append(cell)
    return out


def _moved(gid: str, index_of: dict, order: list[int]) -> bool:
    """Whether protected cell ``gid`` sits out of release order among the cells kept."""
    pos = order.index(index_of[gid])
    before, after = order[:pos], order[pos + 1:]
    i = index_of[gid]
    return any(j > i for j in before) or any(j < i for j in after)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def backup_original(path: Path, backup_dir: Path) -> Path:
    """Copy ``path`` into ``backup_dir`` without ever overwriting an earlier, different backup."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    target = backup_dir / path.name
    if target.exists() and _digest(target) != _digest(path):
        target = backup_dir / f"{path.stem}.{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}"
    if not target.exists():
        shutil.copy2(path, target)
    return target


def repair_file(path: Path, release_path: Path, backup_dir: Path) -> list[Repair]:
    """Repair the submitted notebook at ``path`` in place against ``release_path``.

    The student's original is copied to ``backup_dir`` first, once: a notebook that lftutor
    already repaired records where its original is (notebook metadata ``lftutor_repair``) and
    is not backed up again. Returns the repairs, those of an earlier run included. Raises
    whatever :func:`nbformat.read` raises for a file that is not a notebook.
    """
    import nbformat

    submitted = nbformat.read(path, as_version=4)
    release = nbformat.read(release_path, as_version=4)
    previous = submitted.metadata.get(MARKER) or {}
    earlier = [Repair(*item) for item in previous.get("repairs", [])]
    repaired, repairs = repair_notebook(submitted, release)
    if repaired is submitted:
        return earlier
    original = previous.get("original") or str(backup_original(path, backup_dir))
    merged = earlier + [r for r in repairs if r not in earlier]
    repaired.metadata[MARKER] = {"original": original,
                                 "repairs": [[r.grade_id, r.problem] for r in merged]}
    nbformat.write(repaired, path)
    return merged
