import io
import json
import math
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from lftutor import Flow, ScalarPhi4Action, SimpleNormal, make_phi4_affine_layers, train  # noqa: E402
from lftutor.training.live import (  # noqa: E402
    LivePlot,
    ProgressBar,
    format_metrics,
    moving_average,
    moving_median,
    plot_history,
    summary,
)
from lftutor.training.loop import History  # noqa: E402


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
    # the bar shows elapsed against the budget (was "N it [00:01, ...]", no total)
    last = out.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert "100%|" in last and "/1 s" in last and "ESS" in last, out.stderr


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
    assert avg.tolist() == [1.0, 1.0, 2.0, 4.0]  # the last 2 *measured* values, NaNs skipped
    assert np.isnan(moving_average([float("nan"), 2.0], window=3)[0])


def test_loss_is_smoothed_by_a_median_that_ignores_rare_spikes():
    """Batch losses are heavy-tailed: one spike of +40 among values near -9 moved a mean by 1.6."""
    loss = np.full(200, -9.0)
    loss[[150, 190, 199]] = 40.0
    assert moving_median(loss, window=25)[-1] == -9.0
    assert moving_median([1.0, 50.0, math.nan, 2.0, 3.0], window=3).tolist() == [1, 25.5, 25.5, 2, 3]
    h = History(step=list(range(200)), loss=loss.tolist(), ess=[0.5] * 200, seconds=[1.0] * 200)
    assert summary(h)["loss"] == -9.0 and format_metrics(summary(h)) == "ESS 0.500, loss -9.00"


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


def _history(n=2000, ess_every=10, objective="reverse_kl", seed=0):
    """Like unit 4's run: the loss starts near 1,400 and ends near -9, ESS every 10th step."""
    rng = np.random.default_rng(seed)
    h = History(objective=objective, time_budget=120.0)
    for i in range(n):
        h.step.append(i)
        h.seconds.append(120.0 * (i + 1) / n)
        h.loss.append(-9 + 1400 * math.exp(-i / 15) + 2 * math.exp(-i / 500) + 0.3 * rng.standard_normal())
        measured = objective == "reverse_kl" and i % ess_every == 0
        h.ess.append(float(np.clip(0.75 * (1 - math.exp(-i / 400)) + 0.1 * rng.standard_normal(), 0, 1))
                     if measured else float("nan"))
    return h


def _lines(ax, label_part):
    return [ln for ln in ax.get_lines() if label_part in ln.get_label()]


def test_ess_curve_is_a_moving_average_over_measurements_with_raw_values_visible():
    """Defect 2: with ess_every=10 a 10-step window held one value (a staircase of raw values),
    and the raw line, NaN between measurements, drew nothing."""
    h = _history(ess_every=10)
    fig = plot_history(h, window=25)
    ax = fig.axes[0]
    (raw,) = _lines(ax, "ESS of each batch")
    (avg,) = _lines(ax, "ESS, mean of last 25")
    raw_y, avg_y = np.asarray(raw.get_ydata(), float), np.asarray(avg.get_ydata(), float)
    assert len(raw_y) == 200 and np.isfinite(raw_y).all() and raw.get_marker() == "o"
    measured = np.asarray(h.ess)[~np.isnan(h.ess)]
    assert avg_y[-1] == pytest.approx(measured[-25:].mean())
    assert np.std(np.diff(avg_y[100:])) < 0.25 * np.std(np.diff(raw_y[100:]))  # smooth, not raw
    matplotlib.pyplot.close(fig)


def test_title_and_progress_bar_show_the_same_smoothed_numbers():
    h = _history()
    fig = plot_history(h)
    bar = ProgressBar(file=io.StringIO())
    bar.on_train_begin(History(time_budget=120.0))
    text = bar.format(h)
    numbers = format_metrics(summary(h))
    assert numbers.startswith("ESS 0.") and numbers in text and numbers in fig.axes[0].get_title()
    matplotlib.pyplot.close(fig)


def test_loss_axis_shows_the_end_of_training_not_the_first_steps():
    """Defect 3: autoscaling to the first steps (1,400) flattened a curve that ends near -9."""
    h = _history()
    fig = plot_history(h)
    lo, hi = fig.axes[1].get_ylim()
    late = np.asarray(h.loss[len(h) // 2:])
    assert lo <= late.min() + 1 and hi < 20 and hi - lo < 30
    assert "off scale" in fig.axes[1].get_ylabel()
    matplotlib.pyplot.close(fig)


def test_plot_has_a_legend_naming_every_curve():
    """Defect 4: only the axis colours said which line was which."""
    fig = plot_history(_history(n=100))
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any("ESS of each batch" in t for t in texts) and any("ESS, mean" in t for t in texts)
    assert sum("reverse KL loss" in t for t in texts) == 2
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("objective,label", [("nll", "negative log-likelihood"), ("custom", "loss")])
def test_objectives_without_ess_plot_the_loss_alone(objective, label):
    h = _history(n=300, objective=objective)
    fig = plot_history(h)
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel().startswith(label)
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert texts and not any("ESS" in t for t in texts) and "ESS" not in fig.axes[0].get_title()
    matplotlib.pyplot.close(fig)
    fig = plot_history(h, loss_label="negative ELBO")
    assert fig.axes[0].get_ylabel().startswith("negative ELBO")
    matplotlib.pyplot.close(fig)
    bar = ProgressBar(file=io.StringIO(), loss_label="NLL")
    bar.on_train_begin(History(time_budget=120.0))
    text = bar.format(h)
    assert "ESS" not in text and "NLL " in text


def _tiny_flow():
    return Flow(SimpleNormal.standard((4, 4)),
                make_phi4_affine_layers(n_layers=2, lattice_shape=(4, 4), hidden_sizes=[4], kernel_size=3))


def test_progress_bar_shows_elapsed_against_the_time_budget():
    """Defect 5: the bar said "2235/?" and "[02:00<00:00" throughout."""
    out = io.StringIO()
    bar = ProgressBar(file=out, mininterval=0.0, every=1)
    flow = _tiny_flow()
    train(flow, ScalarPhi4Action(-4, 8), steps=1, batch_size=8)  # warm-up: the first step is slow
    train(flow, ScalarPhi4Action(-4, 8), time_budget=1.5, batch_size=8, ess_every=3, callbacks=[bar])
    updates = [u.strip() for u in out.getvalue().split("\r") if u.strip()]
    assert len(updates) > 3 and all("/1.5 s" in u for u in updates)
    percents = [int(u.split("%")[0].split()[-1]) for u in updates]
    assert percents[0] == 0 and percents[-1] == 100 and percents == sorted(percents)
    assert "ESS 0." in updates[-1] and "loss " in updates[-1] and out.getvalue().endswith("\n")


def test_progress_bar_with_a_step_budget_and_an_explicit_total():
    out = io.StringIO()
    train(_tiny_flow(), ScalarPhi4Action(-4, 8), steps=6, batch_size=8,
          callbacks=[ProgressBar(file=out, mininterval=0.0)])
    assert "100%|" in out.getvalue() and "6/6 steps" in out.getvalue()
    bar = ProgressBar(total=100, file=io.StringIO(), mininterval=0.0)  # overrides the history's 2
    train(_tiny_flow(), ScalarPhi4Action(-4, 8), steps=2, batch_size=8, callbacks=[bar])
    assert " 2%|" in bar.text and "2/100 steps" in bar.text


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
