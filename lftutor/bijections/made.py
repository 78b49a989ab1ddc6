r"""The masked network of autoregressive flows and their base class.

:class:`MADE` (arXiv:1502.03509) gives, in one pass, the parameters of every coordinate from the
coordinates before it in a fixed order; :class:`AutoregressiveBijection` turns an elementwise
monotone map with such parameters into a bijection in both modes (``"maf"`` and ``"iaf"``, see
:mod:`lftutor.bijections.autoregressive`). The layers built on them live in
:mod:`lftutor.bijections.autoregressive` and :mod:`lftutor.bijections.polynomial`; both import
from here, so neither needs the other (the factory of ``autoregressive`` builds the polynomial
layer too).

Shapes: ``MADE``: ``(batch, D)[, (batch, C)] -> (batch, D, P)``; an autoregressive bijection:
``(batch, D)[, (batch, C)] -> ((batch, D), (batch,))`` both ways.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lftutor._checks import check_positive_int
from lftutor.bijections.base import Bijection

__all__ = ["ACTIVATIONS", "MADE", "MODES", "AutoregressiveBijection", "MaskedLinear"]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU, "elu": nn.ELU}
MODES = ("maf", "iaf")


class MaskedLinear(nn.Linear):
    r"""A linear layer whose weight is multiplied by a fixed 0/1 mask: :math:`y = (W\odot M)x + b`.

    Args:
        in_features, out_features: as for ``nn.Linear``.
        mask: 0/1 tensor of shape ``(out_features, in_features)``; a zero cuts that connection.

    Shapes:
        ``(batch, in_features) -> (batch, out_features)``.

    Example:
        >>> layer = MaskedLinear(2, 2, torch.tensor([[0., 0.], [1., 0.]]))
        >>> layer(torch.randn(4, 2)).shape
        torch.Size([4, 2])
    """

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        mask = torch.as_tensor(mask, dtype=self.weight.dtype)
        if tuple(mask.shape) != (out_features, in_features):
            raise ValueError(f"expected a mask of shape ({out_features}, {in_features}), "
                             f"got {tuple(mask.shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("expected a mask of 0s and 1s, got other values")
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def _check_order(order, dim: int) -> list[int]:
    if order is None:
        return list(range(dim))
    order = [int(i) for i in order]
    if sorted(order) != list(range(dim)):
        raise ValueError(f"expected order to be a permutation of range({dim}), got {order}")
    return order


class MADE(nn.Module):
    r"""Masked autoencoder for distribution estimation (Germain et al., arXiv:1502.03509).

    A multilayer perceptron whose weights are masked so that the parameters of dimension
    :math:`k` depend only on the dimensions before it in ``order``. Each unit gets a degree:
    input :math:`i` the position :math:`m(i)\in\{1,\dots,D\}` of :math:`i` in ``order``, context
    inputs degree 0, hidden units degrees cycling through :math:`\{m_{\min},\dots,D-1\}`
    (:math:`m_{\min}` is 0 with a context, so that even the first dimension sees it, else 1),
    output unit of dimension :math:`k` degree :math:`m(k)`. The masks are

    .. math::
        M^{\text{hidden}}_{ji} = [\,m(j) \ge m(i)\,], \qquad M^{\text{out}}_{kj} = [\,m(k) > m(j)\,],

    so every path from input :math:`i` to output :math:`k` has :math:`m(i) < m(k)`: the
    Jacobian :math:`\partial\,\text{out}_k/\partial x_i` vanishes unless :math:`i` comes before
    :math:`k`, while the context reaches every output. The last layer starts at zero, so the
    flow layers built on it start as the identity map (or their own neutral point).

    Args:
        dim: ``D``, the number of autoregressive dimensions.
        n_params: ``P``, parameters per dimension.
        hidden_sizes: widths of the hidden layers (``()`` for a masked linear map).
        order: a permutation of ``range(D)``: ``order[0]`` is the first variable (default
            ``0, 1, ..., D-1``).
        context_dim: ``C``, length of an optional context vector (0: none).
        activation: ``"relu"``, ``"tanh"``, ``"silu"`` or ``"elu"``.

    Shapes:
        ``forward(x[, context])``: ``(batch, D)[, (batch, C)] -> (batch, D, P)``.

    Example:
        >>> made = MADE(3, 2, [16], order=[2, 0, 1])
        >>> made(torch.randn(5, 3)).shape
        torch.Size([5, 3, 2])
    """

    def __init__(self, dim: int, n_params: int, hidden_sizes: Sequence[int] = (32, 32), *,
                 order: Sequence[int] | None = None, context_dim: int = 0,
                 activation: str = "relu"):
        super().__init__()
        check_positive_int(dim, name="dim")
        check_positive_int(n_params, name="n_params")
        if isinstance(context_dim, bool) or not isinstance(context_dim, int) or context_dim < 0:
            raise ValueError(f"expected context_dim to be an integer >= 0, got {context_dim!r}")
        hidden_sizes = list(hidden_sizes)
        for h in hidden_sizes:
            check_positive_int(h, name="each hidden size")
        if activation not in ACTIVATIONS:
            raise ValueError(f"expected activation in {sorted(ACTIVATIONS)}, got {activation!r}")
        self.dim, self.n_params, self.context_dim = dim, n_params, context_dim
        self.order = _check_order(order, dim)
        degree = torch.empty(dim, dtype=torch.long)
        degree[self.order] = torch.arange(1, dim + 1)
        self.register_buffer("degree", degree)  # position in the order, 1..D
        in_degree = torch.cat([torch.zeros(context_dim, dtype=torch.long), degree])
        low = 0 if context_dim else 1
        high = max(dim - 1, low)
        layers: list[nn.Module] = []
        previous = in_degree
        for h in hidden_sizes:
            hidden_degree = low + torch.arange(h) % (high - low + 1)
            mask = (hidden_degree[:, None] >= previous[None, :]).float()
            layers += [MaskedLinear(len(previous), h, mask), ACTIVATIONS[activation]()]
            previous = hidden_degree
        out_degree = degree.repeat(n_params)  # output unit p * D + k belongs to dimension k
        mask = (out_degree[:, None] > previous[None, :]).float()
        last = MaskedLinear(len(previous), n_params * dim, mask)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Parameters of every dimension: ``(batch, D)[, (batch, C)] -> (batch, D, P)``."""
        if self.context_dim:
            x = torch.cat([context, x], dim=1)
        out = self.net(x)
        return out.view(x.shape[0], self.n_params, self.dim).transpose(1, 2)


class AutoregressiveBijection(Bijection):
    r"""Base class: an elementwise monotone map whose parameters come from a :class:`MADE`.

    Subclasses define :meth:`elementwise` (the map latent -> data of each coordinate given its
    parameters, or its inverse) and the number of parameters per coordinate; this class
    supplies the one-pass and the sequential directions (module docstring) for both modes.

    Args:
        dim: ``D``.
        n_params: parameters per coordinate (set by the subclass).
        hidden_sizes, order, context_dim, activation: passed to :class:`MADE`.
        mode: ``"maf"`` (cheap density, sequential sampling) or ``"iaf"`` (cheap sampling,
            sequential density of external data).

    Shapes:
        ``forward(z[, context])`` and ``reverse(x[, context])``:
        ``(batch, D)[, (batch, C)] -> ((batch, D), (batch,))``.
    """

    def __init__(self, dim: int, n_params: int, hidden_sizes: Sequence[int] = (32, 32), *,
                 mode: str = "maf", order: Sequence[int] | None = None, context_dim: int = 0,
                 activation: str = "relu"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"expected mode 'maf' or 'iaf', got {mode!r}")
        self.mode, self.dim, self.context_dim = mode, dim, context_dim
        self.event_shape = (dim,)
        self.made = MADE(dim, n_params, hidden_sizes, order=order, context_dim=context_dim,
                         activation=activation)

    def elementwise(self, u: torch.Tensor, params: torch.Tensor, inverse: bool
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, D), (batch, D, P) -> (v (batch, D), log|dv/du| (batch, D))``; latent -> data
        unless ``inverse``."""
        raise NotImplementedError

    def _sequential(self, given: torch.Tensor, context, inverse: bool):
        # Iterate the solve D times from zero; pass t fixes the t-th coordinate of the order.
        out = torch.zeros_like(given)
        for _ in range(self.dim):
            out, log_det = self.elementwise(given, self.made(out, context), inverse)
        return out, log_det

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent to data: ``(batch, D)[, (batch, C)] -> (x (batch, D), log|det dx/dz| (batch,))``."""
        if self.mode == "iaf":
            x, log_det = self.elementwise(z, self.made(z, context), inverse=False)
        else:
            x, log_det = self._sequential(z, context, inverse=False)
        return x, log_det.sum(dim=1)

    def reverse(self, x: torch.Tensor, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Data to latent: ``(batch, D)[, (batch, C)] -> (z (batch, D), log|det dz/dx| (batch,))``."""
        if self.mode == "maf":
            z, log_det = self.elementwise(x, self.made(x, context), inverse=True)
        else:
            z, log_det = self._sequential(x, context, inverse=True)
        return z, log_det.sum(dim=1)
