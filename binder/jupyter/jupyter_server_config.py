"""Jupyter settings for Binder and ``make lab``, i.e. for students (found through
JUPYTER_CONFIG_PATH, set by binder/start and the Makefile): JupyterLab opens on course/, the student
release, not on the instructor's solutions/. labconfig/page_config.json switches off the
announcements plugin, whose "get notified about Jupyter news?" pop-up covered the notebook in every
fresh session, and nbgrader's instructor tools in the Lab interface: the "Create Assignment"
sidebar, the Nbgrader menu, the formgrader and the course list. The formgrader's and the course
list's server extensions are switched off below too. What a student could use stays on: the
notebook's "Validate" button and the assignment-list plugin with its server extension (this
course hands work in as files, not through nbgrader's exchange, and without the Nbgrader menu no
menu item opens that list).

Instructors start JupyterLab without this folder on JUPYTER_CONFIG_PATH (``jupyter lab`` from the
repository root, with the venv's bin/ on PATH) and get every nbgrader tool."""

from pathlib import Path

c = get_config()  # noqa: F821 - provided by Jupyter

c.ServerApp.root_dir = str(Path(__file__).resolve().parents[2] / "course")
c.ServerApp.default_url = "/lab"
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"  # no "new version" notices either

# nbgrader enables its four server extensions in the environment's jupyter_server_config.d;
# update (not replace) that table, so that the two a student uses stay on.
c.ServerApp.jpserver_extensions.update({
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.course_list": False,
})
