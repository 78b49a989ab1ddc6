"""The digits VAE: a fixed seeded split, bounds ELBO <= IWAE <= log p(x) against log p(x) by
quadrature over a 1-D and a 2-D latent space, the flow posterior's density, weights, the CLI."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import pytest
import torch

from lftutor.amortized.bounds import elbo, iwae_log_likelihood, log_mean_exp, mean_and_stderr
from lftutor.amortized.digits import _load, load_digits_split
from lftutor.amortized.vae import POSTERIORS, VAE, bernoulli_log_likelihood, evaluate, train_vae
from lftutor.amortized.weights import load_pretrained, load_vae, save_vae, upgrade_state
from lftutor.bijections.conditional import standard_normal_log_prob


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_split_is_fixed_binary_and_disjoint():
    a, b = load_digits_split(), load_digits_split()
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert a.train.shape == (1497, 64) and a.test.shape == (300, 64)
    assert set(a.train.unique().tolist()) == {0.0, 1.0}
    _, _, labels, train, test = _load(0)
    assert len(set(train) & set(test)) == 0 and len(set(train) | set(test)) == 1797
    # the binarization follows the grey levels: pixel means agree to within sampling noise
    assert abs(a.train.mean().item() - a.train_intensity.mean().item()) < 0.01
    other = load_digits_split(seed=1)
    assert not torch.equal(other.test, a.test)


def test_log_mean_exp_is_stable():
    a = torch.tensor([[-1000.0, 0.0], [-1002.0, 2.0]])
    expected = torch.tensor([-1000.0 + math.log((1 + math.exp(-2)) / 2), math.log((1 + math.exp(2)) / 2)])
    torch.testing.assert_close(log_mean_exp(a, 0), expected)


def _small_vae(latent, posterior, seed=0):
    torch.manual_seed(seed)
    model = VAE(latent, posterior, n_layers=2, hidden=16, iaf_hidden=8).double()
    with torch.no_grad():  # a decoder with some structure, so that p(x) is not flat
        model.decoder[-1].weight.mul_(4.0)
    return model


def _log_p_by_quadrature(model, x, latent):
    """log p(x) = log sum_z N(z) p(x | z) dz on a grid, image by image."""
    n = 4001 if latent == 1 else 301
    grid = torch.linspace(-7, 7, n, dtype=torch.float64)
    h = (grid[1] - grid[0]).item()
    if latent == 1:
        z = grid[:, None]
    else:
        z = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        logits = model.decode(z)
        out = []
        for xi in x:
            lp = bernoulli_log_likelihood(logits, xi[None]) + standard_normal_log_prob(z)
            out.append(torch.logsumexp(lp, 0).item() + latent * math.log(h))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize(("latent", "posterior"), [(1, "gaussian"), (2, "planar"), (2, "iaf")])
def test_elbo_below_iwae_which_converges_to_log_p(latent, posterior):
    """E[ELBO] <= E[L_4] <= E[L_40] <= log p(x), and L_20000 = log p(x) by quadrature to 0.05 nats."""
    model = _small_vae(latent, posterior)
    x = load_digits_split().test[:3].double()
    log_p = _log_p_by_quadrature(model, x, latent)
    torch.manual_seed(0)
    with torch.no_grad():
        log_w = model.log_weights(x, 8000)  # (8000, 3)

    def bound(k):  # mean over 8000 / k independent estimates L_k, and its standard error
        est = log_mean_exp(log_w.reshape(-1, k, x.shape[0]), dim=1)
        return est.mean(0), est.std(0) / math.sqrt(est.shape[0])

    (elbo_value, se1), (l4, se4), (l40, se40) = bound(1), bound(4), bound(40)
    assert torch.all(elbo_value + 3 * se1 < l4 - 3 * se4)
    assert torch.all(l4 < l40 + 3 * se40)
    assert torch.all(l40 < log_p + 3 * se40)
    assert torch.all(log_p - elbo_value > 0.3)  # the check is not trivial: the ELBO is loose
    big = iwae_log_likelihood(model, x, k=20000, chunk=5000)
    assert torch.all((big - log_p).abs() < 0.05), (big, log_p)


def test_flow_posterior_density_integrates_to_one():
    """log q_K from sample_posterior is a normalized density: invert the planar layers on a grid."""
    model = _small_vae(2, "planar", seed=3)
    x = load_digits_split().test[:1].double()
    with torch.no_grad():
        mu, log_sigma, h = model.encode(x)
        grid = torch.linspace(-8, 8, 321, dtype=torch.float64)
        z = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
        hh = h.expand(z.shape[0], -1)
        z0, log_det = z, torch.zeros(z.shape[0], dtype=torch.float64)
        for layer in reversed(model.flow.layers):
            z0, ld = layer.reverse(z0, hh)
            log_det = log_det + ld
        eps = (z0 - mu) / torch.exp(log_sigma)
        log_q = standard_normal_log_prob(eps) - log_sigma.sum() + log_det
        total = torch.exp(log_q).sum().item() * (grid[1] - grid[0]).item() ** 2
        # and the sampler's log q agrees with this density at its own samples
        torch.manual_seed(1)
        zs, log_qs = model.sample_posterior(x, 5)
        z0s, ld = zs[:, 0], torch.zeros(5, dtype=torch.float64)
        for layer in reversed(model.flow.layers):
            z0s, l_ = layer.reverse(z0s, h.expand(5, -1))
            ld = ld + l_
        direct = standard_normal_log_prob((z0s - mu) / torch.exp(log_sigma)) - log_sigma.sum() + ld
    assert abs(total - 1.0) < 1e-3
    torch.testing.assert_close(direct, log_qs[:, 0], rtol=1e-7, atol=1e-7)


def test_elbo_helper_and_stderr():
    log_p = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    log_q = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    torch.testing.assert_close(elbo(log_p, log_q), torch.tensor([1.5, 3.0]))
    m, se = mean_and_stderr(torch.tensor([1.0, 3.0]))
    assert m == 2.0 and se == pytest.approx(1.0)
    with pytest.raises(ValueError):
        elbo(log_p, log_q[0])


@pytest.mark.parametrize("posterior", POSTERIORS)
def test_every_parameter_gets_a_gradient(posterior):
    model = VAE(3, posterior, n_layers=2, hidden=16, iaf_hidden=8)
    with torch.no_grad():  # IAF output layers start at zero (identity layers): move them off it
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = load_digits_split().train[:8]
    (-model.elbo(x, 2).mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_training_improves_the_held_out_elbo_and_weights_round_trip(tmp_path):
    split = load_digits_split()
    torch.manual_seed(0)
    model = VAE(2, "iaf", n_layers=2, hidden=32, iaf_hidden=8)
    before = evaluate(model, split.test[:100], k=20)
    history = train_vae(model, split.train_intensity, steps=150, batch_size=64, lr=3e-3)
    after = evaluate(model, split.test[:100], k=20)
    assert len(history) == 150
    assert after["test_elbo"] > before["test_elbo"] + 5
    assert after["test_log_likelihood"] >= after["test_elbo"] - 3 * after["test_elbo_stderr"]
    path = tmp_path / "m.pt"
    save_vae(model, path)
    loaded = load_vae(path)
    again = evaluate(loaded, split.test[:100], k=20)
    assert abs(again["test_log_likelihood"] - after["test_log_likelihood"]) < 0.05


# Test ELBO and L_50 (float64, 10 and 50 samples per image, seed 0) of the shipped models on the
# first 20 test images, computed with the posterior layers of lftutor/amortized/layers.py before
# they were replaced by lftutor.bijections.conditional (commit e3ea22b): the renamed weights must
# give the same numbers.
SHIPPED = {"gaussian": (-23.60927579132225, -23.32898460677189),
           "planar": (-23.35741973054013, -23.109570817063833),
           "iaf": (-23.64030624388471, -23.218603424061406)}


@pytest.mark.parametrize("posterior", POSTERIORS)
def test_shipped_weights_load_and_give_the_recorded_elbo(posterior):
    model = load_pretrained(posterior).double()
    assert model.latent_dim == 40 and model.n_layers == (0 if posterior == "gaussian" else 8)
    r = evaluate(model, load_digits_split().test[:20].double(), k=50, elbo_samples=10, seed=0)
    elbo_then, log_p_then = SHIPPED[posterior]
    assert r["test_elbo"] == pytest.approx(elbo_then, abs=1e-6)
    assert r["test_log_likelihood"] == pytest.approx(log_p_then, abs=1e-6)


def test_old_layer_names_are_renamed_and_incomplete_files_refused(tmp_path):
    blob = torch.load(Path(str(resources.files("lftutor") / "weights" / "vae40_iaf.pt")), weights_only=True)
    assert "flow.0.l1.weight" in blob["state"]  # the shipped files have the first version's names
    new = upgrade_state(blob["state"])
    assert set(new) == {k for k in VAE(**blob["config"]).state_dict() if not k.endswith((".mask", ".degree"))}
    torch.testing.assert_close(new["flow.layers.3.made.net.0.weight"][:, 128:],
                               blob["state"]["flow.3.l1.weight"].float())
    assert upgrade_state(new).keys() == new.keys()  # a current state stays as it is
    model = _small_vae(2, "iaf")
    save_vae(model, tmp_path / "m.pt")
    saved = torch.load(tmp_path / "m.pt", weights_only=True)["state"]
    assert not [k for k in saved if k.endswith((".mask", ".degree"))]  # rebuilt, not stored
    del saved["flow.layers.1.made.net.2.weight"]
    torch.save({"config": torch.load(tmp_path / "m.pt", weights_only=True)["config"], "state": saved},
               tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="missing"):
        load_vae(tmp_path / "bad.pt")


def test_cli_prints_json(capsys):
    from lftutor.cli import main

    main(["train", "vae", "--latent", "2", "--posterior", "planar", "--layers", "2", "--hidden", "16",
          "--steps", "3", "--iwae-samples", "5", "--json", "--quiet"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("test_elbo", "test_log_likelihood", "test_log_likelihood_stderr", "steps", "train_seconds"):
        assert key in result
    assert result["steps"] == 3 and result["posterior"] == "planar" and result["latent"] == 2


def test_cli_refuses_a_bad_latent():
    from lftutor.cli import main

    with pytest.raises(SystemExit):
        main(["train", "vae", "--latent", "3", "--steps", "1"])


def test_input_shapes_are_checked():
    with pytest.raises(ValueError, match=r"expected images of shape \(batch, 64\)"):
        VAE(2).elbo(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="posterior"):
        VAE(2, "sylvester")
