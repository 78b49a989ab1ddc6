"""The path-gradient estimator of the reverse KL (lftutor.training.loop.path_gradient_loss).

Checked against exact results on the free field: it vanishes sample by sample for an exact
flow (where the usual estimator does not), and its mean is the analytic gradient of the KL.
"""

import math

import pytest
import torch

from lftutor import Flow, FreeFieldAction
from lftutor.bijections.free_field import DiagonalScale, linear_coupling_model
from lftutor.bijections.preconditioners import FourierScale
from lftutor.lattice.priors import SimpleNormal
from lftutor.training.loop import path_gradient_loss, train

SHAPE = (4, 4)
M2 = 0.5


def _grads(flow, loss):
    flow.zero_grad(set_to_none=True)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in flow.parameters()])


def _exact_flow():
    """White noise -> the free field exactly: every Fourier mode scaled by K(k)^(-1/2)."""
    layer = FourierScale.free_field(SHAPE, M2)
    return Flow(SimpleNormal.standard(SHAPE, dtype=torch.float64), [layer])


def test_vanishes_for_an_exact_flow_where_the_usual_gradient_does_not():
    torch.manual_seed(0)
    gff = FreeFieldAction(M2, SHAPE)
    flow = _exact_flow()
    phi, log_q = flow.sample(256)
    log_p = -gff(phi)
    # the flow is exact: log q - log p is the same constant (log Z) for every sample
    assert float((log_q - log_p).detach().std()) < 1e-10
    path = _grads(flow, path_gradient_loss(flow, phi, log_p))
    phi, log_q = flow.sample(256)
    usual = _grads(flow, (log_q + gff(phi)).mean())
    assert float(path.abs().max()) < 1e-10
    assert float(usual.abs().max()) > 1e-2  # noise: zero only on average


def test_mean_is_the_analytic_gradient_of_the_kl():
    """q = N(0, diag(e^{2d})) against the free field: dKL/dd_x = K_xx e^{2 d_x} - 1."""
    torch.manual_seed(1)
    gff = FreeFieldAction(M2, SHAPE)
    layer = DiagonalScale(SHAPE).double()
    with torch.no_grad():
        layer.log_scale.normal_(0.0, 0.3)
    flow = Flow(SimpleNormal.standard(SHAPE, dtype=torch.float64), [layer])
    exact = (torch.diagonal(gff.precision) * torch.exp(2 * layer.log_scale.detach().flatten()) - 1)

    for estimator in ("path", "reparam"):
        batches = []
        for _ in range(40):
            phi, log_q = flow.sample(2000)
            log_p = -gff(phi)
            loss = path_gradient_loss(flow, phi, log_p) if estimator == "path" \
                else (log_q - log_p).mean()
            batches.append(_grads(flow, loss))
        g = torch.stack(batches)
        mean, err = g.mean(0), g.std(0) / math.sqrt(g.shape[0])
        assert bool(((mean - exact).abs() < 5 * err + 1e-9).all()), (estimator, mean - exact, err)


def test_loss_value_is_the_reverse_kl_of_the_batch():
    torch.manual_seed(2)
    gff = FreeFieldAction(M2, SHAPE)
    flow = linear_coupling_model(SHAPE, n_layers=2, dtype=torch.float64)
    for p in flow.parameters():
        torch.nn.init.normal_(p, std=0.1)
    phi, log_q = flow.sample(64)
    log_p = -gff(phi)
    torch.testing.assert_close(path_gradient_loss(flow, phi, log_p), (log_q - log_p).mean())


def test_train_with_path_gradients_lowers_the_exact_kl():
    torch.manual_seed(3)
    gff = FreeFieldAction(M2, SHAPE)
    flow = linear_coupling_model(SHAPE, n_layers=2, dtype=torch.float64)
    hist = train(flow, gff, steps=150, batch_size=256, lr=2e-2, gradient="path")
    kl_first = hist.loss[0] + gff.log_z
    kl_last = sum(hist.loss[-10:]) / 10 + gff.log_z
    assert kl_last < 0.5 * kl_first, (kl_first, kl_last)
    # the parameters really moved (the gradient was not detached everywhere)
    assert any(float(p.detach().abs().max()) > 0 for p in flow.parameters())


def test_unknown_estimator_is_refused():
    gff = FreeFieldAction(M2, SHAPE)
    flow = linear_coupling_model(SHAPE, n_layers=2)
    with pytest.raises(ValueError, match="expected gradient='reparam' or 'path', got 'score'"):
        train(flow, gff, steps=1, gradient="score")
