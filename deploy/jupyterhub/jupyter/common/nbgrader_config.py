"""nbgrader settings every user of the course hub shares: which course, where the exchange is."""

import os

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = "lftutor"
c.Exchange.root = os.environ.get("LFTUTOR_EXCHANGE", "/srv/nbgrader/exchange")
