r"""Conditional bijections: layers whose parameters are produced from a *context* vector.

For every fixed context :math:`c` each layer is an ordinary bijection of
:math:`\mathbb R^D` with the package convention, ``forward(z, c) -> (x, log_det)`` with
:math:`\log|\det\partial x/\partial z|` and ``reverse(x, c) -> (z, log_det)`` with
:math:`\log|\det\partial z/\partial x|`. In a VAE the context is the encoder's summary of the
image :math:`x`, so the posterior :math:`q(z\mid x)` is *amortized*: one network gives every
image its own flow (Rezende & Mohamed, arXiv:1505.05770, sec. 4 and 6.2). For a family of
targets the context is the parameter :math:`\theta` of the family.

* :class:`ConditionalPlanar`: :math:`x = z + \hat u\,\tanh(w^\top z + b)`, with
  :math:`(u, w, b)` a linear function of the context (arXiv:1505.05770, eq. 10-12, and the
  invertibility condition of its appendix A.1);
* :class:`ConditionalIAF`: an affine autoregressive layer,
  :math:`x_d = m_d(z_{<d}, c) + e^{s_d(z_{<d}, c)} z_d`, whose shift and log-scale come from a
  masked network (MADE, arXiv:1502.03509) that also sees the context (the inverse
  autoregressive flow of Kingma et al., arXiv:1606.04934). Sampling is one parallel pass;
  ``reverse`` needs :math:`D` passes.

These are this unit's own layers; unit 7's layers without context live in
:mod:`lftutor.bijections`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _check(z: torch.Tensor, context: torch.Tensor, dim: int, context_dim: int, name: str = "z"):
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != dim:
        got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"expected {name} of shape (batch, {dim}), got {got}")
    if not isinstance(context, torch.Tensor) or context.dim() != 2 or context.shape[1] != context_dim:
        got = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
        raise ValueError(f"expected context of shape (batch, {context_dim}), got {got}")
    if context.shape[0] != z.shape[0]:
        raise ValueError(f"expected one context per sample: {name} has batch {z.shape[0]}, "
                         f"context has {context.shape[0]}")


def planar_transform(z: torch.Tensor, u: torch.Tensor, w: torch.Tensor, b: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The planar map with per-sample parameters and its log-determinant.

    .. math::
        x = z + \hat u\, h(w^\top z + b),\quad h=\tanh,\qquad
        \log\Big|\det\frac{\partial x}{\partial z}\Big| = \log\big|1 + h'(w^\top z + b)\,
        \hat u^\top w\big|,

    with :math:`\hat u = u + \big(m(w^\top u) - w^\top u\big)\,w/\lVert w\rVert^2`,
    :math:`m(a) = -1 + \log(1 + e^a)`, so that :math:`\hat u^\top w > -1` and the map is
    invertible (arXiv:1505.05770, appendix A.1).

    Args:
        z: ``(batch, D)``.
        u, w: ``(batch, D)`` raw parameters (``u`` is corrected to :math:`\hat u` here).
        b: ``(batch,)``.

    Returns:
        ``x`` of shape ``(batch, D)`` and ``log_det`` of shape ``(batch,)``.
    """
    wu = (w * u).sum(-1, keepdim=True)
    u_hat = u + (F.softplus(wu) - 1.0 - wu) * w / (w * w).sum(-1, keepdim=True).clamp_min(1e-12)
    a = (w * z).sum(-1) + b
    t = torch.tanh(a)
    x = z + u_hat * t.unsqueeze(-1)
    psi_u = (1.0 - t * t) * (w * u_hat).sum(-1)  # h'(a) w^T u_hat > -1 by construction
    return x, torch.log1p(psi_u)


class ConditionalPlanar(nn.Module):
    r"""Planar layer whose :math:`(u, w, b)` are an affine function of the context.

    Args:
        dim: :math:`D`, the dimension of ``z``.
        context_dim: length of the context vector.
        hidden: width of one hidden layer between context and parameters (0: linear map, as
            in a VAE whose encoder already produced the features).
        odd: fix :math:`b = 0`, so that the layer is odd in ``z``, :math:`f(-z) = -f(z)` (see
            :class:`ConditionalIAF`).

    Shapes:
        ``forward(z, context)``: ``(batch, D), (batch, C) -> x (batch, D), log_det (batch,)``;
        ``reverse(x, context)``: the same shapes, by bisection along :math:`w` (no closed form).

    Example:
        >>> layer = ConditionalPlanar(2, 3)
        >>> x, log_det = layer(torch.randn(5, 2), torch.randn(5, 3))
        >>> x.shape, log_det.shape
        (torch.Size([5, 2]), torch.Size([5]))
    """

    def __init__(self, dim: int, context_dim: int, *, hidden: int = 0, odd: bool = False):
        super().__init__()
        self.dim, self.context_dim, self.odd = int(dim), int(context_dim), bool(odd)
        out = 2 * self.dim + 1
        if hidden:
            self.net = nn.Sequential(nn.Linear(self.context_dim, hidden), nn.Tanh(), nn.Linear(hidden, out))
        else:
            self.net = nn.Linear(self.context_dim, out)
        last = self.net[-1] if hidden else self.net
        with torch.no_grad():  # start near a small random planar map, the same for every context
            last.weight.mul_(0.1)
            last.bias.normal_(0.0, 1.0 / math.sqrt(self.dim))

    def parameters_for(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(u, w, b)`` for each context: shapes ``(batch, D), (batch, D), (batch,)``."""
        p = self.net(context)
        b = torch.zeros_like(p[:, -1]) if self.odd else p[:, -1]
        return p[:, :self.dim], p[:, self.dim:2 * self.dim], b

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check(z, context, self.dim, self.context_dim)
        return planar_transform(z, *self.parameters_for(context))

    def reverse(self, x: torch.Tensor, context: torch.Tensor, *, iterations: int = 100
                ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Invert by solving for :math:`\alpha = w^\top z` along the line (the map moves ``z``
        only along :math:`\hat u`): :math:`w^\top x - b' = \alpha + w^\top\hat u\tanh(\alpha + b)`
        is increasing in :math:`\alpha`, so bisection converges."""
        _check(x, context, self.dim, self.context_dim, name="x")
        u, w, b = self.parameters_for(context)
        wu = (w * u).sum(-1, keepdim=True)
        u_hat = u + (F.softplus(wu) - 1.0 - wu) * w / (w * w).sum(-1, keepdim=True).clamp_min(1e-12)
        wx = (w * x).sum(-1)
        wuh = (w * u_hat).sum(-1)
        lo = wx - wuh.abs() - 1.0
        hi = wx + wuh.abs() + 1.0
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            f = mid + wuh * torch.tanh(mid + b) - wx
            lo = torch.where(f < 0, mid, lo)
            hi = torch.where(f < 0, hi, mid)
        alpha = 0.5 * (lo + hi)
        z = x - u_hat * torch.tanh(alpha + b).unsqueeze(-1)
        _, log_det = planar_transform(z, u, w, b)
        return z, -log_det


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask ``(out, in)``."""

    def __init__(self, mask: torch.Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)  # rebuilt, not saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class ConditionalIAF(nn.Module):
    r"""Affine autoregressive layer with a context (IAF, arXiv:1606.04934; MADE, arXiv:1502.03509).

    .. math::
        x_{\pi(d)} = m_d + e^{s_d}\, z_{\pi(d)},\qquad
        (m_d, s_d) = \mathrm{MADE}\big(z_{\pi(1)},\dots,z_{\pi(d-1)};\ c\big),\qquad
        \log\Big|\det\frac{\partial x}{\partial z}\Big| = \sum_d s_d,

    where :math:`\pi` is the layer's variable order (``reverse_order`` flips it, to alternate
    in a stack). The Jacobian is triangular in that order. Hidden units of degree 0 see only
    the context, so the first variable's shift and scale depend on the context too. The
    log-scale is soft-clipped to :math:`\pm` ``scale_limit`` and the output layer starts at
    zero, so the layer starts as the identity.

    Args:
        dim: :math:`D`.
        context_dim: length of the context vector (0: no context, an ordinary IAF layer).
        hidden: width of the two masked hidden layers.
        reverse_order: use the order :math:`D, \dots, 1`.
        scale_limit: bound on :math:`|s_d|`.
        odd: make the layer odd in ``z`` for every context, :math:`f(-z; c) = -f(z; c)`, by
            taking the odd part of the shift and the even part of the log-scale,
            :math:`m(z) \to \tfrac12[m(z) - m(-z)]`, :math:`s(z) \to \tfrac12[s(z) + s(-z)]`
            (both stay autoregressive). A stack of odd layers on a symmetric base gives
            :math:`q(-x\mid c) = q(x\mid c)`: it cannot drop one of two mirror-image modes.

    Shapes:
        ``forward(z, context)``: ``(batch, D), (batch, C) -> x (batch, D), log_det (batch,)``;
        ``reverse(x, context)``: the same shapes (``D`` sequential passes).
    """

    def __init__(self, dim: int, context_dim: int, *, hidden: int = 64, reverse_order: bool = False,
                 scale_limit: float = 3.0, odd: bool = False):
        super().__init__()
        self.dim, self.context_dim, self.scale_limit = int(dim), int(context_dim), float(scale_limit)
        self.odd = bool(odd)
        D = self.dim
        order = torch.arange(D - 1, -1, -1) if reverse_order else torch.arange(D)
        degree_in = torch.empty(D, dtype=torch.long)
        degree_in[order] = torch.arange(1, D + 1)  # variable order[k] comes at position k + 1
        self.register_buffer("order", order, persistent=False)
        degree_h = torch.arange(hidden) % D  # 0 .. D-1; degree 0: context only
        m1 = (degree_h[:, None] >= degree_in[None, :]).float()
        m2 = (degree_h[:, None] >= degree_h[None, :]).float()
        m3 = (degree_in[:, None] > degree_h[None, :]).float()
        self.l1 = MaskedLinear(m1)
        self.l2 = MaskedLinear(m2)
        self.out_shift = MaskedLinear(m3)
        self.out_scale = MaskedLinear(m3)
        self.context_in = nn.Linear(self.context_dim, hidden) if self.context_dim else None
        for lin in (self.out_shift, self.out_scale):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def shift_and_log_scale(self, z: torch.Tensor, context: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(m, s)``, each ``(batch, D)``; entry ``d`` depends on the variables before ``d``."""
        if self.odd:
            m_plus, s_plus = self._made(z, context)
            m_minus, s_minus = self._made(-z, context)
            return 0.5 * (m_plus - m_minus), 0.5 * (s_plus + s_minus)
        return self._made(z, context)

    def _made(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.l1(z)
        if self.context_in is not None:
            h = h + self.context_in(context)
        h = F.elu(h)
        h = F.elu(self.l2(h))
        s = self.out_scale(h)
        s = self.scale_limit * torch.tanh(s / self.scale_limit)
        return self.out_shift(h), s

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check(z, context, self.dim, self.context_dim)
        m, s = self.shift_and_log_scale(z, context)
        return m + torch.exp(s) * z, s.sum(-1)

    def reverse(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check(x, context, self.dim, self.context_dim, name="x")
        z = torch.zeros_like(x)
        for k in range(self.dim):  # fill the variables in the layer's order
            m, s = self.shift_and_log_scale(z, context)
            d = self.order[k]
            z = z.clone()
            z[:, d] = (x[:, d] - m[:, d]) * torch.exp(-s[:, d])
        m, s = self.shift_and_log_scale(z, context)
        return z, -s.sum(-1)


class ConditionalFlow(nn.Module):
    r"""A standard normal base and a stack of conditional layers: :math:`q(x\mid c)`.

    .. math::
        x = f_K(\cdots f_1(z; c)\cdots; c),\quad z\sim\mathcal N(0, I_D),\qquad
        \log q(x\mid c) = \log\mathcal N(z; 0, I) - \sum_k \log|\det\partial f_k/\partial z_{k-1}|.

    Shapes:
        ``sample(context)``: ``(batch, C) -> x (batch, D), log_q (batch,)`` (one sample per row);
        ``forward(z, context)`` / ``reverse(x, context)``: ``(batch, D), (batch, C)``;
        ``log_prob(x, context)``: ``-> (batch,)``.
    """

    def __init__(self, dim: int, layers):
        super().__init__()
        self.dim = int(dim)
        self.layers = nn.ModuleList(layers)

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for layer in self.layers:
            z, ld = layer(z, context)
            log_det = log_det + ld
        return z, log_det

    def reverse(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in reversed(self.layers):
            x, ld = layer.reverse(x, context)
            log_det = log_det + ld
        return x, log_det

    def sample(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(context.shape[0], self.dim, dtype=context.dtype, device=context.device)
        x, log_det = self.forward(z, context)
        return x, standard_normal_log_prob(z) - log_det

    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        z, log_det = self.reverse(x, context)
        return standard_normal_log_prob(z) + log_det


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\mathcal N(z; 0, I_D) = -\tfrac12\lVert z\rVert^2 - \tfrac D2\log 2\pi`.

    ``(..., D) -> (...)``.
    """
    return -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
