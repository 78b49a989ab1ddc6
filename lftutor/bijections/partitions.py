"""Partitionings of the lattice into two halves, for coupling layers.

A partition is a 0/1 mask of shape ``lattice_shape`` with as many ones as zeros; ``1`` marks the
sites that are frozen (they condition the update of the others) in the first layer, and layers
alternate ``mask`` and ``1 - mask``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lftutor._checks import check_lattice_shape
from lftutor.bijections.coupling import make_checker_mask

__all__ = ["PARTITIONS", "checkerboard_partition", "get_partition", "lexicographic_partition",
           "random_partition"]


def lexicographic_partition(lattice_shape: Sequence[int]) -> torch.Tensor:
    """First half of the sites in row-major (lexicographic) order is 1, the second half 0.

    Example:
        >>> lexicographic_partition((2, 2))
        tensor([[1., 1.],
                [0., 0.]])
    """
    shape = check_lattice_shape(lattice_shape)
    volume = math.prod(shape)
    if volume % 2:
        raise ValueError(f"expected an even number of sites to split in halves, got {shape}")
    flat = torch.zeros(volume)
    flat[: volume // 2] = 1
    return flat.reshape(shape)


def checkerboard_partition(lattice_shape: Sequence[int]) -> torch.Tensor:
    """Sites with even coordinate sum are 1 (see :func:`lftutor.bijections.coupling.make_checker_mask`)."""
    return make_checker_mask(lattice_shape, 0)


def random_partition(lattice_shape: Sequence[int], *, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """A uniformly random half of the sites is 1."""
    shape = check_lattice_shape(lattice_shape)
    volume = math.prod(shape)
    if volume % 2:
        raise ValueError(f"expected an even number of sites to split in halves, got {shape}")
    flat = torch.zeros(volume)
    flat[torch.randperm(volume, generator=generator)[: volume // 2]] = 1
    return flat.reshape(shape)


PARTITIONS = {
    "lexicographic": lexicographic_partition,
    "checkerboard": checkerboard_partition,
    "random": random_partition,
}


def get_partition(name: str, lattice_shape: Sequence[int]) -> torch.Tensor:
    """The partition called ``name`` (``lexicographic``, ``checkerboard`` or ``random``)."""
    try:
        return PARTITIONS[name](lattice_shape)
    except KeyError:
        raise ValueError(f"expected a partition among {sorted(PARTITIONS)}, got {name!r}") from None
