r"""An autoregressive gauge-equivariant flow for 2-D U(1): plaquettes set one after another.

In two dimensions the plaquettes of a periodic lattice are independent variables up to one
constraint (their wrapped angles add up to :math:`2\pi Q`), and the target density depends on
the links only through them. This layer exploits that. Number the :math:`V` plaquettes along a
path through the dual lattice, :math:`P_1,\dots,P_V`, each next to the one before (a snake: along
direction 0, then one step in direction 1, back along direction 0, ...). Consecutive plaquettes
share one link :math:`\ell_i`; it enters :math:`P_i` with a sign :math:`\sigma_i` and
:math:`P_{i+1}` with :math:`-\sigma_i`, so moving it by :math:`\sigma_i\delta` adds :math:`\delta`
to :math:`P_i` and takes it from :math:`P_{i+1}`. With :math:`x_i = [\theta_{P_i}]_{(-\pi,\pi]}`
the input's plaquettes, the layer maps

.. math::
    y_i = h\big(x_i;\ S_{i-1}, i\big),\qquad S_i = S_{i-1} + y_i,\qquad
    \ell_i \to \ell_i + \sigma_i\delta_i,\quad \delta_i = \sum_{j\le i}(y_j - x_j),

for :math:`i = 1,\dots,V-1` (:math:`S_0 = 0`): plaquette :math:`P_i` changes by
:math:`\delta_i - \delta_{i-1} = y_i - x_i`, so :math:`y_i` is its new angle, and the last plaquette
follows from the constraint. (The shifts add up rather than feed back: an earlier version applied
:math:`h` to the already shifted :math:`x_i - \delta_{i-1}`, whose gradients multiply factors
:math:`1 - h'` along the path; its training diverged at :math:`\beta = 5`.) :math:`h` is the
circular spline of :mod:`lftutor.bijections.gauge`, its parameters a small network of the
position :math:`i` and of the sum :math:`S_{i-1}` of the angles already set (through
:math:`\cos S`, :math:`\sin S`). That context suffices in principle: under the Wilson action the
new plaquettes have the conditionals
:math:`p(y_i\,|\,y_{<i}) \propto e^{\beta\cos y_i}\,g_{V-i}(S_{i-1}+y_i)`, where :math:`g_k` is the density
of a sum of :math:`k` independent plaquettes, so one such layer can be exact.

*Gauge equivariance.* Every :math:`\delta_i` is a function of plaquettes only, so a gauge
transformation of the input moves the output by the same transformation (the tests check it).

*Jacobian.* :math:`\delta_i` depends on the plaquettes :math:`P_1..P_i` of the input; of the path
links only :math:`\ell_1..\ell_i` enter them (each :math:`\ell_j` lies in :math:`P_j` and
:math:`P_{j+1}` only), and :math:`\ell_i` only through :math:`x_i` (with sign :math:`\sigma_i`). So
the Jacobian is triangular with diagonal
:math:`\partial(\ell_i + \sigma_i\delta_i)/\partial\ell_i = 1 + (h'(x_i) - 1) = h'(x_i)`:
:math:`\log|\det| = \sum_{i<V}\log h'(x_i)`.

*Cost.* The forward map (sampling) runs :math:`V-1` small network calls in sequence; the reverse
(density of a given configuration) is one parallel pass, since :math:`S_{i-1}` comes from the
output's plaquettes. The links off the path (one per site, plus the two holonomies) are left
alone: the action does not depend on them given the plaquettes, and the Haar prior already
gives them the right (uniform) distribution.

This is special to two dimensions: in more dimensions the plaquettes obey Bianchi identities
and cannot be set one at a time, which is why arXiv:2003.06413 uses the stripe couplings of
:mod:`lftutor.bijections.gauge` (unit 10 compares the two).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from lftutor._checks import check_positive_int
from lftutor.bijections.flow import Flow
from lftutor.bijections.gauge import LinkBijection, UniformLinkPrior, circle_map
from lftutor.bijections.symmetry import Z2Symmetric
from lftutor.lattice.u1 import lattice_shape_of, plaquettes, wrap

__all__ = ["PlaquetteChainLayer", "make_u1_chain_flow", "snake_path"]


def snake_path(lattice) -> dict[str, torch.Tensor]:
    r"""A path through all plaquettes of the periodic lattice, and the links that join them.

    Plaquette :math:`(x_0, x_1)` is visited in rows of constant :math:`x_1`, along increasing
    :math:`x_0` in even rows and decreasing in odd rows. The shared link of consecutive plaquettes
    and its sign in each are read off :func:`lftutor.lattice.u1.plaquettes` itself (the
    plaquettes of the unit vectors), so they cannot disagree with the action's convention.

    Returns:
        ``plaquette``: ``(V,)`` flat plaquette indices (``x0 * L1 + x1``) in path order;
        ``link``: ``(V-1,)`` flat link indices (``mu * V + x0 * L1 + x1``) joining
        plaquette ``i`` to ``i + 1``; ``sign``: ``(V-1,)`` the link's sign (+-1) in plaquette
        ``i`` (it enters plaquette ``i + 1`` with the opposite sign).

    Raises:
        ValueError: for a lattice with an extent below 2 (neighbouring plaquettes would coincide).

    Example:
        >>> path = snake_path(4)
        >>> path["plaquette"][:6].tolist()          # (0,0) (1,0) (2,0) (3,0) (3,1) (2,1)
        [0, 4, 8, 12, 13, 9]
    """
    l0, l1 = lattice_shape_of(lattice)
    if min(l0, l1) < 2:
        raise ValueError(f"expected both lattice extents >= 2 for a path of plaquettes, got {(l0, l1)}")
    volume = l0 * l1
    order = [(x0 if r % 2 == 0 else l0 - 1 - x0) * l1 + r for r in range(l1) for x0 in range(l0)]
    # incidence[p, l]: coefficient (+1, -1 or 0) of link l in plaquette p
    basis = torch.eye(2 * volume, dtype=torch.float64).view(2 * volume, 2, l0, l1)
    incidence = plaquettes(basis).flatten(1).T.round()
    links, signs = [], []
    for a, b in zip(order[:-1], order[1:], strict=True):
        # one shared link (two where an extent is 2: then either will do, each lies in a and b only)
        link = int(torch.nonzero((incidence[a] != 0) & (incidence[b] != 0))[0, 0])
        links.append(link)
        signs.append(float(incidence[a, link]))
    return {"plaquette": torch.tensor(order), "link": torch.tensor(links),
            "sign": torch.tensor(signs, dtype=torch.float64)}


class PlaquetteChainLayer(LinkBijection):
    r"""Sets the plaquettes one after another along a path (see the module docstring).

    Args:
        lattice: ``L`` or ``(L0, L1)``, both at least 2.
        hidden: widths of the conditioner's hidden layers (at least one).
        n_bins: bins ``K`` of each circular spline.

    Shapes:
        ``forward(z)``/``reverse(x)``: ``(batch, 2, L0, L1) -> ((batch, 2, L0, L1), (batch,))``.

    Example:
        >>> layer = PlaquetteChainLayer(4, hidden=(8,), n_bins=4)
        >>> z = torch.rand(3, 2, 4, 4) * 6.28
        >>> x, log_det = layer(z)
        >>> torch.allclose(wrap(layer.reverse(x)[0] - z), torch.zeros(3, 2, 4, 4), atol=1e-5)
        True
    """

    def __init__(self, lattice, *, hidden: Sequence[int] = (64, 64), n_bins: int = 16):
        super().__init__()
        self.lattice_shape = lattice_shape_of(lattice)
        self.event_shape = (2, *self.lattice_shape)
        check_positive_int(n_bins, name="n_bins")
        hidden = list(hidden)
        if not hidden:
            raise ValueError("expected at least one hidden layer width, got none")
        for h in hidden:
            check_positive_int(h, name="hidden width")
        path = snake_path(self.lattice_shape)
        self.n_steps = path["link"].numel()
        self.register_buffer("plaquette_index", path["plaquette"][:-1])
        self.register_buffer("link_index", path["link"])
        self.register_buffer("sign", path["sign"].to(torch.get_default_dtype()))
        # conditioner: (cos S, sin S) through a linear map of its own at each position (how much
        # the constraint matters depends on how many plaquettes are left), then a shared MLP
        bound = 1 / math.sqrt(2)  # nn.Linear's default initialization for 2 inputs
        self.context_weight = nn.Parameter(torch.empty(self.n_steps, 2, hidden[0]).uniform_(-bound, bound))
        self.context_bias = nn.Parameter(torch.empty(self.n_steps, hidden[0]).uniform_(-bound, bound))
        layers: list[nn.Module] = []
        for a, b in zip(hidden[:-1], hidden[1:], strict=True):
            layers += [nn.SiLU(), nn.Linear(a, b)]
        layers += [nn.SiLU(), nn.Linear(hidden[-1], 3 * n_bins + 1)]
        nn.init.zeros_(layers[-1].weight)  # a fresh layer is the identity
        nn.init.zeros_(layers[-1].bias)
        self.head = nn.Sequential(*layers)

    def _params(self, s_prev: torch.Tensor, position: torch.Tensor | slice) -> torch.Tensor:
        """Spline parameters from the sums ``s_prev`` ``(batch, *n)`` at path positions."""
        features = torch.stack([torch.cos(s_prev), torch.sin(s_prev)], dim=-1)
        weight, bias = self.context_weight[position], self.context_bias[position]
        return self.head(torch.einsum("...c,...ch->...h", features, weight) + bias)

    def _move_links(self, theta: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        """Move the path links so that plaquette ``i`` changes by ``change[:, i]`` (``i < V-1``).

        Link ``i`` adds ``delta_i`` to plaquette ``i`` and takes it from ``i + 1``, so
        ``delta_i = sum_{j <= i} change_j`` (wrapped: the links are angles).
        """
        delta = wrap(torch.cumsum(change, dim=1))
        shift = theta.new_zeros(theta.shape[0], theta[0].numel())
        shift = shift.index_copy(1, self.link_index, self.sign.to(theta.dtype) * delta)
        return theta + shift.view_as(theta)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent to links, sequential along the path: ``(batch, 2, L0, L1) -> (same, (batch,))``."""
        x = wrap(plaquettes(z).flatten(1).index_select(1, self.plaquette_index))
        s_prev = z.new_zeros(z.shape[0])
        ys, log_det = [], z.new_zeros(z.shape[0])
        for i in range(self.n_steps):
            y, ld = circle_map(x[:, i], self._params(s_prev, i))
            s_prev = s_prev + y
            ys.append(y)
            log_det = log_det + ld
        return self._move_links(z, torch.stack(ys, dim=1) - x), log_det

    def reverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Links to latent, one parallel pass: ``(batch, 2, L0, L1) -> (same, (batch,))``."""
        y = wrap(plaquettes(x).flatten(1).index_select(1, self.plaquette_index))
        s_prev = torch.cumsum(y, dim=1) - y  # S_{i-1}, the sum of the angles set before step i
        x_old, ld = circle_map(y, self._params(s_prev, slice(None)), inverse=True)
        return self._move_links(x, x_old - y), ld.sum(dim=1)


def make_u1_chain_flow(lattice, *, hidden: Sequence[int] = (64, 64), n_bins: int = 16,
                       symmetric: bool = True, dtype: torch.dtype = torch.float32) -> Flow | Z2Symmetric:
    r"""Haar prior plus one :class:`PlaquetteChainLayer`: the 2-D model of unit 10, section 7.

    With ``symmetric`` (the default) the flow is wrapped in
    :class:`lftutor.bijections.symmetry.Z2Symmetric`, the mixture :math:`\tfrac12[q(\theta) +
    q(-\theta)]`: the Wilson action is invariant under charge conjugation
    :math:`\theta\to-\theta` (:math:`Q\to-Q`), and the spline layer is not. Unmirrored, a flow
    trained for 2 minutes at :math:`\beta = 5` put 21 % of its samples at :math:`Q = -1` and 14 % at
    :math:`Q = +1` (exact: 16.9 % each); the mixture costs one parallel reverse pass per sample.

    Example:
        >>> model = make_u1_chain_flow(4, hidden=(8,))
        >>> x, log_q = model.sample(2)
        >>> x.shape, torch.allclose(model.log_prob(-x), log_q, atol=1e-4)
        (torch.Size([2, 2, 4, 4]), True)
    """
    flow = Flow(UniformLinkPrior(lattice, dtype=dtype),
                [PlaquetteChainLayer(lattice, hidden=hidden, n_bins=n_bins)]).to(dtype)
    return Z2Symmetric(flow) if symmetric else flow
