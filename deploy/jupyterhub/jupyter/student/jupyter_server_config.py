"""A student's server on the course hub: JupyterLab in their HOME, nbgrader's Assignments list
(Nbgrader menu -> Assignment List: fetch, validate, submit, fetch feedback), none of the instructor
tools. Unlike binder/jupyter, the Nbgrader menu stays on (it holds only "Assignment List" once the
instructor plugins are off: labconfig/page_config.json), because on the hub students hand in
through nbgrader's exchange."""

c = get_config()  # noqa: F821 - provided by Jupyter

c.ServerApp.default_url = "/lab"
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
# nbgrader enables its four server extensions in the environment; switch off the instructor's two.
c.ServerApp.jpserver_extensions.update({
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.course_list": False,
})
