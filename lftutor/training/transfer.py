r"""Weights trained on one lattice size, loaded into the same flow built for another.

A convolutional coupling flow has no parameter that depends on the lattice size: its kernels
act on neighbourhoods, the same on every lattice (translation equivariance). Only buffers that
describe the geometry (masks and site indices, the prior's per-site tensors) have the lattice's
shape, and those are built for the new lattice. A zero-mode spline (the ``fast`` recipes' first
layer) acts on :math:`\sqrt V\,\bar z`, which is :math:`N(0, 1)` under the prior at every
volume, so it carries over as the same map of that variable. So a flow trained at ``L = 8`` is a starting
point at ``L = 16`` or ``32``, where training from scratch is slow (arXiv:2207.00283 uses the
same transfer for continuous flows).

Rule: every parameter must exist in both flows with the same shape (else the architectures
differ and nothing is loaded); buffers of the same shape are copied, buffers of another shape
keep the new flow's values.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["load_transferred"]


def load_transferred(flow: nn.Module, weights: dict | str | Path) -> dict[str, list[str]]:
    """Load ``weights`` (a state dict or a file saved by ``train --save``) into ``flow``.

    Returns:
        ``{"copied": [...], "rebuilt": [...]}``: the names of the tensors taken from the weights
        and of the geometry buffers kept from ``flow``.

    Raises:
        ValueError: the weights belong to another architecture (a parameter is missing, extra,
            or of another shape): says which one and both shapes.
    """
    if not isinstance(weights, dict):
        try:
            weights = torch.load(weights, map_location="cpu")
        except (OSError, RuntimeError) as err:
            raise ValueError(f"could not read weights from {weights}: {err}") from None
    params = dict(flow.named_parameters())
    buffers = dict(flow.named_buffers())
    missing = sorted(set(params) - set(weights))
    extra = sorted(set(weights) - set(params) - set(buffers))
    if missing or extra:
        raise ValueError(
            "expected weights of the same architecture (recipe) as the flow: "
            + (f"the weights lack {missing[:3]}{' ...' if len(missing) > 3 else ''}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"the flow has no {extra[:3]}{' ...' if len(extra) > 3 else ''}" if extra else ""))
    for name, value in params.items():
        if weights[name].shape != value.shape:
            raise ValueError(
                f"cannot transfer parameter {name!r}: shape {tuple(weights[name].shape)} in the "
                f"weights, {tuple(value.shape)} in the flow (a layer whose size depends on the "
                f"lattice, e.g. a dense coupling, does not transfer; use a convolutional recipe)")
    state = flow.state_dict()
    copied, rebuilt = [], []
    for name, value in weights.items():
        if state[name].shape == value.shape:
            state[name] = value
            copied.append(name)
        else:
            rebuilt.append(name)
    flow.load_state_dict(state)
    return {"copied": copied, "rebuilt": rebuilt}
