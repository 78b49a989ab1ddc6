"""What can be checked of the hub deployments without running them (issue 23, part 1):
deploy/jupyterhub's per-role Jupyter settings, and deploy/kubernetes (Zero to JupyterHub), which
cannot run on the project's machines (no Kubernetes, no Docker): its values parse, its Python
compiles, its single-user image installs exactly Binder's requirements (which
autograde_tests/test_binder.py keeps equal to pyproject.toml) and lftutor as a package."""

from __future__ import annotations

import json

import pytest
from labserver import REPO

yaml = pytest.importorskip("yaml")

HUB = REPO / "deploy" / "jupyterhub"
K8S = REPO / "deploy" / "kubernetes"
INSTRUCTOR_ONLY = ("@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                   "@jupyter/nbgrader:course-list")


def _disabled(role: str) -> set[str]:
    config = json.loads((HUB / "jupyter" / role / "labconfig" / "page_config.json").read_text())
    return {name for name, off in config["disabledExtensions"].items() if off}


def test_hub_students_get_the_assignment_list_and_no_instructor_tool():
    student, instructor = _disabled("student"), _disabled("instructor")
    assert set(INSTRUCTOR_ONLY) <= student
    # the Nbgrader menu stays: on the hub it is the students' way to the Assignments list
    assert not {"@jupyter/nbgrader:menu", "@jupyter/nbgrader:assignment-list"} & student
    assert not set(INSTRUCTOR_ONLY) & instructor
    server = (HUB / "jupyter" / "student" / "jupyter_server_config.py").read_text()
    assert '"nbgrader.server_extensions.formgrader": False' in server
    assert '"nbgrader.server_extensions.course_list": False' in server


def test_hub_config_files_compile():
    for path in HUB.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


def test_kubernetes_values_parse_and_name_the_pieces():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    assert set(values) >= {"hub", "singleuser"}
    single = values["singleuser"]
    assert single["image"]["name"].endswith("lftutor-singleuser")
    assert single["defaultUrl"] == "/lab"
    assert "ngshare" in values["hub"]["services"]
    assert "configureExchange" in single["extraFiles"]["lftutor-ngshare"]["stringData"]
    for name, code in values["hub"]["extraConfig"].items():
        compile(code, f"values.yaml hub.extraConfig.{name}", "exec")


def test_kubernetes_image_installs_binder_requirements_and_lftutor_as_a_package():
    lines = [line.strip() for line in (K8S / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    text = "\n".join(lines)
    assert "COPY binder/requirements.txt /tmp/lftutor/requirements.txt" in lines
    assert "pip install --no-cache-dir -r /tmp/lftutor/requirements.txt" in text
    # a copy of the package, not an editable checkout: solutions/ never enters the image
    assert "pip install --no-cache-dir --no-deps /tmp/lftutor/src" in text
    assert "solutions" not in text and " -e " not in text
    assert "COPY deploy/jupyterhub/jupyter /etc/lftutor/jupyter" in lines
    assert "/etc/lftutor/jupyter/student:/etc/lftutor/jupyter/common" in text
