"""The graders of units 1-4 (lftutor.graders.change_of_variables ... training): right answers pass,
typical mistakes fail with a lesson, cheats fail.

The "student" answers below are written here, independently of the reference (an answer that calls
the reference is itself refused by the graders).
"""

import math
import types

import pytest
import torch
from torch import nn

import lftutor
from lftutor.graders import affine_coupling, audit, change_of_variables, core, phi4_lattice, training
from lftutor.graders.core import GradingError

# The graders of units 1-4 and the audit under one name, as the notebooks of those units see theirs.
grading = types.SimpleNamespace(
    **{name: getattr(module, name) for module in (change_of_variables, phi4_lattice, affine_coupling,
                                                   training) for name in module.__all__},
    audit_source=audit.audit_source, audit_notebook=audit.audit_notebook,
    _max_abs_diff=core.max_abs_diff, _ref_phi4=phi4_lattice._ref_phi4)

LEVELS = ["visible", "hidden"]


# ----------------------------------------------------------------------------- student answers
def box_muller(u):
    r = torch.sqrt(-2 * torch.log(u[:, 0]))
    return torch.stack((r * torch.cos(2 * math.pi * u[:, 1]), r * torch.sin(2 * math.pi * u[:, 1])), -1)


def box_muller_log_det(u):
    return math.log(2 * math.pi) - torch.log(u[:, 0])


class Coupling(nn.Module):
    def __init__(self):
        super().__init__()
        self.s = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1),
                               nn.Tanh())

    def forward(self, x):
        s = self.s(x[:, 1:2]).squeeze(-1)
        return torch.stack((torch.exp(s) * x[:, 0], x[:, 1]), -1), s

    def reverse(self, y):
        s = self.s(y[:, 1:2]).squeeze(-1)
        return torch.stack((torch.exp(-s) * y[:, 0], y[:, 1]), -1), -s


def phi4_action(phi, m2, lam):
    kinetic = 4 * phi - torch.roll(phi, 1, 1) - torch.roll(phi, -1, 1) - torch.roll(phi, 1, 2) \
        - torch.roll(phi, -1, 2)
    return (phi * kinetic + m2 * phi**2 + lam * phi**4).sum(dim=(1, 2))


def gaussian_log_prob(z):
    return (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(dim=(1, 2))


def slope_one_intercept(x, y):
    return (y - x).mean().item()


def checker_mask(shape, parity):
    i, j = torch.meshgrid(torch.arange(shape[0]), torch.arange(shape[1]), indexing="ij")
    return ((i + j + parity) % 2 == 0).float()


class Affine(nn.Module):
    def __init__(self, net, mask):
        super().__init__()
        self.net = net
        self.register_buffer("mask", mask)

    def forward(self, z):
        m = self.mask
        out = self.net((m * z).unsqueeze(1))
        s, t = out[:, 0], out[:, 1]
        return m * z + (1 - m) * (z * torch.exp(s) + t), ((1 - m) * s).sum(dim=(1, 2))

    def reverse(self, phi):
        m = self.mask
        out = self.net((m * phi).unsqueeze(1))
        s, t = out[:, 0], out[:, 1]
        return m * phi + (1 - m) * (phi - t) * torch.exp(-s), -((1 - m) * s).sum(dim=(1, 2))


def make_affine_stack(*, n_layers, lattice_shape, hidden_sizes, kernel_size):
    layers = []
    for i in range(n_layers):
        net = lftutor.make_conv_net(hidden_sizes=hidden_sizes, kernel_size=kernel_size)
        layers.append(lftutor.AffineCoupling(net, lftutor.make_checker_mask(lattice_shape, i % 2)))
    return nn.ModuleList(layers)


def reverse_kl(log_p, log_q):
    return (log_q - log_p).mean()


def ess(log_p, log_q):
    lw = log_p - log_q
    return torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)) / lw.shape[0]


def estimate_log_z(log_p, log_q):
    return torch.logsumexp(log_p - log_q, 0) - math.log(log_p.shape[0])


RIGHT = [
    (grading.check_box_muller, box_muller),
    (grading.check_box_muller_log_det, box_muller_log_det),
    (grading.check_simple_coupling_reverse, Coupling),
    (grading.check_phi4_action, phi4_action),
    (grading.check_gaussian_log_prob, gaussian_log_prob),
    (grading.check_slope_one_intercept, slope_one_intercept),
    (grading.check_checker_mask, checker_mask),
    (grading.check_affine_reverse, Affine),
    (grading.check_affine_stack, make_affine_stack),
    (grading.check_reverse_kl, reverse_kl),
    (grading.check_ess, ess),
    (grading.check_log_z, estimate_log_z),
]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("check,answer", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_right_answers_pass(check, answer, level, capsys):
    check(answer, level=level)
    assert "\u2713" in capsys.readouterr().out


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="level"):
        grading.check_ess(ess, level="secret")


def test_unfinished_answer_says_so():
    def todo(*args):
        raise NotImplementedError()

    with pytest.raises(GradingError, match="NotImplementedError"):
        grading.check_phi4_action(todo)


# ----------------------------------------------------------------------------- typical mistakes
def _fails(check, answer, pattern, level="hidden"):
    with pytest.raises(GradingError, match=pattern):
        check(answer, level=level)


def test_box_muller_mistakes():
    def half_turn(u):
        r = torch.sqrt(-2 * torch.log(u[:, 0]))
        return torch.stack((r * torch.cos(math.pi * u[:, 1]), r * torch.sin(math.pi * u[:, 1])), -1)

    def swapped(u):
        return box_muller(u)[:, [1, 0]]

    def log10(u):
        r = torch.sqrt(-2 * torch.log10(u[:, 0]))
        return torch.stack((r * torch.cos(2 * math.pi * u[:, 1]), r * torch.sin(2 * math.pi * u[:, 1])), -1)

    _fails(grading.check_box_muller, half_turn, "2\\*pi")
    _fails(grading.check_box_muller, swapped, "swapped")
    _fails(grading.check_box_muller, log10, "radius")
    _fails(grading.check_box_muller, lambda u: box_muller(u).numpy(), "NumPy")
    _fails(grading.check_box_muller, lambda u: box_muller(u).double(), "dtype", level="visible")


def test_box_muller_log_det_mistakes():
    _fails(grading.check_box_muller_log_det, lambda u: -box_muller_log_det(u), "sign")
    _fails(grading.check_box_muller_log_det, lambda u: torch.exp(box_muller_log_det(u)), "logarithm")
    _fails(grading.check_box_muller_log_det, lambda u: math.log(math.pi) - torch.log(u[:, 0]),
           "factor 2")
    _fails(grading.check_box_muller_log_det, lambda u: box_muller_log_det(u)[:, None], "shape")
    _fails(grading.check_box_muller_log_det, lambda u: torch.zeros(u.shape[0], 2, 2), "Jacobian matrices")


def test_simple_coupling_mistakes():
    class NoTuple(Coupling):
        def reverse(self, y):
            return super().reverse(y)[0]

    class WrongSign(Coupling):
        def reverse(self, y):
            x, ld = super().reverse(y)
            return x, -ld

    class Forward(Coupling):
        def reverse(self, y):
            return self.forward(y)

    class WrongInput(Coupling):
        def reverse(self, y):
            s = self.s(y[:, 0:1]).squeeze(-1)
            return torch.stack((torch.exp(-s) * y[:, 0], y[:, 1]), -1), -s

    _fails(grading.check_simple_coupling_reverse, NoTuple, "pair")
    _fails(grading.check_simple_coupling_reverse, WrongSign, "wrong sign")
    _fails(grading.check_simple_coupling_reverse, Forward, "e\\^\\{-s")
    _fails(grading.check_simple_coupling_reverse, WrongInput, "frozen coordinate y_2")


def test_phi4_mistakes():
    def no_wrap(phi, m2, lam):
        padded = torch.nn.functional.pad(phi[:, None], (1, 1, 1, 1))[:, 0]
        neighbours = padded[:, 2:, 1:-1] + padded[:, :-2, 1:-1] + padded[:, 1:-1, 2:] + padded[:, 1:-1, :-2]
        return (phi * (4 * phi - neighbours) + m2 * phi**2 + lam * phi**4).sum(dim=(1, 2))

    def one_side(phi, m2, lam):
        kinetic = 2 * phi - torch.roll(phi, 1, 1) - torch.roll(phi, 1, 2)
        return (phi * kinetic + m2 * phi**2 + lam * phi**4).sum(dim=(1, 2))

    def quadratic(phi, m2, lam):
        return phi4_action(phi, m2, 0.0) + lam * (phi**2).sum(dim=(1, 2))

    def per_site(phi, m2, lam):
        return phi * (4 * phi) + m2 * phi**2 + lam * phi**4

    def float_result(phi, m2, lam):
        return phi4_action(phi, m2, lam).float()

    def in_place(phi, m2, lam):
        out = phi4_action(phi, m2, lam)
        phi.zero_()
        return out

    _fails(grading.check_phi4_action, no_wrap, "periodic", level="visible")
    _fails(grading.check_phi4_action, one_side, "both")
    _fails(grading.check_phi4_action, quadratic, "phi\\^2")
    _fails(grading.check_phi4_action, per_site, "sum it over the lattice")
    _fails(grading.check_phi4_action, float_result, "dtype")
    _fails(grading.check_phi4_action, in_place, "in place")


def test_gaussian_and_fit_mistakes():
    _fails(grading.check_gaussian_log_prob, lambda z: (-0.5 * z**2).sum(dim=(1, 2)), "normalisation")
    _fails(grading.check_gaussian_log_prob, lambda z: -gaussian_log_prob(z), "-log r")
    _fails(grading.check_slope_one_intercept, lambda x, y: (x - y).mean().item(), "sign")
    _fails(grading.check_slope_one_intercept, lambda x, y: torch.zeros(3), "one number")


def test_mask_and_affine_mistakes():
    _fails(grading.check_checker_mask, lambda shape, p: checker_mask(shape, 1 - p), "complement")
    _fails(grading.check_checker_mask, lambda shape, p: torch.ones(shape), "not a checkerboard")

    class AddBeforeScale(Affine):
        def reverse(self, phi):
            m = self.mask
            out = self.net((m * phi).unsqueeze(1))
            s, t = out[:, 0], out[:, 1]
            return m * phi + (1 - m) * (phi * torch.exp(-s) - t), -((1 - m) * s).sum(dim=(1, 2))

    class AllSites(Affine):
        def reverse(self, phi):
            z, _ = super().reverse(phi)
            s = self.net((self.mask * phi).unsqueeze(1))[:, 0]
            return z, -s.sum(dim=(1, 2))

    class PositiveLogDet(Affine):
        def reverse(self, phi):
            z, ld = super().reverse(phi)
            return z, -ld

    class Unmasked(Affine):
        def reverse(self, phi):
            m = self.mask
            out = self.net(phi.unsqueeze(1))
            s, t = out[:, 0], out[:, 1]
            return m * phi + (1 - m) * (phi - t) * torch.exp(-s), -((1 - m) * s).sum(dim=(1, 2))

    _fails(grading.check_affine_reverse, AddBeforeScale, "shift before the scaling")
    _fails(grading.check_affine_reverse, AllSites, "only the updated sites")
    _fails(grading.check_affine_reverse, PositiveLogDet, "wrong sign")
    _fails(grading.check_affine_reverse, Unmasked, "only the frozen sites")


def test_stack_mistakes():
    def same_parity(**kw):
        layers = make_affine_stack(**kw)
        for layer in layers:
            layer.mask.copy_(lftutor.make_checker_mask(kw["lattice_shape"], 0))
        return layers

    def shared_net(*, n_layers, lattice_shape, hidden_sizes, kernel_size):
        net = lftutor.make_conv_net(hidden_sizes=hidden_sizes, kernel_size=kernel_size)
        return nn.ModuleList(lftutor.AffineCoupling(net, lftutor.make_checker_mask(lattice_shape, i % 2))
                             for i in range(n_layers))

    def plain_list(**kw):
        return list(make_affine_stack(**kw))

    _fails(grading.check_affine_stack, same_parity, "same parity", level="visible")
    _fails(grading.check_affine_stack, shared_net, "share one network", level="visible")
    _fails(grading.check_affine_stack, plain_list, "ModuleList", level="visible")


def test_metric_mistakes():
    _fails(grading.check_reverse_kl, lambda lp, lq: (lp - lq).mean(), "sign")
    _fails(grading.check_reverse_kl, lambda lp, lq: (lq - lp).sum(), "mean")
    _fails(grading.check_reverse_kl, lambda lp, lq: (lq - lp).mean().item(), "Python number")
    _fails(grading.check_reverse_kl, lambda lp, lq: (lq - lp).mean().detach(), "differentiable")

    def naive_ess(lp, lq):
        w = torch.exp(lp - lq)
        return w.mean() ** 2 / (w**2).mean()

    _fails(grading.check_ess, naive_ess, "NaN or infinite|logsumexp", level="visible")
    _fails(grading.check_ess, lambda lp, lq: 1 / ess(lp, lq), "> 1|inverse")
    _fails(grading.check_ess, lambda lp, lq: ess(lp, lq) * lp.shape[0], "divide by the batch size")

    _fails(grading.check_log_z, lambda lp, lq: (lp - lq).mean(), "lower bound", level="visible")
    _fails(grading.check_log_z, lambda lp, lq: -estimate_log_z(lp, lq), "sign")
    _fails(grading.check_log_z, lambda lp, lq: torch.logsumexp(lp - lq, 0), "1/N")
    _fails(grading.check_log_z, lambda lp, lq: torch.log(torch.exp(lp - lq).mean()), "NaN|infinite")


# ----------------------------------------------------------------------------- cheats
def test_calling_the_reference_is_refused():
    from lftutor.bijections.box_muller import box_muller as reference_box_muller
    from lftutor.training.metrics import ess as reference_ess

    def via_reference(phi, m2, lam):
        return lftutor.ScalarPhi4Action(m2, lam)(phi)

    _fails(grading.check_phi4_action, via_reference, "reference implementation", level="visible")
    _fails(grading.check_box_muller, reference_box_muller, "reference implementation", level="visible")
    _fails(grading.check_ess, lambda lp, lq: reference_ess(lp, lq), "reference implementation",
           level="visible")
    _fails(grading.check_reverse_kl, lftutor.reverse_kl, "reference implementation", level="visible")
    _fails(grading.check_checker_mask, lftutor.make_checker_mask, "reference implementation",
           level="visible")
    _fails(grading.check_affine_stack, lftutor.make_phi4_affine_layers, "reference implementation",
           level="visible")

    class Subclass(lftutor.AffineCoupling):
        pass

    _fails(grading.check_affine_reverse, Subclass, "reference implementation", level="visible")

    class UsesReference(lftutor.SimpleCouplingLayer):
        pass

    _fails(grading.check_simple_coupling_reverse, UsesReference, "reference implementation",
           level="visible")


def test_calling_a_grader_helper_is_refused():
    _fails(grading.check_phi4_action, lambda phi, m2, lam: grading._ref_phi4(phi, m2, lam).to(phi.dtype),
           "grader function", level="visible")


def test_switching_off_the_tracing_is_refused():
    import sys

    def sneaky(phi, m2, lam):
        sys.setprofile(None)
        return lftutor.ScalarPhi4Action(m2, lam)(phi)

    _fails(grading.check_phi4_action, sneaky, "setprofile", level="visible")


@pytest.mark.parametrize("target", ["allclose", "isclose", "equal"])
def test_patched_torch_comparisons_do_not_help(monkeypatch, target):
    monkeypatch.setattr(torch, target, lambda *a, **k: True)
    with pytest.raises(GradingError):
        grading.check_phi4_action(lambda phi, m2, lam: torch.zeros(phi.shape[0], dtype=phi.dtype))


def test_patched_assert_close_and_numpy_do_not_help(monkeypatch):
    import numpy as np

    monkeypatch.setattr(torch.testing, "assert_close", lambda *a, **k: None)
    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    with pytest.raises(GradingError, match="replaced"):
        grading.check_ess(lambda lp, lq: torch.tensor(0.5))


def test_patched_tensor_arithmetic_does_not_help(monkeypatch):
    monkeypatch.setattr(torch.Tensor, "__sub__", lambda a, b: torch.zeros_like(a))
    monkeypatch.setattr(torch.Tensor, "abs", lambda a: torch.zeros_like(a))
    with pytest.raises(GradingError):
        grading.check_phi4_action(lambda phi, m2, lam: torch.zeros(phi.shape[0], dtype=phi.dtype))


def test_comparisons_use_captured_primitives(monkeypatch):
    # Beyond the tamper check, the comparison itself never goes through the patchable torch.* names.
    for name in ("sub", "abs", "amax"):
        monkeypatch.setattr(torch, name, lambda *a, **k: torch.zeros(()))
    monkeypatch.setattr(torch.Tensor, "item", lambda self: 0.0)
    assert grading._max_abs_diff(torch.zeros(3), torch.ones(3)) == 1.0


@pytest.mark.parametrize("module", [core, change_of_variables, phi4_lattice, affine_coupling, training])
def test_grading_module_is_read_only(module):
    with pytest.raises(GradingError, match="read-only"):
        module.check_phi4_action = lambda *a, **k: None
    with pytest.raises(GradingError, match="read-only"):
        del module.GradingError


def test_tensor_subclass_answers_are_refused():
    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return torch.zeros(())

    def answer(phi, m2, lam):
        return phi4_action(phi, m2, lam).as_subclass(Liar)

    _fails(grading.check_phi4_action, answer, "plain torch.Tensor", level="visible")


@pytest.mark.parametrize("source", [
    "import torch\ntorch.allclose = lambda *a, **k: True",
    "import numpy as np\nnp.allclose = lambda *a, **k: True",
    "import torch as T\nT.testing.assert_close = print",
    "from torch import testing\ntesting.assert_close = print",
    "import lftutor.graders.training as g\n",
    "grading = None",
    "from lftutor.graders import training as grading2\n",
    "from lftutor.graders import core as grading\n",
    "from lftutor.graders.core import guarded_call\n",
    "setattr(grading, 'check_ess', print)",
    "import sys\nsys.modules['lftutor.graders.training'] = None",
    "import sys\nsys.modules.pop('torch')",
    "import importlib",
    "exec('x = 1')",
    "f.__code__ = g.__code__",
    "type(grading).__setattr__",
    "import sys\nsys.setprofile(None)",
    "t = torch\nt.roll = print",
    "get_ipython().run_line_magic('run', 'cheat.py')",
])
def test_audit_flags_tampering(source):
    assert grading.audit_source(source), source


@pytest.mark.parametrize("source", [
    "import sys\nif 'google.colab' in sys.modules:\n    pass",
    "from lftutor.graders import training as grading",
    "import torch\nx = torch.zeros(3)\nx[0] = 1.0\nplt.rcParams.update({'font.size': 9})",
    "class A(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.s = 1",
    "get_ipython().run_line_magic('matplotlib', 'inline')",
    "grading.check_ess(ess, level='hidden')",
    "def f(x):\n    return x.sum(dim=(1, 2))",
])
def test_audit_accepts_ordinary_code(source):
    assert grading.audit_source(source) == []


def test_audit_notebook_reads_cells(tmp_path):
    import json

    nb = {"cells": [{"cell_type": "code", "source": ["%matplotlib inline\n", "import torch\n"]},
                    {"cell_type": "markdown", "source": "torch.allclose = 1"},
                    {"cell_type": "code", "source": "torch.allclose = lambda *a: True"}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    findings = grading.audit_notebook(path)
    assert len(findings) == 1 and findings[0].startswith("cell 2")


def test_autograde_preprocessor_fails_every_test_cell_of_a_tampering_notebook():
    import nbformat

    from lftutor.graders.audit import AuditCells

    def cell(source, **meta):
        c = nbformat.v4.new_code_cell(source)
        if meta:
            c.metadata["nbgrader"] = meta
        return c

    test_meta = {"grade": True, "solution": False, "locked": True, "points": 1, "grade_id": "t"}
    clean = nbformat.v4.new_notebook(cells=[
        cell("import sys\nif 'google.colab' in sys.modules:\n    pass", locked=True, grade_id="setup"),
        cell("def f(x):\n    return x", solution=True, grade=False, grade_id="f"),
        cell("from lftutor.graders import training as grading\ngrading.check_ess(f)", **test_meta)])
    assert AuditCells().enabled  # nbconvert skips preprocessors that are not enabled
    nb, _ = AuditCells().preprocess(clean, {})
    assert not nb.cells[2].source.startswith("raise")

    cheat = nbformat.v4.new_notebook(cells=[
        cell("class G:\n    pass\ngrading = G()", solution=True, grade=False, grade_id="f"),
        cell("%matplotlib inline\nx = 1"),  # a cell the student added
        cell("from lftutor.graders import training as grading\ngrading.check_ess(f)", **test_meta)])
    nb, _ = AuditCells().preprocess(cheat, {})
    assert nb.cells[2].source.startswith("raise AssertionError(")
    assert "grading" in nb.cells[2].source.splitlines()[0]
