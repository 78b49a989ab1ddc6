"""The students' JupyterLab (``make lab``, Binder: JUPYTER_CONFIG_PATH=binder/jupyter) shows none of
nbgrader's instructor tools, the instructor's (the same server without that folder) keeps them
(issue 25, item 20).

Seen in a browser: the "Create Assignment" sidebar and the Nbgrader menu (with the formgrader and
the course list) were in every student's Lab. The check reads what the server serves: the page
config of /lab (the plugins the front end will not start) and the server extensions' routes.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest
from labserver import REPO, LabServer

INSTRUCTOR_PLUGINS = ("@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                      "@jupyter/nbgrader:course-list", "@jupyter/nbgrader:menu")
STUDENT_PLUGINS = ("@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:validate-assignment")


def _disabled_plugins(lab: LabServer) -> list[str]:
    with urllib.request.urlopen(f"{lab.url}/lab?token={lab.token}", timeout=30) as resp:
        page = resp.read().decode()
    match = re.search(r'"disabledExtensions":\s*(\[[^\]]*\])', page)
    assert match, "no page config with disabledExtensions in the served /lab page"
    return json.loads(match.group(1))


def _status(lab: LabServer, path: str) -> int:
    req = urllib.request.Request(f"{lab.url}{path}", headers={"Authorization": f"token {lab.token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_student_config_lists_the_instructor_plugins_as_disabled():
    """The file itself (fast): every instructor plugin off, the assignment list not."""
    config = json.loads((REPO / "binder" / "jupyter" / "labconfig" / "page_config.json").read_text())
    disabled = {name for name, off in config["disabledExtensions"].items() if off}
    assert set(INSTRUCTOR_PLUGINS) <= disabled
    assert not disabled & set(STUDENT_PLUGINS)


@pytest.mark.slow
def test_make_lab_hides_the_instructor_tools_and_a_plain_lab_keeps_them(tmp_path):
    with LabServer(REPO / "course", tmp_path / "student") as lab:
        disabled = _disabled_plugins(lab)
        formgrader, formgraders, assignments = (_status(lab, p) for p in
                                                ("/formgrader", "/formgraders", "/assignments"))
    for plugin in INSTRUCTOR_PLUGINS:
        assert plugin in disabled, (plugin, disabled)
    for plugin in STUDENT_PLUGINS:
        assert plugin not in disabled, (plugin, disabled)
    assert "@jupyterlab/apputils-extension:announcements" in disabled  # still off
    assert formgrader == 404 and formgraders == 404, (formgrader, formgraders)
    assert assignments != 404, assignments  # the assignment list's server extension is on

    # the instructor: the same server without binder/jupyter on the config path
    empty = tmp_path / "no-config"
    empty.mkdir()
    with LabServer(REPO / "course", tmp_path / "instructor", env={"JUPYTER_CONFIG_PATH": str(empty)}) as lab:
        disabled = _disabled_plugins(lab)
        formgrader = _status(lab, "/formgrader")
    assert not set(disabled) & set(INSTRUCTOR_PLUGINS), disabled
    assert formgrader != 404, formgrader
