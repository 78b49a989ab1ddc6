"""Every bijection of lftutor.bijections in one registry, and the generic tests that walk it.

For each case: reverse inverts forward (both ways round), the log-dets cancel, the log-det is
``slogdet`` of the autograd Jacobian in both directions, every parameter gets a gradient, float32
works, batch shapes, a state_dict save/load round trip, and a table of bad inputs. All in float64
on tiny lattices unless said otherwise. Checks special to one family stay in its own file
(test_autoregressive.py, test_flows_2d.py, test_continuous.py, test_u1.py, ...).

The generic tests run where ``--device`` and ``--dtype`` say (tests/conftest.py; default the CPU
in float64), e.g. ``pytest tests/test_bijections.py --device cuda --dtype float32``: cases,
inputs and contexts are moved there, and float32 gets float32 tolerances.

New layers: add a Case to CASES; ``test_every_public_layer_is_in_the_registry`` fails otherwise.
"""

from __future__ import annotations

import importlib
import inspect
import io
import math
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
import torch

import lftutor.bijections
from lftutor import (
    AffineCoupling,
    Flow,
    SimpleCouplingLayer,
    SimpleNormal,
    make_checker_mask,
    make_conv_net,
    make_phi4_affine_layers,
)
from lftutor.bijections.autoregressive import (
    AutoregressiveBijection,
    Inverse,
    MaskedAffineAutoregressive,
    NeuralAutoregressive,
    Permutation,
    SplineAutoregressive,
    make_autoregressive_layers,
)
from lftutor.bijections.base import Bijection
from lftutor.bijections.conditional import ConditionalFlow, ConditionalIAF, ConditionalPlanar
from lftutor.bijections.continuous import ContinuousFlow, LinearField, MLPField, PlanarField
from lftutor.bijections.free_field import (
    DenseCoupling,
    DiagonalScale,
    equivariant_linear_model,
    linear_coupling_model,
    nonlinear_coupling_model,
)
from lftutor.bijections.gauge import GaugeEquivariantCoupling, LinkBijection, make_u1_flow
from lftutor.bijections.householder import DiagonalAffine, Householder
from lftutor.bijections.odd_splines import (
    OddSplineCoupling,
    OddZeroModeSpline,
    make_phi4_odd_spline_layers,
)
from lftutor.bijections.partitions import lexicographic_partition, random_partition
from lftutor.bijections.planar import Planar
from lftutor.bijections.plaquette_chain import PlaquetteChainLayer
from lftutor.bijections.polynomial import SumOfSquaresPolynomial
from lftutor.bijections.preconditioners import FourierScale
from lftutor.bijections.radial import Radial
from lftutor.bijections.splines import (
    EVEN_COLOUR_OFFSETS,
    SplineCoupling,
    ZeroModeSpline,
    make_even_colour_masks,
    make_phi4_spline_layers,
    make_sublattice_masks,
)
from lftutor.bijections.sylvester import Sylvester
from lftutor.lattice.u1 import wrap

F64 = torch.float64


# ----------------------------------------------------------------------------------- builders

def _add_noise(scale: float) -> Callable:
    # Fresh layers are close to the identity (small final weights); random parameters make
    # the checks meaningful.
    def perturb(module):
        with torch.no_grad():
            for p in module.parameters():
                p.add_(scale * torch.randn_like(p))
    return perturb


def _redraw(std: float, seed: int) -> Callable:
    def perturb(module):
        torch.manual_seed(seed)
        with torch.no_grad():
            for p in module.parameters():
                p.normal_(0, std)
    return perturb


def _perturb(module: torch.nn.Module) -> torch.nn.Module:
    _add_noise(0.3)(module)
    return module


def _affine(shape, parity=0):
    net = make_conv_net(hidden_sizes=[4, 4], kernel_size=3, lattice_dim=len(shape))
    return AffineCoupling(net, make_checker_mask(shape, parity))


def _stack(shape):
    prior = SimpleNormal.standard(shape, dtype=torch.float64)
    return Flow(prior, make_phi4_affine_layers(n_layers=4, lattice_shape=shape, hidden_sizes=[4],
                                               kernel_size=3))


def _spline(shape, update, condition, kernel_size=3, coupling=SplineCoupling):
    masks = make_sublattice_masks(shape)
    masks["even"] = masks["a"] + masks["b"]
    return coupling(masks[update], masks[condition], kernel_size=kernel_size,
                    hidden_sizes=[6], n_bins=4, bound=4.0)


def _spline_stack(shape, n_even_layers=2, **kwargs):
    prior = SimpleNormal.standard(shape, dtype=torch.float64)
    layers = [ZeroModeSpline(shape, n_bins=4),
              *make_phi4_spline_layers(lattice_shape=shape, n_even_layers=n_even_layers,
                                       hidden_sizes=[6], n_bins=4, **kwargs)]
    return Flow(prior, layers)


def _colour_spline(shape):
    """One even colour given the three others, at extents where the colouring has seams."""
    colours = make_even_colour_masks(shape)
    return SplineCoupling(colours[0], sum(colours[1:]), kernel_size=5, hidden_sizes=[6], n_bins=4,
                          bound=4.0, offsets=EVEN_COLOUR_OFFSETS)


def _odd_spline_stack(shape):
    return Flow(SimpleNormal.standard(shape, dtype=torch.float64),
                make_phi4_odd_spline_layers(lattice_shape=shape, n_even_layers=2, hidden_sizes=[6],
                                            n_bins=4))


def _cnf(kind, **kwargs):
    torch.manual_seed(1)
    if kind == "planar":
        field = PlanarField(2, n_units=3, gate_hidden=4)
    elif kind == "mlp":
        field = MLPField(2, hidden=(8,))
    else:
        field = LinearField(0.5 * torch.randn(2, 2))
    return ContinuousFlow(field.to(F64), **kwargs)


def _links(n):
    return math.pi * (2 * torch.rand(n, 2, 4, 4, dtype=F64) - 1)


# ----------------------------------------------------------------------------------- registry

@dataclass
class Case:
    """A bijection to test: how to build it, what it acts on, and how exact it is.

    ``build`` may return float32 parameters; ``make()`` perturbs it and converts it to ``dtype``
    on ``device`` (float64 on the CPU unless the ``case`` fixture sets ``--dtype``/``--device``).
    The tolerances are float64's; float32 uses :attr:`F32_TOLERANCES`.
    """

    build: Callable[[], torch.nn.Module]
    shape: tuple[int, ...]  # one sample's shape
    context_dim: int = 0  # > 0: called with a context of shape (batch, C)
    context: str = "per_row"  # per_row, shared or large (a conditional layer's contexts)
    perturb: Callable | None = _add_noise(0.3)
    inputs: Callable[[int], torch.Tensor] | None = None  # float64 samples, default randn
    scale: float = 1.0  # of the default inputs
    atol: float = 1e-10  # inverse and log-det cancellation
    jacobian_atol: float = 1e-9
    jacobian_samples: int = 3
    volume_preserving: bool = False  # log-det exactly zero
    angles: bool = False  # inputs and outputs are angles: compare modulo 2 pi
    float32: bool = True  # also run in float32 (off for tight ODE tolerances)
    dtype: torch.dtype = F64  # where the generic tests run (set by the case fixture)
    device: torch.device = torch.device("cpu")

    def make(self, dtype=None) -> torch.nn.Module:
        layer = self.build()
        if self.perturb is not None:
            self.perturb(layer)
        return layer.to(dtype=dtype or self.dtype, device=self.device)

    def sample(self, n: int, dtype=None) -> torch.Tensor:
        x = self.inputs(n) if self.inputs is not None else self.scale * torch.randn(n, *self.shape, dtype=F64)
        return x.to(dtype=dtype or self.dtype, device=self.device)

    def make_context(self, n: int, dtype=None) -> torch.Tensor | None:
        if not self.context_dim:
            return None
        c, dtype = self.context_dim, dtype or self.dtype
        if self.context == "shared":
            context = torch.randn(1, c, dtype=dtype).expand(n, c).contiguous()
        else:
            context = (3.0 if self.context == "large" else 1.0) * torch.randn(n, c, dtype=dtype)
        return context.to(self.device)

    def tolerance(self, what: str) -> float:
        """``"inverse"``, ``"log_det"``, ``"jacobian"`` or ``"rows"``: at this case's dtype."""
        if self.dtype == F64:
            return {"inverse": self.atol, "log_det": self.atol, "jacobian": self.jacobian_atol,
                    "rows": max(self.atol, 1e-12)}[what]
        return F32_TOLERANCES[what]


# float32 round-off: a sum over sites of float32 log-derivatives grows with the lattice and the
# depth (as in test_float32).
F32_TOLERANCES = {"inverse": 2e-3, "log_det": 2e-2, "jacobian": 2e-2, "rows": 1e-4}


LATTICE = {
    "simple_coupling_2d": Case(lambda: SimpleCouplingLayer(), (2,)),
    "affine_2d_parity0": Case(lambda: _affine((4, 4), 0), (4, 4)),
    "affine_2d_parity1": Case(lambda: _affine((4, 6), 1), (4, 6)),
    "affine_1d": Case(lambda: _affine((6,), 0), (6,)),
    "affine_3d": Case(lambda: _affine((2, 2, 4), 1), (2, 2, 4)),
    "phi4_stack_flow": Case(lambda: _stack((4, 4)), (4, 4)),
    "affine_shift_only": Case(lambda: AffineCoupling(make_conv_net(hidden_sizes=[3], kernel_size=3,
                                                                   out_channels=1),
                                                     make_checker_mask((4, 4), 1), shift_only=True),
                              (4, 4), volume_preserving=True),
    "dense_linear_shift": Case(lambda: DenseCoupling(lexicographic_partition((4, 4))), (4, 4),
                               volume_preserving=True),
    "dense_mlp_affine": Case(lambda: DenseCoupling(random_partition((2, 4)), hidden_sizes=[6],
                                                   activation="leaky_relu", shift_only=False), (2, 4)),
    "diagonal_scale": Case(lambda: DiagonalScale((3, 2)), (3, 2)),
    "diagonal_scale_equivariant": Case(lambda: DiagonalScale((4, 4), equivariant=True), (4, 4)),
    "gff_linear_model": Case(lambda: linear_coupling_model((4, 4), n_layers=3), (4, 4)),
    "gff_nonlinear_model": Case(lambda: nonlinear_coupling_model((4, 4), n_layers=2, hidden_sizes=[8]),
                                (4, 4)),
    "gff_equivariant_model": Case(lambda: equivariant_linear_model((4, 4), n_layers=2, radius=1), (4, 4)),
    "spline_odd_given_even_2d": Case(lambda: _spline((4, 4), "odd", "even"), (4, 4)),
    "spline_a_given_b_2d": Case(lambda: _spline((4, 6), "a", "b"), (4, 6)),
    "spline_b_given_a_3d": Case(lambda: _spline((2, 2, 4), "b", "a"), (2, 2, 4)),
    "spline_a_given_b_1d": Case(lambda: _spline((8,), "a", "b", kernel_size=5), (8,)),
    "zero_mode_spline": Case(lambda: ZeroModeSpline((4, 4), n_bins=4), (4, 4)),
    "phi4_spline_flow": Case(lambda: _spline_stack((4, 4)), (4, 4)),
    "phi4_spline_flow_four_colours": Case(lambda: _spline_stack((4, 8), 4, even_colours=4), (4, 8)),
    # L = 6: the four colours leave seams where some features are zeroed (explicit offsets); the
    # log-det-against-autograd test fails if an updated site sees another updated site
    "phi4_spline_flow_four_colours_seams": Case(lambda: _spline_stack((6, 6), 4, even_colours=4),
                                                (6, 6)),
    "spline_colour_with_seams": Case(lambda: _colour_spline((6, 10)), (6, 10)),
    # odd (Z2-equivariant) splines; tests/test_odd_splines.py checks f(-z) = -f(z) on these
    "odd_spline_odd_given_even_2d": Case(lambda: _spline((4, 4), "odd", "even", coupling=OddSplineCoupling),
                                         (4, 4)),
    "odd_spline_a_given_b_2d": Case(lambda: _spline((4, 6), "a", "b", coupling=OddSplineCoupling), (4, 6)),
    "odd_spline_b_given_a_3d": Case(lambda: _spline((2, 2, 4), "b", "a", coupling=OddSplineCoupling),
                                    (2, 2, 4)),
    "odd_spline_a_given_b_1d": Case(lambda: _spline((8,), "a", "b", kernel_size=5,
                                                    coupling=OddSplineCoupling), (8,)),
    "odd_zero_mode_spline": Case(lambda: OddZeroModeSpline((4, 4), n_bins=4), (4, 4)),
    "odd_zero_mode_spline_5_bins": Case(lambda: OddZeroModeSpline((2, 4), n_bins=5), (2, 4)),
    "odd_phi4_spline_flow": Case(lambda: _odd_spline_stack((4, 4)), (4, 4)),
    "fourier_scale_2d": Case(lambda: FourierScale((4, 6)), (4, 6)),
    "fourier_scale_1d": Case(lambda: FourierScale((5,)), (5,)),
    "fourier_scale_3d": Case(lambda: FourierScale((2, 4, 3)), (2, 4, 3)),
}

_AR = {"atol": 1e-9}
AUTOREGRESSIVE = {
    "maf_affine": Case(lambda: MaskedAffineAutoregressive(3, [16, 16], mode="maf"), (3,), **_AR),
    "iaf_affine": Case(lambda: MaskedAffineAutoregressive(3, [16, 16], mode="iaf"), (3,), **_AR),
    "iaf_affine_sigmoid_gate": Case(lambda: MaskedAffineAutoregressive(4, [16], mode="iaf",
                                                                       scale="sigmoid"), (4,), **_AR),
    "maf_affine_order_no_hidden": Case(lambda: MaskedAffineAutoregressive(4, [], mode="maf",
                                                                          order=[2, 0, 3, 1]), (4,), **_AR),
    "maf_spline": Case(lambda: SplineAutoregressive(3, [16], n_bins=5, bound=3.0, mode="maf"), (3,), **_AR),
    "iaf_spline": Case(lambda: SplineAutoregressive(3, [16], n_bins=5, bound=3.0, mode="iaf",
                                                    activation="tanh", order=[1, 2, 0]), (3,), **_AR),
    "maf_naf": Case(lambda: NeuralAutoregressive(3, [16], n_units=4, mode="maf"), (3,), **_AR),
    "iaf_naf": Case(lambda: NeuralAutoregressive(3, [16], n_units=3, mode="iaf", order=[2, 1, 0]), (3,),
                    **_AR),
    "maf_sos": Case(lambda: SumOfSquaresPolynomial(3, [16], degree=2, n_squares=2, mode="maf"), (3,), **_AR),
    "iaf_sos_degree3": Case(lambda: SumOfSquaresPolynomial(3, [16], degree=3, n_squares=3, mode="iaf"),
                            (3,), **_AR),
    "sos_data_to_latent": Case(lambda: Inverse(SumOfSquaresPolynomial(2, [8], mode="iaf")), (2,), **_AR),
    "reversal": Case(lambda: Permutation.reversal(3), (3,), volume_preserving=True, **_AR),
    "permutation": Case(lambda: Permutation([2, 0, 3, 1]), (4,), volume_preserving=True, **_AR),
    "stack_spline": Case(lambda: Flow(SimpleNormal.standard((3,)),
                                      make_autoregressive_layers("spline", 3, 2, hidden_sizes=[8],
                                                                 n_bins=4, bound=3.0)), (3,), **_AR),
    "stack_sos_iaf": Case(lambda: Flow(SimpleNormal.standard((2,)),
                                       make_autoregressive_layers("sos", 2, 2, hidden_sizes=[8], mode="iaf")),
                          (2,), **_AR),
}

# name -> (builder, D, C); each runs with three kinds of context
_CONDITIONAL = {
    "conditional_iaf": (lambda: ConditionalIAF(3, 2, hidden=16), 3, 2),
    "conditional_iaf_maf_mode": (lambda: ConditionalIAF(3, 2, hidden_sizes=[16], mode="maf",
                                                        reverse_order=True), 3, 2),
    "conditional_iaf_odd": (lambda: ConditionalIAF(3, 2, hidden=16, odd=True), 3, 2),
    "conditional_iaf_odd_reversed_sigmoid": (lambda: ConditionalIAF(4, 2, hidden=16, odd=True,
                                                                    reverse_order=True, scale="sigmoid"),
                                             4, 2),
    "conditional_planar_linear": (lambda: ConditionalPlanar(3, 2), 3, 2),
    "conditional_planar_mlp": (lambda: ConditionalPlanar(2, 3, hidden_sizes=[8]), 2, 3),
    "conditional_planar_odd": (lambda: ConditionalPlanar(2, 1, hidden=8, odd=True), 2, 1),
    "conditional_spline": (lambda: SplineAutoregressive(2, [8], n_bins=4, bound=3.0, context_dim=1), 2, 1),
    "conditional_sos_maf": (lambda: SumOfSquaresPolynomial(3, [8], context_dim=2), 3, 2),
    "conditional_naf_iaf": (lambda: NeuralAutoregressive(2, [8], n_units=3, mode="iaf", context_dim=2), 2, 2),
    "conditional_flow": (lambda: ConditionalFlow(3, [ConditionalIAF(3, 2, hidden=8), Permutation.reversal(3),
                                                     ConditionalPlanar(3, 2)]), 3, 2),
}
CONDITIONAL = {f"{name}[{kind}]": Case(build, (dim,), context_dim=c, context=kind, **_AR)
               for name, (build, dim, c) in _CONDITIONAL.items()
               for kind in ("per_row", "shared", "large")}

# unit 7: away from the initialisation, so no term is trivially zero
_2D = {"perturb": _add_noise(0.7), "scale": 2.0, "jacobian_atol": 1e-8}
VECTORS = {
    "planar2": Case(lambda: Planar(2), (2,), **_2D),
    "planar3": Case(lambda: Planar(3), (3,), **_2D),
    "radial2": Case(lambda: Radial(2), (2,), **_2D),
    "radial3": Case(lambda: Radial(3), (3,), **_2D),
    "householder2": Case(lambda: Householder(2, n_reflections=3), (2,), volume_preserving=True, **_2D),
    "householder3": Case(lambda: Householder(3, n_reflections=2), (3,), volume_preserving=True, **_2D),
    "diagonal_affine": Case(lambda: DiagonalAffine(2), (2,), **_2D),
    "sylvester_orthogonal": Case(lambda: Sylvester(2, variant="orthogonal"), (2,), **_2D),
    "sylvester_householder": Case(lambda: Sylvester(2, variant="householder"), (2,), **_2D),
    "sylvester_triangular": Case(lambda: Sylvester(2, variant="triangular", flip=True), (2,), **_2D),
    "sylvester_3d_m2": Case(lambda: Sylvester(3, m=2, variant="orthogonal"), (3,), **_2D),
    "sylvester_3d_householder": Case(lambda: Sylvester(3, m=3, variant="householder", n_reflections=2),
                                     (3,), **_2D),
}

# unit 8: an ODE solve is exact to its tolerance only
_ODE = {"rtol": 1e-9, "atol": 1e-9}
CONTINUOUS = {
    **{f"cnf_{kind}_dopri5": Case(lambda kind=kind: _cnf(kind, **_ODE), (2,), perturb=None, atol=1e-7,
                                  jacobian_atol=1e-6, float32=False)
       for kind in ("planar", "mlp", "linear")},
    **{f"cnf_{kind}_rk4": Case(lambda kind=kind: _cnf(kind, method="rk4", step_size=0.01), (2,),
                               perturb=None, atol=1e-6, jacobian_atol=1e-6)
       for kind in ("planar", "mlp", "linear")},
}

# unit 10: U(1) links on a 4x4 lattice; tests/test_u1.py checks gauge equivariance on these
_U1 = {"inputs": _links, "angles": True, "atol": 1e-9, "jacobian_atol": 1e-8, "jacobian_samples": 1}
U1 = {
    **{f"gauge_layer_mu{mu}_s{s}": Case(lambda mu=mu, s=s: GaugeEquivariantCoupling(4, mu=mu, offset=s,
                                                                                      hidden_channels=(4,),
                                                                                      n_bins=4),
                                        (2, 4, 4), perturb=_redraw(0.1, 0), **_U1)
       for mu in (0, 1) for s in range(4)},
    "gauge_flow_8_layers": Case(lambda: make_u1_flow(4, n_layers=8, hidden_channels=(4,), n_bins=4),
                                (2, 4, 4), perturb=_redraw(0.1, 0), **_U1),
    "gauge_flow_8_layers_descending": Case(lambda: make_u1_flow(4, n_layers=8, hidden_channels=(4,), n_bins=4,
                                                                stripe_order="descending"),
                                           (2, 4, 4), perturb=_redraw(0.1, 0), **_U1),
    "plaquette_chain": Case(lambda: PlaquetteChainLayer(4, hidden=(6, 5), n_bins=4), (2, 4, 4),
                            perturb=_redraw(0.3, 1), **_U1),
    "plaquette_chain_one_hidden_layer": Case(lambda: PlaquetteChainLayer(4, hidden=(7,), n_bins=4),
                                             (2, 4, 4), perturb=_redraw(0.3, 1), **_U1),
}

CASES: dict[str, Case] = {**LATTICE, **AUTOREGRESSIVE, **CONDITIONAL, **VECTORS, **CONTINUOUS, **U1}

# Abstract bases: registered through their subclasses.
ABSTRACT = {Bijection, AutoregressiveBijection, LinkBijection}


# ----------------------------------------------------------------------------------- helpers

@pytest.fixture(params=sorted(CASES))
def case(request, run_dtype, run_device):
    case = CASES[request.param]
    if run_dtype != F64 and not case.float32:
        pytest.skip(f"--dtype {str(run_dtype).removeprefix('torch.')}: {request.param} is an adaptive "
                    "ODE solve at tolerance 1e-9, a float64 test")
    return replace(case, dtype=run_dtype, device=run_device)


def _call(layer, direction, x, context):
    fn = getattr(layer, direction)
    return fn(x) if context is None else fn(x, context)


def _difference(case, a, b):
    return wrap(a - b) if case.angles else a - b


def _other(direction):
    return "reverse" if direction == "forward" else "forward"


# ----------------------------------------------------------------------------------- generic tests

def test_every_public_layer_is_in_the_registry():
    public = set()
    for info in pkgutil.iter_modules(lftutor.bijections.__path__):
        module = importlib.import_module(f"lftutor.bijections.{info.name}")
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Bijection) and obj not in ABSTRACT
                    and not name.startswith("_") and obj.__module__.startswith("lftutor.bijections")):
                public.add(obj)
    registered = set()
    for case in CASES.values():
        registered |= {type(m) for m in case.build().modules()}
    missing = sorted(cls.__qualname__ for cls in public - registered)
    assert not missing, f"bijections missing from CASES in tests/test_bijections.py: {missing}"
    assert len(public) >= 25


@pytest.mark.parametrize("first", ["forward", "reverse"])
def test_reverse_inverts_forward(case, first):
    layer = case.make()
    u, c = case.sample(6), case.make_context(6)
    v, _ = _call(layer, first, u, c)
    back, _ = _call(layer, _other(first), v, c)
    assert _difference(case, v, u).abs().max() > 1e-6, "the layer should not be the identity here"
    torch.testing.assert_close(_difference(case, back, u), torch.zeros_like(u), rtol=0,
                               atol=case.tolerance("inverse"))


def test_forward_and_reverse_log_dets_cancel(case):
    layer = case.make()
    z, c = case.sample(5), case.make_context(5)
    x, ld_fwd = _call(layer, "forward", z, c)
    _, ld_rev = _call(layer, "reverse", x, c)
    assert ld_fwd.shape == (5,) and ld_rev.shape == (5,)
    if case.volume_preserving:
        assert bool((ld_fwd == 0).all()) and bool((ld_rev == 0).all())
    else:
        assert ld_fwd.abs().max() > 1e-3, "log-det should be non-trivial for perturbed parameters"
    torch.testing.assert_close(ld_fwd + ld_rev, torch.zeros_like(ld_fwd), rtol=0,
                               atol=case.tolerance("log_det"))


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_log_det_matches_autograd_jacobian(case, direction):
    layer = case.make()
    n, size = case.jacobian_samples, math.prod(case.shape)
    x, c = case.sample(n), case.make_context(n)
    _, log_det = _call(layer, direction, x, c)
    for b in range(n):
        cb = None if c is None else c[b:b + 1]

        def flat(v, cb=cb):
            return _call(layer, direction, v.reshape(1, *case.shape), cb)[0].reshape(size)

        jac = torch.autograd.functional.jacobian(flat, x[b].reshape(size), vectorize=case.angles)
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign != 0
        tol = case.tolerance("jacobian")
        torch.testing.assert_close(log_det[b], logabs, rtol=tol, atol=tol)


def test_every_parameter_gets_a_gradient_in_both_directions(case):
    layer = case.make()
    params = list(layer.named_parameters())
    if not params:
        assert case.volume_preserving, "only a fixed permutation or reflection has no parameters"
        return
    for direction in ("forward", "reverse"):
        layer.zero_grad()
        out, log_det = _call(layer, direction, case.sample(8), case.make_context(8))
        ((out**2).sum() + log_det.sum()).backward()
        for name, p in params:
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{direction}: {name}"
            assert p.grad.abs().sum() > 0, f"{direction}: no gradient reached {name}"


def test_float32(case):
    if not case.float32:
        pytest.skip("an adaptive ODE solve at tolerance 1e-9 is a float64 test")
    layer = case.make(torch.float32)
    z, c = case.sample(4, torch.float32), case.make_context(4, torch.float32)
    x, ld = _call(layer, "forward", z, c)
    z_back, ld_back = _call(layer, "reverse", x, c)
    for t in (x, ld, z_back, ld_back):
        assert t.dtype == torch.float32 and bool(torch.isfinite(t).all())
    torch.testing.assert_close(_difference(case, z_back, z), torch.zeros_like(z), rtol=0, atol=2e-3)
    # a sum over sites of float32 log-derivatives: round-off grows with the lattice and the depth
    torch.testing.assert_close(ld + ld_back, torch.zeros_like(ld), rtol=0, atol=2e-2)


@pytest.mark.parametrize("batch", [1, 7])
def test_batch_shapes_and_rows_are_independent(case, batch):
    layer = case.make()
    z, c = case.sample(batch), case.make_context(batch)
    for direction in ("forward", "reverse"):
        out, ld = _call(layer, direction, z, c)
        assert out.shape == (batch, *case.shape) and ld.shape == (batch,)
        one, ld_one = _call(layer, direction, z[-1:], None if c is None else c[-1:])
        tol = case.tolerance("rows")
        torch.testing.assert_close(one, out[-1:], rtol=tol, atol=tol)
        torch.testing.assert_close(ld_one, ld[-1:], rtol=tol, atol=tol)


def test_state_dict_save_and_load_round_trip(case):
    layer = case.make()
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(99)  # another initialisation
    fresh = case.build().to(dtype=case.dtype, device=case.device)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    z, c = case.sample(3), case.make_context(3)
    for direction in ("forward", "reverse"):
        expected = _call(layer, direction, z, c)
        got = _call(fresh, direction, z, c)
        if case.device.type == "cpu":
            torch.testing.assert_close(got, expected, rtol=0, atol=0)
        else:  # a GPU may pick another kernel for the same product
            torch.testing.assert_close(got, expected)


# ----------------------------------------------------------------------------------- bad inputs

def _bad_inputs(case, layer):
    """(description, call, message) for inputs every layer must refuse with a ValueError."""
    z, c = case.sample(3), case.make_context(3)
    wrong_shape = torch.zeros(3, *case.shape[:-1], case.shape[-1] + 1, dtype=case.dtype, device=case.device)
    other = torch.float32 if case.dtype == F64 else F64
    rows = [
        ("integers", lambda: _call(layer, "forward", z.long(), c), "expected"),
        ("a wrong event shape", lambda: _call(layer, "forward", wrong_shape, c), r"expected .*shape"),
        ("no batch dimension", lambda: _call(layer, "reverse", z[0], c), r"expected .*shape"),
    ]
    if not isinstance(layer, STACKS):  # a stack reads the batch size before its layers check
        rows.append(("a list", lambda: _call(layer, "forward", z.tolist(), c), "expected"))
    if next(layer.parameters(), None) is not None and not isinstance(layer, (DiagonalScale, FourierScale)):
        # (layers that convert their parameters to the input's dtype accept another dtype)
        rows.append((f"{other} into a {case.dtype} layer",
                     lambda: _call(layer, "forward", z.to(other), None if c is None else c.to(other)),
                     "dtype"))
    if case.context_dim:
        if not isinstance(layer, STACKS):  # a stack requires its context as an argument
            rows.append(("no context", lambda: _call(layer, "forward", z, None), "expected a context"))
        rows += [
            ("a context of the wrong width",
             lambda: _call(layer, "reverse", z, torch.zeros(3, 7, dtype=case.dtype, device=case.device)),
             "expected a context"),
            ("a context of another batch", lambda: _call(layer, "forward", z, c[:2]), "expected a context"),
        ]
    elif isinstance(layer, AutoregressiveBijection):
        rows.append(("a context for a layer without one",
                     lambda: layer.forward(z, torch.zeros(3, 1, dtype=case.dtype, device=case.device)),
                     "expected no context"))
    return rows


STACKS = (Flow, ConditionalFlow)


def test_bad_inputs_are_refused_with_a_message(case):
    layer = case.make()
    for what, call, message in _bad_inputs(case, layer):
        try:
            call()
        except ValueError as err:
            assert re.search(message, str(err)), f"{what}: {err}"
        else:
            raise AssertionError(f"{what} was accepted")


# Constructor arguments that every layer refuses (flowjax's test_argcheck).
CONSTRUCTOR_ERRORS = [
    (lambda: SimpleCouplingLayer(hidden=0), "hidden"),
    (lambda: AffineCoupling(make_conv_net(hidden_sizes=[2], kernel_size=3), torch.ones(4, 4)), "both frozen"),
    (lambda: AffineCoupling(make_conv_net(hidden_sizes=[2], kernel_size=3), 2 * torch.ones(4, 4)),
     "0s and 1s"),
    (lambda: DenseCoupling(torch.ones(2, 2)), "both frozen"),
    (lambda: DenseCoupling(lexicographic_partition((2, 2)), activation="gelu"), "activation"),
    (lambda: DiagonalScale((0, 2)), "lattice_shape"),
    (lambda: FourierScale(()), "lattice_shape"),
    (lambda: SplineCoupling(torch.ones(4), torch.ones(4)), "disjoint"),
    (lambda: SplineCoupling(torch.ones(4), torch.zeros(2)), "same shape"),
    (lambda: SplineCoupling(torch.tensor([1., 0, 0, 0]), torch.tensor([0., 1, 0, 0]), kernel_size=2),
     "odd positive kernel_size"),
    (lambda: SplineCoupling(torch.tensor([1., 0, 0, 0]), torch.tensor([0., 1, 0, 0]), bound=0.0), "bound"),
    (lambda: SplineCoupling(torch.tensor([1., 0, 0, 0]), torch.tensor([0., 1, 0, 0]), offsets=[(2,)]),
     "within the window"),
    (lambda: SplineCoupling(torch.eye(4)[0].reshape(2, 2), torch.eye(4)[1].reshape(2, 2), offsets=[(1,)]),
     "2 integers"),
    (lambda: ZeroModeSpline((4,), n_bins=0), "n_bins"),
    (lambda: OddZeroModeSpline((4,), bound=-1.0), "bound"),
    (lambda: OddSplineCoupling(torch.zeros(4), torch.ones(4)), "at least one site"),
    (lambda: MaskedAffineAutoregressive(3, scale="exp"), "scale"),
    (lambda: MaskedAffineAutoregressive(3, max_log_scale=0.0), "max_log_scale"),
    (lambda: SplineAutoregressive(3, n_bins=0), "n_bins"),
    (lambda: NeuralAutoregressive(3, min_slope=0.0), "min_slope"),
    (lambda: SumOfSquaresPolynomial(2, min_derivative=1.5), "min_derivative"),
    (lambda: SumOfSquaresPolynomial(2, input_scale=0.0), "input_scale"),
    (lambda: Permutation([0, 0]), "permutation"),
    (lambda: ConditionalIAF(0, 2), "dim"),
    (lambda: ConditionalPlanar(2, 0), "context_dim"),
    (lambda: ConditionalPlanar(2, 1, activation="gelu"), "activation"),
    (lambda: ConditionalFlow(0, []), "dim"),
    (lambda: Planar(0), "dim"),
    (lambda: Radial(-1), "dim"),
    (lambda: Householder(2, n_reflections=0), "n_reflections"),
    (lambda: DiagonalAffine(0), "dim"),
    (lambda: Sylvester(2, m=3), "m <= dim"),
    (lambda: ContinuousFlow(LinearField(torch.eye(2)), t1=0.0), "t1"),
    (lambda: ContinuousFlow(torch.nn.Linear(2, 2)), "dim"),
    (lambda: GaugeEquivariantCoupling(4, mu=2, offset=0), "mu"),
    (lambda: GaugeEquivariantCoupling(4, mu=0, offset=0, kernel_size=4), "kernel_size"),
    (lambda: PlaquetteChainLayer(4, hidden=()), "hidden"),
    (lambda: PlaquetteChainLayer(1), "extents"),
]


@pytest.mark.parametrize("build, message", CONSTRUCTOR_ERRORS)
def test_bad_constructor_arguments_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# ----------------------------------------------------------------------------------- specific

def test_flow_log_prob_matches_sample():
    flow = _perturb(_stack((4, 4))).double()
    phi, log_q = flow.sample(6)
    torch.testing.assert_close(flow.log_prob(phi), log_q, rtol=1e-10, atol=1e-10)


def test_flow_density_is_normalised_in_one_dimension():
    # A 1-site-wide lattice is not allowed for checkerboards; use a 2-site 1-D lattice and
    # integrate q over a grid: the flow density must integrate to 1.
    shape = (2,)
    prior = SimpleNormal.standard(shape, dtype=torch.float64)
    flow = _perturb(Flow(prior, [_affine(shape, 0), _affine(shape, 1)])).double()
    grid = torch.linspace(-12, 12, 801, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    phi = torch.stack([xx.flatten(), yy.flatten()], dim=1)
    with torch.no_grad():
        q = flow.log_prob(phi).exp()
    h = (grid[1] - grid[0]).item()
    assert abs(q.sum().item() * h * h - 1) < 1e-3


def test_checkerboard_masks_alternate_and_cover():
    m0, m1 = make_checker_mask((4, 6), 0), make_checker_mask((4, 6), 1)
    assert m0[0, 0] == 1 and m0[0, 1] == 0 and m0[1, 0] == 0 and m0[1, 1] == 1
    torch.testing.assert_close(m0 + m1, torch.ones(4, 6))
    # every site's nearest neighbours (periodic) have the other parity
    for mu in (0, 1):
        torch.testing.assert_close(torch.roll(m0, 1, mu), m1)


def test_every_check_is_written_once_in_the_base_class():
    """Layers add only their math: forward and reverse are wrapped by Bijection, none checks again."""
    for case in CASES.values():
        for m in case.build().modules():
            if isinstance(m, Bijection):
                for direction in ("forward", "reverse"):
                    assert getattr(getattr(type(m), direction), "__bijection_checked__", False), \
                        f"{type(m).__name__}.{direction}"


def test_every_public_layer_is_exported_by_the_package():
    exported = set(lftutor.bijections.__all__)
    missing = []
    for info in pkgutil.iter_modules(lftutor.bijections.__path__):
        name = f"lftutor.bijections.{info.name}"
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if inspect.isclass(obj) and issubclass(obj, Bijection) and obj.__module__ == name \
                    and attr not in exported:
                missing.append(f"{name}.{attr}")
    assert not missing, f"add to lftutor.bijections.__all__ (and import there): {missing}"
    for attr in exported:
        assert getattr(lftutor.bijections, attr) is not None, attr
