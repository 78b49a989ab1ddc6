"""Instructor side of the course: collect, repair, autograde, feedback and grades export.

``python -m lftutor grade ASSIGNMENT --from DOWNLOAD.zip`` runs :func:`grade_assignment`; see
``docs/README_grading.md``. Modules: :mod:`~lftutor.instructor.collect` (LMS download ->
``submitted/``), :mod:`~lftutor.instructor.repair` (put locked and test cells back),
:mod:`~lftutor.instructor.feedback` (feedback without hidden tests),
:mod:`~lftutor.instructor.autograde` (the pipeline and its report).
"""

from lftutor.instructor.autograde import GradeReport, StudentResult, grade_assignment
from lftutor.instructor.repair import Repair, repair_notebook

__all__ = ["GradeReport", "Repair", "StudentResult", "grade_assignment", "repair_notebook"]
