"""Fixtures of the autograde tests: one temporary course per unit (the repository's
nbgrader_config.py, the unit's solutions, a fresh release, its own gradebook) and one grading
run per unit, shared by all the tests of that unit. Units grade in parallel
(``LFTUTOR_AUTOGRADE_JOBS``, default 2): each run is one process that mostly waits on kernels."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from autograde_tests.harness import REPO, fixture_units, grade_unit, real_units, unit_source

UNITS = real_units() + fixture_units()
JOBS = max(1, int(os.environ.get("LFTUTOR_AUTOGRADE_JOBS", "2")))


@pytest.fixture
def restore_environ():
    """Grading changes os.environ (PATH for alembic, variables a test sets): undo it afterwards."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def make_course(root, units) -> None:
    """A course folder with the repository's config, ``units``' sources and their release."""
    from lftutor.instructor.release import generate_release

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", root)
    for unit in units:
        shutil.copytree(unit_source(unit), root / "solutions" / unit)
    saved = dict(os.environ)
    try:
        generate_release(course_root=root, log=lambda *_: None)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _selected_units(session) -> list[str]:
    units = []
    for item in session.items:
        unit = getattr(item, "callspec", None) and item.callspec.params.get("unit")
        if unit and unit not in units:
            units.append(unit)
    return units


@pytest.fixture(scope="session")
def graded(request, tmp_path_factory):
    """``graded(unit)``: the unit's class of fake students, graded once per session. The
    fixture unit arrives as an LMS zip of STUDENT_NOTEBOOK.ipynb files (nbgrader zip_collect),
    real units as a folder laid out like submitted/<student>/<unit>/. Every unit the selected
    tests need starts grading on first use."""
    base = tmp_path_factory.mktemp("autograde")
    wanted = _selected_units(request.session) or list(UNITS)
    # kernels side by side: one torch thread each rather than fighting over the cores
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")} if JOBS > 1 else {}
    pool = ThreadPoolExecutor(max_workers=JOBS)
    futures = {}

    def start(unit):
        make_course(base / unit, [unit])
        return pool.submit(grade_unit, unit, base / unit, via_zip=unit not in real_units(), env=env)

    def run(unit):
        if not futures:
            for u in wanted:
                futures[u] = start(u)
        if unit not in futures:
            futures[unit] = start(unit)
        return futures[unit].result()

    yield run
    pool.shutdown(wait=True, cancel_futures=True)
