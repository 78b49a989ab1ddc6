r"""Inverting a monotone scalar map numerically, with gradients: safeguarded Newton plus one Newton step.

Several flows have an elementwise map :math:`y = h_\theta(u)` that is strictly increasing but
has no closed-form inverse (the sum-of-squares polynomial flow, the planar flow along
:math:`w`). :func:`solve_monotone` brackets the root by doubling, narrows it to machine
precision by Newton steps safeguarded by bisection, without building a graph, and then takes
one Newton step *with* the graph,

.. math::
    u = u_* - \frac{h_\theta(u_*) - y}{h'_\theta(u_*)},

whose value is :math:`u_*` (the residual is at rounding level) and whose first derivatives are
those of the implicit function theorem, :math:`\partial u/\partial y = 1/h'` and
:math:`\partial u/\partial\theta = -(\partial h/\partial\theta)/h'`. So the inverse can be
trained through (maximum likelihood through a sampling-direction layer) at the cost of one
extra evaluation of :math:`h`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

MonotoneMap = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


__all__ = ["MonotoneMap", "solve_increasing", "solve_monotone"]


def solve_increasing(fn: MonotoneMap, target: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, *,
                     max_iter: int = 100) -> torch.Tensor:
    r"""Solve :math:`g(a) = t` elementwise for an increasing :math:`g` inside a bracket, without autograd.

    Newton's method, falling back to bisection whenever a Newton step leaves the current bracket;
    the bracket shrinks every iteration, so it converges for any continuous increasing ``g``, and
    quadratically once Newton takes over.

    Args:
        fn: ``a -> (g(a), g'(a))``, elementwise, any shape.
        target: :math:`t`, same shape as ``a``.
        lo, hi: brackets with :math:`g(lo) \le t \le g(hi)` (broadcastable to ``target``).
        max_iter: iterations at most (stops earlier once a step or the bracket is at round-off).

    Returns:
        The roots, detached, shape of ``target``.

    Example:
        >>> t = torch.tensor([0.5, 2.0], dtype=torch.float64)
        >>> a = solve_increasing(lambda a: (a**3 + a, 3 * a**2 + 1), t, -t.abs() - 1, t.abs() + 1)
        >>> torch.allclose(a**3 + a, t)
        True
    """
    with torch.no_grad():
        target = target.detach()
        lo = torch.broadcast_to(lo, target.shape).clone()
        hi = torch.broadcast_to(hi, target.shape).clone()
        eps = torch.finfo(target.dtype).eps
        root = 0.5 * (lo + hi)
        for _ in range(max_iter):
            value, slope = fn(root)
            residual = value - target
            lo = torch.where(residual < 0, root, lo)
            hi = torch.where(residual > 0, root, hi)
            newton = root - residual / slope
            inside = (newton > lo) & (newton < hi) & torch.isfinite(newton)
            new = torch.where(inside, newton, 0.5 * (lo + hi))
            step = (new - root).abs()
            root = new
            tol = 4 * eps * (1 + root.abs())
            if bool((step <= tol).all()) or bool(((hi - lo) <= tol).all()):
                break
    return root


def solve_monotone(fn: MonotoneMap, y: torch.Tensor, *, max_iter: int = 200,
                   max_doublings: int = 80, lo: torch.Tensor | None = None,
                   hi: torch.Tensor | None = None) -> torch.Tensor:
    r"""Solve :math:`h(u) = y` elementwise for a strictly increasing :math:`h: \mathbb R\to\mathbb R`.

    Args:
        fn: ``u -> (h(u), h'(u))``, elementwise, both of the shape of ``u`` (``y``'s shape);
            it may close over parameters (broadcast against ``u``) that require gradients.
        y: targets, any shape ``(*S,)``.
        max_iter: safeguarded Newton steps at most (stops once a step or the bracket is at
            rounding level).
        max_doublings: how often the initial bracket ``[-1, 1]`` may double on each side.
        lo, hi: a known bracket of the roots (skips the doubling; both or neither).

    Returns:
        ``u`` of shape ``(*S,)`` with ``h(u) = y`` to rounding, differentiable with respect to
        ``y`` and to whatever ``fn`` depends on (one Newton step with the graph, module docstring).

    Raises:
        ValueError: if ``y`` is not a floating tensor, or no bracket was found (``h`` is
            bounded, or ``y`` is not finite).

    Example:
        >>> y = torch.tensor([-30.0, 0.5, 2.0], dtype=torch.float64)
        >>> u = solve_monotone(lambda u: (u**3 + u, 3 * u**2 + 1), y)
        >>> torch.allclose(u**3 + u, y)
        True
    """
    if not isinstance(y, torch.Tensor) or not y.is_floating_point():
        raise ValueError(f"expected y to be a floating tensor, got "
                         f"{y.dtype if isinstance(y, torch.Tensor) else type(y).__name__}")
    if lo is None or hi is None:
        lo, hi = _bracket(fn, y.detach(), max_doublings)
    # Newton steps safeguarded by bisection, without a graph
    root = solve_increasing(fn, y, lo.detach(), hi.detach(), max_iter=max_iter)
    # one Newton step with the graph: the same value, the implicit function theorem's gradients
    value, derivative = fn(root)
    return root - (value - y) / derivative


def _bracket(fn: MonotoneMap, target: torch.Tensor, max_doublings: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``[lo, hi]`` with ``h(lo) <= y <= h(hi)``: ``[-1, 1]`` doubled on each side until it holds."""
    with torch.no_grad():
        lo = -torch.ones_like(target)
        hi = torch.ones_like(target)
        for _ in range(max_doublings):
            below = fn(lo)[0] > target
            if not bool(below.any()):
                break
            lo = torch.where(below, 2 * lo, lo)
        for _ in range(max_doublings):
            above = fn(hi)[0] < target
            if not bool(above.any()):
                break
            hi = torch.where(above, 2 * hi, hi)
        if not (bool((fn(lo)[0] <= target).all()) and bool((fn(hi)[0] >= target).all())):
            raise ValueError(f"expected targets inside the range of the monotone map, got none "
                             f"bracketed within +-2^{max_doublings} (non-finite target or a bounded map)")
    return lo, hi
