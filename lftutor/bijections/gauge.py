r"""Gauge-equivariant flows for U(1) lattice gauge theory in two dimensions (arXiv:2003.06413).

The prior is the Haar measure, every link angle uniform on the circle. A coupling layer picks
one direction :math:`\mu` and a stripe of links :math:`\theta_\mu(x)` with
:math:`x_\nu \equiv s \pmod 4` (:math:`\nu\ne\mu`), and moves each of them so that the one
*active* plaquette :math:`\theta_P(x)` it belongs to becomes :math:`h(\theta_P(x))`:

.. math::
    \theta_\mu(x) \to \theta_\mu(x) + \sigma_\mu\big[h(\theta_P(x)) - \theta_P(x)\big],
    \qquad \sigma_0 = +1,\ \sigma_1 = -1

(:math:`\theta_0(x)` enters :math:`\theta_P(x)` with +, :math:`\theta_1(x)` with -).
:math:`h` is an invertible map of the circle whose parameters are a convolutional network of
the *frozen* plaquettes, those that contain no updated link (stripes :math:`s+1, s+2`); the
*passive* plaquettes (stripe :math:`s-1`) change too, but nothing depends on them. Because
plaquettes are gauge invariant and the update adds a gauge-invariant angle to a link, the layer
commutes with gauge transformations: :math:`f(\theta^\alpha) = f(\theta)^\alpha`. Each updated
link moves only its own active plaquette, so the Jacobian is triangular with
:math:`\log|\det| = \sum_{x\ \rm active}\log h'(\theta_P(x))`.

The circle maps are circular rational-quadratic splines (arXiv:2002.02428): a monotone spline
of :math:`[-\pi,\pi]` onto itself whose end slopes are equal (so it is smooth on the circle),
followed by a rotation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lftutor._checks import check_positive_int
from lftutor.bijections.base import Bijection
from lftutor.bijections.flow import Flow
from lftutor.bijections.splines import spline_bins
from lftutor.lattice.u1 import TWO_PI, check_links, lattice_shape_of, plaquettes, wrap

__all__ = ["STRIPE_ORDERS", "GaugeEquivariantCoupling", "LinkBijection", "UniformLinkPrior", "circle_map",
           "circular_spline", "make_conv_conditioner", "make_u1_flow", "make_u1_masks"]

MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3


def circular_spline(x: torch.Tensor, widths: torch.Tensor, heights: torch.Tensor,
                    derivatives: torch.Tensor, *, inverse: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monotone rational-quadratic spline of :math:`[-\pi,\pi]` onto itself, equal end slopes.

    ``K`` bins with knots :math:`(x_k, y_k)`, :math:`x_0=y_0=-\pi`, :math:`x_K=y_K=\pi`, and
    knot derivatives :math:`d_0,\dots,d_{K-1}`, :math:`d_K = d_0`: glued at :math:`\pm\pi` it is
    a :math:`C^1` diffeomorphism of the circle. It is the monotone spline of
    :func:`lftutor.bijections.splines.rational_quadratic_spline` on :math:`[-\pi, \pi]` (the same
    bin arithmetic, :func:`lftutor.bijections.splines.spline_bins`) with the end slopes tied
    instead of fixed at 1; :func:`circle_map` adds the rotation. In bin :math:`k`, with
    :math:`\xi=(x-x_k)/w_k`, :math:`s_k = h_k/w_k`:

    .. math::
        y = y_k + h_k\frac{s_k\xi^2 + d_k\xi(1-\xi)}{s_k + (d_{k+1}+d_k-2s_k)\xi(1-\xi)}
        \quad\text{(arXiv:1906.04032)}.

    Args:
        x: angles in :math:`[-\pi,\pi]`, shape ``(*S,)``.
        widths, heights, derivatives: unnormalised parameters, each ``(*S, K)`` (zeros give the
            identity).
        inverse: evaluate the inverse map.

    Returns:
        ``(y, log|dy/dx|)`` of shape ``(*S,)`` (the inverse's log-derivative when ``inverse``).

    Example:
        >>> x = torch.linspace(-3.1, 3.1, 5)
        >>> p = torch.randn(5, 3, 4)
        >>> y, ld = circular_spline(x, p[:, 0], p[:, 1], p[:, 2])
        >>> x2, ld2 = circular_spline(y, p[:, 0], p[:, 1], p[:, 2], inverse=True)
        >>> torch.allclose(x2, x, atol=1e-5), torch.allclose(ld + ld2, torch.zeros(5), atol=1e-5)
        (True, True)
    """
    if heights.shape != widths.shape or derivatives.shape != widths.shape or widths.shape[:-1] != x.shape:
        raise ValueError(f"expected widths, heights, derivatives of shape {tuple(x.shape)} + (K,), got "
                         f"{tuple(widths.shape)}, {tuple(heights.shape)}, {tuple(derivatives.shape)}")
    shift = math.log(math.expm1(1 - MIN_DERIVATIVE))  # zeros -> slope 1
    d = MIN_DERIVATIVE + F.softplus(derivatives + shift)
    d = torch.cat([d, d[..., :1]], dim=-1)  # d_K = d_0: smooth across the point -pi ~ pi
    # the bins of the monotone spline of [-pi, pi], without its identity tails (no outside here)
    return spline_bins(x, torch.stack([widths, heights], dim=-2), d, bound=math.pi, inverse=inverse,
                       min_bin=MIN_BIN, tails=False)


def circle_map(x: torch.Tensor, params: torch.Tensor, *, inverse: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The layers' circle map :math:`h(x) = [\,g(x) + t\,]_{(-\pi,\pi]}`: spline, then rotation.

    Args:
        x: angles in :math:`(-\pi,\pi]`, ``(*S,)``.
        params: ``(*S, 3K + 1)``: widths, heights, derivatives (``K`` each), rotation ``t``.

    Returns:
        ``(h(x), log h'(x))`` (or the inverse and its log-derivative), shape ``(*S,)``.
    """
    if params.shape[:-1] != x.shape or (params.shape[-1] - 1) % 3:
        raise ValueError(f"expected params of shape {tuple(x.shape)} + (3K+1,), got {tuple(params.shape)}")
    k = (params.shape[-1] - 1) // 3
    w, h, d, t = params[..., :k], params[..., k:2 * k], params[..., 2 * k:3 * k], params[..., -1]
    if inverse:
        return circular_spline(wrap(x - t), w, h, d, inverse=True)
    y, log_det = circular_spline(x, w, h, d)
    return wrap(y + t), log_det


class LinkBijection(Bijection):
    """A bijection of U(1) link angles, ``(batch, 2, L0, L1)``: the input check of
    :func:`lftutor.lattice.u1.check_links` (its messages speak of links) instead of a field's."""

    def check_event(self, x, name: str) -> None:
        check_links(x, self.event_shape[1:], name=name)


def make_u1_masks(lattice, mu: int, offset: int) -> dict[str, torch.Tensor]:
    r"""Masks of one gauge-equivariant layer (arXiv:2003.06413, Fig. 2).

    Updated links :math:`\theta_\mu(x)` and active plaquettes :math:`\theta_P(x)` sit on the
    stripe :math:`x_\nu\equiv s \pmod 4`; passive plaquettes are the others that contain an
    updated link; frozen ones contain none and feed the conditioner.

    Returns:
        ``{"active", "passive", "frozen"}``: bool tensors of shape ``(L0, L1)`` (sites of the
        plaquettes; the updated links of direction ``mu`` are at the active sites).

    Raises:
        ValueError: for a lattice where the stripes would touch across the boundary, or where
            the layer would update nothing.
    """
    l0, l1 = lattice_shape_of(lattice)
    if mu not in (0, 1) or not (isinstance(offset, int) and 0 <= offset < 4):
        raise ValueError(f"expected mu in (0, 1) and offset in 0..3, got mu={mu!r}, offset={offset!r}")
    nu = 1 - mu
    coord = torch.arange((l0, l1)[nu])
    stripe = coord % 4 == offset
    active = (stripe[:, None] if nu == 0 else stripe[None, :]).expand(l0, l1).clone()
    if not active.any():
        raise ValueError(f"expected L{nu} > {offset} so that the layer (mu={mu}, offset={offset}) "
                         f"updates some links, got lattice {(l0, l1)}")
    # theta_mu(x) also enters the plaquette at x - nu-hat (the passive one)
    passive = torch.roll(active, -1, dims=nu)
    if (passive & active).any():
        raise ValueError(f"expected stripes that do not touch: lattice extent {(l0, l1)[nu]} along "
                         f"direction {nu} needs to be a multiple of 4 or leave a gap across the boundary")
    return {"active": active, "passive": passive, "frozen": ~(active | passive)}


def make_conv_conditioner(in_channels: int, out_channels: int, hidden_channels: Sequence[int],
                          kernel_size: int) -> nn.Sequential:
    """Periodic CNN; the last layer starts at zero, so a fresh coupling is the identity."""
    sizes = [in_channels, *hidden_channels, out_channels]
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Conv2d(sizes[i], sizes[i + 1], kernel_size, padding=kernel_size // 2,
                                padding_mode="circular"))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    nn.init.zeros_(layers[-1].weight)
    nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


class GaugeEquivariantCoupling(LinkBijection):
    r"""One gauge-equivariant coupling layer: a stripe of :math:`\mu`-links through plaquettes.

    See the module docstring for the update and its Jacobian.

    Args:
        lattice: ``L`` or ``(L0, L1)``.
        mu: direction of the updated links (0 or 1).
        offset: stripe :math:`s \in \{0,1,2,3\}`.
        hidden_channels: widths of the conditioner's hidden convolutions.
        kernel_size: odd kernel size of the convolutions (periodic padding).
        n_bins: bins ``K`` of each circular spline.

    Shapes:
        ``forward(z)``/``reverse(x)``: ``(batch, 2, L0, L1) -> ((batch, 2, L0, L1), (batch,))``.

    Example:
        >>> layer = GaugeEquivariantCoupling(4, mu=0, offset=1)
        >>> z = torch.rand(3, 2, 4, 4) * 6.28
        >>> x, log_det = layer(z)
        >>> torch.allclose(layer.reverse(x)[0], z, atol=1e-5), log_det.shape
        (True, torch.Size([3]))
    """

    def __init__(self, lattice, *, mu: int, offset: int, hidden_channels: Sequence[int] = (8, 8),
                 kernel_size: int = 3, n_bins: int = 8):
        super().__init__()
        self.lattice_shape = lattice_shape_of(lattice)
        self.event_shape = (2, *self.lattice_shape)
        check_positive_int(n_bins, name="n_bins")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size % 2 == 0 \
                or kernel_size <= 0:
            raise ValueError(f"expected an odd positive kernel_size, got {kernel_size!r}")
        masks = make_u1_masks(self.lattice_shape, mu, offset)
        self.mu, self.offset, self.sign = mu, offset, (1.0 if mu == 0 else -1.0)
        self.register_buffer("frozen", masks["frozen"].to(torch.get_default_dtype()))
        self.register_buffer("active_index", torch.nonzero(masks["active"].flatten()).squeeze(1))
        self.net = make_conv_conditioner(2, 3 * n_bins + 1, list(hidden_channels), kernel_size)

    def extra_repr(self) -> str:
        return f"mu={self.mu}, offset={self.offset}"

    def _transform(self, theta: torch.Tensor, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        plaq = plaquettes(theta)
        frozen = self.frozen.to(theta.dtype)
        features = torch.stack([torch.cos(plaq) * frozen, torch.sin(plaq) * frozen], dim=1)
        params = self.net(features).flatten(2).index_select(2, self.active_index).transpose(1, 2)
        p_active = wrap(plaq.flatten(1).index_select(1, self.active_index))
        p_new, log_det = circle_map(p_active, params, inverse=inverse)
        batch, n_sites = theta.shape[0], plaq[0].numel()
        shift = theta.new_zeros(batch, n_sites).index_copy(1, self.active_index,
                                                           self.sign * (p_new - p_active))
        shift = shift.view(batch, *self.lattice_shape)
        zero = torch.zeros_like(shift)
        step = torch.stack([shift, zero] if self.mu == 0 else [zero, shift], dim=1)
        return theta + step, log_det.sum(dim=1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent to links: ``(batch, 2, L0, L1) -> ((batch, 2, L0, L1), (batch,))``."""
        return self._transform(z, inverse=False)

    def reverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Links to latent: ``(batch, 2, L0, L1) -> ((batch, 2, L0, L1), (batch,))``."""
        return self._transform(x, inverse=True)


class UniformLinkPrior(nn.Module):
    r"""Haar measure on :math:`U(1)^{2V}`: every angle uniform on :math:`(-\pi,\pi)`.

    :math:`\log r(z) = -2V\log 2\pi` for every configuration (a density on the angles).

    Shapes:
        ``sample_n(n) -> (n, 2, L0, L1)``; ``log_prob(z)``: ``(batch, 2, L0, L1) -> (batch,)``.
    """

    def __init__(self, lattice, *, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.shape2 = lattice_shape_of(lattice)
        self.register_buffer("_anchor", torch.zeros((), dtype=dtype))  # follows .to(device/dtype)

    @property
    def lattice_shape(self) -> tuple[int, int, int]:
        return (2, *self.shape2)

    def sample_n(self, n: int) -> torch.Tensor:
        check_positive_int(n, name="n")
        u = torch.rand(n, *self.lattice_shape, dtype=self._anchor.dtype, device=self._anchor.device)
        return math.pi * (2 * u - 1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        check_links(z, self.shape2, name="z")
        n_links = 2 * self.shape2[0] * self.shape2[1]
        return z.new_full((z.shape[0],), -n_links * math.log(TWO_PI))


STRIPE_ORDERS = ("ascending", "descending")


def make_u1_flow(lattice, *, n_layers: int = 16, hidden_channels: Sequence[int] = (8, 8),
                 kernel_size: int = 3, n_bins: int = 8, stripe_order: str = "ascending",
                 dtype: torch.dtype = torch.float32) -> Flow:
    r"""Haar prior plus ``n_layers`` gauge-equivariant couplings cycling :math:`(\mu, s)`.

    Layer ``i`` updates direction ``i % 2`` on stripe ``s = (i // 2) % 4`` (``"ascending"``, the
    scheme of arXiv:2003.06413 and arXiv:2101.08176) or ``s = 3 - (i // 2) % 4``
    (``"descending"``): eight layers touch every link once. The order matters at large
    :math:`\beta`: a layer on stripe :math:`s` moves the passive plaquettes of stripe
    :math:`s-1` by minus what it does to the active ones, so in ascending order each layer undoes
    part of the concentration that the layer two steps earlier gave stripe :math:`s-1`; in
    descending order stripe :math:`s-1` is the one still to be treated. (Measured at
    :math:`\beta = 4`, L = 8, 400 steps: KL 5.5 against 7.4 nats; ``benchmarks/README.md``.) The
    state dict does not record the order: load weights into a flow made with the same one.

    Example:
        >>> flow = make_u1_flow(4, n_layers=8)
        >>> x, log_q = flow.sample(2)
        >>> x.shape, log_q.shape
        (torch.Size([2, 2, 4, 4]), torch.Size([2]))
    """
    check_positive_int(n_layers, name="n_layers")
    if stripe_order not in STRIPE_ORDERS:
        raise ValueError(f"expected stripe_order in {STRIPE_ORDERS}, got {stripe_order!r}")

    def offset(i: int) -> int:
        s = (i // 2) % 4
        return s if stripe_order == "ascending" else 3 - s

    layers = [GaugeEquivariantCoupling(lattice, mu=i % 2, offset=offset(i),
                                       hidden_channels=hidden_channels, kernel_size=kernel_size,
                                       n_bins=n_bins) for i in range(n_layers)]
    return Flow(UniformLinkPrior(lattice, dtype=dtype), layers).to(dtype)
