r"""The trace of a Jacobian, exactly (autograd) or by Hutchinson's estimator (forward mode).

A continuous flow needs :math:`\operatorname{tr}\,\partial f/\partial z` at every step of the ODE
solve. Exactly it costs ``D`` backward passes; Hutchinson's estimator costs one Jacobian-vector
product, whatever ``D``:

.. math::
    \operatorname{tr} J = \mathbb E_v\big[v^\top J v\big]
    \quad\text{for any probe } v \text{ with } \mathbb E[v v^\top] = 1,

(Hutchinson 1989; used for flows in FFJORD, arXiv:1810.01367). For a fixed matrix ``A`` and
:math:`A_s = (A + A^\top)/2` the estimator's variance is

.. math::
    \operatorname{Var}_{v\sim N(0,1)}[v^\top A v] = 2\operatorname{tr}(A_s^2) = 2\|A_s\|_F^2,
    \qquad
    \operatorname{Var}_{v\sim\pm1}[v^\top A v] = 2\sum_{i\ne j} (A_s)_{ij}^2 ,

(Gaussian: :math:`v^\top A_s v` is a sum of :math:`\lambda_k \chi^2_1` terms in the eigenbasis of
:math:`A_s`; Rademacher: the diagonal part is exact because :math:`v_i^2=1`, and the products
:math:`v_i v_j`, :math:`i<j`, are uncorrelated with unit variance). Rademacher probes are never
worse and are exact for a diagonal Jacobian.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["PROBES", "exact_trace", "hutchinson_trace", "hutchinson_variance", "sample_probe"]

PROBES = ("gaussian", "rademacher")


def sample_probe(like: torch.Tensor, kind: str = "gaussian", *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """A probe of the shape, dtype and device of ``like``: standard normal or random signs.

    Args:
        like: any tensor, shape ``(batch, D)``.
        kind: ``"gaussian"`` or ``"rademacher"``.

    Returns:
        ``v`` with :math:`\\mathbb E[v]=0`, :math:`\\mathbb E[v v^\\top]=1`, shape of ``like``.
    """
    if kind not in PROBES:
        raise ValueError(f"expected probe 'gaussian' or 'rademacher', got {kind!r}")
    v = torch.randn(like.shape, dtype=like.dtype, device=like.device, generator=generator)
    return v if kind == "gaussian" else torch.sign(v)


def exact_trace(f: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``f(z)`` and :math:`\operatorname{tr}\,\partial f/\partial z` per sample, by ``D`` backward passes.

    ``f`` must act on each row of ``z`` separately (row ``b`` of the output depends on row ``b``
    of the input only), so that the gradient of a column sum is that column's Jacobian row.
    Graphs are kept when autograd is on (training), so the trace itself can be differentiated.

    Args:
        f: maps ``(batch, D)`` to ``(batch, D)``.
        z: ``(batch, D)``.

    Returns:
        ``(f(z) (batch, D), trace (batch,))``.
    """
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        if not z.requires_grad:
            z = z.detach().requires_grad_(True)
        out = f(z)
        trace = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        dim = z.shape[1]
        for i in range(dim):
            (g,) = torch.autograd.grad(out[:, i].sum(), z, create_graph=create_graph,
                                       retain_graph=create_graph or i < dim - 1)
            trace = trace + g[:, i]
    if not create_graph:
        out, trace = out.detach(), trace.detach()
    return out, trace


def hutchinson_trace(f: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, v: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``f(z)`` and the one-probe estimate :math:`v^\top (\partial f/\partial z)\, v` per sample.

    One forward-mode Jacobian-vector product (:func:`torch.func.jvp`) gives :math:`f(z)` and
    :math:`Jv` together, for about the cost of two evaluations of ``f``.

    Args:
        f: maps ``(batch, D)`` to ``(batch, D)``, row by row.
        z: ``(batch, D)``.
        v: probe, ``(batch, D)`` (see :func:`sample_probe`).

    Returns:
        ``(f(z) (batch, D), estimate (batch,))``.
    """
    if v.shape != z.shape:
        raise ValueError(f"expected a probe of shape {tuple(z.shape)}, got {tuple(v.shape)}")
    out, jv = torch.func.jvp(f, (z,), (v,))
    return out, (v * jv).sum(dim=1)


def hutchinson_variance(a: torch.Tensor, kind: str = "gaussian") -> torch.Tensor:
    r"""The exact variance of the one-probe estimate :math:`v^\top A v` of :math:`\operatorname{tr}A`.

    Args:
        a: a square matrix ``(D, D)``.
        kind: ``"gaussian"`` (:math:`2\|A_s\|_F^2`) or ``"rademacher"``
            (:math:`2\sum_{i\ne j}(A_s)_{ij}^2`), with :math:`A_s=(A+A^\top)/2`.

    Returns:
        A 0-d tensor.
    """
    if a.dim() != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square matrix (D, D), got {tuple(a.shape)}")
    if kind not in PROBES:
        raise ValueError(f"expected probe 'gaussian' or 'rademacher', got {kind!r}")
    sym = 0.5 * (a + a.T)
    total = 2 * (sym ** 2).sum()
    return total if kind == "gaussian" else total - 2 * (torch.diagonal(sym) ** 2).sum()
