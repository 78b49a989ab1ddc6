"""Every docstring example in lftutor.bijections and lftutor.training runs and prints what it shows
(zuko runs its doctests)."""

import doctest
import importlib
import pkgutil

import pytest
import torch

import lftutor.bijections
import lftutor.training
from lftutor.bijections.base import Bijection

MODULES = sorted(f"{package.__name__}.{info.name}" for package in (lftutor.bijections, lftutor.training)
                 for info in pkgutil.iter_modules(package.__path__))
# Layers still without an example (abstract bases need none); the list may only shrink.
WITHOUT_EXAMPLE = {"Bijection", "AutoregressiveBijection", "LinkBijection"}


@pytest.mark.parametrize("name", ["lftutor.bijections", "lftutor.training", *MODULES])
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    torch.manual_seed(0)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs={"torch": torch, **vars(module)}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_every_layer_has_an_example():
    missing = []
    for name in MODULES:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if (isinstance(obj, type) and issubclass(obj, Bijection) and obj.__module__ == name
                    and ">>>" not in (obj.__doc__ or "") and attr not in WITHOUT_EXAMPLE):
                missing.append(f"{name}.{attr}")
    assert not missing, f"add a short example to the docstring of {missing}"
