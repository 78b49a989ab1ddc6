r"""Continuous normalizing flows: a bijection defined by an ODE (arXiv:1806.07366, arXiv:1810.01367).

The map from latent to data is the solution at time :math:`t_1` of

.. math::
    \frac{dz}{dt} = f(z, t), \qquad z(0) = z_0, \qquad x = z(t_1),

and the log-density changes along the trajectory by the *instantaneous change of variables*

.. math::
    \frac{d \log p(z(t))}{dt} = -\operatorname{tr}\frac{\partial f}{\partial z}(z(t), t),
    \qquad
    \log\Big|\det\frac{\partial x}{\partial z_0}\Big| = \int_0^{t_1}
        \operatorname{tr}\frac{\partial f}{\partial z}\,dt .

Any Lipschitz field gives an invertible map (integrate backwards), so ``f`` needs no special
structure; the price is an ODE solve per evaluation, whose cost (the number of function
evaluations, NFE) grows as training makes ``f`` more complicated. The trace is computed exactly
(``D`` backward passes) or estimated with one Hutchinson probe per trajectory, held fixed
during the solve (:mod:`lftutor.bijections.trace`). The solver is torchdiffeq's (adaptive
Dormand-Prince ``dopri5`` by default; ``adjoint=True`` uses the adjoint method, whose memory
does not grow with the number of steps).

Fields (all map ``(t (), z (batch, D)) -> (batch, D)``):

* :class:`PlanarField`: :math:`f(z,t)=\sum_k g_k(t)\,u_k \tanh(w_k^\top z+b_k)`, planar units
  each switched on and off in time by its own small gate network (arXiv:1806.07366, sec. 4.1);
* :class:`MLPField`: a multilayer perceptron of :math:`(z, t)`, the general case;
* :class:`LinearField`: :math:`f = A z`, for which the flow is :math:`e^{t_1 A}` and the
  log-determinant is :math:`t_1\operatorname{tr}A` (used by the tests).

Example:
    >>> _ = torch.manual_seed(0)
    >>> flow = make_cnf(2, field="planar", field_kwargs={"n_units": 4})
    >>> x, log_q = flow.sample(5)
    >>> torch.allclose(flow.log_prob(x), log_q, atol=1e-3)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from lftutor._checks import check_positive_int
from lftutor.bijections.base import Bijection, Inverse
from lftutor.bijections.trace import PROBES, exact_trace, hutchinson_trace, sample_probe

__all__ = ["FIELDS", "TRACES", "ContinuousFlow", "Inverse", "LinearField", "MLPField", "PlanarField",
           "make_cnf"]

TRACES = ("exact", "hutchinson")


class PlanarField(nn.Module):
    r"""A sum of planar units, each gated by a small network of time.

    .. math::
        f(z, t) = \sum_{k=1}^K g_k(t)\, u_k \tanh(w_k^\top z + b_k),
        \qquad
        \operatorname{tr}\frac{\partial f}{\partial z} = \sum_k g_k(t)\,
            \big(1-\tanh^2(w_k^\top z+b_k)\big)\, u_k^\top w_k .

    Unlike a discrete planar layer, nothing constrains :math:`u_k^\top w_k`: the ODE is
    invertible for any parameters. Each gate :math:`g_k` is its own MLP
    ``1 -> gate_hidden -> gate_hidden -> 1`` (tanh), all ``K`` evaluated in one batched product.

    Args:
        dim: ``D``, the dimension of the data.
        n_units: ``K``, the number of planar units.
        gate_hidden: width of each gate network.

    Shapes:
        ``forward(t, z)``: ``t`` a 0-d tensor, ``z (batch, D)`` -> ``(batch, D)``;
        ``gates(t)`` -> ``(K,)``.
    """

    def __init__(self, dim: int, *, n_units: int = 16, gate_hidden: int = 16):
        super().__init__()
        check_positive_int(dim, name="dim")
        check_positive_int(n_units, name="n_units")
        check_positive_int(gate_hidden, name="gate_hidden")
        self.dim = dim
        self.u = nn.Parameter(torch.randn(n_units, dim) / math.sqrt(dim))
        self.w = nn.Parameter(torch.randn(n_units, dim))
        self.b = nn.Parameter(torch.zeros(n_units))
        h = gate_hidden
        self.gate_w1 = nn.Parameter(torch.randn(n_units, h))
        self.gate_b1 = nn.Parameter(torch.randn(n_units, h))
        self.gate_w2 = nn.Parameter(torch.randn(n_units, h, h) / math.sqrt(h))
        self.gate_b2 = nn.Parameter(torch.zeros(n_units, h))
        self.gate_w3 = nn.Parameter(torch.randn(n_units, h) / math.sqrt(h))
        self.gate_b3 = nn.Parameter(torch.ones(n_units))

    def gates(self, t: torch.Tensor) -> torch.Tensor:
        """The ``K`` gate values at time ``t``, shape ``(K,)``."""
        h = torch.tanh(self.gate_w1 * t + self.gate_b1)                        # (K, H)
        h = torch.tanh(torch.einsum("kh,khj->kj", h, self.gate_w2) + self.gate_b2)
        return (h * self.gate_w3).sum(dim=1) + self.gate_b3

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        activation = torch.tanh(z @ self.w.T + self.b)                          # (batch, K)
        return (activation * self.gates(t)) @ self.u


class MLPField(nn.Module):
    r"""A multilayer perceptron of :math:`(z, t)`: :math:`f(z, t) = \mathrm{MLP}([z, t])`.

    Smooth activations (tanh) keep the ODE well behaved for the adaptive solver.

    Args:
        dim: ``D``.
        hidden: widths of the hidden layers.

    Shapes:
        ``forward(t, z)``: ``t`` a 0-d tensor, ``z (batch, D)`` -> ``(batch, D)``.
    """

    def __init__(self, dim: int, *, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        check_positive_int(dim, name="dim")
        self.dim = dim
        sizes = [dim + 1, *hidden, dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        tt = t.to(z.dtype).expand(z.shape[0], 1)
        return self.net(torch.cat([z, tt], dim=1))


class LinearField(nn.Module):
    r"""The linear field :math:`f(z, t) = A z`: the flow is :math:`x = e^{t_1 A} z`.

    Args:
        a: the matrix ``(D, D)`` (a trainable parameter).
    """

    def __init__(self, a: torch.Tensor):
        super().__init__()
        a = torch.as_tensor(a)
        if a.dim() != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"expected a square matrix (D, D), got {tuple(a.shape)}")
        self.dim = a.shape[0]
        self.a = nn.Parameter(a.clone())

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return z @ self.a.T


class _Dynamics(nn.Module):
    """The augmented right-hand side (dz/dt, d log|det|/dt); counts the field's evaluations."""

    def __init__(self, owner: ContinuousFlow):
        super().__init__()
        self.field = owner.field
        self.trace = owner.trace
        self.probe: torch.Tensor | None = None
        self.calls = 0

    def forward(self, t: torch.Tensor, state):
        z = state[0]
        self.calls += 1
        f = lambda y: self.field(t, y)  # noqa: E731
        if self.trace == "exact":
            dz, tr = exact_trace(f, z)
        else:
            dz, tr = hutchinson_trace(f, z, self.probe)
        return dz, tr


class _Plain(nn.Module):
    """dz/dt alone (sampling, trajectories); counts the field's evaluations."""

    def __init__(self, field: nn.Module):
        super().__init__()
        self.field = field
        self.calls = 0

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.field(t, z)


class ContinuousFlow(Bijection):
    r"""The bijection :math:`z(0)\mapsto z(t_1)` of the ODE :math:`dz/dt = f(z, t)`.

    ``forward`` integrates from 0 to :math:`t_1` the augmented system

    .. math::
        \frac{d}{dt}\begin{pmatrix} z \\ \ell \end{pmatrix}
        = \begin{pmatrix} f(z,t) \\ \operatorname{tr}\,\partial f/\partial z \end{pmatrix},
        \qquad \ell(0) = 0,

    so that :math:`\ell(t_1) = \log|\det\partial x/\partial z|`; ``reverse`` integrates the same
    system from :math:`t_1` back to 0, which gives :math:`\log|\det\partial z/\partial x|`.
    With ``trace="hutchinson"`` the trace is replaced by :math:`v^\top(\partial f/\partial z)v`,
    one probe ``v`` per sample drawn at the start of each solve and kept until its end, so the
    log-determinant is an unbiased estimate (the trajectory itself does not depend on ``v``).

    Args:
        field: ``f``, a module ``(t, z) -> dz/dt`` with an attribute ``dim``.
        t1: the end time.
        trace: ``"exact"`` or ``"hutchinson"`` (may be changed later, e.g. exact for evaluation).
        probe: ``"gaussian"`` or ``"rademacher"`` (Hutchinson probes).
        method: any torchdiffeq method, e.g. ``"dopri5"`` (adaptive) or ``"rk4"`` (fixed step).
        rtol, atol: tolerances of adaptive methods.
        step_size: the step of fixed-step methods (default ``t1 / 10``).
        adjoint: use :func:`torchdiffeq.odeint_adjoint` (memory independent of the number of
            steps, at the price of a second solve backwards in time for the gradient).
        generator: random generator for the probes (default: torch's global one).

    Attributes:
        nfe: evaluations of ``f`` in the last solve (with the adjoint method, the backward
            solve's evaluations are added when the gradient is computed).

    Shapes:
        ``forward(z)``: ``(batch, D) -> (x (batch, D), log_det (batch,))``;
        ``reverse(x)``: ``(batch, D) -> (z (batch, D), log_det (batch,))``;
        ``trajectory(z, times)``: ``-> (len(times), batch, D)``.

    Example:
        The linear field :math:`f = Az` with :math:`A = \operatorname{diag}(0.5, 0.25)` gives
        :math:`x = e^{t_1 A} z` and :math:`\log|\det| = t_1\operatorname{tr}A = 0.75`:

        >>> a = torch.diag(torch.tensor([0.5, 0.25], dtype=torch.float64))
        >>> layer = ContinuousFlow(LinearField(a), rtol=1e-9, atol=1e-9)
        >>> z = torch.ones(3, 2, dtype=torch.float64)
        >>> x, log_det = layer(z)
        >>> [round(v, 4) for v in x[0].tolist()]  # e^{0.5}, e^{0.25}
        [1.6487, 1.284]
        >>> round(log_det[0].item(), 6)
        0.75
        >>> torch.allclose(layer.reverse(x)[0], z)
        True
    """

    def __init__(self, field: nn.Module, *, t1: float = 1.0, trace: str = "exact",
                 probe: str = "gaussian", method: str = "dopri5", rtol: float = 1e-5,
                 atol: float = 1e-5, step_size: float | None = None, adjoint: bool = False,
                 generator: torch.Generator | None = None):
        super().__init__()
        if not hasattr(field, "dim"):
            raise ValueError("expected a field module with an attribute `dim` (the dimension D)")
        if not t1 > 0:
            raise ValueError(f"expected t1 > 0, got {t1}")
        self.field = field
        self.dim = int(field.dim)
        self.event_shape = (self.dim,)
        self.t1 = float(t1)
        self.trace = trace
        self.probe = probe
        self.method = method
        self.rtol, self.atol = rtol, atol
        self.step_size = step_size
        self.adjoint = adjoint
        self.generator = generator
        self._last: list[nn.Module] = []  # the last solve's right-hand side (not a submodule)

    def _check_settings(self) -> None:
        if self.trace not in TRACES:
            raise ValueError(f"expected trace 'exact' or 'hutchinson', got {self.trace!r}")
        if self.probe not in PROBES:
            raise ValueError(f"expected probe 'gaussian' or 'rademacher', got {self.probe!r}")

    def _solve(self, func: nn.Module, y0, times: torch.Tensor):
        options = None
        if self.method in ("rk4", "euler", "midpoint", "explicit_adams", "implicit_adams"):
            options = {"step_size": self.step_size or self.t1 / 10}
        solver = odeint_adjoint if self.adjoint else odeint
        self._last[:] = [func]
        return solver(func, y0, times, rtol=self.rtol, atol=self.atol, method=self.method,
                      options=options)

    @property
    def nfe(self) -> int:
        """Evaluations of ``f`` by the last solve (plus its adjoint solve, once backward has run)."""
        return self._last[0].calls if self._last else 0

    def _integrate(self, y: torch.Tensor, t_start: float, t_end: float
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_settings()
        dyn = _Dynamics(self)
        if self.trace == "hutchinson":
            dyn.probe = sample_probe(y, self.probe, generator=self.generator)
        times = torch.tensor([t_start, t_end], dtype=y.dtype, device=y.device)
        zeros = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
        ys, ls = self._solve(dyn, (y, zeros), times)
        return ys[-1], ls[-1]

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._integrate(z, 0.0, self.t1)

    def reverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._integrate(x, self.t1, 0.0)

    def trajectory(self, z: torch.Tensor, times: torch.Tensor | Sequence[float] | None = None
                   ) -> torch.Tensor:
        """The states at ``times`` (default 21 points from 0 to ``t1``), without log-determinants.

        Integrating from 0 to ``t1`` maps latent to data (sampling); decreasing times go back.

        Returns:
            ``(len(times), batch, D)``.
        """
        self.check_input(z, "z")
        if times is None:
            times = torch.linspace(0.0, self.t1, 21)
        times = torch.as_tensor(times, dtype=z.dtype, device=z.device)
        if times.dim() != 1 or times.numel() < 2:
            raise ValueError(f"expected at least two times in a 1-D sequence, got {tuple(times.shape)}")
        func = _Plain(self.field)
        return self._solve(func, z, times)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, t1={self.t1}, trace={self.trace!r}, probe={self.probe!r}, "
                f"method={self.method!r}, rtol={self.rtol}, atol={self.atol}, adjoint={self.adjoint}")


FIELDS = {"planar": PlanarField, "mlp": MLPField}


def make_cnf(dim: int = 2, *, field: str | nn.Module = "planar", dtype: torch.dtype = torch.float32,
             field_kwargs: dict | None = None, **flow_kwargs):
    """A :class:`lftutor.bijections.flow.Flow`: standard normal prior and one :class:`ContinuousFlow`.

    Args:
        dim: ``D``.
        field: ``"planar"`` (:class:`PlanarField`), ``"mlp"`` (:class:`MLPField`) or a module.
        dtype: parameter dtype.
        field_kwargs: keyword arguments of the field class (e.g. ``n_units``, ``hidden``).
        **flow_kwargs: keyword arguments of :class:`ContinuousFlow` (trace, method, ...).

    Returns:
        ``Flow`` with ``sample(n) -> (x (n, D), log_q (n,))`` and ``log_prob(x) -> (batch,)``.
    """
    from lftutor.bijections.flow import Flow
    from lftutor.lattice.priors import SimpleNormal

    if isinstance(field, str):
        if field not in FIELDS:
            raise ValueError(f"expected field 'planar' or 'mlp' (or a module), got {field!r}")
        field = FIELDS[field](dim, **(field_kwargs or {}))
    field = field.to(dtype)
    return Flow(SimpleNormal.standard((dim,), dtype=dtype), [ContinuousFlow(field, **flow_kwargs)])
