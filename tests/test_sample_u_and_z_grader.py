"""Unit 1, exercise 4 (``sample_u_and_z``): its grader passes the right answer, does not charge a
wrong ``box_muller`` twice, and fails the typical mistakes with a lesson (issue 25, item 22)."""

from __future__ import annotations

import math

import pytest
import torch

from lftutor.graders import change_of_variables as grading
from lftutor.graders.core import GradingError

N = 2**12


def box_muller(u):
    radius = torch.sqrt(-2.0 * torch.log(u[:, 0]))
    angle = 2.0 * math.pi * u[:, 1]
    return torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=-1)


def box_muller_without_the_2(u):  # exercise 1's typical mistake (autograde_tests/specs)
    radius = torch.sqrt(-torch.log(u[:, 0]))
    angle = 2.0 * math.pi * u[:, 1]
    return torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=-1)


@pytest.mark.parametrize("level", ["visible", "hidden"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_right_answer_passes(level, dtype, capsys):
    u = torch.rand(N, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)
    grading.check_sample_u_and_z(u, box_muller(u), box_muller, N, level)
    assert "\u2713" in capsys.readouterr().out


def test_a_u_with_an_exact_zero_passes():
    """torch.rand can return 0.0; box_muller then gives inf, and z = box_muller(u) is still right."""
    u = torch.rand(N, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    u[0] = 0.0
    z = box_muller(u)
    assert not torch.isfinite(z).all()
    grading.check_sample_u_and_z(u, z, box_muller, N, "hidden")


def test_a_wrong_box_muller_costs_only_exercise_1():
    u = torch.rand(N, 2, generator=torch.Generator().manual_seed(2))
    grading.check_sample_u_and_z(u, box_muller_without_the_2(u), box_muller_without_the_2, N, "hidden")


def _uniform(seed=3):
    return torch.rand(N, 2, generator=torch.Generator().manual_seed(seed))


NOT_FROM_U = "not box_muller\\(u\\)"
MISTAKES = [
    ("fresh normal numbers for z", lambda: (_uniform(), torch.randn(N, 2)), NOT_FROM_U, "visible"),
    ("z of other uniform points", lambda: (_uniform(), box_muller(_uniform(4))), NOT_FROM_U, "visible"),
    ("u from randn", lambda: (torch.randn(N, 2), None), "outside the unit square", "visible"),
    ("u of shape (N,)", lambda: (torch.rand(N), None), "shape \\(4096,\\)", "visible"),
    ("u squeezed into the middle", lambda: (0.25 + 0.5 * _uniform(), None), "only spans", "visible"),
    ("u scaled by 0.9", lambda: (0.9 * _uniform(), None), "mean .* variance", "hidden"),
    ("one column copied", lambda: (_uniform()[:, :1].repeat(1, 2), None), "correlated", "hidden"),
    ("u as a numpy array", lambda: (_uniform().numpy(), None), "torch tensor", "visible"),
    ("z missing", lambda: (_uniform(), None), "expected the \\(4096, 2\\) tensor", "visible"),
]


@pytest.mark.parametrize(("name", "make", "lesson", "level"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_typical_mistakes_fail_with_a_lesson(name, make, lesson, level):
    u, z = make()
    if z is None and name != "z missing" and isinstance(u, torch.Tensor) and u.dim() == 2:
        z = box_muller(u)
    with pytest.raises(GradingError, match=lesson):
        grading.check_sample_u_and_z(u, z, box_muller, N, level)
