"""Unit 11's library: the pole mass, HMC tuned per lattice size, weights moved to a larger
lattice. Physics against exact results (the free field's lattice dispersion relation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lftutor.lattice.actions import FreeFieldAction
from lftutor.lattice.observables import pole_mass, slice_sums


def exact_free_pole_mass(m2: float) -> float:
    # zero spatial momentum leaves the 1-D operator 2 - 2 cos k + m^2: its pole is at
    # 2 cosh(E) - 2 = m^2, and C(t) is exactly a cosh on the periodic lattice
    return math.acosh(1 + m2 / 2)


@pytest.mark.parametrize("shape", [(8, 8), (4, 10)])
def test_the_pole_mass_of_the_free_field_is_its_lattice_dispersion(shape):
    torch.manual_seed(0)
    m2 = 0.5
    phi = FreeFieldAction(m2, shape).sample_n(20000)
    sums = slice_sums(phi)
    assert sums.shape == (20000, shape[-1])
    assert torch.allclose(sums.sum(-1), phi.flatten(1).sum(1))
    out = pole_mass(sums.numpy())
    exact = exact_free_pole_mass(m2)
    assert 0 < out["m_p_err"] < 0.05
    assert abs(out["m_p"] - exact) < 4 * out["m_p_err"], (out["m_p"], out["m_p_err"], exact)
    t_min, t_max = out["window"]
    assert (t_min, t_max) == (max(1, shape[-1] // 6), shape[-1] // 2 - 1)
    # every effective mass in the window is the same exact number, within its own error
    for t in range(t_min, t_max + 1):
        assert abs(out["m_eff"][t] - exact) < 4 * out["m_eff_err"][t] + 1e-3
    assert out["m_eff"][0] is None  # C(1) / C(0) < 1: no arccosh at t = 0


def test_parallel_chains_give_the_same_estimate_as_one_long_chain():
    torch.manual_seed(1)
    sums = slice_sums(FreeFieldAction(1.0, (6, 6)).sample_n(8000)).numpy()
    one = pole_mass(sums, bin_size=10)
    four = pole_mass(sums.reshape(2000, 4, 6), bin_size=10)
    assert one["n_bins"] == four["n_bins"] == 800
    assert abs(one["m_p"] - four["m_p"]) < 1e-12  # the same data, binned within chains


def test_a_too_short_chain_or_a_bad_window_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(N, T\) or \(N, n_chains, T\)"):
        pole_mass(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="window"):
        pole_mass(np.random.default_rng(0).normal(size=(100, 8)), window=(0, 3))
    with pytest.raises(ValueError, match="undefined"):
        pole_mass(np.random.default_rng(0).normal(size=(40, 8)), bin_size=2)  # white noise


def test_hmc_tuned_per_lattice_reaches_its_target_and_needs_more_steps_on_a_larger_lattice():
    from lftutor.lattice.actions import ScalarPhi4Action
    from lftutor.lattice.mcmc import hmc, phi4_force, tune_hmc

    torch.manual_seed(2)
    action = ScalarPhi4Action(-4.0, 6.975)
    force = lambda p: phi4_force(p, -4.0, 6.975)  # noqa: E731
    steps = {}
    for size in (6, 14):
        tuned = tune_hmc(action, torch.zeros(16, size, size, dtype=torch.float64), target=0.8,
                         force=force, trajectories=30)
        assert tuned["step_size"] * tuned["n_leapfrog"] == pytest.approx(1.0)
        assert tuned["acceptance"] >= 0.8
        # the tuned step holds its acceptance in an independent run from the tuned start
        check = hmc(action, tuned["phi"], 60, step_size=tuned["step_size"],
                    n_leapfrog=tuned["n_leapfrog"], force=force)
        assert check.acceptance > 0.65, (size, check.acceptance)
        steps[size] = tuned["n_leapfrog"]
    assert steps[14] > steps[6], steps
    with pytest.raises(ValueError, match="target acceptance"):
        tune_hmc(action, torch.zeros(2, 6, 6, dtype=torch.float64), target=1.5)


def test_weights_from_a_small_lattice_give_a_larger_flow_the_same_local_map():
    from lftutor.training.recipes import get_recipe
    from lftutor.training.transfer import load_transferred

    recipe = get_recipe("fast")
    torch.manual_seed(3)
    small = recipe.build_flow((8, 8)).double()
    with torch.no_grad():  # weights that are not the initial ones
        for p in small.parameters():
            p.add_(0.05 * torch.randn_like(p))
    big = recipe.build_flow((16, 16)).double()
    report = load_transferred(big, small.state_dict())
    assert report["rebuilt"] and all("index" in n or "prior" in n for n in report["rebuilt"])
    for name, p in big.named_parameters():
        assert torch.equal(p, dict(small.named_parameters())[name])
    # an 8x8 field tiled 2x2 is periodic on 16x16: the local (convolutional) couplings map it
    # to the tiled image of the small flow's output, with four times its log-det. (The first
    # layer, a spline of the standardized zero mode sqrt(V) * mean, is global by design: the
    # same map of a variable that is N(0, 1) under the prior at every V.)
    z = torch.randn(3, 8, 8, dtype=torch.float64)
    x_small, x_big = z, z.repeat(1, 2, 2)
    ld_small = ld_big = 0
    for layer_small, layer_big in zip(small.flow.layers[1:], big.flow.layers[1:], strict=True):
        x_small, ls = layer_small.forward(x_small)
        x_big, lb = layer_big.forward(x_big)
        ld_small, ld_big = ld_small + ls, ld_big + lb
    assert not torch.allclose(x_small, z)  # the perturbed layers do act
    assert torch.allclose(x_big, x_small.repeat(1, 2, 2), atol=1e-10)
    assert torch.allclose(ld_big, 4 * ld_small, atol=1e-8)


def test_weights_of_another_architecture_are_a_clear_error(tmp_path):
    from lftutor.training.recipes import get_recipe
    from lftutor.training.transfer import load_transferred

    small = get_recipe("fast").build_flow((8, 8))
    other = get_recipe("tutorial").build_flow((16, 16))
    with pytest.raises(ValueError, match="same architecture|cannot transfer"):
        load_transferred(other, small.state_dict())
    with pytest.raises(ValueError, match="could not read"):
        load_transferred(small, tmp_path / "missing.pt")


def _run_cli(argv, capsys) -> dict:
    import json

    from lftutor.cli import main

    assert main([*argv, "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_mcmc_phi4_reports_the_pole_mass_and_both_autocorrelation_times(capsys):
    out = _run_cli(["mcmc", "phi4", "--sampler", "hmc", "--ensemble", "E1", "--tune-acceptance",
                    "0.8", "--samples", "6000", "--chains", "12", "--seed", "1"], capsys)
    assert (out["L"], out["lam"]) == (6, 6.975)
    assert out["acceptance"] > 0.7 and out["tuned_acceptance"] >= 0.8
    assert out["tau_int"] >= 0.5 and out["tau_int_abs_m"] >= 0.5
    # E1's couplings were chosen for m_p L = 4 (arXiv:1904.12072)
    assert abs(out["m_p_L"] - 4.0) < 5 * 6 * out["m_p_err"], out
    assert out["m_p_window"] == [1, 2]
    # the chain's cost by both clocks; CPU time counts every thread, so it is not below zero and
    # not above threads x wall (a little slack for the clocks' resolution)
    assert out["sample_seconds"] > 0 and out["sample_cpu_seconds"] > 0
    assert out["sample_cpu_seconds"] <= torch.get_num_threads() * out["sample_seconds"] + 0.5


def test_train_phi4_starts_a_larger_lattice_from_smaller_weights(tmp_path, capsys):
    small = tmp_path / "L8.pt"
    _run_cli(["train", "phi4", "--L", "8", "--steps", "3", "--save", str(small),
              "--eval-samples", "64"], capsys)
    out = _run_cli(["train", "phi4", "--L", "16", "--steps", "2", "--init-from", str(small),
                    "--eval-samples", "64"], capsys)
    assert out["L"] == 16 and out["init_from"] == str(small)
    from lftutor.cli import main

    with pytest.raises(SystemExit):
        main(["train", "phi4", "--L", "16", "--steps", "1", "--recipe", "tutorial",
              "--init-from", str(small), "--quiet"])
    assert "same architecture" in capsys.readouterr().err


def test_scale_phi4_puts_hmc_and_the_flow_side_by_side_per_ensemble(tmp_path, capsys):
    out = _run_cli(["scale", "phi4", "--ensembles", "E1", "E2", "--train-budget", "2",
                    "--hmc-samples", "2000", "--hmc-chains", "10", "--flow-samples", "1500",
                    "--eval-samples", "256",
                    "--transfer", "--out", str(tmp_path)], capsys)
    assert [r["ensemble"] for r in out["rows"]] == ["E1", "E2"] and out["transfer"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["E1.pt", "E2.pt"]
    # the fast recipe builds the same layers at L = 6 and 8 (four colours, with seams at 6): E2
    # starts from E1's weights
    e2 = out["rows"][1]
    assert e2["init_from"] == str(tmp_path / "E1.pt") and e2["transfer_note"] is None
    for row in out["rows"]:
        assert row["hmc_tau_int"] >= 0.5 and 0 < row["flow_acceptance"] <= 1
        assert row["hmc_seconds_per_independent"] > 0 and row["flow_seconds_per_independent"] > 0
        assert row["break_even_samples"] > 0  # inf when the flow's chain costs more
        assert math.isfinite(row["chi2_pull"])
    from lftutor.commands.scale import _format_row

    text = _format_row(out["rows"][0], header=True)
    assert text.splitlines()[0].split()[:3] == ["ens", "L", "mpL"] and " E1 " in text


def test_scale_phi4_trains_from_scratch_and_says_why_when_weights_do_not_transfer(
        tmp_path, capsys, monkeypatch):
    import lftutor.training.transfer as transfer

    def refuse(flow, weights):
        raise ValueError("cannot transfer parameter 'x': shape (1,) in the weights, (2,) in the flow")

    monkeypatch.setattr(transfer, "load_transferred", refuse)  # train imports it when it runs
    out = _run_cli(["scale", "phi4", "--ensembles", "E1", "E1", "--train-budget", "1",
                    "--hmc-samples", "300", "--hmc-chains", "2", "--flow-samples", "300",
                    "--eval-samples", "64", "--transfer", "--out", str(tmp_path)], capsys)
    first, second = out["rows"]
    assert first["init_from"] is None and first["transfer_note"] is None
    assert second["init_from"] is None
    assert second["transfer_note"].startswith("trained from scratch: ")
    assert "cannot transfer parameter 'x'" in second["transfer_note"]
