"""The package layout: the library, the graders and the CLI work without nbgrader; every unit of
``solutions/`` has its grader module and its autograde spec, named like the unit's folder."""

from __future__ import annotations

import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import lftutor

REPO = Path(__file__).resolve().parents[1]
UNITS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())

# Run code in a fresh interpreter where `import nbgrader` fails, as after `pip install lftutor`
# without the [course] extra (Colab's first cell).
NO_NBGRADER = "import sys\nsys.modules['nbgrader'] = None\n"


def _run_without_nbgrader(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_NBGRADER + code], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def _student_modules() -> list[str]:
    """Every module of lftutor except the instructor pipeline (which alone needs nbgrader)."""
    names = []
    for info in pkgutil.walk_packages(lftutor.__path__, prefix="lftutor."):
        if not info.name.startswith("lftutor.instructor") and info.name != "lftutor.__main__":
            names.append(info.name)
    return names


def test_the_guard_really_hides_nbgrader():
    result = _run_without_nbgrader("import nbgrader")
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr


@pytest.mark.slow
def test_every_library_and_grader_module_imports_without_nbgrader():
    modules = _student_modules()
    assert "lftutor.graders.core" in modules and "lftutor.training.loop" in modules
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    result = _run_without_nbgrader(code + "print('imported', len(sys.modules))")
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_the_training_command_runs_without_nbgrader():
    code = ("import runpy\nsys.argv = ['lftutor', 'train', 'phi4', '--L', '4', '--steps', '5', '--json', "
            "'--quiet', '--eval-samples', '256']\nrunpy.run_module('lftutor', run_name='__main__')")
    result = _run_without_nbgrader(code)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["steps"] == 5 and 0 < report["ess"] <= 1


def test_instructor_commands_without_nbgrader_say_what_to_install():
    code = ("import runpy\nsys.argv = ['lftutor', 'release', '--check']\n"
            "runpy.run_module('lftutor', run_name='__main__')")
    result = _run_without_nbgrader(code)
    assert result.returncode == 1
    assert "instructor commands need nbgrader" in result.stderr and "lftutor[course]" in result.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_every_unit_has_its_grader_module_and_autograde_spec(unit):
    name = re.sub(r"^\d+_", "", unit)
    assert (REPO / "lftutor" / "graders" / f"{name}.py").is_file(), f"add lftutor/graders/{name}.py"
    assert (REPO / "autograde_tests" / "specs" / f"{name}.py").is_file(), \
        f"add autograde_tests/specs/{name}.py"
    (notebook,) = (REPO / "solutions" / unit).glob("*.ipynb")
    nb = nbformat.read(notebook, as_version=4)
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_")
             and c.cell_type == "code"]
    assert tests, f"{unit} has no test cells"
    setup = f"from lftutor.graders import {name} as grading"
    assert any(setup in c.source for c in nb.cells), f"{unit}'s setup cell should say `{setup}`"
    for cell in tests:
        assert "grading." in cell.source, cell.metadata["nbgrader"]["grade_id"]
