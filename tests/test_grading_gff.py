"""The graders of unit 6 (lftutor.graders.free_field): right answers pass, typical mistakes fail with a
lesson, patched comparisons and calls into lftutor's free-field code are refused.

The "student" answers are written here from the formulas, independently of lftutor.
"""

import math

import pytest
import torch
from torch import nn

from lftutor import FreeFieldAction
from lftutor.bijections.free_field import DenseCoupling
from lftutor.graders import free_field as grading_gff
from lftutor.graders.core import GradingError

LEVELS = ["visible", "hidden"]


# ----------------------------------------------------------------------------- student answers
def precision(L, m2, *, periodic=True, factor=1.0):
    V = L * L
    K = torch.zeros(V, V, dtype=torch.float64)
    for i in range(L):
        for j in range(L):
            s = i * L + j
            K[s, s] += 4 + m2
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                if not periodic and not (0 <= i + di < L and 0 <= j + dj < L):
                    continue
                K[s, ((i + di) % L) * L + (j + dj) % L] -= 1
    return factor * K


def covariance(L, m2):
    return torch.linalg.inv(precision(L, m2))


def log_z(L, m2):
    return 0.5 * L * L * math.log(2 * math.pi) - 0.5 * torch.linalg.slogdet(precision(L, m2))[1].item()


class Linear(nn.Module):
    def __init__(self, mask):
        super().__init__()
        flat = mask.flatten().bool()
        self.register_buffer("idx_a", torch.nonzero(flat).flatten())
        self.register_buffer("idx_b", torch.nonzero(~flat).flatten())
        self.weight = nn.Parameter(torch.zeros(len(self.idx_b), len(self.idx_a)))

    def _shift(self, x, sign):
        flat = x.flatten(1)
        out = flat.clone()
        out[:, self.idx_b] = flat[:, self.idx_b] + sign * flat[:, self.idx_a] @ self.weight.T
        return out.reshape(x.shape), x.new_zeros(x.shape[0])

    def forward(self, z):
        return self._shift(z, 1)

    def reverse(self, phi):
        return self._shift(phi, -1)


def shift_deviation(flow, z, shift):
    a = flow.forward(torch.roll(z, shift, dims=(1, 2)))[0]
    b = torch.roll(flow.forward(z)[0], shift, dims=(1, 2))
    return (a - b).abs().max().item()


# ----------------------------------------------------------------------------- right answers pass
@pytest.mark.parametrize("level", LEVELS)
def test_right_answers_pass(level, capsys):
    grading_gff.check_free_field_covariance(covariance, level=level)
    grading_gff.check_free_field_log_z(log_z, level=level)
    grading_gff.check_linear_coupling(Linear, level=level)
    grading_gff.check_shift_deviation(shift_deviation, level=level)
    assert capsys.readouterr().out.count("\u2713") == 4


# ----------------------------------------------------------------------------- typical mistakes
@pytest.mark.parametrize("wrong, message", [
    (lambda L, m2: torch.linalg.inv(precision(L, m2, periodic=False)), "periodic"),
    (lambda L, m2: precision(L, m2), "precision matrix"),
    (lambda L, m2: torch.linalg.inv(precision(L, m2, factor=2.0)), "twice too large"),
    (lambda L, m2: covariance(L, m2).reshape(L, L, L, L), "every site"),
    (lambda L, m2: covariance(L, m2).float(), "float32"),
])
def test_covariance_mistakes(wrong, message):
    with pytest.raises(GradingError, match=message):
        grading_gff.check_free_field_covariance(wrong, level="hidden")


def _logdet(L, m2):
    return torch.linalg.slogdet(precision(L, m2))[1].item()


@pytest.mark.parametrize("wrong, message", [
    (lambda L, m2: 0.5 * L * L * math.log(2 * math.pi) - _logdet(L, m2), "square root"),
    (lambda L, m2: 0.5 * L * L * math.log(2 * math.pi) + 0.5 * _logdet(L, m2), "sign"),
    (lambda L, m2: -0.5 * _logdet(L, m2), r"\(2 pi\)\^\(V/2\)"),
    (lambda L, m2: -log_z(L, m2), "-log Z"),
    (lambda L, m2: torch.zeros(L * L), "single number"),
])
def test_log_z_mistakes(wrong, message):
    with pytest.raises(GradingError, match=message):
        grading_gff.check_free_field_log_z(wrong, level="visible")


class Transposed(Linear):
    def forward(self, z):
        flat = z.flatten(1)
        out = flat.clone()
        out[:, self.idx_b] = flat[:, self.idx_b] + flat[:, self.idx_a] @ self.weight
        return out.reshape(z.shape), z.new_zeros(z.shape[0])


class ReverseAdds(Linear):
    def reverse(self, phi):
        return self._shift(phi, 1)


class ScalarLogDet(Linear):
    def forward(self, z):
        return self._shift(z, 1)[0], torch.tensor(0.0)


class Detached(Linear):
    def forward(self, z):
        flat = z.flatten(1)
        out = flat.clone()
        out[:, self.idx_b] = flat[:, self.idx_b] + flat[:, self.idx_a] @ self.weight.detach().T
        return out.reshape(z.shape), z.new_zeros(z.shape[0])


class FixedDtype(Linear):
    def forward(self, z):
        return self._shift(z, 1)[0], torch.zeros(z.shape[0])


@pytest.mark.parametrize("cls, message, level", [
    (Transposed, "transpose", "visible"),
    (ReverseAdds, "subtract", "visible"),
    (ScalarLogDet, "single number", "visible"),
    (Detached, "not differentiable", "visible"),
    (FixedDtype, "dtype", "hidden"),
])
def test_linear_coupling_mistakes(cls, message, level):
    with pytest.raises(GradingError, match=message):
        grading_gff.check_linear_coupling(cls, level=level)


@pytest.mark.parametrize("wrong, message", [
    (lambda f, z, s: (f.forward(torch.roll(z, s, (1, 2)))[0] - f.forward(z)[0]).abs().max(),
     "shift the output"),
    (lambda f, z, s: (f.forward(torch.roll(z, s, (0, 1)))[0]
                      - torch.roll(f.forward(z)[0], s, (0, 1))).abs().max(), "batch"),
    (lambda f, z, s: (f.forward(torch.roll(z, s, (1, 2)))[0]
                      - torch.roll(f.forward(z)[0], (-s[0], -s[1]), (1, 2))).abs().max(),
     "opposite direction"),
    (lambda f, z, s: (f.forward(torch.roll(z, s, (1, 2)))[0]
                      - torch.roll(f.forward(z)[0], s, (1, 2))).abs().mean(), "mean"),
    (lambda f, z, s: (f.forward(torch.roll(z, s, (1, 2)))[0]
                      - torch.roll(f.forward(z)[0], s, (1, 2))).abs(), "one number"),
])
def test_shift_deviation_mistakes(wrong, message):
    with pytest.raises(GradingError, match=message):
        grading_gff.check_shift_deviation(wrong, level="hidden")


# ----------------------------------------------------------------------------- cheats are refused
def test_patched_allclose_and_zeros_fail(monkeypatch):
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(torch.testing, "assert_close", lambda *a, **k: None)
    with pytest.raises(GradingError):
        grading_gff.check_free_field_covariance(lambda L, m2: torch.zeros(L * L, L * L,
                                                                          dtype=torch.float64))
    with pytest.raises(GradingError):
        grading_gff.check_shift_deviation(lambda f, z, s: 0.0)


def test_zeros_fail_without_patching():
    with pytest.raises(GradingError):
        grading_gff.check_free_field_covariance(
            lambda L, m2: torch.zeros(L * L, L * L, dtype=torch.float64))
    with pytest.raises(GradingError):
        grading_gff.check_free_field_log_z(lambda L, m2: 0.0)
    with pytest.raises(GradingError):
        grading_gff.check_shift_deviation(lambda f, z, s: 0.0)


def test_calling_lftutor_free_field_is_refused():
    with pytest.raises(GradingError, match="lftutor's own implementation"):
        grading_gff.check_free_field_covariance(lambda L, m2: FreeFieldAction(m2, (L, L)).covariance)
    with pytest.raises(GradingError, match="lftutor's own implementation"):
        grading_gff.check_free_field_log_z(lambda L, m2: FreeFieldAction(m2, (L, L)).log_z)


class Borrowed(nn.Module):
    """Wraps lftutor's DenseCoupling, whose linear version is exactly the exercise."""

    def __init__(self, mask):
        super().__init__()
        self.inner = DenseCoupling(mask)
        self.weight = self.inner.net[0].weight

    def forward(self, z):
        return self.inner.forward(z)

    def reverse(self, phi):
        return self.inner.reverse(phi)


def test_calling_lftutor_coupling_is_refused():
    with pytest.raises(GradingError, match="lftutor's own implementation"):
        grading_gff.check_linear_coupling(Borrowed)


def test_module_is_read_only():
    with pytest.raises(GradingError, match="read-only"):
        grading_gff.check_free_field_log_z = lambda *a, **k: None
