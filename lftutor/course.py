"""Helpers the course notebooks call: grading mode, budgets, seeding, and where trained weights live.

Grading mode (short trainings, small samples) is on only where a notebook is graded:

* in every kernel that nbgrader's ``autograde`` (and ``validate``) starts: nbgrader sets
  ``NBGRADER_EXECUTION=autograde`` (``validate``) while it executes a notebook, and kernels
  inherit it. That covers ``python -m lftutor grade``, plain ``nbgrader autograde`` and the
  formgrader's autograde button alike;
* wherever ``LFTUTOR_GRADING=1`` is set by hand (``LFTUTOR_GRADING=0`` forces it off).

A kernel that JupyterLab starts for a student (``make lab``, Binder) runs in full mode, even
though the server loads ``nbgrader_config.py``: that file sets no environment variable.

``LFTUTOR_TIME_SCALE`` (a positive number, default 1) multiplies the full-mode training budgets
that notebooks ask for through :func:`train_seconds`: ``LFTUTOR_TIME_SCALE=0.05`` turns a
120-s training into 6 s (quick checks, browser tests, a slow laptop), ``2`` doubles it. It is
not grading mode: everything else in the notebook runs at full size.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

#: Values of ``NBGRADER_EXECUTION`` (set by nbgrader while it executes a notebook) that mean grading.
GRADING_EXECUTIONS = frozenset({"autograde", "validate"})
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def grading_mode() -> bool:
    """True when the notebook is being graded: nbgrader executes it, or ``LFTUTOR_GRADING=1``.

    ``LFTUTOR_GRADING``, when set to one of ``1``/``true``/``yes``/``on`` or
    ``0``/``false``/``no``/``off``, decides; otherwise (unset, empty or anything else) grading
    mode is on exactly when ``NBGRADER_EXECUTION`` is ``autograde`` or ``validate``, which nbgrader
    sets for the kernels it starts to grade or validate.
    """
    explicit = os.environ.get("LFTUTOR_GRADING")
    if explicit is not None and explicit.strip().lower() in _TRUE | _FALSE:
        return explicit.strip().lower() in _TRUE
    return os.environ.get("NBGRADER_EXECUTION", "").strip().lower() in GRADING_EXECUTIONS


def budget(full, grading):
    """``grading`` in grading mode, ``full`` otherwise (steps, seconds, sample counts...)."""
    return grading if grading_mode() else full


def time_scale() -> float:
    """The factor ``LFTUTOR_TIME_SCALE`` applies to full-mode training budgets (default 1).

    Raises:
        ValueError: the variable is set but is not a positive number.
    """
    text = os.environ.get("LFTUTOR_TIME_SCALE", "").strip()
    if not text:
        return 1.0
    try:
        scale = float(text)
    except ValueError:
        scale = float("nan")
    if not (scale > 0 and np.isfinite(scale)):
        raise ValueError(f"expected LFTUTOR_TIME_SCALE to be a positive number, got {text!r}")
    return scale


def train_seconds(full: float, grading: float) -> float:
    """A training time budget in seconds: ``grading`` in grading mode, else ``full`` times
    ``LFTUTOR_TIME_SCALE`` (see the module docstring).

    Example:
        >>> train_seconds(120, 2)  # neither grading mode nor LFTUTOR_TIME_SCALE set
        120.0
    """
    if grading_mode():
        return float(grading)
    return float(full) * time_scale()


def setup_line(device=None) -> str:
    """The line every unit's setup cell prints: torch's version, the device (when the unit uses
    one), whether grading mode is on, and ``LFTUTOR_TIME_SCALE`` when it is not 1.

    Example:
        >>> setup_line().split(" | ")[1]  # neither grading mode nor LFTUTOR_TIME_SCALE set
        'grading mode: False'
    """
    parts = [f"torch {torch.__version__}"]
    if device is not None:
        parts.append(f"device: {device}")
    parts.append(f"grading mode: {grading_mode()}")
    scale = time_scale()
    if scale != 1.0:
        parts.append(f"training budgets x {scale:g} (LFTUTOR_TIME_SCALE)")
    return " | ".join(parts)


def print_setup(device=None) -> None:
    """Print :func:`setup_line` (the last line of a unit's setup cell)."""
    print(setup_line(device))


def seed_all(seed: int = 0) -> None:
    """Seed Python, NumPy and torch so that a notebook runs the same way every time."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
