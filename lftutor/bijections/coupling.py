r"""Coupling layers: the 2-D toy layer of unit 1 and the affine lattice coupling of arXiv:2101.08176.

Every layer follows the package convention: ``forward(z) -> (phi, log_det)`` maps latent to
field and ``reverse(phi) -> (z, log_det)`` maps back; ``log_det`` has shape ``(batch,)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lftutor._checks import check_lattice_shape, check_positive_int
from lftutor.bijections.base import Bijection

__all__ = ["AffineCoupling", "SimpleCouplingLayer", "make_checker_mask", "make_conv_net",
           "make_phi4_affine_layers"]


def make_checker_mask(lattice_shape: Sequence[int], parity: int, *, dtype=torch.float32,
                      device=None) -> torch.Tensor:
    r"""Checkerboard mask :math:`m(x) = [(\sum_\mu x_\mu + \text{parity}) \bmod 2 = 0]`.

    With ``parity=0`` the site ``(0, 0, ...)`` is 1; ``parity=1`` gives the complement.

    Args:
        lattice_shape: e.g. ``(8, 8)``; every extent must be even for the checkerboard to be
            consistent across the periodic boundary.
        parity: 0 or 1.

    Returns:
        Tensor of 0s and 1s, shape ``lattice_shape``.

    Example:
        >>> make_checker_mask((2, 2), 0)
        tensor([[1., 0.],
                [0., 1.]])
    """
    shape = check_lattice_shape(lattice_shape)
    if parity not in (0, 1):
        raise ValueError(f"expected parity 0 or 1, got {parity!r}")
    if any(n % 2 for n in shape):
        raise ValueError(f"expected even lattice extents for a checkerboard, got {shape}")
    coords = torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij")
    total = sum(coords) + parity
    return (total % 2 == 0).to(dtype=dtype, device=device)


class SimpleCouplingLayer(Bijection):
    r"""Coupling layer on points of the plane, ``x = (x_1, x_2)``, shape ``(batch, 2)``.

    .. math::
        g(x_1, x_2) = \big(e^{s(x_2)} x_1,\; x_2\big), \qquad
        \log|\det \partial g / \partial x| = s(x_2),

    where :math:`s` is a small network ending in ``tanh`` (so the scale stays in
    :math:`[e^{-1}, e]`). The inverse is :math:`(e^{-s(y_2)} y_1, y_2)`.

    Args:
        hidden: width of the two hidden layers of :math:`s`.

    Example:
        >>> layer = SimpleCouplingLayer()
        >>> x = torch.randn(5, 2)
        >>> y, log_det = layer(x)
        >>> torch.allclose(layer.reverse(y)[0], x, atol=1e-6)
        True
    """

    input_names = ("x", "y")

    def __init__(self, hidden: int = 8):
        super().__init__()
        check_positive_int(hidden, name="hidden")
        self.event_shape = (2,)
        self.s = nn.Sequential(
            nn.Linear(1, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 1), nn.Tanh(),
        )

    def scale(self, x2: torch.Tensor) -> torch.Tensor:
        """The log-scale :math:`s(x_2)`, shape ``(batch,)`` from ``(batch,)``."""
        return self.s(x2.unsqueeze(-1)).squeeze(-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, 2) -> ((batch, 2), (batch,))``: apply g and return its log-Jacobian."""
        x1, x2 = x[:, 0], x[:, 1]
        s = self.scale(x2)
        return torch.stack((torch.exp(s) * x1, x2), dim=-1), s

    def reverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, 2) -> ((batch, 2), (batch,))``: apply g^{-1} and its log-Jacobian."""
        y1, y2 = y[:, 0], y[:, 1]
        s = self.scale(y2)
        return torch.stack((torch.exp(-s) * y1, y2), dim=-1), -s


def make_conv_net(*, hidden_sizes: Sequence[int], kernel_size: int, in_channels: int = 1,
                  out_channels: int = 2, use_final_tanh: bool = True,
                  lattice_dim: int = 2) -> nn.Sequential:
    r"""A translation-equivariant conditioner: convolutions with periodic (circular) padding.

    ``Conv -> LeakyReLU -> ... -> Conv [-> Tanh]``. Circular padding makes the network commute
    with lattice translations, the symmetry of the periodic lattice; an odd kernel keeps the
    output centred on the input site.

    Args:
        hidden_sizes: channels of the hidden layers, e.g. ``[8, 8]``.
        kernel_size: odd kernel width, e.g. 3.
        in_channels, out_channels: 1 and 2 for an affine coupling (``s`` and ``t``).
        use_final_tanh: bound the outputs to ``(-1, 1)`` (keeps early training stable).
        lattice_dim: 1, 2 or 3: which ``ConvNd`` to use.

    Shapes:
        ``(batch, in_channels, *lattice_shape) -> (batch, out_channels, *lattice_shape)``.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size <= 0 \
            or kernel_size % 2 == 0:
        raise ValueError(f"expected an odd positive kernel_size (so the output stays centred on "
                         f"each site), got {kernel_size!r}")
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}.get(lattice_dim)
    if conv is None:
        raise ValueError(f"expected lattice_dim 1, 2 or 3, got {lattice_dim!r}")
    hidden_sizes = list(hidden_sizes)
    for h in hidden_sizes:
        check_positive_int(h, name="each hidden size")
    sizes = [in_channels, *hidden_sizes, out_channels]
    net: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        net.append(conv(sizes[i], sizes[i + 1], kernel_size, padding=kernel_size // 2,
                        padding_mode="circular"))
        if i < len(sizes) - 2:
            net.append(nn.LeakyReLU())
        elif use_final_tanh:
            net.append(nn.Tanh())
    return nn.Sequential(*net)


class AffineCoupling(Bijection):
    r"""Affine coupling layer on lattice fields (Real NVP, arXiv:1605.08803; arXiv:2101.08176).

    The mask :math:`m(x)\in\{0,1\}` marks the *frozen* sites (``1``) that condition the update
    of the others (``0``). With :math:`(s, t) = \mathrm{net}(m \odot z)`:

    .. math::
        \phi = m\odot z + (1-m)\odot\big(z\, e^{s} + t\big), \qquad
        \log\Big|\det\frac{\partial\phi}{\partial z}\Big| = \sum_x (1-m(x))\, s(x),

    and the reverse is :math:`z = m\odot\phi + (1-m)\odot(\phi - t)\,e^{-s}` with log-det
    :math:`-\sum_x (1-m)\,s`, where :math:`(s,t)=\mathrm{net}(m\odot\phi)`: the frozen sites are
    unchanged, so the network sees the same input both ways.

    With ``shift_only=True`` the layer is additive (NICE, arXiv:1410.8516): :math:`s = 0`, the
    network returns only :math:`t` (one channel) and the log-det is 0.

    Args:
        net: maps ``(batch, 1, *lattice_shape)`` to ``(batch, 2, *lattice_shape)``
            (``(batch, 1, *lattice_shape)`` when ``shift_only``).
        mask: 0/1 tensor of shape ``lattice_shape``.
        shift_only: additive (volume-preserving) coupling.

    Shapes:
        ``forward``/``reverse``: ``(batch, *lattice_shape) -> ((batch, *lattice_shape), (batch,))``.

    Example:
        >>> mask = make_checker_mask((4, 4), 0)
        >>> layer = AffineCoupling(make_conv_net(hidden_sizes=[4], kernel_size=3), mask)
        >>> z = torch.randn(3, 4, 4)
        >>> phi, log_det = layer(z)
        >>> phi.shape, log_det.shape
        (torch.Size([3, 4, 4]), torch.Size([3]))
        >>> torch.equal(phi[:, mask == 1], z[:, mask == 1])  # the frozen sites are unchanged
        True
        >>> torch.allclose(layer.reverse(phi)[0], z, atol=1e-5)
        True
    """

    input_names = ("z", "phi")
    shape_hint = "this layer's mask has shape {event_shape}"

    def __init__(self, net: nn.Module, mask: torch.Tensor, *, shift_only: bool = False):
        super().__init__()
        self.shift_only = bool(shift_only)
        mask = torch.as_tensor(mask)
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("expected a mask of 0s and 1s (1 = frozen site)")
        if bool(mask.all()) or not bool(mask.any()):
            raise ValueError("expected a mask with both frozen (1) and updated (0) sites")
        self.net = net
        self.register_buffer("mask", mask.to(torch.get_default_dtype()))
        self.lattice_shape = self.event_shape = tuple(mask.shape)

    def _s_t(self, frozen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(frozen.unsqueeze(1))
        channels = 1 if self.shift_only else 2
        if out.dim() < 2 or out.shape[1] != channels or tuple(out.shape[2:]) != self.lattice_shape:
            raise ValueError(f"expected the conditioner to return (batch, {channels}, "
                             f"{', '.join(map(str, self.lattice_shape))}), got {tuple(out.shape)}")
        if self.shift_only:
            return torch.zeros_like(out[:, 0]), out[:, 0]
        return out[:, 0], out[:, 1]

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent to field: ``(batch, *L) -> ((batch, *L), (batch,))``."""
        m = self.mask.to(z.dtype)
        s, t = self._s_t(m * z)
        phi = m * z + (1 - m) * (z * torch.exp(s) + t)
        return phi, ((1 - m) * s).flatten(1).sum(dim=1)

    def reverse(self, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Field to latent: ``(batch, *L) -> ((batch, *L), (batch,))``."""
        m = self.mask.to(phi.dtype)
        s, t = self._s_t(m * phi)
        z = m * phi + (1 - m) * (phi - t) * torch.exp(-s)
        return z, -((1 - m) * s).flatten(1).sum(dim=1)


def make_phi4_affine_layers(*, n_layers: int, lattice_shape: Sequence[int],
                            hidden_sizes: Sequence[int], kernel_size: int,
                            use_final_tanh: bool = True) -> nn.ModuleList:
    """A stack of ``n_layers`` affine couplings with alternating checkerboard parity.

    Alternating the parity lets every site be updated (by every second layer), conditioned on
    its neighbours. Defaults of the tutorial (arXiv:2101.08176): 16 layers, hidden ``[8, 8]``,
    kernel 3.

    Returns:
        ``nn.ModuleList`` of :class:`AffineCoupling`; wrap it with :class:`lftutor.Flow`.
    """
    check_positive_int(n_layers, name="n_layers")
    shape = check_lattice_shape(lattice_shape)
    layers = []
    for i in range(n_layers):
        net = make_conv_net(hidden_sizes=hidden_sizes, kernel_size=kernel_size, in_channels=1,
                            out_channels=2, use_final_tanh=use_final_tanh, lattice_dim=len(shape))
        layers.append(AffineCoupling(net, make_checker_mask(shape, i % 2)))
    return nn.ModuleList(layers)
