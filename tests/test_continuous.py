"""Continuous flows (lftutor.bijections.continuous) and trace estimators (lftutor.bijections.trace).

The generic bijection checks of ContinuousFlow (inverse, log-dets, Jacobian, ...) walk the registry
of tests/test_bijections.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from lftutor.bijections.continuous import ContinuousFlow, LinearField, MLPField, PlanarField, make_cnf
from lftutor.bijections.trace import exact_trace, hutchinson_trace, hutchinson_variance, sample_probe

DTYPE = torch.float64


def _field(kind: str, dim: int = 2) -> torch.nn.Module:
    torch.manual_seed(1)
    if kind == "planar":
        field = PlanarField(dim, n_units=3, gate_hidden=4)
    elif kind == "mlp":
        field = MLPField(dim, hidden=(8,))
    else:
        field = LinearField(0.5 * torch.randn(dim, dim))
    return field.to(DTYPE)


FIELDS = ["planar", "mlp", "linear"]
TOL = {"rtol": 1e-9, "atol": 1e-9}


def _matrix(dim: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(dim, dim, dtype=DTYPE, generator=gen)


@pytest.mark.parametrize("t1", [0.5, 1.0])
def test_linear_field_is_the_matrix_exponential(t1):
    a = _matrix()
    flow = ContinuousFlow(LinearField(a), t1=t1, **TOL)
    z = torch.randn(5, 3, dtype=DTYPE)
    x, log_det = flow.forward(z)
    expected = z @ torch.linalg.matrix_exp(t1 * a).T
    torch.testing.assert_close(x, expected, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(log_det, torch.full((5,), t1 * float(torch.trace(a)), dtype=DTYPE))
    z_back, log_det_back = flow.reverse(x)
    torch.testing.assert_close(z_back, z, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(log_det_back, -log_det)


def test_planar_field_trace_matches_closed_form():
    field = _field("planar", dim=3)
    z = torch.randn(7, 3, dtype=DTYPE)
    t = torch.tensor(0.3, dtype=DTYPE)
    _, tr = exact_trace(lambda y: field(t, y), z)
    act = torch.tanh(z @ field.w.T + field.b)
    closed = ((1 - act**2) * field.gates(t) * (field.u * field.w).sum(1)).sum(1)
    torch.testing.assert_close(tr, closed)


@pytest.mark.parametrize("kind", ["gaussian", "rademacher"])
def test_hutchinson_is_unbiased_with_the_analytic_variance(kind):
    """Mean over many probes -> tr A within 5 standard errors; sample variance -> the formula."""
    a = _matrix(4, seed=3)
    n = 200_000
    z = torch.zeros(n, 4, dtype=DTYPE)
    v = sample_probe(z, kind, generator=torch.Generator().manual_seed(7))
    _, est = hutchinson_trace(lambda y: y @ a.T, z, v)
    var = float(hutchinson_variance(a, kind))
    mean_error = float(est.mean()) - float(torch.trace(a))
    assert abs(mean_error) < 5 * math.sqrt(var / n)
    # The sample variance of n draws has relative standard error ~ sqrt(Var(X^2)/n)/var; for
    # these quadratic forms it is below 5 / sqrt(n) here (kurtosis < 25), so 10 sigma is 2e-2.
    assert float(est.var()) == pytest.approx(var, rel=0.03)


def test_analytic_variances_by_hand():
    a = torch.tensor([[1.0, 2.0], [0.0, 3.0]], dtype=DTYPE)  # A_s = [[1, 1], [1, 3]]
    assert float(hutchinson_variance(a, "gaussian")) == pytest.approx(2 * (1 + 1 + 1 + 9))
    assert float(hutchinson_variance(a, "rademacher")) == pytest.approx(2 * (1 + 1))
    # a diagonal matrix: Rademacher probes are exact
    assert float(hutchinson_variance(torch.diag(torch.tensor([1.0, -2.0])), "rademacher")) == 0.0


@pytest.mark.parametrize("kind", ["gaussian", "rademacher"])
def test_hutchinson_log_det_along_the_ode_for_a_linear_field(kind):
    """One fixed probe per trajectory: log_det = v^T A v t1 exactly, so mean and variance are known."""
    a = _matrix(3, seed=5)
    flow = ContinuousFlow(LinearField(a), trace="hutchinson", probe=kind, rtol=1e-7, atol=1e-7,
                          generator=torch.Generator().manual_seed(11))
    n = 20_000
    with torch.no_grad():
        _, ld = flow.forward(torch.zeros(n, 3, dtype=DTYPE))
    var = float(hutchinson_variance(a, kind))
    assert abs(float(ld.mean()) - float(torch.trace(a))) < 5 * math.sqrt(var / n)
    assert float(ld.var()) == pytest.approx(var, rel=0.1)


def test_probe_is_fixed_during_the_solve():
    """With a probe redrawn at every step the linear field's estimate would not be v^T A v."""
    a = _matrix(2, seed=2)
    gen = torch.Generator().manual_seed(3)
    flow = ContinuousFlow(LinearField(a), trace="hutchinson", **TOL, generator=gen)
    z = torch.randn(4, 2, dtype=DTYPE)
    _, ld = flow.forward(z)
    v = sample_probe(z, "gaussian", generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(ld, ((v @ a) * v).sum(1))


@pytest.mark.parametrize("kind", FIELDS)
@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
@pytest.mark.parametrize("adjoint", [False, True])
def test_every_parameter_gets_a_gradient(kind, trace, adjoint):
    flow = make_cnf(2, field=_field(kind), dtype=DTYPE, trace=trace, adjoint=adjoint, rtol=1e-5, atol=1e-5)
    x = torch.randn(8, 2, dtype=DTYPE)
    loss = -flow.log_prob(x).mean()
    loss.backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().sum()) > 0, name


def test_adjoint_gradient_equals_direct_gradient():
    grads = []
    for adjoint in (False, True):
        flow = make_cnf(2, field=_field("mlp"), dtype=DTYPE, adjoint=adjoint, **TOL)
        x = torch.randn(5, 2, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
        (-flow.log_prob(x).mean()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in flow.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_log_prob_integrates_to_one_on_a_grid():
    flow = make_cnf(2, field=_field("planar"), dtype=DTYPE, rtol=1e-6, atol=1e-6)
    g = torch.linspace(-7, 7, 141, dtype=DTYPE)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    with torch.no_grad():
        logp = flow.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1))
    mass = float(logp.exp().sum()) * float(g[1] - g[0]) ** 2
    assert mass == pytest.approx(1.0, abs=1e-3)


def test_sample_log_q_matches_log_prob_and_nfe_is_counted():
    flow = make_cnf(2, field=_field("planar"), dtype=DTYPE, **TOL)
    x, log_q = flow.sample(6)
    assert flow.layers[0].nfe > 6  # dopri5: 6 evaluations per step, plus the first
    torch.testing.assert_close(flow.log_prob(x), log_q, rtol=1e-6, atol=1e-6)
    traj = flow.layers[0].trajectory(torch.randn(4, 2, dtype=DTYPE), [0.0, 0.5, 1.0])
    assert traj.shape == (3, 4, 2)


def test_fixed_step_rk4_counts_four_evaluations_per_step():
    flow = ContinuousFlow(_field("mlp"), method="rk4", step_size=0.1)
    flow.forward(torch.randn(2, 2, dtype=DTYPE))
    assert flow.nfe == 40


def test_inputs_are_checked():
    flow = ContinuousFlow(_field("planar"))
    with pytest.raises(ValueError, match=r"expected z of shape \(batch, 2\)"):
        flow.forward(torch.randn(3, 3, dtype=DTYPE))
    with pytest.raises(ValueError, match="dtype"):
        flow.forward(torch.randn(3, 2))
    flow.trace = "approximate"
    with pytest.raises(ValueError, match="expected trace"):
        flow.forward(torch.randn(3, 2, dtype=DTYPE))
    with pytest.raises(ValueError, match="expected a square matrix"):
        LinearField(torch.zeros(2, 3))


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_cli_prints_json_with_nll_nfe_steps_and_seconds(trace):
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "lftutor", "train", "cnf", "--data", "two-moons",
                          "--trace", trace, "--steps", "2", "--seed", "3", "--width", "8",
                          "--n-train", "512", "--n-test", "200", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["steps"] == 2 and result["trace"] == trace and result["seed"] == 3
    assert result["train_seconds"] > 0 and result["nfe"] >= 7 and result["nfe_train_last"] >= 7
    assert 0.5 < result["test_nll"] < 10  # a 2-D density of standardized data, barely trained
    assert "training" in out.stderr  # the progress bar was shown


# ------------------------------------------------------------------------------------------------
# Graders of unit 8: the reference answers pass, typical mistakes fail with a lesson.
# ------------------------------------------------------------------------------------------------
def _hutchinson(f, z, v):
    fz, jv = torch.func.jvp(f, (z,), (v,))
    return fz, (v * jv).sum(dim=1)


def _variance(a, kind):
    sym = 0.5 * (a + a.T)
    total = 2 * (sym**2).sum()
    return float(total - 2 * (torch.diagonal(sym) ** 2).sum() if kind == "rademacher" else total)


def _augmented(field, t, state, *, sign=-1.0, create_graph=True):
    z, log_p = state
    with torch.enable_grad():
        if not z.requires_grad:
            z = z.detach().requires_grad_(True)
        dz = field(t, z)
        trace = torch.zeros_like(log_p)
        for i in range(z.shape[1]):
            (g,) = torch.autograd.grad(dz[:, i].sum(), z, create_graph=create_graph, retain_graph=True)
            trace = trace + g[:, i]
        return dz, sign * trace


def _push(field, z, t1=1.0, *, backwards=False):
    from torchdiffeq import odeint

    times = torch.tensor([t1, 0.0] if backwards else [0.0, t1], dtype=z.dtype)
    return odeint(field, z, times)[-1]


GRADER_CASES = [
    ("check_hutchinson_trace", _hutchinson, lambda f, z, v: (f(z), torch.func.jvp(f, (z,), (v,))[1].sum(1)),
     "summed J v"),
    ("check_trace_variance", _variance, lambda a, kind: float(2 * (a**2).sum()), "forgets to symmetrise"),
    ("check_augmented_dynamics", _augmented, lambda f, t, s: _augmented(f, t, s, sign=1.0),
     "sign is flipped"),
    ("check_push_forward", _push, lambda f, z, t1=1.0: _push(f, z, t1, backwards=True),
     "integrated backwards"),
]


@pytest.mark.parametrize("check,good,bad,lesson", GRADER_CASES, ids=[c[0] for c in GRADER_CASES])
def test_graders_accept_the_reference_and_teach_on_a_typical_mistake(check, good, bad, lesson, capsys):
    from lftutor.graders import continuous_flows as grading

    for level in ("visible", "hidden"):
        getattr(grading, check)(good, level=level)
    assert "\u2713" in capsys.readouterr().out
    with pytest.raises(grading.GradingError, match=lesson):
        getattr(grading, check)(bad, level="visible")


def test_augmented_dynamics_grader_needs_create_graph_at_the_hidden_level():
    from lftutor.graders import continuous_flows as grading

    def no_graph(f, t, s):
        return _augmented(f, t, s, create_graph=False)

    grading.check_augmented_dynamics(no_graph, level="visible")
    with pytest.raises(grading.GradingError, match="create_graph=True"):
        grading.check_augmented_dynamics(no_graph, level="hidden")


def test_graders_refuse_lftutors_own_answers():
    from lftutor.bijections import trace as lftutor_trace
    from lftutor.graders import continuous_flows as grading

    with pytest.raises(grading.GradingError, match="lftutor's own implementation"):
        grading.check_hutchinson_trace(lftutor_trace.hutchinson_trace, level="visible")
    with pytest.raises(grading.GradingError, match="lftutor's own implementation"):
        grading.check_trace_variance(lambda a, kind: lftutor_trace.hutchinson_variance(a, kind),
                                     level="visible")
