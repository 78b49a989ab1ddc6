"""Named training recipes for the phi^4 flow: the tutorial's, and the course's fast default.

A recipe fixes the architecture and the optimiser settings; the physics point (``L``, ``m2``,
``lam``) and the budget (steps or seconds) are chosen by the caller.

* ``tutorial``: 16 affine couplings, as in arXiv:2101.08176 (what the notebooks teach).
* ``fast``: a zero-mode spline, four rational-quadratic spline couplings on the even sublattice
  (one per colour of :func:`lftutor.bijections.splines.make_even_colour_masks`, each given the
  three other colours) and one that samples the odd sites given their neighbours
  (:mod:`lftutor.bijections.splines`), made mirror-symmetric
  (:class:`lftutor.bijections.symmetry.Z2Symmetric`, so it cannot lose one sign of the field),
  trained with a larger learning rate on a cosine schedule and one CPU thread. At
  ``L=8, m2=-4, lam=8`` it reaches ESS 0.92-0.94 (seeds 0-2) in 120 s on a 2-core CPU (see
  ``benchmarks/README.md``).
* ``fast-ab``: the fast recipe before the four colours (even couplings on two halves of the even
  sublattice; ESS 0.76-0.80 in 120 s side by side with ``fast``), the architecture of phi^4
  weights saved before the four colours.
* ``fast-gpu``: the same flow with a batch eight times larger, for a CUDA device, where a step
  costs about the same time whatever the batch (it is bound by kernel launches, not arithmetic).
  :func:`recipe_for` picks ``fast`` or ``fast-gpu`` by device (``get_recipe("auto")`` too).

:func:`pretrained_flow` loads the weights shipped with the package (``lftutor/weights/``) for the
phi^4 point of units 4 and 5, so that a notebook can start from a good flow at once.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from lftutor.bijections.coupling import AffineCoupling, make_phi4_affine_layers
from lftutor.bijections.flow import Flow
from lftutor.bijections.odd_splines import OddSplineCoupling, OddZeroModeSpline, make_phi4_odd_spline_layers
from lftutor.bijections.splines import SplineCoupling, ZeroModeSpline, make_phi4_spline_layers
from lftutor.bijections.symmetry import Z2Symmetric
from lftutor.lattice.priors import SimpleNormal
from lftutor.training.loop import cosine_schedule

__all__ = ["FAST", "FAST_AB", "FAST_GPU", "PRETRAINED", "RECIPES", "TUTORIAL", "Pretrained",
           "Recipe", "get_recipe", "pretrained_flow", "recipe_for"]


@dataclass(frozen=True)
class Recipe:
    """Architecture and optimiser settings of a phi^4 flow.

    Attributes:
        name: how the CLI and the benchmarks call it.
        coupling: ``"affine"`` (:func:`lftutor.make_phi4_affine_layers`), ``"spline"``
            (:func:`lftutor.bijections.splines.make_phi4_spline_layers`) or ``"odd-spline"``
            (:func:`lftutor.bijections.odd_splines.make_phi4_odd_spline_layers`: the same layers
            made odd, so the flow's density is even without the mixture of ``z2_symmetric``;
            cheaper per step, but worse at equal time at the course's point, see
            ``benchmarks/README.md``).
        n_layers: the number of *couplings* (for ``"spline"`` and ``"odd-spline"``,
            ``n_layers - 1`` even-sublattice couplings and one odd-given-even coupling). The
            zero-mode layer of ``zero_mode`` comes on top: :data:`FAST`'s ``n_layers=5`` builds
            a flow of six layers (:attr:`n_flow_layers`; :meth:`architecture` says what they are).
        hidden_sizes: the conditioners' hidden widths.
        kernel_size: the conditioners' window. With four even colours the even couplings need
            the sites two steps away and use ``max(kernel_size, 5)``
            (:func:`lftutor.bijections.splines.make_phi4_spline_layers`); the odd coupling keeps
            ``kernel_size``. :meth:`architecture` says what a lattice gets.
        n_bins: spline bins (``"spline"`` only).
        zero_mode: start with a :class:`lftutor.bijections.splines.ZeroModeSpline` (or its odd
            twin for ``"odd-spline"``; not for ``"affine"``).
        z2_symmetric: wrap the flow in :class:`lftutor.bijections.symmetry.Z2Symmetric`, the mixture of
            the flow and its mirror image, so that no training can lose one sign of the field.
        gradient: the gradient estimator of :func:`lftutor.training.loop.train` (``"reparam"`` or
            ``"path"``).
        even_colours: ``"spline"`` only: the even couplings alternate between the two halves of
            the even sublattice (2) or cycle through its four colours (4,
            :func:`lftutor.bijections.splines.make_even_colour_masks`; on 2-D lattices with even
            extents, with seams where an extent is not divisible by 4; elsewhere the flow falls
            back to the two halves). The layers and their weights are the same at every even
            ``L``, so weights transfer between lattice sizes.
        batch_size, lr: Adam settings per step.
        lr_schedule: learning-rate factor as a function of progress in [0, 1], or ``None``.
        ess_every: how often the training loop computes the batch ESS.
        num_threads: torch CPU threads while training (``None``: leave torch's setting). One
            thread is faster for these small tensors, and far faster on a CPU shared with
            other processes, where several threads wait on each other.
    """

    name: str
    coupling: str = "affine"
    n_layers: int = 16
    hidden_sizes: tuple[int, ...] = (8, 8)
    kernel_size: int = 3
    n_bins: int = 8
    zero_mode: bool = False
    z2_symmetric: bool = False
    batch_size: int = 64
    lr: float = 1e-3
    lr_schedule: Callable[[float], float] | None = field(default=None, compare=False)
    ess_every: int = 1
    num_threads: int | None = None
    gradient: str = "reparam"
    even_colours: int = 2

    def __post_init__(self):
        if self.coupling not in ("affine", "spline", "odd-spline"):
            raise ValueError(f"expected coupling 'affine', 'spline' or 'odd-spline', got {self.coupling!r}")
        if self.coupling != "affine" and self.n_layers < 3:
            raise ValueError(f"expected n_layers >= 3 for a spline recipe (two even couplings and "
                             f"the odd one), got {self.n_layers}")

    def build_flow(self, lattice_shape, *, dtype=torch.float32, device=None) -> Flow | Z2Symmetric:
        """A freshly initialised flow for ``lattice_shape`` with this recipe's architecture.

        A :class:`lftutor.Flow`, or with ``z2_symmetric`` a :class:`lftutor.bijections.symmetry.Z2Symmetric`
        around one (both have ``sample(n)``, ``log_prob(phi)`` and ``state_dict()``).
        """
        prior = SimpleNormal.standard(lattice_shape, dtype=dtype, device=device)
        if self.coupling == "affine":
            layers = make_phi4_affine_layers(n_layers=self.n_layers, lattice_shape=lattice_shape,
                                             hidden_sizes=list(self.hidden_sizes),
                                             kernel_size=self.kernel_size)
        elif self.coupling == "odd-spline":
            layers = list(make_phi4_odd_spline_layers(
                lattice_shape=lattice_shape, n_even_layers=self.n_layers - 1, n_bins=self.n_bins,
                hidden_sizes=self.hidden_sizes, kernel_size=self.kernel_size,
                zero_mode=self.zero_mode))
        else:
            layers = list(make_phi4_spline_layers(
                lattice_shape=lattice_shape, n_even_layers=self.n_layers - 1, n_bins=self.n_bins,
                hidden_sizes=self.hidden_sizes, kernel_size=self.kernel_size,
                even_colours=self._even_colours_for(lattice_shape)))
            if self.zero_mode:
                layers.insert(0, ZeroModeSpline(lattice_shape, n_bins=self.n_bins))
        flow = Flow(prior, layers).to(dtype=dtype, device=device)
        return Z2Symmetric(flow) if self.z2_symmetric else flow

    @property
    def n_flow_layers(self) -> int:
        """The layers :meth:`build_flow` stacks: the ``n_layers`` couplings and the zero-mode layer."""
        return self.n_layers + (self.zero_mode and self.coupling != "affine")

    def architecture(self, lattice_shape) -> str:
        """What :meth:`build_flow` stacks on ``lattice_shape``, read from the flow it builds.

        Example:
            >>> FAST.architecture((8, 8))
            '6 layers: a zero-mode spline, 4 spline couplings with kernel 5, 1 spline coupling with kernel 3'
            >>> TUTORIAL.architecture((8, 8))
            '16 layers: 16 affine couplings with kernel 3'
        """
        flow = self.build_flow(lattice_shape)
        layers = list((flow.flow if isinstance(flow, Z2Symmetric) else flow).layers)
        groups: list[list] = []  # [name, kernel, count] of runs of equal layers
        for layer in layers:
            key = [_LAYER_NAMES.get(type(layer), type(layer).__name__), _kernel_of(layer)]
            if groups and groups[-1][:2] == key:
                groups[-1][2] += 1
            else:
                groups.append([*key, 1])
        parts = []
        for name, kernel, count in groups:
            if count == 1 and kernel is None:
                what = f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
            else:
                what = f"{count} {name}{'s' if count > 1 else ''}"
            parts.append(what if kernel is None else f"{what} with kernel {kernel}")
        return f"{len(layers)} layers: " + ", ".join(parts)

    def _even_colours_for(self, lattice_shape) -> int:
        """Four colours need a 2-D lattice with even extents; elsewhere the two halves."""
        shape = tuple(lattice_shape)
        if self.even_colours == 4 and (len(shape) != 2 or any(n % 2 for n in shape)):
            return 2
        return self.even_colours

    def train_kwargs(self) -> dict:
        """Keyword arguments for :func:`lftutor.training.loop.train`."""
        return {"batch_size": self.batch_size, "lr": self.lr, "lr_schedule": self.lr_schedule,
                "ess_every": self.ess_every, "num_threads": self.num_threads,
                "gradient": self.gradient}


_LAYER_NAMES = {AffineCoupling: "affine coupling", SplineCoupling: "spline coupling",
                OddSplineCoupling: "odd spline coupling", ZeroModeSpline: "zero-mode spline",
                OddZeroModeSpline: "odd zero-mode spline"}


def _kernel_of(layer) -> int | None:
    """The window of a coupling's conditioner (``None`` for a layer without one)."""
    if hasattr(layer, "kernel_size"):
        return layer.kernel_size
    conv = next((m for m in layer.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)), None)
    return None if conv is None else conv.kernel_size[0]


#: The recipe of the tutorial (arXiv:2101.08176): what the notebooks teach.
TUTORIAL = Recipe("tutorial")

#: The course's default for training: tuned for a 2-core CPU (see benchmarks/README.md). Its even
#: couplings cycle through the four colours of the even sublattice
#: (:func:`lftutor.bijections.splines.make_even_colour_masks`, 5x5 windows): in 120 s of wall time
#: ESS 0.92-0.94 for seeds 0-2 where the two halves ``a``/``b`` (:data:`FAST_AB`) gave 0.76-0.80
#: (issue 16; each step is also cheaper, 8 updated sites per even coupling instead of 16).
FAST = Recipe("fast", coupling="spline", n_layers=5, hidden_sizes=(32, 32), kernel_size=3,
              n_bins=8, zero_mode=True, z2_symmetric=True, batch_size=128, lr=5e-3,
              lr_schedule=cosine_schedule, ess_every=10, num_threads=1, even_colours=4)

#: The fast recipe before the four colours (even couplings alternate between the halves ``a`` and
#: ``b`` of the even sublattice, 3x3 windows): the architecture of weights saved before the four
#: colours (load them with ``--recipe fast-ab``), and the reference of
#: ``benchmarks/phi4_training.py --recipes fast-ab fast``.
FAST_AB = dataclasses.replace(FAST, name="fast-ab", even_colours=2)

#: The fast recipe sized for a CUDA device: the same flow (so the same weights load into both),
#: a batch of 1,024. On a GPU the step time hardly depends on the batch up to a few thousand
#: (issue 16: about 14 steps/s at batch 128 and at 1,024 on an H200 before the step was slimmed),
#: so the larger batch is a less noisy gradient for free. Not yet tuned on a GPU (none was lent).
FAST_GPU = dataclasses.replace(FAST, name="fast-gpu", batch_size=1024, num_threads=None)

RECIPES: dict[str, Recipe] = {r.name: r for r in (TUTORIAL, FAST, FAST_AB, FAST_GPU)}


def _device_type(device) -> str:
    if device is None:
        from lftutor.device import default_device

        device = default_device()
    return torch.device(device).type


def recipe_for(device=None) -> Recipe:
    """The course's recipe for ``device``: :data:`FAST_GPU` on CUDA, :data:`FAST` elsewhere.

    Args:
        device: a ``torch.device``, a string such as ``"cuda"`` or ``"cpu"``, or ``None`` for
            :func:`lftutor.device.default_device` (CUDA when present).

    Example:
        >>> recipe_for("cpu").name, recipe_for("cuda").name
        ('fast', 'fast-gpu')
    """
    return FAST_GPU if _device_type(device) == "cuda" else FAST


def get_recipe(name: str, device=None) -> Recipe:
    """The recipe called ``name`` (see :data:`RECIPES`); ``"auto"`` is :func:`recipe_for` ``(device)``."""
    if name == "auto":
        return recipe_for(device)
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"expected a recipe among {sorted(RECIPES) + ['auto']}, got {name!r}") from None


@dataclass(frozen=True)
class Pretrained:
    """Weights shipped with the package, and how they were made.

    Attributes:
        file: file name in ``lftutor/weights/`` (a ``state_dict`` saved by ``train phi4 --save``).
        recipe: the architecture (a name in :data:`RECIPES`).
        L, m2, lam: the physics point.
        command: the command that made the file (run from the repository root).
        steps: training steps.
        ess: ESS on 16,384 fresh samples right after training.
        train_seconds: CPU time of that training (one thread): what it costs on one idle core.
    """

    file: str
    recipe: str
    L: int
    m2: float
    lam: float
    command: str
    steps: int
    ess: float
    train_seconds: float


#: The shipped weights, by physics point ``(L, m2, lam)``.
PRETRAINED: dict[tuple[int, float, float], Pretrained] = {
    (8, -4.0, 8.0): Pretrained(
        file="phi4_L8_m2-4_lam8.pt", recipe="fast", L=8, m2=-4.0, lam=8.0,
        command=".venv/bin/python -m lftutor train phi4 --recipe fast --device cpu --steps 3000 "
                "--gradient path --seed 0 --eval-samples 16384 "
                "--save lftutor/weights/phi4_L8_m2-4_lam8.pt --json",
        # made 2026-12-01 on a shared 2-core CPU: acceptance 0.871 on the same 16,384 samples;
        # 311 s of wall time with three other jobs running; about 80 s of CPU time (estimated:
        # 3000 steps at fast's ~20 ms plus the path gradient's extra reverse pass)
        steps=3000, ess=0.943, train_seconds=80.0),
}


def pretrained_flow(L: int = 8, m2: float = -4.0, lam: float = 8.0, *, device=None,
                    dtype: torch.dtype = torch.float32):
    """A trained flow for phi^4 at ``(L, m2, lam)`` from the weights shipped with the package.

    Only the points in :data:`PRETRAINED` have weights (the course's point of units 4 and 5,
    ``L=8, m2=-4, lam=8``). The flow is built with the recipe the weights were trained with and
    returned in ``eval()`` mode; ``PRETRAINED[(L, m2, lam)]`` says how it was made.

    Args:
        L, m2, lam: the physics point.
        device: where to put the flow (default: the CPU).
        dtype: floating dtype of the flow (the weights are float32).

    Returns:
        The flow (for the fast recipe a :class:`lftutor.bijections.symmetry.Z2Symmetric`), with
        ``sample(n)`` and ``log_prob(phi)``.

    Raises:
        ValueError: no weights for that point.

    Example:
        >>> flow = pretrained_flow()
        >>> phi, log_q = flow.sample(4)
        >>> phi.shape
        torch.Size([4, 8, 8])
    """
    key = (int(L), float(m2), float(lam))
    if key not in PRETRAINED:
        raise ValueError(f"expected a physics point with shipped weights, one of "
                         f"{sorted(PRETRAINED)} as (L, m2, lam), got {key}: train a flow instead "
                         f"(python -m lftutor train phi4 --L {L} --m2 {m2} --lam {lam} --save FILE)")
    info = PRETRAINED[key]
    flow = get_recipe(info.recipe).build_flow((info.L, info.L), dtype=dtype, device=device)
    resource = importlib.resources.files("lftutor").joinpath("weights", info.file)
    with importlib.resources.as_file(resource) as path:
        state = torch.load(path, map_location="cpu", weights_only=True)
    flow.load_state_dict(state)
    return flow.eval()
