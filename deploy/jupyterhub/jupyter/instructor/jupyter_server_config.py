"""The instructor's server on the course hub: JupyterLab with every nbgrader tool (formgrader,
course list, Create Assignment, the Nbgrader menu), opened on the course directory (set by the hub)."""

c = get_config()  # noqa: F821 - provided by Jupyter

c.ServerApp.default_url = "/lab"
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
