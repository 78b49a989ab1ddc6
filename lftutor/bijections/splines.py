r"""Rational-quadratic spline couplings on sublattices: the layers of the fast phi^4 recipe.

The affine coupling of the tutorial moves a site by a shift and a scale; a monotone
rational-quadratic spline (arXiv:1906.04032) can bend a whole one-dimensional distribution in
one layer, which is what the quartic potential asks for. The layers here update an arbitrary
subset of sites conditioned on another, disjoint subset (sites in neither pass unchanged).

Why sublattices (see :func:`make_phi4_spline_layers`): for the nearest-neighbour action
:math:`S=\sum_x[-2\sum_\mu\phi(x)\phi(x+\hat\mu) + (2d+m^2)\phi(x)^2 + \lambda\phi(x)^4]` the
odd sites are independent given the even ones, each with the one-dimensional density

.. math::
    p(\phi_x \mid \phi_{\rm even}) \propto \exp\big(2 h_x\phi_x - (2d+m^2)\phi_x^2
    - \lambda\phi_x^4\big), \qquad h_x = \sum_{\pm\mu}\phi(x\pm\hat\mu),

so one spline coupling whose conditioner sees the neighbour sum can sample the odd sites
exactly; the rest of the flow only has to learn the marginal of the even sites.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lftutor._checks import check_lattice_shape, check_positive_int
from lftutor.bijections.base import Bijection

__all__ = ["DEFAULT_MIN_BIN", "DEFAULT_MIN_DERIVATIVE", "EVEN_COLOUR_OFFSETS", "SplineCoupling",
           "ZeroModeSpline", "make_even_colour_masks", "make_phi4_spline_layers",
           "make_sublattice_masks", "rational_quadratic_spline", "spline_bins"]

DEFAULT_MIN_BIN = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def rational_quadratic_spline(x: torch.Tensor, widths: torch.Tensor, heights: torch.Tensor,
                              derivatives: torch.Tensor, *, bound: float, inverse: bool = False,
                              min_bin: float = DEFAULT_MIN_BIN,
                              min_derivative: float = DEFAULT_MIN_DERIVATIVE
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monotone rational-quadratic spline on :math:`[-B, B]`, identity outside (arXiv:1906.04032).

    In bin :math:`k` with knots :math:`(x_k, y_k)`, width :math:`w_k`, height :math:`h_k`,
    slope :math:`s_k = h_k/w_k`, knot derivatives :math:`d_k, d_{k+1}` and
    :math:`\xi = (x - x_k)/w_k`:

    .. math::
        y = y_k + h_k\frac{s_k\xi^2 + d_k\xi(1-\xi)}{s_k + (d_{k+1}+d_k-2s_k)\xi(1-\xi)},\quad
        \frac{dy}{dx} = \frac{s_k^2\big[d_{k+1}\xi^2 + 2s_k\xi(1-\xi) + d_k(1-\xi)^2\big]}
        {\big[s_k + (d_{k+1}+d_k-2s_k)\xi(1-\xi)\big]^2}.

    The boundary derivatives are 1, so the map is :math:`C^1` with the identity tails.

    Args:
        x: inputs, any shape ``(*S,)``.
        widths, heights: unnormalised bin sizes, ``(*S, K)`` (softmax-normalised here).
        derivatives: unnormalised interior knot derivatives, ``(*S, K - 1)`` (zeros give 1).
        bound: half-width :math:`B` of the spline's interval.
        inverse: evaluate :math:`y \mapsto x` instead.

    Returns:
        ``(y, log_abs_dy_dx)``, both of shape ``(*S,)``; with ``inverse=True`` the log-det is
        that of the inverse map.

    Example:
        >>> x = torch.linspace(-6, 6, 7)
        >>> y, ld = rational_quadratic_spline(x, torch.zeros(7, 4), torch.zeros(7, 4),
        ...                                   torch.zeros(7, 3), bound=5.0)
        >>> torch.allclose(y, x, atol=1e-6), torch.allclose(ld, torch.zeros(7), atol=1e-6)
        (True, True)
    """
    n_bins = widths.shape[-1]
    if heights.shape[-1] != n_bins or derivatives.shape[-1] != n_bins - 1:
        raise ValueError(f"expected widths and heights (..., K) and derivatives (..., K-1), got "
                         f"{tuple(widths.shape)}, {tuple(heights.shape)}, {tuple(derivatives.shape)}")
    if widths.shape[:-1] != x.shape or heights.shape[:-1] != x.shape:
        raise ValueError(f"expected spline parameters of shape {tuple(x.shape)} + (K,), "
                         f"got {tuple(widths.shape)}")
    return _spline(x, torch.stack([widths, heights], dim=-2), derivatives, bound=bound,
                   inverse=inverse, min_bin=min_bin, min_derivative=min_derivative)


def _spline(x: torch.Tensor, widths_heights: torch.Tensor, derivatives: torch.Tensor, *,
            bound: float, inverse: bool, min_bin: float = DEFAULT_MIN_BIN,
            min_derivative: float = DEFAULT_MIN_DERIVATIVE) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`rational_quadratic_spline` with widths and heights stacked, ``(*S, 2, K)``, unchecked.

    A coupling passes a view of its conditioner's output, so nothing is copied for the stack.
    """
    # Shift so that zeros give derivative 1 (an identity spline at initialisation); the boundary
    # derivatives are 1.
    shift = math.log(math.expm1(1 - min_derivative))
    d = F.pad(min_derivative + F.softplus(derivatives + shift), (1, 1), value=1.0)  # (*S, K + 1)
    return spline_bins(x, widths_heights, d, bound=bound, inverse=inverse, min_bin=min_bin)


def spline_bins(x: torch.Tensor, widths_heights: torch.Tensor, d: torch.Tensor, *, bound: float,
                inverse: bool, min_bin: float = DEFAULT_MIN_BIN, tails: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The rational-quadratic bins of :math:`[-B, B]` onto itself, given every knot's derivative.

    The arithmetic of :func:`rational_quadratic_spline` (formulas there) once, for the monotone
    spline (boundary derivatives 1, identity tails) and the circular one
    (:func:`lftutor.bijections.gauge.circular_spline`: :math:`d_K = d_0`, no tails) alike, in few
    operations (what a GPU pays for per step is the number of kernels, not their size): one
    softmax and one cumulative sum for the widths and heights together, one ``searchsorted`` for
    the bin, and two gathers (knots and derivatives at ``k`` and ``k + 1``) instead of six.

    Args:
        x: ``(*S,)``.
        widths_heights: unnormalised widths and heights, ``(*S, 2, K)``.
        d: positive derivatives at the ``K + 1`` knots, ``(*S, K + 1)``.
        bound: :math:`B`.
        inverse: evaluate :math:`y \mapsto x`.
        tails: the identity outside :math:`(-B, B)` (else ``x`` is clamped to :math:`[-B, B]`).

    Returns:
        ``(y, log|dy/dx|)`` of shape ``(*S,)`` (the inverse's log-derivative when ``inverse``).
    """
    n_bins = widths_heights.shape[-1]
    sizes = min_bin + (1 - min_bin * n_bins) * _softmax(widths_heights,
                                                         fused=widths_heights.device.type != "cpu")
    knots = F.pad(torch.cumsum(sizes, dim=-1), (1, 0))
    knots = 2 * bound * knots - bound  # (*S, 2, K + 1): x knots, then y knots
    inside = x.abs() < bound
    xc = x.clamp(-bound, bound)
    grid = knots[..., 1 if inverse else 0, 1:-1].contiguous()  # interior knots, (*S, K - 1)
    k = torch.searchsorted(grid, xc.unsqueeze(-1), right=True)  # bin index = #{knots <= x}, (*S, 1)
    k_k1 = torch.cat([k, k + 1], dim=-1)  # (*S, 2)
    # [[x_k, x_{k+1}], [y_k, y_{k+1}]] and [d_k, d_{k+1}]
    at = torch.gather(knots, -1, k_k1.unsqueeze(-2).expand(*k_k1.shape[:-1], 2, 2))
    d_k, d_k1 = torch.gather(d, -1, k_k1).unbind(-1)
    x_k, y_k = at[..., 0].unbind(-1)
    w_k, h_k = (at[..., 1] - at[..., 0]).unbind(-1)
    s_k = h_k / w_k
    c = d_k1 + d_k - 2 * s_k
    if not inverse:
        xi = (xc - x_k) / w_k
    else:
        dy = xc - y_k
        a = h_k * (s_k - d_k) + dy * c
        b = h_k * d_k - dy * c
        cc = -s_k * dy
        disc = (b**2 - 4 * a * cc).clamp_min(0)
        xi = (2 * cc) / (-b - torch.sqrt(disc))
    t = xi * (1 - xi)
    den = s_k + c * t
    xi2 = xi**2
    dnum = s_k**2 * (d_k1 * xi2 + 2 * s_k * t + d_k * (1 - xi) ** 2)
    log_det = torch.log(dnum) - 2 * torch.log(den)
    if not inverse:
        y = y_k + h_k * (s_k * xi2 + d_k * t) / den
    else:
        y = xi * w_k + x_k
        log_det = -log_det
    if not tails:
        return y, log_det
    return torch.where(inside, y, x), torch.where(inside, log_det, 0.0)


def _softmax(x: torch.Tensor, *, fused: bool) -> torch.Tensor:
    r"""Softmax over the last dimension: torch's fused kernel, or the same formula in four operations.

    On a GPU one fused kernel is cheapest (launches are what a step pays for). On a CPU, torch's
    softmax over a short last dimension (the K spline bins) is about three times slower than
    :math:`e^{x - \max x}/\sum e^{x - \max x}` written out, forward and backward alike; the
    two agree to round-off (``tests/test_splines.py`` checks both on the CPU).
    """
    if fused:
        return torch.softmax(x, dim=-1)
    e = torch.exp(x - x.amax(dim=-1, keepdim=True).detach())  # the shift cancels: no gradient needed
    return e / e.sum(dim=-1, keepdim=True)


class SplineCoupling(Bijection):
    r"""Rational-quadratic spline coupling that updates one set of sites given nearby others.

    With masks :math:`u(x)` (updated sites) and :math:`c(x)` (conditioning sites),
    :math:`u\,c = 0`, every updated site gets its own monotone spline :math:`g_{\theta(x)}`
    whose parameters are a small MLP of the conditioning values in the window of width
    ``kernel_size`` around it, :math:`\theta(x) = \mathrm{MLP}\big(\{z(x+\delta):
    c(x+\delta) = 1,\ |\delta_\mu| \le k/2\}\big)` (periodic boundaries, weights shared by all
    sites: a convolution evaluated only where it is needed):

    .. math::
        \phi(x) = \begin{cases} g_{\theta(x)}\big(z(x)\big) & u(x)=1\\ z(x) & u(x)=0\end{cases},
        \qquad \log\Big|\det\frac{\partial\phi}{\partial z}\Big| = \sum_{x:\,u(x)=1}
        \log g'_{\theta(x)}\big(z(x)\big).

    :math:`g_\theta` is :func:`rational_quadratic_spline` on :math:`[-B, B]`. The conditioning
    sites are unchanged, so the reverse sees the same :math:`\theta` (Neural Spline Flows,
    arXiv:1906.04032; spline couplings for lattice fields e.g. arXiv:2107.00734).

    Args:
        update_mask, condition_mask: disjoint 0/1 tensors of shape ``L``.
        kernel_size: odd window width of the conditioner.
        offsets: ``None`` (default): the features are the window's offsets that land on a
            conditioning site around *every* updated site (masks of one period, e.g. checkerboards;
            an offset that does so around some sites only is an error). Or the offsets to use, as
            ``d``-tuples inside the window: around an updated site where one of them lands on a
            site that is not conditioning, that feature is 0 (so the update never sees another
            updated site, and the map stays a bijection with the log-det above). The
            four-colour masks need this at extents not divisible by 4
            (:func:`make_even_colour_masks`).
        hidden_sizes: widths of the MLP's hidden layers.
        n_bins: ``K``, spline bins (the MLP outputs ``3K - 1`` numbers per site).
        bound: ``B``; keep it several prior standard deviations wide (the tails are identity).

    Shapes:
        ``forward``/``reverse``: ``(batch, *L) -> ((batch, *L), (batch,))``.

    Example:
        >>> from lftutor.bijections.coupling import make_checker_mask
        >>> m = make_checker_mask((4, 4), 0)
        >>> layer = SplineCoupling(1 - m, m, hidden_sizes=[8], n_bins=4)
        >>> z = torch.randn(3, 4, 4)
        >>> phi, log_det = layer.forward(z)
        >>> torch.allclose(layer.reverse(phi)[0], z, atol=1e-5), log_det.shape
        (True, torch.Size([3]))
    """

    input_names = ("z", "phi")

    def __init__(self, update_mask: torch.Tensor, condition_mask: torch.Tensor, *,
                 kernel_size: int = 3, hidden_sizes: Sequence[int] = (32, 32), n_bins: int = 8,
                 bound: float = 5.0, offsets: Sequence[Sequence[int]] | None = None):
        super().__init__()
        update_mask, condition_mask = torch.as_tensor(update_mask), torch.as_tensor(condition_mask)
        if update_mask.shape != condition_mask.shape:
            raise ValueError(f"expected update_mask and condition_mask of the same shape, got "
                             f"{tuple(update_mask.shape)} and {tuple(condition_mask.shape)}")
        for name, m in (("update_mask", update_mask), ("condition_mask", condition_mask)):
            if not bool(((m == 0) | (m == 1)).all()):
                raise ValueError(f"expected {name} of 0s and 1s, got other values")
        if not bool(update_mask.any()):
            raise ValueError("expected update_mask to mark at least one site, got none")
        if bool((update_mask * condition_mask).any()):
            raise ValueError("expected disjoint update_mask and condition_mask (a site cannot "
                             "condition its own update), got overlapping masks")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size <= 0 \
                or kernel_size % 2 == 0:
            raise ValueError(f"expected an odd positive kernel_size, got {kernel_size!r}")
        check_positive_int(n_bins, name="n_bins")
        hidden_sizes = list(hidden_sizes)
        for hs in hidden_sizes:
            check_positive_int(hs, name="each hidden size")
        if not bound > 0:
            raise ValueError(f"expected a positive bound, got {bound!r}")
        self.n_bins, self.bound, self.kernel_size = n_bins, float(bound), kernel_size
        self.lattice_shape = self.event_shape = tuple(update_mask.shape)
        neighbours, present = _window_indices(update_mask.bool(), condition_mask.bool(), kernel_size,
                                              offsets)
        self.register_buffer("update_index", torch.nonzero(update_mask.flatten()).squeeze(1))
        self.register_buffer("neighbour_index", neighbours)  # (n_update, n_features)
        # 0 where a feature's site is not conditioning (only with explicit offsets); geometry, so
        # not saved: weights load into the same layer built for another lattice size
        self.register_buffer("neighbour_present", present, persistent=False)
        sizes = [max(neighbours.shape[1], 1), *hidden_sizes]
        net: list[nn.Module] = []
        for i in range(len(hidden_sizes)):
            net += [nn.Linear(sizes[i], sizes[i + 1]), nn.SiLU()]
        last = nn.Linear(sizes[-1], 3 * n_bins - 1)
        nn.init.zeros_(last.weight)  # a fresh coupling is the identity
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*net, last)

    def spline_parameters(self, features: torch.Tensor) -> torch.Tensor:
        """The conditioner: ``(batch, n_update, n_features) -> (batch, n_update, 3K - 1)``."""
        return self.net(features)

    def _transform(self, x: torch.Tensor, inverse: bool):
        flat = x.flatten(1)
        n_update, n_features = self.neighbour_index.shape
        if n_features:
            features = flat.index_select(1, self.neighbour_index.flatten())
            features = features.view(x.shape[0], n_update, n_features)
            if self.neighbour_present is not None:
                features = features * self.neighbour_present
        else:  # nothing to condition on: one learned spline for every updated site
            features = flat.new_zeros(x.shape[0], n_update, 1)
        params = self.spline_parameters(features)
        k = self.n_bins
        y, log_det = _spline(flat.index_select(1, self.update_index),
                             params[..., :2 * k].unflatten(-1, (2, k)), params[..., 2 * k:],
                             bound=self.bound, inverse=inverse)
        return flat.index_copy(1, self.update_index, y).view_as(x), log_det.sum(dim=1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent to field: ``(batch, *L) -> ((batch, *L), (batch,))``."""
        return self._transform(z, inverse=False)

    def reverse(self, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Field to latent: ``(batch, *L) -> ((batch, *L), (batch,))``."""
        return self._transform(phi, inverse=True)


def _window_indices(update: torch.Tensor, condition: torch.Tensor, kernel_size: int,
                    offsets: Sequence[Sequence[int]] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The conditioning sites around each updated site: flat indices ``(n_update, n_feat)``, and
    ``None`` or (with explicit ``offsets``) a 0/1 tensor of the same shape, 1 where the site is
    conditioning.

    Without ``offsets``, window offsets are kept when they land on a conditioning site for every
    updated site (true for the sublattice masks used here); offsets that never do are dropped.
    Offsets that do for some sites only are refused: the features would not mean the same thing
    everywhere. Either way the features come in the window's order (row-major over offsets).
    """
    shape = tuple(update.shape)
    r = kernel_size // 2
    sites = torch.nonzero(update)  # (n_update, d)
    dims = torch.tensor(shape)
    strides = torch.tensor([int(torch.tensor(shape[i + 1:]).prod()) for i in range(len(shape))])
    window = torch.cartesian_prod(*[torch.arange(-r, r + 1)] * len(shape)).reshape(-1, len(shape))
    wanted = None
    if offsets is not None:
        wanted = {tuple(int(o) for o in offset) for offset in offsets}
        outside = sorted(o for o in wanted if len(o) != len(shape) or max(map(abs, o)) > r)
        if outside:
            raise ValueError(f"expected offsets of {len(shape)} integers within the window of "
                             f"kernel_size {kernel_size} (|offset| <= {r}), got {outside}")
    kept, present = [], []
    for offset in window:
        target = (sites + offset) % dims
        hits = condition[tuple(target.T)]
        if wanted is not None:
            if tuple(offset.tolist()) in wanted:
                kept.append(strides @ target.T)
                present.append(hits)
        elif bool(hits.all()):
            kept.append(strides @ target.T)
        elif bool(hits.any()):
            raise ValueError(f"expected masks whose conditioning sites sit at the same offsets "
                             f"around every updated site, got offset {offset.tolist()} that is "
                             f"conditioning for some updated sites only (pass offsets= to "
                             f"choose the features and zero them where they are not)")
    if not kept:
        return torch.zeros(sites.shape[0], 0, dtype=torch.long), None
    index = torch.stack(kept, dim=1)
    if wanted is None:
        return index, None
    mask = torch.stack(present, dim=1).to(torch.get_default_dtype())
    return index, (None if bool(mask.all()) else mask)


def make_sublattice_masks(lattice_shape: Sequence[int]) -> dict[str, torch.Tensor]:
    r"""Masks of the odd sites and of the two halves ``a``, ``b`` of the even sites.

    ``odd``: :math:`\sum_\mu x_\mu` odd. ``a``/``b``: even sites with :math:`x_0` even / odd
    (in 1-D, :math:`x \bmod 4 = 0` / :math:`2`). The nearest neighbours of an odd site are even;
    in :math:`d\ge2` the diagonal neighbours of an ``a`` site are ``b`` sites.

    Returns:
        ``{"a", "b", "odd"}``, 0/1 tensors of shape ``lattice_shape`` (default dtype).
    """
    shape = check_lattice_shape(lattice_shape)
    if any(n % 2 for n in shape) or (len(shape) == 1 and shape[0] % 4):
        raise ValueError(f"expected even lattice extents (a multiple of 4 in 1-D), got {shape}")
    coords = torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij")
    even = sum(coords) % 2 == 0
    half = (coords[0] % 4 == 0) if len(shape) == 1 else (coords[0] % 2 == 0)
    dtype = torch.get_default_dtype()
    return {"a": (even & half).to(dtype), "b": (even & ~half).to(dtype), "odd": (~even).to(dtype)}


#: The eight even sites that an even site interacts with once the odd sites are integrated out
#: (:func:`make_even_colour_masks`): its diagonal neighbours and the even sites two steps away.
EVEN_COLOUR_OFFSETS = ((-2, 0), (-1, -1), (-1, 1), (0, -2), (0, 2), (1, -1), (1, 1), (2, 0))


def make_even_colour_masks(lattice_shape: Sequence[int]) -> list[torch.Tensor]:
    r"""Four colours of the even sites of a 2-D lattice, no two sites of one colour interacting.

    Integrating out the odd sites couples each even site to its four diagonal neighbours and to
    the four even sites two steps away along an axis (they share an odd neighbour). In the
    coordinates :math:`u = (x_0 + x_1)/2`, :math:`v = (x_0 - x_1)/2` of the even sublattice these
    are its eight king's-move neighbours, so the colour :math:`(u \bmod 2, v \bmod 2)` gives four
    classes whose sites are conditionally independent given the other colours (and the odd
    sites integrated out). A coupling of one colour given the others with a 5x5 window sees
    exactly those eight neighbours.

    The pattern repeats every four sites along each axis, so it closes around the periodic
    lattice only when both extents are multiples of 4. At other even extents (``L = 6, 10, 14``
    of the paper's ensembles) the same rule, read in the coordinates ``0 ... L-1``, leaves seams
    at the boundary where a few same-colour sites interact (20 of the 200 interacting pairs at
    ``L = 10``). A coupling stays an exact bijection whatever its mask (each updated site sees
    only conditioning sites), so the seams cost only some expressivity there, and the flow keeps
    the same layers, windows and weights at every even ``L`` (what transfer between lattice
    sizes needs).

    Returns:
        Four 0/1 tensors of shape ``lattice_shape`` (default dtype), partitioning the even sites.
    """
    shape = check_lattice_shape(lattice_shape)
    if len(shape) != 2 or any(n % 2 for n in shape):
        raise ValueError(f"expected a 2-D lattice with even extents, got {shape}")
    x0, x1 = torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij")
    even = (x0 + x1) % 2 == 0
    u = ((x0 + x1) // 2) % 2
    v = ((x0 - x1) // 2) % 2  # floor division: no seam along the diagonal x0 = x1
    dtype = torch.get_default_dtype()
    return [(even & (2 * u + v == c)).to(dtype) for c in range(4)]


def make_phi4_spline_layers(*, lattice_shape: Sequence[int], n_even_layers: int = 4,
                            n_bins: int = 8, hidden_sizes: Sequence[int] = (32, 32),
                            kernel_size: int = 3, bound: float = 5.0,
                            even_colours: int = 2) -> nn.ModuleList:
    r"""Spline flow for nearest-neighbour scalar theories: learn the even marginal, then odd | even.

    ``n_even_layers`` couplings alternate between the halves ``a`` and ``b`` of the even
    sublattice (each conditioned on the other half); a last coupling updates the odd sites
    conditioned on all even sites. Because the odd sites are independent given their
    neighbours (module docstring), that last layer can be exact, and the layers before it only
    have to model the distribution of the even sites; the odd sites stay prior noise until then.
    With ``even_colours=4`` (2-D only) the even couplings cycle through the four colours of
    :func:`make_even_colour_masks` instead, each given the three others in a window of at least
    5x5 (the eight even sites it interacts with): their ``kernel_size`` is
    ``max(kernel_size, 5)``, the odd coupling's stays ``kernel_size``.

    Returns:
        ``nn.ModuleList`` of :class:`SplineCoupling`; wrap it with :class:`lftutor.Flow`.

    Example:
        >>> layers = make_phi4_spline_layers(lattice_shape=(4, 4), n_even_layers=2,
        ...                                  hidden_sizes=[8])
        >>> len(layers)
        3
    """
    shape = check_lattice_shape(lattice_shape)
    if isinstance(n_even_layers, bool) or not isinstance(n_even_layers, int) or n_even_layers < 0:
        raise ValueError(f"expected n_even_layers to be an integer >= 0, got {n_even_layers!r}")
    if even_colours not in (2, 4):
        raise ValueError(f"expected even_colours 2 or 4, got {even_colours!r}")
    masks = make_sublattice_masks(shape)
    even = masks["a"] + masks["b"]
    if even_colours == 2:
        plan = [(masks["a"], masks["b"]) if i % 2 == 0 else (masks["b"], masks["a"])
                for i in range(n_even_layers)]
        even_kernel = kernel_size
    else:
        colours = make_even_colour_masks(shape)
        plan = [(colours[i % 4], even - colours[i % 4]) for i in range(n_even_layers)]
        even_kernel = max(kernel_size, 5)
    kernels = [even_kernel] * n_even_layers + [kernel_size]
    # the eight interacting even sites, named explicitly so that seams (extents not divisible
    # by 4) zero a feature instead of changing the features: same weights at every even L
    offsets = [EVEN_COLOUR_OFFSETS if even_colours == 4 else None] * n_even_layers + [None]
    plan.append((masks["odd"], even))

    return nn.ModuleList(SplineCoupling(upd, cond, kernel_size=k, hidden_sizes=hidden_sizes,
                                        n_bins=n_bins, bound=bound, offsets=o)
                         for (upd, cond), k, o in zip(plan, kernels, offsets, strict=True))


class ZeroModeSpline(Bijection):
    r"""A learned monotone spline of the lattice mean (the zero mode); other modes pass unchanged.

    With the unit vector :math:`e_0 = (1,\dots,1)/\sqrt V` and the zero-mode coordinate
    :math:`u = e_0\cdot z = \sqrt V\,\bar z`:

    .. math::
        \phi = z + \big(g(u) - u\big)\,e_0, \qquad
        \log\Big|\det\frac{\partial\phi}{\partial z}\Big| = \log g'(u),

    since in an orthonormal basis containing :math:`e_0` the map is :math:`g` on one coordinate
    and the identity on the others. :math:`g` is a :func:`rational_quadratic_spline` with
    learned parameters. Near a phase transition the magnetisation has a broad, non-Gaussian
    distribution that local couplings reproduce only slowly; this layer shapes it directly.

    Args:
        lattice_shape: ``L``.
        n_bins: spline bins.
        bound: spline interval :math:`[-B, B]` in units of :math:`u`.

    Shapes:
        ``forward``/``reverse``: ``(batch, *L) -> ((batch, *L), (batch,))``.

    Example:
        >>> layer = ZeroModeSpline((4, 4))
        >>> z = torch.randn(3, 4, 4)
        >>> torch.allclose(layer.forward(z)[0], z)  # identity at initialisation
        True
    """

    input_names = ("z", "phi")

    def __init__(self, lattice_shape: Sequence[int], *, n_bins: int = 8, bound: float = 5.0):
        super().__init__()
        self.lattice_shape = self.event_shape = check_lattice_shape(lattice_shape)
        check_positive_int(n_bins, name="n_bins")
        if not bound > 0:
            raise ValueError(f"expected a positive bound, got {bound!r}")
        self.n_bins, self.bound = n_bins, float(bound)
        self.sqrt_volume = math.sqrt(math.prod(self.lattice_shape))
        self.widths = nn.Parameter(torch.zeros(n_bins))
        self.heights = nn.Parameter(torch.zeros(n_bins))
        self.derivatives = nn.Parameter(torch.zeros(n_bins - 1))

    def spline_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Widths and heights stacked, ``(2, K)``, and interior derivatives, ``(K - 1,)``."""
        return torch.stack([self.widths, self.heights]), self.derivatives

    def _transform(self, x: torch.Tensor, inverse: bool):
        u = x.flatten(1).sum(dim=1) / self.sqrt_volume
        n = u.shape[0]
        wh, d = self.spline_parameters()
        v, log_det = _spline(u, wh.expand(n, -1, -1), d.expand(n, -1), bound=self.bound,
                             inverse=inverse)
        shift = ((v - u) / self.sqrt_volume).view(n, *([1] * len(self.lattice_shape)))
        return x + shift, log_det

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent to field: ``(batch, *L) -> ((batch, *L), (batch,))``."""
        return self._transform(z, inverse=False)

    def reverse(self, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Field to latent: ``(batch, *L) -> ((batch, *L), (batch,))``."""
        return self._transform(phi, inverse=True)
