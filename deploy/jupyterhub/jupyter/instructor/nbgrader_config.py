"""The instructor's nbgrader settings on the course hub: the course's own nbgrader_config.py
(solutions/ -> course/, the grading sandbox, feedback without hidden tests) from the course
directory, which the instructors' group shares."""

import os

c = get_config()  # noqa: F821 - provided by nbgrader

load_subconfig(os.path.join(os.environ.get("LFTUTOR_COURSE_DIR", "/srv/lftutor"),  # noqa: F821
                            "nbgrader_config.py"))
# Several instructors (the instructors' group) work in one course directory and release to the
# exchange: nbgrader makes what it writes group-writable.
c.CourseDirectory.groupshared = True
