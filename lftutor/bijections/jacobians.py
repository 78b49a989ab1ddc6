r"""Jacobians of flows: the whole model's, each layer's, and per-layer log-dets.

For a flow :math:`\phi = f(z)` on ``V`` sites the Jacobian :math:`J = \partial\phi/\partial z`
is a ``(V, V)`` matrix; for the free field an exact linear flow has :math:`J J^T = \Sigma`.
Computed with ``torch.func.jacrev`` vectorised over the batch with ``vmap``.
"""

from __future__ import annotations

import torch
from torch.func import jacrev, vmap

from lftutor._checks import check_field

__all__ = ["layer_jacobians", "layer_log_dets", "model_jacobian"]


def _jacobian_of(fn, x: torch.Tensor) -> torch.Tensor:
    shape = tuple(x.shape[1:])
    volume = x[0].numel()

    def flat(v):
        return fn(v.reshape(1, *shape))[0].reshape(volume)

    return vmap(jacrev(flat))(x.reshape(x.shape[0], volume))


def model_jacobian(flow, z: torch.Tensor) -> torch.Tensor:
    """:math:`\\partial f(z)/\\partial z` at each ``z``: ``(batch, *L) -> (batch, V, V)``."""
    check_field(z, flow.lattice_shape, name="z")
    return _jacobian_of(flow.forward, z)


def layer_jacobians(flow, z: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's Jacobian at the point it is applied to: a list of ``(batch, V, V)``."""
    check_field(z, flow.lattice_shape, name="z")
    out = []
    x = z
    for layer in flow.layers:
        out.append(_jacobian_of(layer.forward, x))
        x = layer.forward(x)[0]
    return out


def layer_log_dets(flow, z: torch.Tensor) -> torch.Tensor:
    """Per-layer log-dets along the forward pass: ``(batch, *L) -> (batch, n_layers)``."""
    check_field(z, flow.lattice_shape, name="z")
    lds = []
    x = z
    for layer in flow.layers:
        x, ld = layer.forward(x)
        lds.append(ld)
    return torch.stack(lds, dim=1)
