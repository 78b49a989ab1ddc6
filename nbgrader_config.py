"""nbgrader configuration of the lftutor course (run nbgrader commands from this folder)."""

import os

from lftutor.instructor.collect import DEFAULT_REGEXP

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = "lftutor"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "course"
# Students' work, the gradebook and feedback stay out of git (see .gitignore).
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")
# Never ship text twins of notebooks (jupytext pairs would leak solutions into the release), nor
# the weights that running a unit-4 notebook in place saves beside it.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py", "*.md",
                             "*.pt"]

# Grading mode (short trainings, so that a notebook grades in seconds) needs nothing here:
# nbgrader sets NBGRADER_EXECUTION=autograde while it executes a submission, the kernel inherits
# it and lftutor.course.grading_mode() reads it. Never set LFTUTOR_GRADING in this file: JupyterLab's
# nbgrader extensions load it into the server that `make lab` and Binder start, and every
# student's kernel would inherit it (tests/test_grading_mode_server.py).

# nbgrader 0.9 reads the per-cell timeout from Execute (ExecutePreprocessor.timeout is ignored).
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True

# `nbgrader zip_collect UNIT` (plain nbgrader, see the README) reads LMS downloads named
# STUDENTID_NOTEBOOK.ipynb, the same scheme as `python -m lftutor grade --from`.
c.ZipCollectApp.collector_plugin = "nbgrader.plugins.zipcollect.FileNameCollectorPlugin"
c.FileNameCollectorPlugin.named_regexp = DEFAULT_REGEXP
c.FileNameCollectorPlugin.valid_ext = [".ipynb"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Audit submitted answers outside the student's kernel (lftutor/graders/audit.py): a notebook that
# patches torch, numpy, lftutor or the graders scores zero on every autograded cell.
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "lftutor.graders.audit.AuditCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Every submission's kernel runs in a bubblewrap sandbox (lftutor/instructor/sandbox.py): no view
# of solutions/, the gradebook or other students' work, nothing writable that a later kernel
# reads, no network, limits on memory, processes, CPU, files and output. This list is nbgrader's
# default with its Execute replaced; `lftutor grade` enforces the same whatever this file says.
# Limits: c.Sandbox.memory_mb, processes, cpu_seconds, file_mb, disk_mb, open_files, output_mb;
# c.Sandbox.enabled = False switches the sandbox off (never for untrusted submissions).
c.Autograde.autograde_preprocessors = [
    "lftutor.instructor.sandbox.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Feedback (the formgrader's button, `nbgrader generate_feedback` and `lftutor grade` alike)
# shows what failed but not the hidden test code (lftutor/instructor/feedback.py). nbgrader's default
# list is [GetGrades, CSSHTMLHeaderPreprocessor]: HideHiddenTests goes between the two.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

from lftutor.instructor.feedback import HideHiddenTests  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]
