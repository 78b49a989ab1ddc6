"""Shared plumbing for ``lftutor.instructor.release`` and ``lftutor.instructor``: find the course, load its
``nbgrader_config.py``, and build an :class:`nbgrader.apps.NbGraderAPI` on it.

nbgrader is imported lazily: ``python -m lftutor train`` must not pay for it.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

CONFIG_NAME = "nbgrader_config.py"
#: Markers that must never reach students (``course/``) or their feedback.
LEAK_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
                "BEGIN MARK SCHEME", "END MARK SCHEME")


class CourseError(RuntimeError):
    """A problem with the course folder or with an nbgrader step, with a message for humans."""


def find_course_root(course_root: str | os.PathLike | None = None) -> Path:
    """The folder holding ``nbgrader_config.py``: ``course_root`` if given, else the current
    folder, else the repository this package was installed from (editable install)."""
    if course_root is not None:
        root = Path(course_root).resolve()
        if not (root / CONFIG_NAME).is_file():
            raise CourseError(f"expected {CONFIG_NAME} in the course root {root}, found none")
        return root
    for candidate in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (candidate / CONFIG_NAME).is_file():
            return candidate.resolve()
    raise CourseError(f"no {CONFIG_NAME} in {Path.cwd()}: run from the course folder or pass "
                      "--course-root")


def ensure_tools_on_path() -> None:
    """nbgrader shells out to ``alembic`` (gradebook migrations): put this interpreter's
    ``bin/`` first on PATH so that the venv's alembic is found even if the venv is not active."""
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + path


def load_config(course_root: Path, *, db_path: str | os.PathLike | None = None,
                timeout: int | None = None, log_level: str = "WARN"):
    """The course's nbgrader config, pinned to ``course_root``.

    It also puts this environment's ``bin/`` on ``PATH`` (nbgrader runs ``alembic``). The file
    sets no environment variable: grading mode in the kernels nbgrader starts comes from the
    ``NBGRADER_EXECUTION`` that nbgrader sets itself (:func:`lftutor.course.grading_mode`).
    """
    from traitlets.config.loader import Config, PyFileConfigLoader

    ensure_tools_on_path()
    cfg = PyFileConfigLoader(CONFIG_NAME, path=str(course_root)).load_config()
    merged = Config()
    merged.merge(cfg)
    merged.CourseDirectory.root = str(course_root)
    db = Path(db_path) if db_path is not None else course_root / "gradebook.db"
    merged.CourseDirectory.db_url = "sqlite:///" + str(db)
    if timeout is not None:
        merged.Execute.timeout = int(timeout)
    merged.NbGraderAPI.log_level = log_level
    return merged


@functools.cache
def alembic_head() -> str:
    """The gradebook schema revision, read in-process.

    nbgrader stamps every new gradebook with the output of ``alembic heads``, a subprocess
    that costs seconds (15 s on a busy 2-core machine) for a constant of the installed nbgrader.
    """
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader import api

    with api._temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
        return ScriptDirectory.from_config(Config(ini)).get_current_head()


def make_api(cfg):
    """An :class:`nbgrader.apps.NbGraderAPI` on ``cfg`` (quiet about the missing exchange)."""
    import logging

    from nbgrader import api as gradebook_api
    from nbgrader.apps import NbGraderAPI

    gradebook_api.get_alembic_version = alembic_head

    # The API probes the (unused) exchange folder and logs an error when it is absent.
    logging.getLogger("traitlets").setLevel(logging.CRITICAL)
    return NbGraderAPI(config=cfg)


def coursedir_path(cfg, name: str) -> Path:
    """Absolute path of a CourseDirectory folder trait (``source_directory``, ...)."""
    value = cfg.CourseDirectory.get(name) or {
        "source_directory": "source", "release_directory": "release",
        "submitted_directory": "submitted", "autograded_directory": "autograded",
        "feedback_directory": "feedback"}[name]
    return Path(cfg.CourseDirectory.root, value)


def discover_units(source_dir: Path) -> list[str]:
    """Assignment ids: the folders of ``source_dir`` that hold at least one notebook."""
    if not source_dir.is_dir():
        return []
    return sorted(p.name for p in source_dir.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.ipynb")))


def find_leaks(folder: Path) -> list[str]:
    """``path: marker`` for every file under ``folder`` whose text holds a solution or
    hidden-test marker (any file: a text twin of a notebook leaks as well as the notebook)."""
    leaks = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or ".ipynb_checkpoints" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for marker in LEAK_MARKERS:
            if marker in text:
                leaks.append(f"{path}: contains {marker!r}")
    return leaks
