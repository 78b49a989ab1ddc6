"""Colab from the package: the wheel, installed where only Colab's preinstalled packages are,
runs every unit's notebook (solutions filled in, grading mode) from a folder outside the
repository, so nothing is found by accident in the checkout: shipped weights, graders and plots
must all come from the wheel.

The environment is a fresh virtual environment with what a Colab runtime has before the first
cell (:data:`COLAB_PREINSTALLED`: no JupyterLab, no nbgrader), then the wheel with the
dependencies it declares. A dependency missing from ``pyproject.toml`` or a file missing from the
wheel (weights, data) fails a notebook here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from autograde_tests import students as st

REPO = Path(__file__).resolve().parents[1]
#: What a Colab runtime has preinstalled that lftutor uses (torch, of the same release as here).
COLAB_PREINSTALLED = ["numpy", "scipy", "matplotlib", "seaborn", "scikit-learn", "tqdm",
                      "ipykernel", "ipywidgets"]
UNITS = sorted(p.name for p in (REPO / "solutions").iterdir() if any(p.glob("*.ipynb")))

pytestmark = pytest.mark.slow


def _pip(python: Path, *args: str) -> None:
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *args],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"pip install {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """(python of the Colab-like environment, folder outside the repository)."""
    import torch

    base = tmp_path_factory.mktemp("colab")
    dist = base / "dist"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-w", str(dist), str(REPO)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    wheel = next(dist.glob("lftutor-*.whl"))
    env = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    python = env / "bin" / "python"
    # torch as Colab has it: the release installed here (a CPU build from the local wheel when
    # the machine has one, as the Makefile does), never a multi-GB CUDA download
    version = torch.__version__.split("+")[0]
    try:
        _pip(python, "--no-index", "--no-deps", f"torch=={version}")
        _pip(python, f"torch=={version}")  # its own dependencies (sympy, networkx, ...)
    except AssertionError:
        _pip(python, f"torch=={version}", "--extra-index-url", "https://download.pytorch.org/whl/cpu")
    _pip(python, *COLAB_PREINSTALLED)
    _pip(python, str(wheel))  # with the dependencies the wheel declares
    work = base / "work"  # outside the repository: nothing of the checkout is importable
    work.mkdir()
    return python, work


def test_the_environment_is_colab_like(colab):
    python, _ = colab
    code = ("import importlib.util as u, json, lftutor; print(json.dumps({'lftutor': lftutor.__file__, "
            "'missing': [m for m in ('jupyterlab', 'nbgrader', 'notebook') if u.find_spec(m)]}))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd="/",
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["missing"] == [], f"not preinstalled on Colab, so must not be needed: {info['missing']}"
    assert str(python.parent.parent) in info["lftutor"], info["lftutor"]


@pytest.fixture(scope="module")
def kernelspec(colab, tmp_path_factory):
    """A kernel spec that starts the Colab-like environment's Python, found through JUPYTER_PATH."""
    python, _ = colab
    data = tmp_path_factory.mktemp("jupyter_data")
    spec = data / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python",
        "env": {"LFTUTOR_GRADING": "1", "PYTHONPATH": "", "MPLBACKEND": "agg"}}))
    return data


@pytest.mark.parametrize("unit", UNITS)
def test_every_unit_runs_from_the_wheel(colab, kernelspec, unit, monkeypatch):
    _, work = colab
    monkeypatch.setenv("JUPYTER_PATH", str(kernelspec))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    source = next((REPO / "solutions" / unit).glob("*.ipynb"))
    release = nbformat.read(REPO / "course" / unit / source.name, as_version=4)
    solution = nbformat.read(source, as_version=4)
    nb = st.solved(release, solution)
    nb.cells.append(nbformat.v4.new_code_cell("import lftutor; print('LFTUTOR FROM', lftutor.__file__)"))
    folder = work / unit
    folder.mkdir(exist_ok=True)
    client = NotebookClient(nb, timeout=300, kernel_name="colab",
                            resources={"metadata": {"path": str(folder)}})
    client.execute()
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(nb.cells)
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == [], f"{unit}: {errors}"
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    found = re.search(r"LFTUTOR FROM (\S+)", printed).group(1)
    assert str(colab[0].parent.parent) in found and str(REPO) not in found, found
