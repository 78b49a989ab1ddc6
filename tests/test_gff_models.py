"""Free-field coupling models: partitions, equivariance, Jacobian tools, exact KL."""

import math

import pytest
import torch

from lftutor import FreeFieldAction, SimpleNormal
from lftutor.bijections.free_field import (
    GFF_MODELS,
    equivariant_linear_model,
    exact_kl,
    linear_coupling_model,
)
from lftutor.bijections.jacobians import layer_jacobians, layer_log_dets, model_jacobian
from lftutor.bijections.partitions import PARTITIONS, get_partition
from lftutor.training.loop import evaluate, train


def _perturb(module):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return module


@pytest.mark.parametrize("name", sorted(PARTITIONS))
def test_partitions_split_the_lattice_in_halves(name):
    mask = get_partition(name, (4, 6))
    assert mask.shape == (4, 6) and mask.sum() == 12 and ((mask == 0) | (mask == 1)).all()


def test_unknown_partition():
    with pytest.raises(ValueError, match="expected a partition among"):
        get_partition("spiral", (4, 4))


def _shift(x, dx, dy):
    return torch.roll(x, (dx, dy), (1, 2))


@pytest.mark.parametrize("dx,dy,equivariant",
                         [(2, -4, True), (0, 2, True), (1, 1, True), (1, 0, False), (1, 2, False)])
def test_equivariant_model_commutes_with_checkerboard_preserving_shifts_only(dx, dy, equivariant):
    flow = _perturb(equivariant_linear_model((8, 8), n_layers=3, radius=1)).double()
    z = torch.randn(4, 8, 8, dtype=torch.float64)
    phi_of_shifted = flow.forward(_shift(z, dx, dy))[0]
    shifted_phi = _shift(flow.forward(z)[0], dx, dy)
    assert torch.allclose(phi_of_shifted, shifted_phi, atol=1e-12) is equivariant


def test_linear_model_is_not_translation_equivariant():
    flow = _perturb(linear_coupling_model((4, 4))).double()
    z = torch.randn(2, 4, 4, dtype=torch.float64)
    assert not torch.allclose(flow.forward(_shift(z, 2, 0))[0], _shift(flow.forward(z)[0], 2, 0))


def test_model_jacobian_gives_the_log_det_and_layer_jacobians_compose():
    flow = _perturb(GFF_MODELS["nonlinear"]((2, 4), n_layers=2, hidden_sizes=[4])).double()
    z = torch.randn(3, 2, 4, dtype=torch.float64)
    jac = model_jacobian(flow, z)
    assert jac.shape == (3, 8, 8)
    torch.testing.assert_close(torch.linalg.slogdet(jac)[1], flow.forward(z)[1])
    per_layer = layer_jacobians(flow, z)
    product = per_layer[0]
    for j in per_layer[1:]:
        product = j @ product  # chain rule: later layers act on the left
    torch.testing.assert_close(product, jac)
    lds = layer_log_dets(flow, z)
    assert lds.shape == (3, len(flow.layers))
    torch.testing.assert_close(lds.sum(1), flow.forward(z)[1])


def test_linear_model_jacobian_is_constant():
    flow = _perturb(linear_coupling_model((4, 4))).double()
    jac = model_jacobian(flow, torch.randn(2, 4, 4, dtype=torch.float64))
    torch.testing.assert_close(jac[0], jac[1])


def test_exact_kl_of_the_identity_flow_against_the_gaussian_formula():
    # An untrained linear model is the identity, so q = N(0, 1) and
    # KL(q||p) = 1/2 [tr(K) - V - log det K]  with  K = Sigma^{-1}.
    gff = FreeFieldAction(0.5, (4, 4))
    flow = linear_coupling_model((4, 4), dtype=torch.float64)
    k = gff.precision
    expected = 0.5 * (torch.trace(k) - 16 - torch.linalg.slogdet(k)[1]).item()
    metrics = evaluate(flow, gff, n_samples=200_000, batch_size=50_000)
    assert exact_kl(metrics["loss"], gff.log_z) == pytest.approx(expected, rel=0.01)


def test_a_flow_with_the_cholesky_factor_is_exact():
    # phi = L z with L L^T = Sigma: every log-weight equals +log Z, ESS = 1, KL = 0.
    gff = FreeFieldAction(0.25, (4, 4))
    chol = gff.cholesky
    z = SimpleNormal.standard((4, 4), dtype=torch.float64).sample_n(1000)
    phi = (z.reshape(1000, 16) @ chol.T).reshape(1000, 4, 4)
    prior = SimpleNormal.standard((4, 4), dtype=torch.float64)
    log_q = prior.log_prob(z) - torch.log(torch.diagonal(chol)).sum()
    lw = -gff(phi) - log_q
    torch.testing.assert_close(lw, torch.full_like(lw, gff.log_z))


@pytest.mark.slow
def test_linear_model_learns_the_free_field():
    torch.manual_seed(0)
    gff = FreeFieldAction(0.25, (4, 4))
    flow = linear_coupling_model((4, 4), n_layers=4)
    before = exact_kl(evaluate(flow, gff, n_samples=4096)["loss"], gff.log_z)
    train(flow, gff, steps=600, batch_size=256, lr=2e-2)
    after = evaluate(flow, gff, n_samples=4096)
    kl = exact_kl(after["loss"], gff.log_z)
    assert before > 1.0 and kl < 0.1 * before and after["ess"] > 0.8
    assert math.isfinite(kl)
