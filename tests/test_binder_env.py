"""Binder from its files (issue 23, part 3): the nearest thing to Binder without Docker.

repo2docker builds Binder's image from ``binder/``: it pip-installs ``binder/requirements.txt``,
runs ``binder/postBuild`` from the repository root with the environment's ``bin/`` first on PATH,
and starts the notebook server as ``binder/start jupyter lab ...``. Here a fresh virtual
environment is made from those two files only (nothing from ``pyproject.toml``'s extras, nothing
from the test venv), the server is started through ``binder/start`` from the repository root
(``binder/start`` alone puts ``binder/jupyter`` on JUPYTER_CONFIG_PATH), and the browser checks of
tests/test_browser.py run against it: unit 4's full session and Run All in unit 7 (2-D flows, whose
plots use seaborn). Every module of lftutor is imported in the server's kernel as well (that needs
torchdiffeq, unit 8's solver; packages imported only inside functions are not reached so). A
package missing from ``binder/requirements.txt`` fails the environment's build, that import or a
notebook here; autograde_tests/test_binder.py checks the file against pyproject.toml.

Not tested: Docker, repo2docker's own base environment (it adds JupyterLab, the notebook and
ipykernel of its own; this environment must get them from ``binder/requirements.txt``), Binder's
launch through mybinder.org, its resource limits. Needs chromium and chromium-driver, as
tests/test_browser.py does (skips where they cannot be had, before building anything).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from labserver import REPO, LabServer
from test_browser import _browser, check_run_all, check_unit_4

pytestmark = pytest.mark.slow

REQUIREMENTS = REPO / "binder" / "requirements.txt"
UNIT = "07_flows_2d"  # one of units 7-10, the quickest (about 2 min on a busy 2-core machine)
TIME_SCALE = 0.02  # its six trainings: 180 s * 0.02 = 4 s in all


def _pip(python: Path, *args: str) -> None:
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *args],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"pip install {' '.join(args)}:\n{proc.stdout}\n{proc.stderr[-3000:]}"


def _unreachable_indexes(requirements: Path) -> bool:
    """Whether an index that ``requirements`` names has a host name that does not resolve."""
    hosts = re.findall(r"--(?:extra-)?index-url[ =]+https?://([^/:\s]+)", requirements.read_text())
    for host in hosts:
        try:
            socket.getaddrinfo(host, 443)
        except OSError:
            return True
    return False


def build_binder_env(venv: Path, requirements: Path = REQUIREMENTS) -> Path:
    """A virtual environment at ``venv`` made as repo2docker makes Binder's: ``pip install -r
    requirements``, then ``binder/postBuild`` from the repository root with ``venv/bin`` first on
    PATH. Returns ``venv/bin``.

    The one departure from Binder: torch is installed first, the release of the test venv as a
    CPU build from the machine's local wheel (as tests/test_colab_wheel.py does), because the CPU
    wheel index that binder/requirements.txt names may be out of reach and PyPI's default Linux
    torch is a multi-GB CUDA build. binder/requirements.txt's ``torch>=...`` is then satisfied and
    everything else comes from it. (Where that index is unreachable, pip is told not to retry it.)"""
    import torch

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    python = bin_dir / "python"
    version = torch.__version__.split("+")[0]
    try:
        _pip(python, "--no-index", "--no-deps", f"torch=={version}")
        _pip(python, f"torch=={version}")  # its own dependencies (sympy, networkx, ...)
    except AssertionError:
        _pip(python, f"torch=={version}", "--extra-index-url", "https://download.pytorch.org/whl/cpu")
    # an index that cannot be resolved costs pip five retries per package (10 s each, minutes in
    # all); without retries it is skipped at once, and PyPI serves everything else, as on Binder
    retries = ["--retries", "0"] if _unreachable_indexes(requirements) else []
    _pip(python, *retries, "-r", str(requirements))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run([str(REPO / "binder" / "postBuild")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"binder/postBuild exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return bin_dir


@pytest.fixture(scope="module")
def binder_bin(tmp_path_factory) -> Path:
    _browser()  # skip before a long build where no browser can be had
    return build_binder_env(tmp_path_factory.mktemp("binder") / "venv")


@pytest.fixture
def binder_lab(binder_bin):
    """A server factory for the browser checks: ``binder/start <venv>/bin/jupyter lab ...`` from
    the repository root, the Binder environment's bin/ first on PATH, JUPYTER_CONFIG_PATH unset
    (binder/start sets it)."""
    def start(root_dir, scratch, *, env=None):
        return LabServer(root_dir, scratch, env={"PYTHONPATH": "", **(env or {})}, cwd=REPO,
                         bin_dir=binder_bin, prefix=[str(REPO / "binder" / "start")], config_path=False)
    return start


IMPORT_ALL = """
import importlib, os, pkgutil, sys, lftutor
for info in pkgutil.walk_packages(lftutor.__path__, "lftutor."):
    if not info.name.endswith("__main__"):  # the CLI, which parses sys.argv when imported
        importlib.import_module(info.name)
print(sys.executable, lftutor.__file__, os.environ.get("JUPYTER_CONFIG_PATH"))
"""


def test_the_server_runs_in_the_binder_environment(binder_bin, binder_lab, tmp_path):
    """The kernel is the Binder environment's Python, imports every module of lftutor, from this
    checkout (as postBuild's editable install makes it); the server found binder/jupyter through
    binder/start."""
    (tmp_path / "root").mkdir()
    with binder_lab(tmp_path / "root", tmp_path / "lab") as lab:
        printed = lab.run_in_new_kernel(IMPORT_ALL, timeout=180)
    assert "Traceback" not in printed, printed
    executable, package, config_path = printed.split()[-3:]
    assert Path(executable).parent == binder_bin, printed
    assert Path(package).is_relative_to(REPO / "lftutor"), printed
    assert config_path.split(os.pathsep)[0] == str(REPO / "binder" / "jupyter"), printed


def test_unit_4_on_binder(binder_lab, tmp_path):
    check_unit_4(tmp_path, binder_lab)


def test_run_all_on_binder(binder_lab, tmp_path):
    check_run_all(tmp_path, binder_lab, UNIT, time_scale=TIME_SCALE)
