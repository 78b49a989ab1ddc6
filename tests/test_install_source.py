"""One setting says where Colab installs lftutor from and where the Binder badge points
(pyproject.toml: [project.urls] Repository, [tool.lftutor] colab-install-ref); the notebooks
and the README agree with it, and `make release` writes it (lftutor/instructor/install_source.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from lftutor.instructor import install_source as src

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "solutions").glob("*/*.ipynb")) + sorted((REPO / "course").glob("*/*.ipynb"))


def test_every_notebook_installs_what_pyproject_says():
    setting = src.install_source(REPO)
    assert setting.requirement == "lftutor @ git+https://github.com/lftutor/lftutor@main"
    problems = [p for path in NOTEBOOKS for p in src.notebook_problems(path, setting)]
    assert len(NOTEBOOKS) >= 20 and problems == []


def test_the_readme_badge_points_where_pyproject_says():
    setting = src.install_source(REPO)
    assert src.readme_problems(REPO / "README.md", setting) == []
    assert setting.binder in (REPO / "README.md").read_text()


def test_release_writes_a_tag_into_the_notebooks_and_the_badge(tmp_path):
    """Pinning a term to a release: the tag goes into every install cell and the badge."""
    shutil.copytree(REPO / "solutions" / "02_phi4_lattice", tmp_path / "02_phi4_lattice")
    readme = tmp_path / "README.md"
    readme.write_text("[![Binder](https://mybinder.org/badge_logo.svg)]"
                      "(https://mybinder.org/v2/gh/lftutor/lftutor/main?urlpath=lab/tree/course)\n")
    tag = src.InstallSource("https://github.com/someone/lftutor-fork", "v0.1.0")
    assert src.notebook_problems(next(tmp_path.glob("*/*.ipynb")), tag)  # disagrees before
    changed = src.sync_notebooks(tmp_path, tag)
    assert len(changed) == 1
    assert src.notebook_problems(changed[0], tag) == []
    cell = next(c for c in nbformat.read(changed[0], as_version=4).cells
                if "lftutor @ git+" in c.source)
    assert '"lftutor @ git+https://github.com/someone/lftutor-fork@v0.1.0"' in cell.source
    assert src.sync_readme(readme, tag)
    assert "gh/someone/lftutor-fork/v0.1.0?urlpath=lab/tree/course" in readme.read_text()
    assert src.sync_notebooks(tmp_path, tag) == []  # idempotent


def test_a_bad_setting_is_a_clear_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match=r"expected \[project.urls\] Repository"):
        src.install_source(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project.urls]\nRepository = "https://gitlab.com/x/y"\n')
    with pytest.raises(ValueError, match="expected a https://github.com/OWNER/NAME"):
        src.install_source(tmp_path)
