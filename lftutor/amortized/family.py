r"""Amortized variational inference over a family of 2-D targets.

The family: a ring of radius :math:`\theta` cut into two modes at :math:`z_1 = \pm\theta`,

.. math::
    U_\theta(z) = \frac12\Big(\frac{\lVert z\rVert - \theta}{0.4}\Big)^2
    - \log\Big[e^{-\frac12\left(\frac{z_1-\theta}{0.6}\right)^2}
    + e^{-\frac12\left(\frac{z_1+\theta}{0.6}\right)^2}\Big],
    \qquad p_\theta(z) = e^{-U_\theta(z)}/Z_\theta,

which is the first potential of Rezende & Mohamed (arXiv:1505.05770, table 1) at
:math:`\theta = 2`. Instead of one flow per :math:`\theta` we train one *conditional* flow
:math:`q_\phi(z\mid\theta)` (:class:`~lftutor.bijections.conditional.ConditionalFlow`) on the reverse
KL averaged over :math:`\theta\sim\mathrm{Uniform}[\theta_{\min}, \theta_{\max}]`:

.. math::
    \mathcal L(\phi) = E_\theta\,E_{z\sim q_\phi(\cdot\mid\theta)}
    \big[\log q_\phi(z\mid\theta) + U_\theta(z)\big]
    = E_\theta\big[\mathrm{KL}(q_\phi(\cdot\mid\theta)\,\Vert\,p_\theta) - \log Z_\theta\big].

:math:`\log Z_\theta` does not depend on :math:`\phi`, so it drops out of the gradient, and a
grid integral (:func:`grid_log_z`) turns the loss into the exact KL per :math:`\theta`
(:func:`exact_kl`). The *amortization gap* at :math:`\theta` is the KL of the amortized flow
minus the KL of a flow of the same architecture trained for that :math:`\theta` alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from lftutor.bijections.conditional import ConditionalFlow, ConditionalIAF, ConditionalPlanar

THETA_RANGE = (1.0, 3.0)


def ring_energy(z: torch.Tensor, theta) -> torch.Tensor:
    r""":math:`U_\theta(z)` for ``z (batch, 2)``, ``theta`` a float or ``(batch,)``; ``(batch,)``."""
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != 2:
        raise ValueError(f"expected z of shape (batch, 2), got {tuple(getattr(z, 'shape', ()))}")
    theta = torch.as_tensor(theta, dtype=z.dtype, device=z.device)
    r = torch.linalg.vector_norm(z, dim=-1)
    ring = 0.5 * ((r - theta) / 0.4) ** 2
    modes = torch.logaddexp(-0.5 * ((z[:, 0] - theta) / 0.6) ** 2, -0.5 * ((z[:, 0] + theta) / 0.6) ** 2)
    return ring - modes


def grid_log_z(theta: float, *, n: int = 801, extent: float | None = None) -> float:
    r""":math:`\log Z_\theta = \log\int e^{-U_\theta(z)}\,d^2z` by the trapezoid (here: midpoint-like)
    rule on an ``n x n`` grid over :math:`[-R, R]^2`, :math:`R = \theta + 3` by default (the ring's
    width is 0.4, so the density beyond is below :math:`e^{-28}`). Float64; the error is far
    below 1e-6 for ``n >= 401``.
    """
    R = float(theta) + 3.0 if extent is None else float(extent)
    x = torch.linspace(-R, R, n, dtype=torch.float64)
    h = x[1] - x[0]
    zz = torch.stack(torch.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    return (torch.logsumexp(-ring_energy(zz, float(theta)), 0) + 2 * torch.log(h)).item()


def make_family_flow(kind: str = "iaf", *, n_layers: int = 8, hidden: int = 64, odd: bool = True
                     ) -> ConditionalFlow:
    r"""A conditional flow on :math:`\mathbb R^2` whose context is ``theta`` as a ``(batch, 1)`` tensor.

    ``kind="iaf"``: affine autoregressive layers in alternating order (with :math:`D = 2`, each
    layer rescales and shifts one coordinate given the other and :math:`\theta`);
    ``kind="planar"``: planar layers whose :math:`(u, w, b)` come from a small network of
    :math:`\theta`.

    ``odd=True`` (default) makes every layer odd, :math:`f(-z) = -f(z)`, so :math:`q(-z\mid\theta)
    = q(z\mid\theta)` like the target: trained by reverse KL, a flow without this symmetry usually
    puts all its mass on one of the two modes and stalls at :math:`\mathrm{KL}\approx\log 2`.
    """
    if kind == "iaf":
        layers = [ConditionalIAF(2, 1, hidden=hidden, reverse_order=bool(k % 2), odd=odd)
                  for k in range(n_layers)]
    elif kind == "planar":
        layers = [ConditionalPlanar(2, 1, hidden=hidden, odd=odd) for _ in range(n_layers)]
    else:
        raise ValueError(f"expected kind 'iaf' or 'planar', got {kind!r}")
    return ConditionalFlow(2, layers)


def context(theta, batch: int | None = None, *, dtype=torch.float32) -> torch.Tensor:
    """``theta`` (float or ``(batch,)``) as the flow's ``(batch, 1)`` context, centred on the range."""
    t = torch.as_tensor(theta, dtype=dtype)
    if t.dim() == 0:
        t = t.expand(batch if batch is not None else 1)
    mid = 0.5 * (THETA_RANGE[0] + THETA_RANGE[1])
    return (t - mid).reshape(-1, 1)


def reverse_kl_loss(theta_range: tuple[float, float] = THETA_RANGE):
    r"""``loss_fn(flow, batch_size) -> (loss, metrics)``: the reverse-KL loss averaged over
    :math:`\theta` drawn uniformly in ``theta_range`` (one :math:`\theta` per sample); a range of
    zero width trains for one :math:`\theta`."""
    lo, hi = (float(t) for t in theta_range)

    def loss_fn(flow, batch_size):
        dtype = next(flow.parameters()).dtype
        theta = lo + (hi - lo) * torch.rand(batch_size, dtype=dtype)
        z, log_q = flow.sample(context(theta, dtype=dtype))
        loss = (log_q + ring_energy(z, theta)).mean()
        return loss, {}

    return loss_fn


@torch.no_grad()
def exact_kl(flow: ConditionalFlow, theta: float, *, n_samples: int = 20000,
             log_z: float | None = None) -> tuple[float, float]:
    r""":math:`\mathrm{KL}(q(\cdot\mid\theta)\Vert p_\theta) = E_q[\log q + U_\theta] + \log Z_\theta`
    from ``n_samples`` fresh samples and the grid :math:`\log Z_\theta`; returns ``(kl, stderr)``."""
    dtype = next(flow.parameters()).dtype
    z, log_q = flow.sample(context(float(theta), n_samples, dtype=dtype))
    d = (log_q + ring_energy(z, float(theta))).to(torch.float64)
    log_z = grid_log_z(theta) if log_z is None else log_z
    return d.mean().item() + log_z, (d.std() / math.sqrt(n_samples)).item()


def fit(model, loss_fn, *, steps: int, batch_size: int = 256, lr: float = 3e-3, callbacks=(),
        num_threads: int | None = 1):
    """Adam with a cosine decay on ``loss_fn(model, batch_size)`` through the package's loop
    (:func:`lftutor.training.loop.train`); returns its :class:`~lftutor.training.loop.History`.

    One CPU thread by default: these models are small, and on a busy machine torch's thread
    pool costs far more than it gains.
    """
    from lftutor.training.loop import cosine_schedule, train

    return train(model, loss_fn=loss_fn, steps=steps, batch_size=batch_size, lr=lr,
                 lr_schedule=cosine_schedule, callbacks=callbacks, num_threads=num_threads)


@dataclass
class GapResult:
    """Exact KL per theta for the amortized flow and for separately trained flows."""

    thetas: list[float]
    kl_amortized: list[float]
    kl_separate: list[float]
    stderr_amortized: list[float]
    stderr_separate: list[float]
    seconds: dict = field(default_factory=dict)

    @property
    def gap(self) -> list[float]:
        return [a - s for a, s in zip(self.kl_amortized, self.kl_separate, strict=True)]

    def as_dict(self) -> dict:
        n = len(self.thetas)
        mean_a, mean_s = sum(self.kl_amortized) / n, sum(self.kl_separate) / n
        return {"thetas": self.thetas, "kl_amortized": self.kl_amortized, "kl_separate": self.kl_separate,
                "stderr_amortized": self.stderr_amortized, "stderr_separate": self.stderr_separate,
                "gap": self.gap, "mean_kl_amortized": mean_a, "mean_kl_separate": mean_s,
                "mean_gap": mean_a - mean_s, "seconds": self.seconds}


def amortization_gap(thetas=(1.0, 1.5, 2.0, 2.5, 3.0), *, kind: str = "iaf", n_layers: int = 8,
                     hidden: int = 64, odd: bool = True, steps: int = 2000,
                     amortized_steps: int | None = None,
                     batch_size: int = 256, lr: float = 3e-3, n_samples: int = 20000,
                     seed: int = 0) -> GapResult:
    """Train one amortized flow over :data:`THETA_RANGE` and one flow per ``theta``; exact KLs.

    ``amortized_steps`` defaults to ``steps``: the amortized flow gets the budget of *one* of the
    separate flows.
    """
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    amortized = make_family_flow(kind, n_layers=n_layers, hidden=hidden, odd=odd)
    fit(amortized, reverse_kl_loss(THETA_RANGE), steps=amortized_steps or steps, batch_size=batch_size, lr=lr)
    t1 = time.perf_counter()
    res = GapResult(list(thetas), [], [], [], [], {})
    for theta in thetas:
        log_z = grid_log_z(theta)
        kl, se = exact_kl(amortized, theta, n_samples=n_samples, log_z=log_z)
        res.kl_amortized.append(kl)
        res.stderr_amortized.append(se)
        torch.manual_seed(seed + 1 + int(1000 * theta))
        single = make_family_flow(kind, n_layers=n_layers, hidden=hidden, odd=odd)
        fit(single, reverse_kl_loss((theta, theta)), steps=steps, batch_size=batch_size, lr=lr)
        kl, se = exact_kl(single, theta, n_samples=n_samples, log_z=log_z)
        res.kl_separate.append(kl)
        res.stderr_separate.append(se)
    res.seconds = {"amortized": t1 - t0, "separate": time.perf_counter() - t1}
    return res
