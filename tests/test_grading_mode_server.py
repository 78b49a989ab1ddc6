"""Grading mode is on where notebooks are graded and nowhere else (issue 10, defect 1).

``make lab`` starts JupyterLab from the repository root; nbgrader's server extensions then load
``nbgrader_config.py`` into the server, and every kernel the server starts inherits the server's
environment. The config used to set ``LFTUTOR_GRADING=1`` there, so every student's notebook
trained for 3 steps. These tests start the real server as ``make lab`` does and read grading mode
inside a kernel started through its REST API; and they check that plain ``nbgrader autograde`` (run
from the course root, as the README shows) still grades in grading mode.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nbformat
import pytest
from labserver import REPO, LabServer, clean_env

from lftutor import course

PROBE = ("import json, os\nfrom lftutor.course import grading_mode\n"
         "print('PROBE' + json.dumps({'grading': grading_mode(), "
         "'LFTUTOR_GRADING': os.environ.get('LFTUTOR_GRADING'), "
         "'NBGRADER_EXECUTION': os.environ.get('NBGRADER_EXECUTION')}))\n")


def _probe(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith("PROBE")]
    assert lines, f"the probe printed nothing readable:\n{text}"
    return json.loads(lines[-1][len("PROBE"):])


@pytest.mark.parametrize("env,expected", [
    ({}, False),
    ({"NBGRADER_EXECUTION": "autograde"}, True),
    ({"NBGRADER_EXECUTION": "validate"}, True),
    ({"NBGRADER_EXECUTION": "something else"}, False),
    ({"LFTUTOR_GRADING": "1"}, True),
    ({"LFTUTOR_GRADING": "yes"}, True),
    ({"LFTUTOR_GRADING": "0", "NBGRADER_EXECUTION": "autograde"}, False),  # explicit wins
    ({"LFTUTOR_GRADING": "", "NBGRADER_EXECUTION": "autograde"}, True),  # empty: not a decision
    ({"LFTUTOR_GRADING": ""}, False),
])
def test_grading_mode_reads_nbgrader_execution_and_the_explicit_switch(monkeypatch, env, expected):
    for name in ("LFTUTOR_GRADING", "NBGRADER_EXECUTION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert course.grading_mode() is expected
    assert course.budget("full", "short") == ("short" if expected else "full")


def test_train_seconds_scales_full_mode_only(monkeypatch):
    for name in ("LFTUTOR_GRADING", "NBGRADER_EXECUTION", "LFTUTOR_TIME_SCALE"):
        monkeypatch.delenv(name, raising=False)
    assert course.train_seconds(120, 2) == 120.0
    monkeypatch.setenv("LFTUTOR_TIME_SCALE", "0.05")
    assert course.train_seconds(120, 2) == pytest.approx(6.0)
    assert course.budget(8192, 256) == 8192  # the time scale is not grading mode
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert course.train_seconds(120, 2) == 2.0
    for bad in ("0", "-1", "fast", "nan", "inf"):
        monkeypatch.setenv("LFTUTOR_TIME_SCALE", bad)
        with pytest.raises(ValueError, match="LFTUTOR_TIME_SCALE"):
            course.time_scale()


def test_loading_the_course_config_switches_nothing_on(monkeypatch):
    """What the nbgrader server extensions do on start: load nbgrader_config.py in-process."""
    from traitlets.config.loader import PyFileConfigLoader

    monkeypatch.delenv("LFTUTOR_GRADING", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    import os

    assert "LFTUTOR_GRADING" not in os.environ and not course.grading_mode()


@pytest.mark.slow
def test_kernel_started_by_make_lab_server_is_not_in_grading_mode(tmp_path):
    with LabServer(REPO / "course", tmp_path / "lab") as lab:
        # the nbgrader extensions are loaded (so nbgrader_config.py was read by the server)
        extensions = lab.api("GET", "/api/status")
        assert extensions is not None
        probe = _probe(lab.run_in_new_kernel(PROBE))
        log = lab.log()
    assert "nbgrader" in log, f"the nbgrader server extensions did not load:\n{log}"
    assert probe == {"grading": False, "LFTUTOR_GRADING": None, "NBGRADER_EXECUTION": None}, log


@pytest.mark.slow
def test_make_lab_server_switches_off_the_news_pop_up(tmp_path):
    """binder/jupyter/labconfig disables the announcements plugin ("get notified about Jupyter
    news?"), for make lab and Binder alike: the page JupyterLab serves lists it as disabled."""
    import re
    import urllib.request

    with LabServer(REPO / "course", tmp_path / "lab") as lab:
        with urllib.request.urlopen(f"{lab.url}/lab?token={lab.token}", timeout=30) as resp:
            page = resp.read().decode()
    match = re.search(r'"disabledExtensions":\s*\[([^\]]*)\]', page)
    assert match, "no page config with disabledExtensions in the served /lab page"
    assert "@jupyterlab/apputils-extension:announcements" in match.group(1), match.group(0)


def _notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    meta = {"grade": True, "grade_id": "test_grading_mode", "locked": True, "points": 1,
            "schema_version": 3, "solution": False, "task": False}
    nb.cells = [nbformat.v4.new_code_cell(PROBE),
                nbformat.v4.new_code_cell("from lftutor.course import grading_mode\nassert grading_mode()",
                                          metadata={"nbgrader": meta})]
    return nb


@pytest.mark.slow
def test_plain_nbgrader_autograde_grades_in_grading_mode(tmp_path):
    root = tmp_path / "course_root"
    (root / "solutions" / "mode").mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root)
    nbformat.write(_notebook(), root / "solutions" / "mode" / "mode.ipynb")
    env = clean_env({"PYTHONPATH": str(REPO)})

    def nbgrader(*args):
        proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"nbgrader {args} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"

    nbgrader("generate_assignment", "mode", "--force")
    submitted = root / "submitted" / "jdoe42" / "mode"
    submitted.mkdir(parents=True)
    shutil.copy(root / "course" / "mode" / "mode.ipynb", submitted)
    nbgrader("autograde", "mode", "--force")

    graded = nbformat.read(root / "autograded" / "jdoe42" / "mode" / "mode.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for o in graded.cells[0].outputs)
    assert _probe(printed)["grading"] is True
    assert not [o for o in graded.cells[1].outputs if o["output_type"] == "error"]
