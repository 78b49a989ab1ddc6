"""Per-unit knowledge the autograde tests need: one typical mistake per exercise, and cheats.

One module per unit, named like the unit's folder without its number (``solutions/06_free_field``:
``specs/free_field.py``, defining ``SPEC``), as its graders are ``lftutor/graders/free_field.py``.

Every autograded test cell of every unit must be failed by some :class:`Mistake`; the test
fails and says so when a unit gains an exercise without one. A mistake is a string replacement
in the solution's answer; ``fails`` lists the test cells that must lose their points (by
default the test cells named ``test_<answer>`` or ``test_<answer>_*``); every other autograded
cell must keep full marks.

A :class:`Cheat` replaces a whole answer cell with code that patches the comparisons
(:data:`MONKEYPATCH`) and returns zeros of the right shape; it must earn nothing.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mistake:
    answer: str  # grade_id of the answer cell
    old: str
    new: str
    why: str  # the mistake in words
    fails: tuple[str, ...] = ()  # test cells that must score 0 (default: test_<answer>*)


@dataclass(frozen=True)
class Cheat:
    answer: str
    source: str  # the whole answer cell; MONKEYPATCH is prepended


@dataclass(frozen=True)
class UnitSpec:
    mistakes: tuple[Mistake, ...]
    cheats: tuple[Cheat, ...] = field(default=())


MONKEYPATCH = """\
import math
import numpy as np
import torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.isclose = lambda a, b, *args, **k: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)
torch.testing.assert_close = lambda *a, **k: None
np.allclose = lambda *a, **k: True
np.isclose = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
math.isclose = lambda *a, **k: True
"""


def spec_module_name(unit: str) -> str:
    """``07_flows_2d`` -> ``flows_2d``: the unit's spec module here and its grader module in
    ``lftutor/graders/`` share this name."""
    return re.sub(r"^\d+_", "", unit)


def _load_specs() -> dict[str, UnitSpec]:
    """Every unit of ``solutions/`` and of the test fixtures, with the spec module of its name."""
    specs = {}
    for solutions in (_REPO / "solutions", _REPO / "autograde_tests" / "fixtures" / "solutions"):
        for unit in sorted(p.name for p in solutions.iterdir() if p.is_dir()):
            name = spec_module_name(unit)
            if (Path(__file__).parent / f"{name}.py").is_file():
                specs[unit] = importlib.import_module(f"autograde_tests.specs.{name}").SPEC
    return specs


SPECS: dict[str, UnitSpec] = _load_specs()
