r"""The bijection interface of the package: one base class that checks what enters every layer.

Every layer and every stack is a :class:`Bijection`:

* ``forward(z[, context]) -> (x, log_det)`` maps latent to data (field), with
  :math:`\log|\det\partial x/\partial z|`;
* ``reverse(x[, context]) -> (z, log_det)`` maps back, with :math:`\log|\det\partial z/\partial x|`;

``log_det`` has shape ``(batch,)``, summed over sites. A subclass writes only its math: the base
class wraps the ``forward`` and ``reverse`` that a subclass defines (in ``__init_subclass__``, as
flowjax's ``AbstractBijection`` does) with the checks of the input, once for every layer:

* the input is a floating tensor of shape ``(batch, *event_shape)`` (skipped where
  ``event_shape`` is ``None``: a stack leaves the checks to its layers);
* it has the dtype and device of the layer's parameters (``match_parameters``), otherwise torch
  stops deep inside a product with a message that does not say which tensor to convert;
* a conditional layer (``context_dim`` an integer) gets a context of shape ``(batch, C)`` with
  the input's dtype and device, and a layer built without one (``context_dim=0``) gets none.

Errors are ``ValueError("expected ... got ...")`` and name the argument as the layer calls it
(``input_names``: ``("z", "x")`` for vectors, ``("z", "phi")`` for fields).

Example:
    >>> class Shift(Bijection):
    ...     input_names = ("z", "x")
    ...     def __init__(self, dim):
    ...         super().__init__()
    ...         self.event_shape = (dim,)
    ...         self.t = torch.nn.Parameter(torch.ones(dim))
    ...     def forward(self, z):
    ...         return z + self.t, z.new_zeros(z.shape[0])
    ...     def reverse(self, x):
    ...         return x - self.t, x.new_zeros(x.shape[0])
    >>> Shift(2)(torch.zeros(3, 2))[0].shape
    torch.Size([3, 2])
    >>> Shift(2)(torch.zeros(3, 4))
    Traceback (most recent call last):
    ...
    ValueError: expected z of shape (batch, 2), got (3, 4)
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from lftutor._checks import check_field, check_matches_parameters

__all__ = ["Bijection", "Inverse", "check_context"]


def check_context(layer: nn.Module, context, batch: int, reference: torch.Tensor) -> torch.Tensor | None:
    """Check the context of a layer with ``layer.context_dim`` (0: none allowed).

    Returns:
        ``context`` (``None`` for a layer without one).

    Raises:
        ValueError: a context where none is expected, a missing one, or one of the wrong shape,
            dtype or device (that of ``reference``, the input).
    """
    if not layer.context_dim:
        if context is not None:
            raise ValueError("expected no context for a layer built with context_dim=0, got a "
                             "tensor (build it with context_dim=C to condition on one)")
        return None
    if not isinstance(context, torch.Tensor):
        raise ValueError(f"expected a context of shape (batch, {layer.context_dim}), got "
                         f"{type(context).__name__}")
    if context.dim() != 2 or context.shape[1] != layer.context_dim or context.shape[0] != batch:
        raise ValueError(f"expected a context of shape ({batch}, {layer.context_dim}), got "
                         f"{tuple(context.shape)}")
    if context.dtype != reference.dtype or context.device != reference.device:
        raise ValueError(f"expected a context of dtype {reference.dtype} on {reference.device} (as "
                         f"the input), got {context.dtype} on {context.device}")
    return context


def _checked(method: Callable, position: int) -> Callable:
    """``method`` (a subclass's ``forward`` or ``reverse``) behind the checks of the base class."""

    @functools.wraps(method)
    def checked(self, x, *args, **kwargs):
        self.check_input(x, self.input_names[position])
        if self.context_dim is not None:
            check_context(self, args[0] if args else kwargs.get("context"), x.shape[0], x)
        return method(self, x, *args, **kwargs)

    checked.__bijection_checked__ = True
    return checked


class Bijection(nn.Module):
    r"""Base class of every bijection: ``forward(z) -> (x, log_det)``, ``reverse(x) -> (z, log_det)``.

    A subclass sets ``self.event_shape`` (the shape of one sample, or ``None`` to check nothing
    here) and defines ``forward`` and ``reverse``; both are wrapped with :meth:`check_input` (and
    the context check where ``context_dim`` is not ``None``) when the class is created.

    Class attributes:
        input_names: names of the input of ``forward`` and of ``reverse`` in error messages.
        match_parameters: whether inputs must have the dtype and device of the parameters
            (layers that convert their parameters to the input's dtype set it to ``False``).
        context_dim: ``None`` for a layer that takes no context (or ignores it), else ``C``
            (0: built without one).
        shape_hint: appended to the errors of the input check, formatted with ``event_shape``.

    Shapes:
        ``forward(z[, context])``, ``reverse(x[, context])``:
        ``(batch, *event_shape)[, (batch, C)] -> ((batch, *event_shape), (batch,))``.
    """

    event_shape: tuple[int, ...] | None = None
    input_names: tuple[str, str] = ("z", "x")
    match_parameters: bool = True
    context_dim: int | None = None
    shape_hint: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for position, name in enumerate(("forward", "reverse")):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "__bijection_checked__", False):
                setattr(cls, name, _checked(method, position))

    @property
    def conditional(self) -> bool:
        """Whether the layer takes a context vector."""
        return bool(self.context_dim)

    def check_event(self, x, name: str) -> None:
        """Shape and floating dtype of one input; a layer whose inputs are not plain fields
        (U(1) links) replaces this."""
        check_field(x, self.event_shape, name=name)

    def check_input(self, x, name: str) -> None:
        """All checks of an input called ``name``: :meth:`check_event`, then dtype and device."""
        if self.event_shape is None:
            return
        try:
            self.check_event(x, name)
            if self.match_parameters:
                check_matches_parameters(x, self, name=name)
        except ValueError as err:
            if not self.shape_hint:
                raise
            hint = self.shape_hint.format(event_shape=tuple(self.event_shape))
            raise ValueError(f"{err} ({hint})") from None

    def forward(self, z: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def reverse(self, x: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class Inverse(Bijection):
    r"""A bijection with its directions swapped: ``forward`` is the wrapped layer's ``reverse``.

    Turns a cheap-sampling layer into a cheap-density one and back: ``Inverse(iaf_layer)`` has
    the costs of a MAF, and the polynomial flow of Jaini et al. (arXiv:1905.02325), which maps
    data to latent by the polynomial, is ``Inverse(SumOfSquaresPolynomial(..., mode="iaf"))``. A
    stack of ``Inverse(Planar(2))`` evaluates :math:`\log q(x)` in closed form (fast maximum
    likelihood) but can only sample by solving each layer's equation numerically, the situation
    that a continuous flow, invertible by the same solver in both directions, avoids.

    Args:
        layer: a bijection (optionally taking a context).

    Shapes:
        those of ``layer``, directions exchanged.

    Example:
        >>> from lftutor.bijections.planar import Planar
        >>> layer = Planar(2).double()
        >>> z = torch.randn(3, 2, dtype=torch.float64)
        >>> torch.equal(Inverse(layer)(z)[0], layer.reverse(z)[0])
        True
    """

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    @property
    def conditional(self) -> bool:
        return bool(getattr(self.layer, "conditional", False))

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None):
        """The wrapped layer's ``reverse``."""
        if context is None:
            return self.layer.reverse(z)
        return self.layer.reverse(z, context)

    def reverse(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """The wrapped layer's ``forward``."""
        if context is None:
            return self.layer.forward(x)
        return self.layer.forward(x, context)
