"""binder/ stays consistent with pyproject.toml and opens JupyterLab on course/."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from autograde_tests.harness import REPO

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

BINDER = REPO / "binder"


def _binder_requirements() -> tuple[dict[str, Requirement], list[str]]:
    reqs, options = {}, []
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        req = Requirement(line)
        reqs[canonicalize_name(req.name)] = req
    return reqs, options


def _pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = {}
    for line in project["dependencies"] + project["optional-dependencies"]["course"]:
        req = Requirement(line)
        reqs[canonicalize_name(req.name)] = req
    return reqs


def test_binder_installs_exactly_the_runtime_and_course_dependencies():
    binder, _ = _binder_requirements()
    project = _pyproject_requirements()
    assert "lftutor" not in binder, "lftutor itself is installed by postBuild"
    assert set(binder) == set(project), (f"only in binder: {sorted(set(binder) - set(project))}, "
                                         f"only in pyproject: {sorted(set(project) - set(binder))}")


def test_binder_versions_satisfy_pyproject():
    """Every version binder names (a pin or a lower bound) is allowed by pyproject.toml."""
    binder, _ = _binder_requirements()
    project = _pyproject_requirements()
    for name, req in binder.items():
        for spec in req.specifier:
            if spec.operator in ("==", ">=", "~=", "==="):
                version = spec.version.split("+")[0]
                assert project[name].specifier.contains(version, prereleases=True), (
                    f"binder asks for {req}, pyproject.toml allows {project[name]}")


def test_binder_torch_is_the_cpu_build():
    _, options = _binder_requirements()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in options


def test_postbuild_installs_the_checkout_without_dependencies():
    post = BINDER / "postBuild"
    assert os.access(post, os.X_OK), "binder/postBuild must be executable"
    lines = [line.strip() for line in post.read_text().splitlines() if not line.startswith("#")]
    assert "pip install --no-deps -e ." in lines


def test_binder_start_opens_jupyterlab_on_course():
    start = BINDER / "start"
    assert os.access(start, os.X_OK), "binder/start must be executable"
    code = ("from jupyter_server.serverapp import ServerApp; app = ServerApp(); "
            "app.load_config_file(); print(app.root_dir); print(app.default_url)")
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"}
    out = subprocess.run([str(start), sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd="/", timeout=120, check=True).stdout.split()
    assert out[-2:] == [str(REPO / "course"), "/lab"]
