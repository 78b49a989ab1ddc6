"""Cheap checks of what enters a public function, with errors that say what was expected."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_field(phi, lattice_shape: Sequence[int] | None = None, *, name: str = "phi",
                min_lattice_dims: int = 1, module: torch.nn.Module | None = None) -> torch.Tensor:
    """Check that ``phi`` is a floating tensor of shape ``(batch, *lattice_shape)``.

    With ``module``, also check that ``phi`` has the dtype and device of the module's parameters:
    otherwise torch stops deep inside a convolution with "Input type (double) and bias type
    (float) should be the same", which does not say which tensor to convert.

    Raises:
        ValueError: naming the expected and the received shape or dtype.
    """
    if not isinstance(phi, torch.Tensor):
        raise ValueError(f"expected {name} to be a torch.Tensor of shape (batch, *lattice_shape), "
                         f"got {type(phi).__name__}")
    if not phi.is_floating_point():
        raise ValueError(f"expected {name} to have a floating dtype (float32 or float64), "
                         f"got {phi.dtype}")
    if lattice_shape is not None:
        expected = tuple(int(n) for n in lattice_shape)
        if tuple(phi.shape[1:]) != expected or phi.dim() != len(expected) + 1:
            raise ValueError(f"expected {name} of shape (batch, {', '.join(map(str, expected))}), "
                             f"got {tuple(phi.shape)}")
    elif phi.dim() < min_lattice_dims + 1:
        raise ValueError(f"expected {name} of shape (batch, *lattice_shape) with at least "
                         f"{min_lattice_dims} lattice dimension(s), got {tuple(phi.shape)}")
    if module is not None:
        check_matches_parameters(phi, module, name=name)
    return phi


def check_matches_parameters(x: torch.Tensor, module: torch.nn.Module, *, name: str) -> None:
    """Check that ``x`` has the dtype and device of ``module``'s first parameter (if any)."""
    param = next(module.parameters(), None)
    if param is None:
        return
    if x.dtype != param.dtype:
        raise ValueError(
            f"expected {name} of dtype {param.dtype} (the dtype of this layer's parameters), "
            f"got {x.dtype}: convert the field ({name}.to({param.dtype})) or the model "
            f"(model.to({x.dtype}))")
    if x.device != param.device:
        raise ValueError(
            f"expected {name} on device {param.device} (where this layer's parameters are), "
            f"got {x.device}: move it with {name}.to({str(param.device)!r})")


def check_batch(x, *, name: str) -> torch.Tensor:
    """Check that ``x`` is a 1-D floating tensor of shape ``(batch,)``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected {name} to be a torch.Tensor of shape (batch,), "
                         f"got {type(x).__name__}")
    if x.dim() != 1:
        raise ValueError(f"expected {name} of shape (batch,), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected {name} to have a floating dtype, got {x.dtype}")
    return x


def check_positive_int(n, *, name: str) -> int:
    """Check that ``n`` is a positive integer (``bool`` is refused)."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"expected {name} to be a positive integer, got {n!r}")
    return n


def check_lattice_shape(shape, *, name: str = "lattice_shape") -> tuple[int, ...]:
    """Check and normalise a lattice shape: a non-empty tuple of positive ints."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"expected {name} to be a tuple of positive ints, got {shape!r}") from None
    if not shape or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in shape):
        raise ValueError(f"expected {name} to be a non-empty tuple of positive ints, got {shape!r}")
    return shape
