"""Instructor side of the course: release, collect, repair, autograde, feedback, grades export.

The only part of lftutor that imports nbgrader; the CLI loads it only when an instructor command
runs. ``python -m lftutor grade ASSIGNMENT --from DOWNLOAD.zip`` runs :func:`grade_assignment`
(see the README's instructor section); ``python -m lftutor release`` runs
:mod:`~lftutor.instructor.release`. Modules: :mod:`~lftutor.instructor.nbgrader_api` (find the
course, load its config, build nbgrader's API), :mod:`~lftutor.instructor.collect` (LMS download ->
``submitted/``), :mod:`~lftutor.instructor.repair` (put locked and test cells back),
:mod:`~lftutor.instructor.feedback` (feedback without hidden tests),
:mod:`~lftutor.instructor.autograde` (the pipeline and its report).
"""

from lftutor.instructor.autograde import GradeReport, StudentResult, grade_assignment
from lftutor.instructor.repair import Repair, repair_notebook

__all__ = ["GradeReport", "Repair", "StudentResult", "grade_assignment", "repair_notebook"]
