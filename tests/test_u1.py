"""U(1) gauge theory in 2-D: geometry, exact results vs brute force, gauge-equivariant flows, HMC."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_bijections import U1 as U1_CASES

from lftutor.bijections import gauge, plaquette_chain
from lftutor.lattice import u1

TWO_PI = 2 * math.pi


def charge_config(lattice, k: int = 1) -> torch.Tensor:
    """Links whose plaquettes all wrap to 2 pi k / V: a configuration of charge k (k < V/2)."""
    l0, l1 = lattice
    b = TWO_PI * k / (l0 * l1)
    theta = torch.zeros(1, 2, l0, l1, dtype=torch.float64)
    theta[0, 1] = b * torch.arange(l0, dtype=torch.float64)[:, None]
    theta[0, 0, l0 - 1] = -b * l0 * torch.arange(l1, dtype=torch.float64)
    return theta


def plaquettes_by_loops(theta: torch.Tensor) -> torch.Tensor:
    """Plaquettes from explicit site loops (an independent computation)."""
    _, _, l0, l1 = theta.shape
    out = torch.empty(theta.shape[0], l0, l1, dtype=theta.dtype)
    for x0 in range(l0):
        for x1 in range(l1):
            out[:, x0, x1] = (theta[:, 0, x0, x1] + theta[:, 1, (x0 + 1) % l0, x1]
                              - theta[:, 0, x0, (x1 + 1) % l1] - theta[:, 1, x0, x1])
    return out


# ---------------------------------------------------------------------------------- geometry

def test_plaquette_orientation_signs():
    theta = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    theta[0, 0, 1, 2] = 0.3   # theta_0(x): + in P(x), - in P(x - 1hat)
    theta[0, 1, 3, 0] = 0.5   # theta_1(x): - in P(x), + in P(x - 0hat)
    p = u1.plaquettes(theta)[0]
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[1, 2], expected[1, 1] = 0.3, -0.3
    expected[3, 0], expected[2, 0] = -0.5, 0.5
    torch.testing.assert_close(p, expected)


def test_plaquettes_match_explicit_loops_on_rectangle():
    theta = u1.uniform_links(3, (4, 6), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(u1.plaquettes(theta), plaquettes_by_loops(theta))


def test_wrap_range():
    x = torch.tensor([-math.pi, math.pi, 3 * math.pi, -3 * math.pi + 1e-9, 0.5, 7.0], dtype=torch.float64)
    w = u1.wrap(x)
    assert bool(((w > -math.pi) & (w <= math.pi)).all())
    assert w[0].item() == pytest.approx(math.pi) and w[1].item() == pytest.approx(math.pi)
    torch.testing.assert_close(torch.remainder(w - x, TWO_PI).clamp(max=TWO_PI - 1e-9) * 0,
                               torch.zeros_like(x))
    torch.testing.assert_close(torch.cos(w), torch.cos(x))


@pytest.mark.parametrize("k", [1, -2, 3])
def test_charge_of_constructed_configuration(k):
    theta = charge_config((4, 6), k)
    assert u1.topological_charge(theta).item() == pytest.approx(k, abs=1e-10)
    beta = 1.7
    assert u1.U1GaugeAction(beta)(theta).item() == pytest.approx(-beta * 24 * math.cos(TWO_PI * k / 24))


def test_charge_is_integer_and_odd_under_reflection_of_angles():
    theta = u1.uniform_links(64, 6, generator=torch.Generator().manual_seed(1))
    q = u1.topological_charge(theta)
    torch.testing.assert_close(q, torch.round(q), atol=1e-9, rtol=0)
    assert q.abs().max() > 0  # random links carry charge
    torch.testing.assert_close(u1.topological_charge(-theta), -q, atol=1e-9, rtol=0)


def test_action_charge_and_plaquette_are_gauge_invariant_but_links_are_not():
    gen = torch.Generator().manual_seed(2)
    theta = u1.uniform_links(5, (4, 6), generator=gen)
    moved = u1.random_gauge(theta, generator=gen)
    assert (u1.wrap(moved - theta).abs() > 1e-3).any()
    action = u1.U1GaugeAction(2.5)
    torch.testing.assert_close(action(moved), action(theta))
    torch.testing.assert_close(u1.topological_charge(moved), u1.topological_charge(theta))
    torch.testing.assert_close(u1.average_plaquette(moved), u1.average_plaquette(theta))


def test_force_is_the_gradient_of_the_action():
    theta = u1.uniform_links(3, (4, 6), generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    action = u1.U1GaugeAction(1.3)
    (grad,) = torch.autograd.grad(action(theta).sum(), theta)
    torch.testing.assert_close(action.force(theta.detach()), grad)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="expected theta of shape"):
        u1.plaquettes(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="beta"):
        u1.U1GaugeAction(-1.0)
    with pytest.raises(ValueError, match="alpha"):
        u1.gauge_transform(torch.zeros(2, 2, 4, 4), torch.zeros(3, 3))


# ---------------------------------------------------------------------------------- exact results

def brute_force_2x2(beta: float, n: int = 12):
    """Z, <cos theta_P> and P(Q) on the 2x2 torus by quadrature over the 5 links left after
    fixing the 3 links of a maximal tree to zero (gauge invariance); a shifted product grid."""
    offsets = [0.1234, 0.3817, 0.7071, 0.2718, 0.5772]
    axes = [TWO_PI * (np.arange(n) + o) / n - math.pi for o in offsets]
    grids = np.meshgrid(*axes, indexing="ij")
    theta = torch.zeros(n**5, 2, 2, 2, dtype=torch.float64)
    free = [(0, 1, 0), (0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, 1)]  # tree: (0,0,0), (1,0,0), (1,1,0)
    for g, (mu, a, b) in zip(grids, free, strict=True):
        theta[:, mu, a, b] = torch.from_numpy(g.ravel())
    w = torch.exp(-u1.U1GaugeAction(beta)(theta))
    q = torch.round(u1.topological_charge(theta))
    p_q = {k: (w[q == k].sum() / w.sum()).item() for k in (-1, 0, 1)}
    plaq = ((w * u1.average_plaquette(theta)).sum() / w.sum()).item()
    return math.log(w.mean().item()), plaq, p_q


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_exact_results_match_brute_force_on_2x2(beta):
    log_z, plaq, p_q = brute_force_2x2(beta)
    # the grid is spectrally accurate for smooth integrands (Z, <cos>), O(1/n) for the jumps of Q
    assert u1.exact_log_z(beta, 2) == pytest.approx(log_z, abs=1e-6)
    assert u1.exact_plaquette(beta, 2) == pytest.approx(plaq, abs=1e-6)
    q, p = u1.exact_charge_distribution(beta, 2)
    assert p.sum() == pytest.approx(1.0, abs=1e-8)
    assert set(q[p > 1e-12].tolist()) <= {-1, 0, 1}
    for k, value in p_q.items():
        assert p[q == k][0] == pytest.approx(value, abs=4e-3), (k, value)


def test_exact_plaquette_is_the_derivative_of_log_z():
    h = 1e-5
    for beta, lattice in [(0.5, 4), (2.0, 8), (6.0, (8, 4))]:
        volume = np.prod(u1.lattice_shape_of(lattice))
        deriv = (u1.exact_log_z(beta + h, lattice) - u1.exact_log_z(beta - h, lattice)) / (2 * h) / volume
        assert u1.exact_plaquette(beta, lattice) == pytest.approx(deriv, abs=1e-7)


def test_exact_charge_distribution_at_beta_zero_matches_haar_sampling():
    """At beta = 0 the links are Haar-uniform: sample them directly (an independent check)."""
    theta = u1.uniform_links(100_000, 4, generator=torch.Generator().manual_seed(4))
    q = torch.round(u1.topological_charge(theta)).numpy()
    qs, p = u1.exact_charge_distribution(0.0, 4)
    for k in range(-2, 3):
        freq = np.mean(q == k)
        err = math.sqrt(p[qs == k][0] * (1 - p[qs == k][0]) / q.size)
        assert abs(freq - p[qs == k][0]) < 5 * err + 1e-4, (k, freq, p[qs == k][0])
    assert np.mean(q**2) / 16 == pytest.approx(u1.exact_chi_top(0.0, 4), rel=0.02)


def test_exact_values_at_the_tutorial_point_and_large_beta():
    assert u1.exact_plaquette(2.0, 8) == pytest.approx(0.6977747, abs=1e-6)
    assert u1.exact_chi_top(2.0, 8) == pytest.approx(0.0193640, abs=1e-6)
    # large beta: the continuum value 1/(4 pi^2 beta), up to O(1/beta^2) and finite volume
    chi = u1.exact_chi_top(20.0, 32)
    assert chi == pytest.approx(1 / (4 * math.pi**2 * 20), rel=0.05)


# ---------------------------------------------------------------------------------- flows

def random_layer(mu, offset, lattice=4, std=0.1, seed=0):
    torch.manual_seed(seed)
    layer = gauge.GaugeEquivariantCoupling(lattice, mu=mu, offset=offset, hidden_channels=(4,),
                                           n_bins=4).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, std)
    return layer


def random_chain(lattice=4, std=0.3, hidden=(6, 5)):
    torch.manual_seed(1)
    layer = plaquette_chain.PlaquetteChainLayer(lattice, hidden=hidden, n_bins=4).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, std)
    return layer


# The U(1) bijections of the one registry (tests/test_bijections.py), where the generic checks
# (inverse, log-dets, Jacobian, gradients, ...) run; here: gauge equivariance.
BIJECTIONS = [pytest.param(case.make, id=name) for name, case in U1_CASES.items()]


def test_stripe_orders():
    for order, offsets in (("ascending", [0, 0, 1, 1, 2, 2, 3, 3, 0, 0]),
                           ("descending", [3, 3, 2, 2, 1, 1, 0, 0, 3, 3])):
        flow = gauge.make_u1_flow(4, n_layers=10, stripe_order=order)
        assert [layer.offset for layer in flow.layers] == offsets
        assert [layer.mu for layer in flow.layers] == [0, 1] * 5
    with pytest.raises(ValueError, match="stripe_order"):
        gauge.make_u1_flow(4, stripe_order="random")


@pytest.mark.parametrize("make", BIJECTIONS)
def test_commutes_with_gauge_transformations(make):
    bij = make()
    gen = torch.Generator().manual_seed(8)
    z = u1.uniform_links(4, 4, generator=gen)
    alpha = TWO_PI * torch.rand(4, 4, 4, dtype=torch.float64, generator=gen)
    x, ld = bij.forward(z)
    x_of_moved, ld_moved = bij.forward(u1.gauge_transform(z, alpha))
    torch.testing.assert_close(u1.wrap(x_of_moved - u1.gauge_transform(x, alpha)),
                               torch.zeros_like(x), atol=1e-9, rtol=0)
    torch.testing.assert_close(ld_moved, ld)


def test_a_plain_coupling_on_links_is_not_gauge_equivariant():
    """The equivariance test can fail: a layer whose conditioner sees raw links breaks it."""
    layer = random_layer(0, 0)
    gen = torch.Generator().manual_seed(9)
    z = u1.uniform_links(2, 4, generator=gen)
    alpha = TWO_PI * torch.rand(2, 4, 4, dtype=torch.float64, generator=gen)

    def leaky(theta):  # feeds theta_1 links (not invariant) where the plaquettes should go
        plaq = u1.plaquettes(theta)
        return theta + 0.1 * torch.stack([torch.sin(theta[:, 1]) * layer.frozen, 0 * plaq], dim=1)

    out = u1.wrap(leaky(u1.gauge_transform(z, alpha)) - u1.gauge_transform(leaky(z), alpha))
    assert out.abs().max() > 1e-3


def test_fresh_flow_is_the_identity_and_prior_is_haar():
    flow = gauge.make_u1_flow(4, n_layers=8, dtype=torch.float64)
    z = flow.prior.sample_n(3)
    assert bool(((z > -math.pi) & (z < math.pi)).all())
    x, ld = flow(z)
    torch.testing.assert_close(u1.wrap(x - z), torch.zeros_like(z), atol=1e-12, rtol=0)
    haar = torch.full((3,), -32 * math.log(TWO_PI), dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(x), haar)


def test_circle_map_is_a_bijection_of_the_circle():
    torch.manual_seed(0)
    x = torch.linspace(-math.pi, math.pi, 2001, dtype=torch.float64)[1:]
    params = (0.8 * torch.randn(13, dtype=torch.float64)).expand(x.numel(), 13).contiguous()
    y, ld = gauge.circle_map(x, params)
    # y winds exactly once: unwrapped increments are positive and sum to 2 pi
    steps = u1.wrap(torch.diff(torch.cat([y, y[:1]])))
    assert bool((steps > 0).all())
    assert steps.sum().item() == pytest.approx(TWO_PI, abs=1e-9)
    # and the density integrates to one: int h' dx = 2 pi
    assert (torch.exp(ld).mean() * TWO_PI).item() == pytest.approx(TWO_PI, rel=1e-3)


def test_masks_frozen_plaquettes_contain_no_updated_link():
    for mu in (0, 1):
        for s in range(4):
            masks = gauge.make_u1_masks((8, 4), mu, s) if mu == 1 else gauge.make_u1_masks((4, 8), mu, s)
            shape = masks["active"].shape
            theta = torch.zeros(1, 2, *shape, dtype=torch.float64, requires_grad=True)
            p = u1.plaquettes(theta)[0]
            (grad,) = torch.autograd.grad((p * masks["frozen"]).sum(), theta)
            assert grad[0, mu][masks["active"]].abs().sum() == 0
            (grad,) = torch.autograd.grad((p * masks["active"]).sum(), theta)
            assert bool((grad[0, mu][masks["active"]].abs() == 1).all())
    with pytest.raises(ValueError, match="touch"):
        gauge.make_u1_masks((5, 5), 0, 0)


def test_layer_refuses_wrong_dtype_and_shape():
    layer = gauge.GaugeEquivariantCoupling(4, mu=0, offset=0)
    with pytest.raises(ValueError, match="dtype"):
        layer(torch.zeros(2, 2, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="expected z of shape"):
        layer(torch.zeros(2, 2, 4, 6))


def test_snake_path_visits_every_plaquette_once_through_shared_links():
    for lattice in [(4, 4), (3, 5), (5, 3), (2, 6)]:
        l0, l1 = lattice
        path = plaquette_chain.snake_path(lattice)
        order = path["plaquette"].tolist()
        assert sorted(order) == list(range(l0 * l1))
        # moving link i by sign_i changes plaquette i by +1 and i+1 by -1, no other
        basis = torch.zeros(len(order) - 1, 2 * l0 * l1, dtype=torch.float64)
        basis[torch.arange(len(order) - 1), path["link"]] = path["sign"]
        change = u1.plaquettes(basis.view(-1, 2, l0, l1)).flatten(1)[:, path["plaquette"]]
        expected = torch.diag(torch.ones(len(order), dtype=torch.float64))[:-1]
        expected -= torch.diag(torch.ones(len(order) - 1, dtype=torch.float64), 1)[:-1]
        torch.testing.assert_close(change, expected)
        if min(lattice) == 2:
            continue
        for i, (a, b) in enumerate(zip(order[:-1], order[1:], strict=True)):
            (a0, a1), (b0, b1) = divmod(a, l1), divmod(b, l1)
            # written out by hand from theta_P(x) = t0(x) + t1(x+0) - t0(x+1) - t1(x):
            if b1 == a1 and b0 == (a0 + 1) % l0:      # step +0: t1(x+0), + in P_a
                expected = (1 * l0 * l1 + b0 * l1 + a1, 1.0)
            elif b1 == a1 and b0 == (a0 - 1) % l0:    # step -0: t1(x), - in P_a
                expected = (1 * l0 * l1 + a0 * l1 + a1, -1.0)
            else:                                     # step +1: t0(x+1), - in P_a
                assert (b0, b1) == (a0, (a1 + 1) % l1)
                expected = (b0 * l1 + b1, -1.0)
            assert (int(path["link"][i]), float(path["sign"][i])) == expected
    with pytest.raises(ValueError, match=">= 2"):
        plaquette_chain.snake_path((1, 4))


def test_chain_layer_sets_each_plaquette_and_the_last_one_takes_the_rest():
    """Moving link i by sign_i * delta changes plaquette i by +delta and i+1 by -delta, nothing else;
    so the forward map's plaquettes are the circle maps of the input's, and the last one absorbs
    the constraint (the charge stays an integer)."""
    layer = random_chain()
    path = plaquette_chain.snake_path(4)
    z = u1.uniform_links(5, 4, generator=torch.Generator().manual_seed(3))
    x, _ = layer(z)
    moved = u1.wrap(u1.plaquettes(x) - u1.plaquettes(z)).flatten(1)[:, path["plaquette"]]
    assert moved[:, :-1].abs().max() > 0.1
    q = u1.topological_charge(x)
    torch.testing.assert_close(q, torch.round(q), atol=1e-9, rtol=0)
    fresh = plaquette_chain.PlaquetteChainLayer(4, hidden=(4,)).double()
    x0, ld0 = fresh(z)
    torch.testing.assert_close(u1.wrap(x0 - z), torch.zeros_like(z), atol=1e-12, rtol=0)
    torch.testing.assert_close(ld0, torch.zeros(5, dtype=torch.float64))


def test_chain_flow_learns_the_exact_distribution_on_2x2():
    """One chain layer can be exact: on 2x2 (3 free plaquettes) a short training reaches KL ~ 0
    against the exact log Z of the character expansion, and the mirror mixture is C-symmetric."""
    from lftutor.training.loop import cosine_schedule, evaluate, train

    torch.manual_seed(0)
    beta = 2.0
    model = plaquette_chain.make_u1_chain_flow(2, hidden=(16, 16), dtype=torch.float64)
    action = u1.U1GaugeAction(beta)
    train(model, action, steps=300, batch_size=256, lr=1e-2, lr_schedule=cosine_schedule)
    metrics = evaluate(model, action, n_samples=4096, generator=torch.Generator().manual_seed(1))
    kl = metrics["loss"] + u1.exact_log_z(beta, 2) + 8 * math.log(TWO_PI)
    assert -0.01 < kl < 0.03, kl  # a fresh flow (Haar) has KL = log Z = 3.7 here (0.011 measured)
    x, log_q = model.sample(64)
    torch.testing.assert_close(model.log_prob(-x), log_q)


def test_chain_layer_refuses_wrong_dtype_shape_and_sizes():
    layer = plaquette_chain.PlaquetteChainLayer(4, hidden=(4,))
    with pytest.raises(ValueError, match="dtype"):
        layer(torch.zeros(2, 2, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="expected z of shape"):
        layer(torch.zeros(2, 2, 4, 6))
    with pytest.raises(ValueError, match="hidden"):
        plaquette_chain.PlaquetteChainLayer(4, hidden=())


# ---------------------------------------------------------------------------------- HMC

def test_leapfrog_is_reversible_and_conserves_energy_to_second_order():
    gen = torch.Generator().manual_seed(10)
    theta = u1.uniform_links(4, 4, generator=gen)
    pi = torch.randn(theta.shape, dtype=torch.float64, generator=gen)
    action = u1.U1GaugeAction(2.0)
    x, p = u1.leapfrog(theta, pi, action.force, 0.05, 20)
    back, p_back = u1.leapfrog(x, -p, action.force, 0.05, 20)
    torch.testing.assert_close(back, theta, atol=1e-10, rtol=0)
    torch.testing.assert_close(-p_back, pi, atol=1e-10, rtol=0)

    def energy_error(eps):
        x, p = u1.leapfrog(theta, pi, action.force, eps, round(1.0 / eps))
        h0 = 0.5 * (pi**2).flatten(1).sum(1) + action(theta)
        h1 = 0.5 * (p**2).flatten(1).sum(1) + action(x)
        return (h1 - h0).abs().max().item()

    ratio = energy_error(0.1) / energy_error(0.05)
    assert 3.0 < ratio < 5.5  # O(eps^2)


def test_hmc_reproduces_exact_plaquette_on_small_lattice():
    torch.manual_seed(11)
    beta, lattice = 1.5, 4
    chain = u1.u1_hmc(beta, torch.zeros(16, 2, 4, 4, dtype=torch.float64), 200, step_size=0.2,
                      n_leapfrog=5, observable=u1.u1_observables)
    assert chain.acceptance > 0.7
    obs = chain.configs[40:]
    plaq = obs[..., 0].mean(dim=1).numpy()  # average over chains: one series
    s = u1.chain_summary(plaq, obs[:, 0, 1].numpy(), 16)
    assert abs(s["plaquette"] - u1.exact_plaquette(beta, lattice)) < 4 * s["plaquette_err"] + 1e-3
    q = torch.round(obs[..., 1]).flatten().numpy()
    assert np.mean(q**2) / 16 == pytest.approx(u1.exact_chi_top(beta, lattice), rel=0.25)


# ---------------------------------------------------------------------------------- CLI

def test_cli_train_and_mcmc_u1(capsys, tmp_path):
    import json

    from lftutor.cli import main

    weights = tmp_path / "u1.pt"
    main(["train", "u1", "--L", "4", "--beta", "1", "--steps", "2", "--n-layers", "2", "--hidden", "4",
          "--stripe-order", "descending", "--eval-samples", "64", "--save", str(weights),
          "--json", "--quiet"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 2 and 0 < result["ess"] <= 1 and result["kl"] > -1e-3
    for sampler, extra in (("hmc", []), ("flow", ["--weights", str(weights)])):
        main(["mcmc", "u1", "--L", "4", "--beta", "1", "--sampler", sampler, "--samples", "200",
              "--n-layers", "2", "--hidden", "4", "--stripe-order", "descending", *extra,
              "--json", "--quiet"])
        r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        for key in ("plaquette", "plaquette_err", "plaquette_exact", "chi_top", "chi_top_err",
                    "chi_top_exact", "tau_int_q", "acceptance"):
            assert math.isfinite(r[key]), key
        assert r["plaquette_exact"] == pytest.approx(u1.exact_plaquette(1.0, 4))
    with pytest.raises(SystemExit):
        main(["mcmc", "u1", "--L", "6", "--sampler", "hmc", "--samples", "20", "--json"])


def test_every_shipped_weights_file_is_listed_and_loads_into_its_model():
    import argparse

    from lftutor.commands.u1 import MODEL_DEFAULTS, SHIPPED_WEIGHTS, WEIGHTS_DIR, build_flow, load_weights

    assert {p.name for p in WEIGHTS_DIR.glob("u1*.pt")} == set(SHIPPED_WEIGHTS)
    for name, info in SHIPPED_WEIGHTS.items():
        assert info.get("stripe_order", "ascending") in gauge.STRIPE_ORDERS
        beta = float(name.split("_beta")[1].removesuffix(".pt"))
        L = int(name.split("_L")[1].split("_")[0])
        args = argparse.Namespace(model=info["model"], L=L, beta=beta, n_layers=16,
                                  n_bins=MODEL_DEFAULTS[info["model"]]["n_bins"],
                                  hidden=MODEL_DEFAULTS[info["model"]]["hidden"],
                                  stripe_order=info.get("stripe_order"))
        load_weights(build_flow(args), WEIGHTS_DIR / name, args)


def test_cli_chain_model_and_a_clear_error_for_the_wrong_weights(capsys, tmp_path):
    import json

    from lftutor.cli import main

    weights = tmp_path / "chain.pt"
    main(["train", "u1", "--model", "chain", "--L", "6", "--beta", "1", "--steps", "3", "--hidden", "8",
          "--eval-samples", "64", "--save", str(weights), "--json", "--quiet"])
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["model"] == "chain" and r["steps"] == 3 and r["batch_size"] == 256 and r["kl"] > -1e-3
    main(["mcmc", "u1", "--model", "chain", "--L", "6", "--beta", "1", "--hidden", "8",
          "--weights", str(weights), "--samples", "256", "--json", "--quiet"])
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["model"] == "chain" and 0 < r["acceptance"] <= 1
    assert r["plaquette_exact"] == pytest.approx(u1.exact_plaquette(1.0, 6))
    with pytest.raises(SystemExit):
        main(["mcmc", "u1", "--model", "chain", "--L", "6", "--weights", str(weights), "--samples", "64"])
    err = capsys.readouterr().err
    assert "--model chain --L 6 --hidden 64 64 --n-bins 16" in err
    assert "size mismatch" in err or "key(s)" in err
    with pytest.raises(SystemExit):
        main(["train", "u1", "--L", "6", "--steps", "1"])
    assert "multiple of 4" in capsys.readouterr().err


def test_shipped_chain_weights_give_a_good_sampler_at_beta_6():
    """The notebook's flow at beta = 6 (600 s of training: ESS 0.69, acceptance 0.66 when made)."""
    from lftutor.commands.u1 import WEIGHTS_DIR
    from lftutor.training.loop import evaluate

    model = plaquette_chain.make_u1_chain_flow(8)
    model.load_state_dict(torch.load(WEIGHTS_DIR / "u1chain_L8_beta6.pt", map_location="cpu"))
    metrics = evaluate(model, u1.U1GaugeAction(6.0), n_samples=4096,
                       generator=torch.Generator().manual_seed(0))
    assert metrics["acceptance"] > 0.5 and metrics["ess"] > 0.4, metrics


# ---------------------------------------------------------------------------------- graders
# Students' answers written here independently of lftutor.lattice.u1 (the graders refuse answers
# that call it): the plaquette sum wrapped by different formulas, right and wrong.

def _student_plaquettes(theta):
    t0, t1 = theta[:, 0], theta[:, 1]
    return t0 + torch.roll(t1, -1, dims=1) - torch.roll(t0, -1, dims=2) - t1


def _charge_with(wrap):
    return lambda theta: wrap(_student_plaquettes(theta)).flatten(1).sum(1) / TWO_PI


RIGHT_WRAPS = {  # each maps the float +-math.pi to +math.pi, as (-pi, pi] asks
    "ceil": lambda p: p - TWO_PI * torch.ceil((p - math.pi) / TWO_PI),
    "pi minus remainder": lambda p: math.pi - torch.remainder(math.pi - p, TWO_PI),
    "remainder, then shift above pi": lambda p: torch.where(torch.remainder(p, TWO_PI) > math.pi,
                                                            torch.remainder(p, TWO_PI) - TWO_PI,
                                                            torch.remainder(p, TWO_PI)),
}
WRONG_WRAPS = {  # name: (wrap, what the message must say)
    "[-pi, pi) by remainder": (lambda p: torch.remainder(p + math.pi, TWO_PI) - math.pi, r"\[-pi, pi\)"),
    "[-pi, pi) by floor": (lambda p: p - TWO_PI * torch.floor((p + math.pi) / TWO_PI), r"\[-pi, pi\)"),
    "atan2 keeps -pi": (lambda p: torch.atan2(torch.sin(p), torch.cos(p)), "left a plaquette of exactly -pi"),
    "round half to even keeps -pi": (lambda p: p - TWO_PI * torch.round(p / TWO_PI),
                                     "left a plaquette of exactly -pi"),
    "[0, 2 pi)": (lambda p: torch.remainder(p, TWO_PI), r"\[0, 2 pi\)"),
    "no wrapping": (lambda p: p, "without wrapping"),
}


def test_boundary_configuration_has_charge_one_in_the_convention():
    """One link at math.pi: plaquettes +pi and -pi; (-pi, pi] sends both to +pi, so Q = 1 (by hand),
    and the package's own wrap agrees."""
    from lftutor.graders import u1_gauge

    for dtype in (torch.float64, torch.float32):
        theta = u1_gauge._boundary_links((4, 4), dtype)
        p = _student_plaquettes(theta)[0]
        assert sorted(p[p != 0].tolist()) == [-float(torch.tensor(math.pi, dtype=dtype)),
                                              float(torch.tensor(math.pi, dtype=dtype))]
        assert u1.topological_charge(theta).item() == pytest.approx(1.0)


@pytest.mark.parametrize("name", RIGHT_WRAPS)
def test_charge_grader_passes_right_wraps(name):
    from lftutor.graders import u1_gauge

    for level in ("visible", "hidden"):
        u1_gauge.check_topological_charge(_charge_with(RIGHT_WRAPS[name]), level=level)


@pytest.mark.parametrize("name", WRONG_WRAPS)
def test_charge_grader_names_the_wrong_wrap(name):
    from lftutor.graders import u1_gauge
    from lftutor.graders.core import GradingError

    wrap, says = WRONG_WRAPS[name]
    with pytest.raises(GradingError, match=says):  # the visible level already catches each
        u1_gauge.check_topological_charge(_charge_with(wrap), level="visible")


def test_charge_grader_checks_the_boundary_per_sample_in_float32():
    """Hidden: a float32 batch whose middle configuration has a link at pi; an answer right
    everywhere except at -pi for float32 only is caught there, and only there."""
    from lftutor.graders import u1_gauge
    from lftutor.graders.core import GradingError

    def low_in_float32(theta):
        wrap = WRONG_WRAPS["[-pi, pi) by floor"][0] if theta.dtype == torch.float32 else RIGHT_WRAPS["ceil"]
        return _charge_with(wrap)(theta)

    u1_gauge.check_topological_charge(low_in_float32, level="visible")
    with pytest.raises(GradingError, match=r"batch with one link at exactly pi.*\[-pi, pi\)"):
        u1_gauge.check_topological_charge(low_in_float32, level="hidden")


def test_u1_graders_report_a_wrong_dtype_and_wrong_values_together():
    """plaquette_angles in float64 whatever the input, and with the wrong sign for float32 input:
    the hidden float32 case names both problems in one message."""
    from lftutor.graders import u1_gauge
    from lftutor.graders.core import GradingError

    def answer(theta):
        p = _student_plaquettes(theta.double())
        return -p if theta.dtype == torch.float32 else p

    with pytest.raises(GradingError, match=r"torch\.float64 tensor for a torch\.float32 input.*"
                                           r"values are wrong too: your plaquettes have the opposite sign"):
        u1_gauge.check_plaquette_angles(answer, level="hidden")
    # the dtype alone: no word about values
    with pytest.raises(GradingError) as err:
        u1_gauge.check_plaquette_angles(lambda theta: _student_plaquettes(theta.double()), level="hidden")
    assert "float64 tensor for a torch.float32 input" in str(err.value)
    assert "wrong too" not in str(err.value)


def test_module_docstring_examples_run():
    """The docstring examples of lftutor.lattice.u1 (exact_plaquette, exact_chi_top) are right."""
    import doctest

    result = doctest.testmod(u1, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0, result
