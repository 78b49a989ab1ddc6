import json
import subprocess
import sys

import matplotlib
import pytest

matplotlib.use("Agg")

from lftutor import Flow, ScalarPhi4Action, SimpleNormal, make_phi4_affine_layers, train  # noqa: E402
from lftutor.training.live import LivePlot, ProgressBar, moving_average, plot_history  # noqa: E402


def _run(*args):
    return subprocess.run([sys.executable, "-m", "lftutor", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("recipe", ["tutorial", "fast"])
def test_cli_short_run_prints_parsable_json_last_line(recipe):
    out = _run("train", "phi4", "--L", "4", "--m2", "-4", "--lam", "8", "--steps", "20", "--seed", "0",
               "--recipe", recipe, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["steps"] == 20 and result["L"] == 4 and result["recipe"] == recipe
    assert 0 < result["ess"] <= 1 and 0 <= result["acceptance"] <= 1
    assert result["eval_samples"] >= 8192 and result["train_seconds"] > 0
    assert "training" in out.stderr  # progress was shown


def test_cli_phi4_gradient_and_batch_overrides():
    out = _run("train", "phi4", "--L", "4", "--steps", "5", "--gradient", "path", "--batch-size", "16",
               "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (result["gradient"], result["batch_size"], result["steps"]) == ("path", 16, 5)
    default = json.loads(_run("train", "phi4", "--L", "4", "--steps", "2", "--json", "--quiet")
                         .stdout.strip().splitlines()[-1])
    assert default["gradient"] == "reparam" and default["batch_size"] == 128  # the fast recipe's


def test_cli_time_budget_and_saving(tmp_path):
    out = _run("train", "phi4", "--L", "4", "--time-budget", "1", "--json", "--save",
               str(tmp_path / "w.pt"), "--eval-samples", "512")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["train_seconds"] >= 1 and (tmp_path / "w.pt").exists()


@pytest.mark.parametrize("args,message", [
    (["--L", "5", "--steps", "2"], "even --L"),
    (["--steps", "0"], "positive integer"),
    (["--steps", "2", "--time-budget", "3"], "not allowed with"),
    (["--lam", "-1", "--steps", "2"], "lam >= 0"),
])
def test_cli_bad_arguments_give_clear_errors(args, message):
    out = _run("train", "phi4", *args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_moving_average_ignores_nans():
    avg = moving_average([1.0, float("nan"), 3.0, 5.0], window=2)
    assert avg.tolist() == [1.0, 1.0, 3.0, 4.0]


def test_live_plot_headless_draws_once_at_the_end_and_saves(tmp_path):
    flow = Flow(SimpleNormal.standard((4, 4)),
                make_phi4_affine_layers(n_layers=2, lattice_shape=(4, 4), hidden_sizes=[4], kernel_size=3))
    live = LivePlot(save_to=str(tmp_path / "live.png"))
    bar = ProgressBar(total=5, disable=True)
    hist = train(flow, ScalarPhi4Action(-4, 8), steps=5, batch_size=8, callbacks=[live, bar])
    assert (tmp_path / "live.png").stat().st_size > 1000
    fig = plot_history(hist)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "ESS"
    assert "ESS" in ax.get_title()


@pytest.mark.parametrize("model", ["linear", "nonlinear", "equivariant"])
def test_cli_gff_prints_exact_kl(model):
    out = _run("train", "gff", "--L", "4", "--m2", "0.25", "--model", model, "--steps", "30", "--json",
               "--eval-samples", "8192")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["model"] == f"gff-{model}" and result["steps"] == 30
    assert 0 < result["ess"] <= 1 and 0 <= result["acceptance"] <= 1
    # KL divergence is non-negative up to Monte-Carlo noise of the 8192-sample estimate
    assert result["kl"] > -0.05 and result["train_seconds"] > 0


def test_cli_mcmc_hmc_prints_chi2_with_error():
    out = _run("mcmc", "phi4", "--L", "4", "--sampler", "hmc", "--samples", "4000", "--chains", "8", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["sampler"] == "hmc" and 0.5 < result["acceptance"] <= 1
    assert result["chi2"] > 0 and 0 < result["chi2_err"] < result["chi2"] and result["tau_int"] >= 0.5


def test_cli_mcmc_flow_from_saved_weights(tmp_path):
    weights = tmp_path / "w.pt"
    out = _run("train", "phi4", "--L", "4", "--steps", "30", "--save", str(weights), "--quiet")
    assert out.returncode == 0, out.stderr
    out = _run("mcmc", "phi4", "--L", "4", "--weights", str(weights), "--samples", "2048", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["sampler"] == "flow" and result["samples"] == 2048 and 0 < result["acceptance"] < 1
    assert {"chi2", "chi2_err", "tau_int"} <= set(result)


def test_cli_mcmc_weights_of_the_wrong_lattice(tmp_path):
    weights = tmp_path / "w.pt"
    trained = _run("train", "phi4", "--L", "4", "--steps", "2", "--save", str(weights), "--quiet")
    assert trained.returncode == 0
    out = _run("mcmc", "phi4", "--L", "6", "--weights", str(weights), "--samples", "10")
    assert out.returncode == 2 and "could not load --weights" in out.stderr and "Traceback" not in out.stderr
