"""Unit 7: planar, radial, Householder and Sylvester layers; 2-D targets, exact log Z and KL; CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_bijections import VECTORS

from lftutor.bijections.householder import Householder, householder_matrix
from lftutor.bijections.planar import Planar, solve_increasing
from lftutor.bijections.radial import Radial
from lftutor.bijections.sylvester import Sylvester
from lftutor.toy2d.flows import FAMILIES, make_flow
from lftutor.toy2d.targets import (
    TARGET_NAMES,
    GaussianMixture2D,
    Target2D,
    exact_kl,
    get_target,
    log_z_grid,
    taper,
    two_moons,
)
from lftutor.toy2d.training import Annealed, AnnealSchedule, KLTracker, fit_data, fit_reverse_kl, mean_nll

# The generic checks of these layers (inverse, log-dets, Jacobian, gradients, ...) walk the registry
# of tests/test_bijections.py; the tests here are special to unit 7.


def _layer(name):
    return VECTORS[name].make()

@pytest.mark.parametrize("name", ["planar2", "sylvester_orthogonal", "sylvester_triangular", "radial2"])
def test_reverse_gradients_match_finite_differences(name):
    """The numerical inverses carry exact gradients (one Newton step with autograd on)."""
    layer = _layer(name)
    x = torch.randn(5, 2, dtype=torch.float64)
    names = [n for n, _ in layer.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in layer.parameters())

    def f(*ps):
        out = torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (x,), strict=False)
        return out[0].sum() + out[1].sum(), None

    torch.autograd.gradcheck(lambda *ps: f(*ps)[0], params, eps=1e-6, atol=1e-6)


def test_planar_constraint_keeps_w_dot_u_hat_above_minus_one():
    layer = Planar(2).double()
    with torch.no_grad():
        layer.w.copy_(torch.tensor([1.0, 2.0]))
        layer.u.copy_(-10 * layer.w)  # w.u = -50: the raw map would fold
    u_hat = layer.u_hat()
    assert (layer.w @ u_hat).item() > -1
    # only the component along w changed
    perp = torch.tensor([2.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(u_hat @ perp, layer.u @ perp)
    # and the map is one-to-one along w: the scalar map a -> a + c tanh(a) increases
    a = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    c = layer.w @ u_hat
    assert (torch.diff(a + c * torch.tanh(a)) > 0).all()
    # with the raw u it would not be (so the constraint matters)
    c_raw = layer.w @ layer.u
    assert not (torch.diff(a + c_raw * torch.tanh(a)) > 0).all()


def test_solve_increasing_finds_roots_of_steep_and_flat_functions():
    target = torch.linspace(-3, 3, 41, dtype=torch.float64)

    def g(a):
        return a**3 + 0.01 * a, 3 * a**2 + 0.01

    root = solve_increasing(g, target, torch.tensor(-5.0, dtype=torch.float64),
                            torch.tensor(5.0, dtype=torch.float64))
    torch.testing.assert_close(g(root)[0], target, atol=1e-12, rtol=0)


def test_radial_reverse_near_and_far_from_the_centre():
    layer = _layer("radial2")
    z = torch.cat([layer.z0.detach()[None] + 1e-9 * torch.randn(3, 2, dtype=torch.float64),
                   1e4 * torch.randn(3, 2, dtype=torch.float64)])
    z2, _ = layer.reverse(layer(z)[0])
    torch.testing.assert_close(z2, z, atol=1e-9, rtol=1e-12)


def test_householder_matrix_is_orthogonal_and_reflections_are_their_own_inverse():
    vs = torch.randn(3, 4, dtype=torch.float64)
    q = householder_matrix(vs)
    torch.testing.assert_close(q @ q.T, torch.eye(4, dtype=torch.float64))
    layer = Householder(4, n_reflections=3).double()
    with torch.no_grad():
        layer.vs.copy_(vs)
    z = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(layer(z)[0], z @ q.T)


@pytest.mark.parametrize("variant", ["orthogonal", "householder", "triangular"])
def test_sylvester_q_has_orthonormal_columns(variant):
    layer = Sylvester(3, m=2, variant=variant).double()
    q = layer.q()
    torch.testing.assert_close(q.T @ q, torch.eye(2, dtype=torch.float64))


def test_layers_refuse_wrong_shapes_and_dtypes():
    for layer in (Planar(2), Radial(2), Householder(2), Sylvester(2)):
        with pytest.raises(ValueError, match="expected z of shape"):
            layer(torch.zeros(3, 3))
        with pytest.raises(ValueError, match="dtype"):
            layer(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="m <= dim"):
        Sylvester(2, m=3)
    with pytest.raises(ValueError, match="variant"):
        Sylvester(2, variant="cayley-ish")


# ----------------------------------------------------------------------------- targets


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_log_z_quadrature_has_converged(name):
    target = get_target(name)
    coarse = log_z_grid(target, n=400)
    fine = log_z_grid(target, n=800)
    wider = log_z_grid(target, n=1000, box=(target.box[0] - 2.5, target.box[1] + 2.5))
    assert abs(fine - coarse) < 1e-5
    assert abs(wider - fine) < 1e-5
    assert math.isfinite(fine)


def test_mixture_is_normalised_and_its_samples_follow_it():
    mix = GaussianMixture2D()
    assert abs(log_z_grid(mix, n=800)) < 1e-6
    x = mix.sample(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # mean of the mixture is (mu1 + mu2)/2 = (-0.5, -0.5); Var = 1 + 2.25 per coordinate
    torch.testing.assert_close(x.mean(0), torch.tensor([-0.5, -0.5], dtype=torch.float64), atol=0.05, rtol=0)
    torch.testing.assert_close(x.var(0), torch.tensor([3.25, 3.25], dtype=torch.float64), atol=0.1, rtol=0)


def test_potentials_match_the_paper_formulas_at_a_point():
    x1, x2 = 0.7, -1.3
    w1 = math.sin(2 * math.pi * x1 / 4)
    w2 = 3 * math.exp(-0.5 * ((x1 - 1) / 0.6) ** 2)
    w3 = 3 / (1 + math.exp(-(x1 - 1) / 0.3))
    r = math.hypot(x1, x2)
    expected = {
        "U1": 0.5 * ((r - 2) / 0.4) ** 2 - math.log(math.exp(-0.5 * ((x1 - 2) / 0.6) ** 2)
                                                    + math.exp(-0.5 * ((x1 + 2) / 0.6) ** 2)),
        "U2": 0.5 * ((x2 - w1) / 0.4) ** 2,
        "U3": -math.log(math.exp(-0.5 * ((x2 - w1) / 0.35) ** 2)
                        + math.exp(-0.5 * ((x2 - w1 + w2) / 0.35) ** 2)),
        "U4": -math.log(math.exp(-0.5 * ((x2 - w1) / 0.4) ** 2)
                        + math.exp(-0.5 * ((x2 - w1 + w3) / 0.35) ** 2)),
    }
    x = torch.tensor([[x1, x2]], dtype=torch.float64)
    for name, value in expected.items():
        assert get_target(name)(x).item() == pytest.approx(value, rel=1e-12), name


def test_taper_is_zero_inside_and_grows_outside():
    x1 = torch.tensor([-3.9, 0.0, 4.0, 4.5, -5.0], dtype=torch.float64)
    torch.testing.assert_close(taper(x1), torch.tensor([0, 0, 0, 2.0, 8.0], dtype=torch.float64))


def test_exact_kl_against_gaussian_closed_form():
    """A diagonal Gaussian flow q = N(mu, diag s^2) against p = N(0, I): KL in closed form."""
    target = Target2D("gauss", lambda x: 0.5 * (x**2).sum(1), (-8.0, 8.0))
    assert target.log_z == pytest.approx(math.log(2 * math.pi), abs=1e-8)
    flow = make_flow("householder", 2, dtype=torch.float64)
    with torch.no_grad():
        flow.layers[0].shift.copy_(torch.tensor([0.3, -0.2]))
        flow.layers[0].log_scale.copy_(torch.tensor([0.2, -0.4]))
    s2 = torch.exp(2 * flow.layers[0].log_scale.detach())
    mu = flow.layers[0].shift.detach()
    closed = 0.5 * (s2 + mu**2 - 1 - torch.log(s2)).sum().item()
    torch.manual_seed(0)
    kl = exact_kl(flow, target, n_samples=1 << 16)
    assert kl["kl"] == pytest.approx(closed, abs=5 * kl["kl_stderr"] + 1e-9)
    assert kl["kl_stderr"] < 0.01


def test_two_moons_is_seeded_and_shaped():
    a, b, c = two_moons(500, seed=1), two_moons(500, seed=1), two_moons(500, seed=2)
    assert a.shape == (500, 2) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() < 4


# ----------------------------------------------------------------------------- training


def test_annealing_raises_beta_to_one():
    ann = Annealed(lambda x: x.sum(1))
    sched = AnnealSchedule(ann, fraction=0.5, beta0=0.1, steps=10)
    flow = make_flow("radial", 2)
    tracker = KLTracker(get_target("mixture"), every=4, n_samples=256).bind(flow)
    betas = []
    fit = fit_reverse_kl(flow, get_target("mixture"), steps=10, batch_size=32, anneal=0.5,
                         callbacks=[tracker, lambda h: betas.append(None)])
    assert len(fit) == 10 and tracker.steps[-1] == 9 and len(tracker.kls) == len(tracker.steps)
    sched.on_train_begin(fit.__class__())
    assert ann.beta == pytest.approx(0.1)
    sched.on_train_end(fit)
    assert ann.beta == 1.0


def test_reverse_kl_training_lowers_the_exact_kl():
    torch.manual_seed(0)
    target = get_target("mixture")
    flow = make_flow("planar", 4)
    before = exact_kl(flow, target, n_samples=4096)["kl"]
    fit_reverse_kl(flow, target, steps=60, batch_size=128, lr=2e-2, anneal=0)
    after = exact_kl(flow, target, n_samples=4096)["kl"]
    assert after < before


def test_maximum_likelihood_on_two_moons_lowers_the_held_out_nll():
    torch.manual_seed(0)
    data = two_moons(1024, seed=0)
    flow = make_flow("sylvester", 2)
    before = mean_nll(flow, data[512:])
    fit_data(flow, data[:512], steps=40, batch_size=128, lr=2e-2)
    assert mean_nll(flow, data[512:]) < before


def test_cli_json_last_line(capsys):
    from lftutor.cli import main

    main(["train", "toy2d", "--target", "U1", "--flow", "radial", "--layers", "2", "--steps", "3",
          "--kl-samples", "1024", "--eval-samples", "512", "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("kl", "ess", "steps", "train_seconds", "log_z"):
        assert key in out
    assert out["steps"] == 3 and out["target"] == "U1"
    main(["train", "toy2d", "--data", "two-moons", "--flow", "planar", "--layers", "2", "--steps", "2",
          "--n-data", "256", "--n-test", "128", "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["steps"] == 2 and math.isfinite(out["test_nll"])


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_builds_a_2d_flow_whose_log_prob_matches_its_samples(family):
    torch.manual_seed(0)
    flow = make_flow(family, 2, dtype=torch.float64)
    x, log_q = flow.sample(32)
    assert x.shape == (32, 2) and log_q.shape == (32,)
    torch.testing.assert_close(flow.log_prob(x), log_q, atol=1e-8, rtol=0)
    kl = exact_kl(flow, get_target("mixture"), n_samples=2048)
    assert kl["kl"] > -5 * kl["kl_stderr"]  # a KL is never negative (up to its Monte Carlo error)


def test_unknown_family_is_refused_with_the_list():
    with pytest.raises(ValueError, match="expected a flow family in .*naf.*realnvp"):
        make_flow("realnvp", 2)
