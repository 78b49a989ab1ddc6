"""Autoregressive, polynomial and conditional layers: MADE's autoregressive property, the cost of
each direction, odd layers, composition with Flow, and short trainings.

The generic bijection checks of every layer (inverse, log-dets, Jacobian, gradients, ...) walk the
one registry in tests/test_bijections.py.
"""

import math

import pytest
import torch

from lftutor import Flow, SimpleNormal
from lftutor.bijections.autoregressive import (
    MADE,
    Inverse,
    MaskedAffineAutoregressive,
    MaskedLinear,
    Permutation,
    SplineAutoregressive,
    make_autoregressive_layers,
)
from lftutor.bijections.conditional import (
    ConditionalFlow,
    ConditionalIAF,
    ConditionalPlanar,
    planar_inverse,
    planar_transform,
    planar_u_hat,
)
from lftutor.bijections.monotone import solve_monotone
from lftutor.bijections.polynomial import SumOfSquaresPolynomial

F64 = torch.float64


def _perturb(module, scale=0.3):
    # Fresh layers start as the identity (zero last layer); random parameters make checks bite.
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


def _z(n, dim):
    return torch.randn(n, dim, dtype=F64)


# --- MADE ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", [None, [2, 0, 3, 1], [3, 2, 1, 0]])
@pytest.mark.parametrize("hidden", [[], [24], [24, 24]])
@pytest.mark.parametrize("context_dim", [0, 2])
def test_made_is_autoregressive_in_its_order(order, hidden, context_dim):
    dim = 4
    made = _perturb(MADE(dim, 2, hidden, order=order, context_dim=context_dim,
                         activation="tanh"), scale=0.5).double()
    position = {v: i for i, v in enumerate(order or range(dim))}
    x = _z(1, dim)[0]
    c = torch.randn(1, context_dim, dtype=F64) if context_dim else None
    jac = torch.autograd.functional.jacobian(lambda v: made(v[None], c)[0], x)  # (D, P, D)
    for k in range(dim):
        for i in range(dim):
            block = jac[k, :, i].abs().max()
            if position[i] >= position[k]:
                assert block == 0, f"output {k} depends on input {i}, which is not before it"
            elif hidden or position[i] < position[k]:
                assert block > 0, f"output {k} should depend on earlier input {i}"
    if context_dim:
        jac_c = torch.autograd.functional.jacobian(lambda v: made(x[None], v[None])[0], c[0])
        assert bool((jac_c.abs().amax(dim=(1, 2)) > 0).all()), "every output must see the context"


def test_masked_linear_cuts_connections_and_checks_its_mask():
    layer = MaskedLinear(2, 2, torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    x = torch.randn(3, 2, requires_grad=True)
    layer(x)[:, 0].sum().backward()
    assert x.grad.abs().sum() == 0
    with pytest.raises(ValueError, match="expected a mask of shape"):
        MaskedLinear(2, 3, torch.ones(2, 2))
    with pytest.raises(ValueError, match="expected a mask of 0s and 1s"):
        MaskedLinear(2, 2, 2 * torch.ones(2, 2))


@pytest.mark.parametrize("kind", ["affine", "spline", "naf", "sos"])
@pytest.mark.parametrize("mode", ["maf", "iaf"])
def test_cheap_direction_is_one_pass_and_the_other_takes_d_passes(kind, mode):
    dim = 4
    layer = make_autoregressive_layers(kind, dim, 1, hidden_sizes=[8], mode=mode)[0]
    calls = []
    layer.made.register_forward_hook(lambda *_: calls.append(1))
    z = torch.randn(5, dim)
    x, _ = layer.forward(z)
    n_forward = len(calls)
    layer.reverse(x)
    n_reverse = len(calls) - n_forward
    cheap, costly = (n_reverse, n_forward) if mode == "maf" else (n_forward, n_reverse)
    assert (cheap, costly) == (1, dim)


# --- the polynomial -----------------------------------------------------------------------------

def test_sos_polynomial_is_the_integral_of_its_derivative():
    layer = _perturb(SumOfSquaresPolynomial(2, [8], degree=3, n_squares=2)).double()
    c, a = layer.coefficients(layer.made(_z(4, 2)))
    u = torch.linspace(-2.5, 1.5, 4001, dtype=F64)
    grid = u[:, None, None].expand(-1, 4, 2)
    h, dh = layer.polynomial(grid, c.expand(4001, *c.shape), a.expand(4001, *a.shape))
    # closed form against trapezoidal quadrature of h' from u[0]
    integral = torch.cumulative_trapezoid(dh, u, dim=0)
    torch.testing.assert_close(h[1:] - h[0], integral, rtol=1e-6, atol=1e-6)
    assert bool((dh >= layer.min_derivative).all())


def test_sos_of_degree_zero_is_affine_and_fresh_layers_are_the_identity():
    layer = _perturb(SumOfSquaresPolynomial(3, [8], degree=0, n_squares=2)).double()
    z = _z(5, 3)
    x, log_det = layer.forward(z)
    # an affine map in each coordinate given the others: second differences vanish
    eps = 0.37
    x_plus, _ = layer.forward(z + eps * torch.eye(3, dtype=F64)[0])
    x_minus, _ = layer.forward(z - eps * torch.eye(3, dtype=F64)[0])
    torch.testing.assert_close((x_plus - 2 * x + x_minus)[:, 0], torch.zeros(5, dtype=F64))
    for fresh in (SumOfSquaresPolynomial(3, [8]), MaskedAffineAutoregressive(3, [8]),
                  SplineAutoregressive(3, [8]), SumOfSquaresPolynomial(3, [8], input_scale=1.0)):
        x, log_det = fresh.forward(torch.randn(5, 3))
        torch.testing.assert_close(log_det, torch.zeros(5), atol=1e-6, rtol=0)


def test_solve_monotone_has_implicit_gradients_and_refuses_a_bounded_map():
    theta = torch.tensor(0.7, dtype=F64, requires_grad=True)
    y = torch.tensor([-5.0, 0.1, 40.0], dtype=F64, requires_grad=True)
    u = solve_monotone(lambda v: (v**3 + theta * v, 3 * v**2 + theta), y)
    torch.testing.assert_close(u**3 + theta * u, y)
    u.sum().backward()
    slope = 3 * u.detach() ** 2 + theta.detach()
    torch.testing.assert_close(y.grad, 1 / slope)
    torch.testing.assert_close(theta.grad, (-u.detach() / slope).sum())
    with pytest.raises(ValueError, match="expected targets inside the range"):
        solve_monotone(lambda v: (torch.tanh(v), 1 - torch.tanh(v) ** 2), torch.tensor([2.0]))


# --- planar ---------------------------------------------------------------------------------------

def test_conditional_planar_agrees_with_the_unconditional_planar_layer():
    from lftutor.bijections.planar import Planar

    plain = _perturb(Planar(3)).double()
    z = _z(5, 3)
    x, log_det = plain.forward(z)
    u, w = plain.u.expand(5, 3), plain.w.expand(5, 3)
    b = plain.b.expand(5)
    u_hat = planar_u_hat(u, w)
    assert bool(((w * u_hat).sum(-1) > -1).all())
    x2, log_det2 = planar_transform(z, u_hat, w, b)
    torch.testing.assert_close(x2, x)
    torch.testing.assert_close(log_det2, log_det)
    z2, log_det_rev = planar_inverse(x, u_hat, w, b)
    torch.testing.assert_close(z2, z)
    torch.testing.assert_close(log_det_rev, -log_det)


ODD = {
    "iaf": lambda: ConditionalIAF(3, 2, hidden=16, odd=True),
    "iaf_maf_mode_reversed": lambda: ConditionalIAF(3, 2, hidden_sizes=[16], mode="maf", odd=True,
                                                    reverse_order=True),
    "planar": lambda: ConditionalPlanar(3, 2, hidden=8, odd=True),
    "flow": lambda: ConditionalFlow(3, [ConditionalIAF(3, 2, hidden=8, odd=True), Permutation.reversal(3),
                                        ConditionalPlanar(3, 2, odd=True)]),
}


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_layers_are_odd_for_every_context_and_others_are_not(name):
    layer = _perturb(ODD[name]()).double()
    z, c = _z(6, 3), 2.0 * torch.randn(6, 2, dtype=F64)
    for direction in ("forward", "reverse"):
        x_plus, ld_plus = getattr(layer, direction)(z, c)
        x_minus, ld_minus = getattr(layer, direction)(-z, c)
        torch.testing.assert_close(x_minus, -x_plus, rtol=0, atol=1e-10)
        torch.testing.assert_close(ld_minus, ld_plus, rtol=0, atol=1e-10)
    if name == "flow":  # so the density is mirror-symmetric too
        torch.testing.assert_close(layer.log_prob(-z, c), layer.log_prob(z, c))
    # the same layer without the symmetry is not odd (the check above can fail)
    plain = type(layer)(3, 2, hidden=8) if name == "planar" else ConditionalIAF(3, 2, hidden=16)
    plain = _perturb(plain).double()
    assert (plain.forward(-z, c)[0] + plain.forward(z, c)[0]).abs().max() > 1e-3


@pytest.mark.parametrize("reverse_order", [False, True])
def test_odd_iaf_stays_autoregressive_in_its_order(reverse_order):
    layer = _perturb(ConditionalIAF(4, 2, hidden=16, odd=True, reverse_order=reverse_order)).double()
    z, c = _z(1, 4), torch.randn(1, 2, dtype=F64)
    jac = torch.autograd.functional.jacobian(lambda v: layer.forward(v[None], c)[0][0], z[0])
    order = list(range(3, -1, -1)) if reverse_order else list(range(4))
    jp = jac[order][:, order]  # rows and columns in the layer's order: lower triangular
    torch.testing.assert_close(torch.triu(jp, diagonal=1), torch.zeros_like(jp), rtol=0, atol=0)
    assert bool((torch.tril(jp, diagonal=-1).abs().sum(1)[1:] > 0).all())


@pytest.mark.parametrize("odd", [False, True])
def test_conditional_planar_reverse_has_exact_gradients(odd):
    """The numerical inverse (a solve along w) is differentiated implicitly: gradcheck of reverse's
    output and log-det against finite differences in x, the context and every parameter."""
    from torch.func import functional_call

    class Reverse(torch.nn.Module):
        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def forward(self, x, c):
            return self.layer.reverse(x, c)

    rev = Reverse(_perturb(ConditionalPlanar(2, 2, hidden=4, odd=odd)).double())
    names = [n for n, _ in rev.named_parameters()]
    values = [p.detach().clone().requires_grad_() for _, p in rev.named_parameters()]

    def fn(x, c, *params):
        return functional_call(rev, dict(zip(names, params, strict=True)), (x, c))

    x, c = _z(4, 2).requires_grad_(), torch.randn(4, 2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x, c, *values), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("context_dim, dim", [(1, 2), (128, 40)])
def test_conditional_iaf_initialises_context_and_variables_as_separate_linear_maps(context_dim, dim):
    torch.manual_seed(0)
    first = ConditionalIAF(dim, context_dim, hidden=64).made.net[0]
    of_context, of_variables = first.weight[:, :context_dim], first.weight[:, context_dim:]
    # each block within PyTorch's default bound 1/sqrt(fan-in) of its own input, and filling it
    for block, fan_in in ((of_context, context_dim), (of_variables, dim)):
        assert block.abs().max() <= 1 / math.sqrt(fan_in)
        assert block.abs().max() > 0.9 / math.sqrt(fan_in)
    assert first.bias.abs().max() > 1 / math.sqrt(dim)  # the sum of both maps' biases
    assert first.bias.abs().max() <= 1 / math.sqrt(dim) + 1 / math.sqrt(context_dim)


def test_conditional_layers_depend_on_the_context():
    for layer in (ConditionalPlanar(2, 1, hidden=4), ConditionalIAF(2, 1, hidden=8),
                  SumOfSquaresPolynomial(2, [8], context_dim=1)):
        layer = _perturb(layer).double()
        z = _z(4, 2)
        x0, _ = layer.forward(z, torch.zeros(4, 1, dtype=F64))
        x1, _ = layer.forward(z, torch.ones(4, 1, dtype=F64))
        assert (x1 - x0).abs().min() > 0, f"{type(layer).__name__}: every coordinate should move"


# --- composing with Flow ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["affine", "spline", "naf", "sos"])
@pytest.mark.parametrize("mode", ["maf", "iaf"])
def test_flow_of_vectors_samples_its_own_density_and_is_normalised(kind, mode):
    prior = SimpleNormal.standard((2,), dtype=F64)
    layers = make_autoregressive_layers(kind, 2, 3, hidden_sizes=[8], mode=mode, **(
        {"bound": 4.0} if kind == "spline" else {}))
    # Stacked polynomials have polynomial tails (degree 5^3 here): keep them mild enough for
    # the quadrature below to hold the mass.
    flow = Flow(prior, _perturb(layers, scale=0.05 if kind == "sos" else 0.2)).double()
    x, log_q = flow.sample(7)
    assert x.shape == (7, 2) and log_q.shape == (7,)
    torch.testing.assert_close(flow.log_prob(x), log_q, rtol=1e-9, atol=1e-9)
    # the polynomial layers are smooth and slow to invert: a coarser grid for them
    grid = torch.linspace(-12, 12, 121 if kind == "sos" else 241, dtype=F64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    with torch.no_grad():
        q = flow.log_prob(torch.stack([xx.flatten(), yy.flatten()], dim=1)).exp()
    h = (grid[1] - grid[0]).item()
    assert abs(q.sum().item() * h * h - 1) < 2e-3


def _correlated_gaussian(n, generator):
    chol = torch.tensor([[math.sqrt(2.0), 0.0], [1.2 / math.sqrt(2.0), math.sqrt(1 - 0.72)]])
    return torch.tensor([1.0, -1.0]) + torch.randn(n, 2, generator=generator) @ chol.T


# Entropy of the target in nats: log(2 pi e) + 0.5 log det(Sigma), det = 2 - 1.44.
TARGET_NLL = math.log(2 * math.pi * math.e) + 0.5 * math.log(0.56)

FAMILIES = {
    "maf_affine": lambda: make_autoregressive_layers("affine", 2, 3, hidden_sizes=[16]),
    "iaf_affine": lambda: make_autoregressive_layers("affine", 2, 3, hidden_sizes=[16], mode="iaf"),
    "maf_spline": lambda: make_autoregressive_layers("spline", 2, 2, hidden_sizes=[16], bound=6.0),
    "maf_naf": lambda: make_autoregressive_layers("naf", 2, 2, hidden_sizes=[16]),
    "maf_sos": lambda: make_autoregressive_layers("sos", 2, 2, hidden_sizes=[16]),
    "iaf_sos": lambda: make_autoregressive_layers("sos", 2, 2, hidden_sizes=[16], mode="iaf"),
    "sos_data_to_latent": lambda: [Inverse(SumOfSquaresPolynomial(2, [16], mode="iaf")),
                                   Permutation.reversal(2),
                                   Inverse(SumOfSquaresPolynomial(2, [16], mode="iaf"))],
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_learns_a_correlated_gaussian_by_maximum_likelihood(family):
    gen = torch.Generator().manual_seed(0)
    flow = Flow(SimpleNormal.standard((2,)), FAMILIES[family]())
    test = _correlated_gaussian(2000, gen)
    with torch.no_grad():
        before = -flow.log_prob(test).mean().item()
    opt = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(100):
        loss = -flow.log_prob(_correlated_gaussian(64, gen)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert math.isfinite(loss.item())
    with torch.no_grad():
        after = -flow.log_prob(test).mean().item()
    gap = before - TARGET_NLL
    assert after < before - 0.6 * gap, f"NLL {before:.3f} -> {after:.3f} (target {TARGET_NLL:.3f})"


def test_a_conditional_flow_learns_a_family_of_gaussians():
    gen = torch.Generator().manual_seed(1)
    flow = ConditionalFlow(2, [ConditionalIAF(2, 1, hidden=16, mode="maf"),
                               Permutation.reversal(2),
                               ConditionalIAF(2, 1, hidden=16, mode="maf")])

    def batch(n):
        theta = 2 * torch.rand(n, 1, generator=gen) - 1
        return 2 * theta + _correlated_gaussian(n, gen), theta

    test_x, test_theta = batch(2000)
    with torch.no_grad():
        before = -flow.log_prob(test_x, test_theta).mean().item()
    opt = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(150):
        x, theta = batch(128)
        loss = -flow.log_prob(x, theta).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = -flow.log_prob(test_x, test_theta).mean().item()
    assert after < TARGET_NLL + 0.25 * (before - TARGET_NLL), (before, after)


# --- errors -----------------------------------------------------------------------------------------

def test_inputs_are_checked_with_messages_that_say_what_was_expected():
    layer = MaskedAffineAutoregressive(3, [8])
    with pytest.raises(ValueError, match=r"expected z of shape \(batch, 3\), got \(4, 2\)"):
        layer.forward(torch.randn(4, 2))
    with pytest.raises(ValueError, match="expected no context"):
        layer.forward(torch.randn(4, 3), torch.randn(4, 1))
    with pytest.raises(ValueError, match="expected z of dtype torch.float32"):
        layer.forward(torch.randn(4, 3, dtype=F64))
    cond = ConditionalIAF(3, 2, hidden=8)
    with pytest.raises(ValueError, match=r"expected a context of shape \(batch, 2\), got NoneType"):
        cond.forward(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"expected a context of shape \(4, 2\), got \(5, 2\)"):
        cond.reverse(torch.randn(4, 3), torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"expected a context of shape \(4, 3\)"):
        ConditionalPlanar(2, 3).forward(torch.randn(4, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="expected order to be a permutation"):
        MADE(3, 2, [8], order=[0, 0, 1])
    with pytest.raises(ValueError, match="expected mode 'maf' or 'iaf'"):
        SplineAutoregressive(2, mode="naf")
    with pytest.raises(ValueError, match="expected kind in"):
        make_autoregressive_layers("planar", 2, 2)
    with pytest.raises(ValueError, match="expected a permutation of range"):
        Permutation([1, 2])
    with pytest.raises(ValueError, match="expected degree"):
        SumOfSquaresPolynomial(2, degree=-1)


def test_the_package_training_loop_trains_autoregressive_flows_both_ways():
    from lftutor.training.loop import train

    precision = torch.linalg.inv(torch.tensor([[2.0, 1.2], [1.2, 1.0]]))

    def action(x):  # a correlated Gaussian target, -log p up to a constant
        return 0.5 * ((x @ precision) * x).sum(-1)

    gen = torch.Generator().manual_seed(3)
    iaf = Flow(SimpleNormal.standard((2,)), make_autoregressive_layers("affine", 2, 2, hidden_sizes=[8],
                                                                       mode="iaf"))
    history = train(iaf, action, steps=30, batch_size=64, lr=1e-2)
    assert history.objective == "reverse_kl" and all(math.isfinite(v) for v in history.loss)
    assert sum(history.loss[-5:]) < sum(history.loss[:5])
    maf = Flow(SimpleNormal.standard((2,)), make_autoregressive_layers("spline", 2, 2, hidden_sizes=[8]))
    history = train(maf, data=lambda n: _correlated_gaussian(n, gen), steps=30, batch_size=64, lr=1e-2)
    assert history.objective == "nll" and all(math.isfinite(v) for v in history.loss)
    assert sum(history.loss[-5:]) < sum(history.loss[:5])
