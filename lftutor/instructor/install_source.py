"""Where Colab installs lftutor from, and where the badges point: one setting.

``pyproject.toml`` holds it::

    [project.urls]
    Repository = "https://github.com/lftutor/lftutor"

    [tool.lftutor]
    colab-install-ref = "main"   # a branch, or a release tag such as "v0.1.0"

``python -m lftutor release`` writes ``lftutor @ git+<Repository>@<ref>`` into the install line of
every notebook of ``solutions/`` (and so of ``course/``) and the Binder badge of the README
(``.../v2/gh/<owner>/<repo>/<ref>?...``); ``release --check`` and
``tests/test_install_source.py`` fail when they disagree. To pin a term's notebooks to a release,
tag it, set ``colab-install-ref`` to the tag and run ``make release``. A student can also edit
the cell's ``LFTUTOR_INSTALL`` to a wheel's address or path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["InstallSource", "install_source", "notebook_problems", "readme_problems",
           "sync_notebooks", "sync_readme"]

#: The quoted requirement in a notebook's install cell.
REQUIREMENT = re.compile(r'"lftutor @ git\+[^"@]+(?:@[^"]*)?"')
#: The Binder badge's link in the README.
BINDER = re.compile(r"https://mybinder\.org/v2/gh/[^/\s)]+/[^/\s)]+/[^?\s)]+")


@dataclass(frozen=True)
class InstallSource:
    repository: str  # https://github.com/OWNER/NAME
    ref: str  # branch or tag

    @property
    def requirement(self) -> str:
        return f"lftutor @ git+{self.repository}@{self.ref}"

    @property
    def binder(self) -> str:
        owner_name = self.repository.rstrip("/").removeprefix("https://github.com/")
        return f"https://mybinder.org/v2/gh/{owner_name}/{self.ref}"


def install_source(root: Path) -> InstallSource | None:
    """The setting of the course at ``root`` (``None`` without a ``pyproject.toml``)."""
    path = Path(root, "pyproject.toml")
    if not path.is_file():
        return None
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    try:
        repository = data["project"]["urls"]["Repository"]
    except KeyError as err:
        raise ValueError(f"expected [project.urls] Repository in {path}, found none") from err
    ref = data.get("tool", {}).get("lftutor", {}).get("colab-install-ref", "main")
    if not repository.startswith("https://github.com/"):
        raise ValueError(f"expected a https://github.com/OWNER/NAME Repository in {path}, "
                         f"got {repository!r}")
    return InstallSource(repository, ref)


def _install_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and REQUIREMENT.search(c.source)]


def notebook_problems(path: Path, source: InstallSource) -> list[str]:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = _install_cells(nb)
    if not cells:
        return [f"{path}: no install cell (\"lftutor @ git+...\") for Colab"]
    want = f'"{source.requirement}"'
    return [f"{path}: installs {m} on Colab, pyproject.toml says {want}"
            for c in cells for m in REQUIREMENT.findall(c.source) if m != want]


def sync_notebooks(folder: Path, source: InstallSource) -> list[Path]:
    """Write ``source`` into the install cell of every notebook under ``folder``; returns the
    notebooks changed."""
    import nbformat

    changed = []
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        nb = nbformat.read(path, as_version=4)
        dirty = False
        for cell in _install_cells(nb):
            new = REQUIREMENT.sub(f'"{source.requirement}"', cell.source)
            if new != cell.source:
                cell.source, dirty = new, True
        if dirty:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def readme_problems(readme: Path, source: InstallSource) -> list[str]:
    if not readme.is_file():
        return []
    return [f"{readme}: the Binder badge points to {m}, pyproject.toml says {source.binder}"
            for m in BINDER.findall(readme.read_text(encoding="utf-8")) if m != source.binder]


def sync_readme(readme: Path, source: InstallSource) -> bool:
    if not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8")
    new = BINDER.sub(source.binder, text)
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text
