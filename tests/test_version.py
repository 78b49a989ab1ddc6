"""The version is written once, in pyproject.toml; lftutor.__version__ reads the installed metadata."""

import importlib.metadata
import sys
from pathlib import Path

import lftutor

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def test_the_version_comes_from_pyproject_through_the_metadata():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert lftutor.__version__ == importlib.metadata.version("lftutor") == pyproject["project"]["version"]
