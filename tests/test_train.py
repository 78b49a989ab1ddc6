import math

import pytest
import torch

from lftutor import Flow, ScalarPhi4Action, SimpleNormal, make_phi4_affine_layers, train
from lftutor.training.loop import Callback, TrainingDiverged, cosine_schedule, evaluate
from lftutor.training.recipes import RECIPES, TUTORIAL, get_recipe


def _flow(shape=(4, 4)):
    return Flow(SimpleNormal.standard(shape),
                make_phi4_affine_layers(n_layers=4, lattice_shape=shape, hidden_sizes=[8], kernel_size=3))


def test_training_lowers_the_loss_and_records_history():
    torch.manual_seed(0)
    flow = _flow()
    action = ScalarPhi4Action(-4.0, 8.0)
    before = evaluate(flow, action, n_samples=2048)
    hist = train(flow, action, steps=150, batch_size=128, lr=3e-3)
    after = evaluate(flow, action, n_samples=2048)
    assert len(hist) == 150 and hist.step == list(range(150))
    for key, values in hist.as_dict().items():
        assert len(values) == 150, key
    assert after["loss"] < before["loss"] - 1.0
    assert after["ess"] > before["ess"]


def test_callbacks_are_called_in_order():
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, history):
            calls.append("begin")

        def on_step(self, history):
            calls.append(len(history))

        def on_train_end(self, history):
            calls.append("end")

    train(_flow(), ScalarPhi4Action(-4, 8), steps=3, batch_size=8, callbacks=[Recorder(), lambda h: None])
    assert calls == ["begin", 1, 2, 3, "end"]


def test_history_continues_across_calls():
    flow = _flow()
    hist = train(flow, ScalarPhi4Action(-4, 8), steps=3, batch_size=8)
    train(flow, ScalarPhi4Action(-4, 8), steps=2, batch_size=8, history=hist)
    assert hist.step == [0, 1, 2, 3, 4]


def test_time_budget_stops_training():
    hist = train(_flow(), ScalarPhi4Action(-4, 8), time_budget=0.5, batch_size=8)
    # it stops at the first step that ends after the budget (a loaded machine may fit one step)
    assert 0 < len(hist) and hist.seconds[-1] >= 0.5 and all(s < 0.5 for s in hist.seconds[:-1])


def test_the_time_budget_is_measured_on_the_given_clock():
    # A fake clock that advances 1 s per reading: the budget of 5 s ends after a few steps
    # however fast the machine is, and history.seconds are that clock's readings.
    ticks = iter(range(10_000))
    hist = train(_flow(), ScalarPhi4Action(-4.0, 8.0), time_budget=5, batch_size=4,
                 clock=lambda: float(next(ticks)))
    # readings: start 0; step 0 checks 1, records 2; step 1 checks 3, records 4; then 5 >= 5 stops
    assert hist.seconds == [2.0, 4.0]


def test_nan_loss_raises_with_the_step_number():
    calls = []

    def action(phi):  # good for steps 0, 1, 2, then NaN
        calls.append(1)
        s = ScalarPhi4Action(-4, 8)(phi)
        return s * float("nan") if len(calls) > 3 else s

    with pytest.raises(TrainingDiverged, match="at step 3"):
        train(_flow(), action, steps=10, batch_size=8)


def test_a_diverged_training_still_restores_the_lr_and_the_threads_and_ends_the_callbacks():
    calls = []

    class Recorder(Callback):
        def on_train_end(self, history):
            calls.append(("end", len(history)))

    def action(phi):  # good for steps 0 and 1, then NaN
        calls.append("step")
        s = ScalarPhi4Action(-4, 8)(phi)
        return s * float("nan") if calls.count("step") > 2 else s

    flow = _flow()
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    with pytest.raises(TrainingDiverged, match="at step 2"):
        # the schedule lowers the rate from the first step on, so a missed restore would show
        train(flow, action, steps=10, batch_size=8, optimizer=optimizer, callbacks=[Recorder()],
              lr_schedule=lambda progress: 0.5 - 0.1 * progress,
              num_threads=1 if threads > 1 else 2)
    assert optimizer.param_groups[0]["lr"] == 1e-2
    assert torch.get_num_threads() == threads
    assert calls[-1] == ("end", 2)  # on_train_end saw the two steps that were recorded
    assert not flow.training


def test_lr_schedule_is_applied():
    hist = train(_flow(), ScalarPhi4Action(-4, 8), steps=10, batch_size=8, lr=1e-2,
                 lr_schedule=cosine_schedule)
    assert hist.lr[0] == pytest.approx(1e-2)
    assert hist.lr[-1] < hist.lr[0] and all(a >= b for a, b in zip(hist.lr, hist.lr[1:], strict=False))
    assert cosine_schedule(1.0) == pytest.approx(0.05) and cosine_schedule(0.0) == 1.0


def test_ess_every_leaves_nans_between():
    hist = train(_flow(), ScalarPhi4Action(-4, 8), steps=6, batch_size=8, ess_every=3)
    assert [math.isnan(e) for e in hist.ess] == [False, True, True, False, True, True]


def test_tutorial_recipe_is_faithful():
    assert (TUTORIAL.n_layers, TUTORIAL.hidden_sizes, TUTORIAL.kernel_size, TUTORIAL.batch_size,
            TUTORIAL.lr) == (16, (8, 8), 3, 64, 1e-3)
    flow = TUTORIAL.build_flow((8, 8), dtype=torch.float64)
    assert len(flow.layers) == 16
    phi, log_q = flow.sample(4)
    assert phi.dtype == torch.float64 and log_q.shape == (4,)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_a_working_flow(name):
    recipe = get_recipe(name)
    flow = recipe.build_flow((4, 4))
    phi, log_q = flow.sample(3)
    torch.testing.assert_close(flow.log_prob(phi), log_q, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="expected a recipe"):
        get_recipe("nope")


def test_saved_weights_reload_to_the_same_density(tmp_path):
    flow = _flow()
    train(flow, ScalarPhi4Action(-4, 8), steps=5, batch_size=8)
    torch.save(flow.state_dict(), tmp_path / "w.pt")
    other = _flow()
    other.load_state_dict(torch.load(tmp_path / "w.pt"))
    phi, log_q = flow.sample(5)
    torch.testing.assert_close(other.log_prob(phi), log_q, rtol=1e-5, atol=1e-4)


class _ElementwiseAffine(torch.nn.Module):
    """x = mu + exp(s) z: the maximum-likelihood fit of N(mu, exp(2 s)) is the sample mean/std."""

    def __init__(self, dim):
        super().__init__()
        self.mu = torch.nn.Parameter(torch.zeros(dim, dtype=torch.float64))
        self.s = torch.nn.Parameter(torch.zeros(dim, dtype=torch.float64))

    def forward(self, z):
        return self.mu + z * self.s.exp(), self.s.sum().expand(z.shape[0])

    def reverse(self, x):
        return (x - self.mu) * (-self.s).exp(), (-self.s.sum()).expand(x.shape[0])


def test_maximum_likelihood_on_data_finds_the_sample_mean_and_std():
    gen = torch.Generator().manual_seed(0)
    data = torch.tensor([1.5, -0.5], dtype=torch.float64) + torch.randn(
        4000, 2, generator=gen, dtype=torch.float64) * torch.tensor([0.5, 2.0], dtype=torch.float64)
    flow = Flow(SimpleNormal.standard((2,), dtype=torch.float64), [_ElementwiseAffine(2)])
    hist = train(flow, data=data, steps=1500, batch_size=256, lr=2e-2, generator=gen)
    layer = flow.layers[0]
    assert hist.objective == "nll" and all(math.isnan(e) for e in hist.ess)
    assert torch.allclose(layer.mu.detach(), data.mean(0), atol=0.05)
    assert torch.allclose(layer.s.detach().exp(), data.std(0), rtol=0.05)
    # the recorded loss is the minibatch NLL: near the exact NLL of the fitted Gaussian
    exact = -flow.log_prob(data).mean().item()
    assert abs(sum(hist.loss[-200:]) / 200 - exact) < 0.1


def test_a_custom_objective_is_minimised_and_its_ess_recorded():
    model = torch.nn.Linear(1, 1, dtype=torch.float64)

    def loss_fn(m, n):
        loss = ((m(torch.ones(n, 1, dtype=torch.float64)) - 3.0) ** 2).mean()
        return loss, {"ess": 0.5}

    hist = train(model, loss_fn=loss_fn, steps=400, lr=5e-2, batch_size=4)
    assert hist.objective == "custom" and hist.ess[-1] == 0.5
    assert hist.loss[-1] < 1e-4 < hist.loss[0]


@pytest.mark.parametrize("kwargs, match", [
    ({}, "exactly one objective"),
    ({"data": torch.zeros(3)}, "expected data="),
])
def test_objectives_are_checked(kwargs, match):
    flow = Flow(SimpleNormal.standard((2,)), [_ElementwiseAffine(2).float()])
    with pytest.raises(ValueError, match=match):
        train(flow, steps=1, **kwargs)


def test_a_loss_fn_must_return_a_scalar():
    model = torch.nn.Linear(1, 1)
    with pytest.raises(ValueError, match="scalar tensor"):
        train(model, loss_fn=lambda m, n: [1.0], steps=1)
