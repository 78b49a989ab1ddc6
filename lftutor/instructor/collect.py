"""Bring submissions into ``submitted/<student>/<assignment>/`` for nbgrader.

Three sources are accepted:

* an **LMS download**: a ``.zip`` (or a folder) of files named ``STUDENTID_NOTEBOOK.ipynb``,
  e.g. ``jdoe42_phi4_lattice.ipynb`` (anywhere inside the zip; nested zips are unpacked).
  The student id stops at the first underscore; the rest is the notebook name, and a copy
  suffix the LMS or the browser added (``phi4_lattice (1).ipynb``) is ignored. This goes
  through ``nbgrader zip_collect``;
* an **already collected** folder laid out like nbgrader's ``submitted/``:
  ``FOLDER/<student>/<assignment>/*.ipynb``; it is copied;
* nothing: what is already in the course's ``submitted/`` is graded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lftutor.instructor.nbgrader_api import CourseError

#: Matched against the full path of every extracted file (zip_collect's FileNameCollectorPlugin).
DEFAULT_REGEXP = r".*/(?P<student_id>[^_/]+)_(?P<file_id>[^/]+?)(?: ?\(\d+\))?\.ipynb$"


@dataclass
class Collected:
    students: list[str]
    skipped: list[str] = field(default_factory=list)  # files that named no student/notebook


def is_collected_layout(folder: Path, assignment: str) -> bool:
    """Whether ``folder`` looks like ``submitted/``: ``<student>/<assignment>/*.ipynb``."""
    return folder.is_dir() and any(folder.glob(f"*/{assignment}/*.ipynb"))


def submitted_students(submitted: Path, assignment: str) -> list[str]:
    return sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())


def collect(source: Path | None, *, assignment: str, course_root: Path, submitted: Path,
            regexp: str = DEFAULT_REGEXP) -> Collected:
    """Collect ``source`` (see the module doc) into ``submitted``; returns who is there."""
    if source is None:
        students = submitted_students(submitted, assignment)
        if not students:
            raise CourseError(f"no submissions in {submitted}/*/{assignment}/: pass --from "
                              "with the LMS download (zip or folder)")
        return Collected(students)
    source = Path(source).resolve()
    if not source.exists():
        raise CourseError(f"expected a zip file or a folder of submissions, got {source} "
                          "(no such file)")
    if is_collected_layout(source, assignment):
        students = []
        for folder in sorted(source.glob(f"*/{assignment}")):
            dest = submitted / folder.parent.name / assignment
            if dest.resolve() != folder.resolve():
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(folder, dest)
            students.append(folder.parent.name)
        return Collected(students)
    return _zip_collect(source, assignment=assignment, course_root=course_root,
                        submitted=submitted, regexp=regexp)


def _zip_collect(source: Path, *, assignment: str, course_root: Path, submitted: Path,
                 regexp: str) -> Collected:
    archive = course_root / "downloaded" / assignment / "archive"
    if archive.exists():
        shutil.rmtree(archive)
    archive.mkdir(parents=True)
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file():
                dest = archive / path.relative_to(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
    else:
        if source.suffix.lower() not in (".zip", ".gz"):
            raise CourseError(f"expected a .zip file or a folder, got {source}")
        shutil.copy2(source, archive / source.name)
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    cmd = [sys.executable, "-m", "nbgrader", "zip_collect", assignment, "--force",
           "--collector=nbgrader.plugins.zipcollect.FileNameCollectorPlugin",
           f"--FileNameCollectorPlugin.named_regexp={regexp}",
           "--FileNameCollectorPlugin.valid_ext=['.ipynb']"]
    proc = subprocess.run(cmd, cwd=course_root, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise CourseError(f"nbgrader zip_collect failed (exit {proc.returncode}):\n{log}")
    pattern = re.compile(regexp)
    students, skipped = set(), []
    extracted = course_root / "downloaded" / assignment / "extracted"
    for path in sorted(extracted.rglob("*")):
        if not path.is_file():
            continue
        m = pattern.match(str(path))
        if m and path.suffix == ".ipynb":
            students.add(m.group("student_id"))
        elif "__MACOSX" not in path.parts:
            skipped.append(f"{path.relative_to(extracted)}: not named STUDENTID_NOTEBOOK.ipynb")
    if not students:
        raise CourseError(f"no submission in {source} is named STUDENTID_NOTEBOOK.ipynb "
                          f"(regexp {regexp}); nbgrader said:\n{log}")
    missing = students - set(submitted_students(submitted, assignment))
    if missing:
        raise CourseError(f"zip_collect did not collect {sorted(missing)}:\n{log}")
    return Collected(sorted(students), skipped)
