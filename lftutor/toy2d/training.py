r"""Training 2-D flows through the package's one loop, :func:`lftutor.training.train`.

* Reverse KL (variational inference) on a potential :math:`U`: ``train(flow, action=U)``, with
  optional *annealing*: the loss uses :math:`\beta U` with :math:`\beta` rising linearly from
  ``beta0`` to 1 over the first ``anneal`` fraction of the budget, then 1 (arXiv:1505.05770
  sec. 6 anneals the same way). At small :math:`\beta` the target is broad, so the flow first
  spreads over every mode before it sharpens; without it, a flow started inside the U1 ring
  often settles on one of its two lobes (reverse KL :math:`\approx\log 2`).
* Maximum likelihood (forward KL) on samples: ``train(flow, data=X)``.
"""

from __future__ import annotations

import time

import torch

from lftutor.training.loop import Callback, History, cosine_schedule, train


class Annealed:
    r"""The tempered potential :math:`\beta\,U(x)`; ``beta`` is set by :class:`AnnealSchedule`.

    Shapes: ``(batch, 2) -> (batch,)``.
    """

    def __init__(self, potential, beta: float = 1.0):
        self.potential = potential
        self.beta = float(beta)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        u = self.potential(x)
        return u if self.beta == 1.0 else self.beta * u


class AnnealSchedule(Callback):
    r"""Raise ``annealed.beta`` linearly from ``beta0`` to 1 over the first ``fraction`` of training.

    Progress is the fraction of ``steps`` or of ``time_budget`` (whichever is given; with both,
    the larger fraction).
    """

    def __init__(self, annealed: Annealed, *, fraction: float, beta0: float = 0.05,
                 steps: int | None = None, time_budget: float | None = None):
        if not 0 < fraction <= 1:
            raise ValueError(f"expected 0 < fraction <= 1, got {fraction!r}")
        self.annealed, self.fraction, self.beta0 = annealed, fraction, beta0
        self.steps, self.time_budget = steps, time_budget
        self._first = 0

    def _set(self, progress: float) -> None:
        self.annealed.beta = min(1.0, self.beta0 + (1 - self.beta0) * progress / self.fraction)

    def on_train_begin(self, history: History) -> None:
        self._first = len(history)
        self._set(0.0)

    def on_step(self, history: History) -> None:
        done = len(history) - self._first
        progress = max(done / self.steps if self.steps else 0.0,
                       history.seconds[-1] / self.time_budget if self.time_budget else 0.0)
        self._set(progress)

    def on_train_end(self, history: History) -> None:
        self.annealed.beta = 1.0


def fit_reverse_kl(flow, potential, *, steps: int | None = None, time_budget: float | None = None,
                   batch_size: int = 128, lr: float = 1e-2, anneal: float = 0.3,
                   callbacks=(), num_threads: int | None = None, history: History | None = None,
                   clock=time.perf_counter) -> History:
    r"""Minimise :math:`E_q[\log q + U]` (annealed over the first ``anneal`` fraction; 0: off).

    Adam (``foreach``), the learning rate decaying along :func:`cosine_schedule`.

    Args:
        flow: a 2-D flow (``sample(n) -> (x (n, 2), log_q (n,))``).
        potential: :math:`U`, ``(batch, 2) -> (batch,)``.
        clock: what ``time_budget`` is measured on (see :func:`lftutor.training.loop.train`).

    Returns:
        The :class:`~lftutor.training.loop.History` (its ``loss`` is the tempered loss while
        :math:`\beta < 1`).
    """
    callbacks = list(callbacks)
    action = potential
    if anneal:
        action = Annealed(potential)
        callbacks.insert(0, AnnealSchedule(action, fraction=anneal, steps=steps, time_budget=time_budget))
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr, foreach=True)
    return train(flow, action, steps=steps, time_budget=time_budget, batch_size=batch_size,
                 optimizer=optimizer, lr_schedule=cosine_schedule, ess_every=10,
                 num_threads=num_threads, callbacks=callbacks, history=history, clock=clock)


def fit_data(flow, data, *, steps: int | None = None, time_budget: float | None = None,
             batch_size: int = 256, lr: float = 5e-3, callbacks=(), num_threads: int | None = None,
             generator: torch.Generator | None = None) -> History:
    r"""Maximum likelihood: minimise :math:`-\frac1N\sum_i \log q(x_i)` over minibatches of ``data``.

    Args:
        data: a tensor ``(n, 2)`` or a function ``n -> (n, 2)`` drawing fresh samples.
    """
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr, foreach=True)
    return train(flow, data=data, steps=steps, time_budget=time_budget, batch_size=batch_size,
                 optimizer=optimizer, lr_schedule=cosine_schedule, num_threads=num_threads,
                 callbacks=callbacks, generator=generator)


@torch.no_grad()
def mean_nll(flow, x: torch.Tensor, *, batch_size: int = 8192) -> float:
    r""":math:`-\frac1N\sum_i\log q(x_i)` in nats, ``x`` of shape ``(N, 2)``."""
    total = 0.0
    for chunk in x.split(batch_size):
        total -= flow.log_prob(chunk).double().sum().item()
    return total / x.shape[0]


def ess_from(flow, potential, *, n_samples: int = 8192) -> float:
    """ESS per sample of ``n_samples`` fresh samples (reweighting to :math:`e^{-U}`)."""
    from lftutor.training.loop import evaluate

    return evaluate(flow, potential, n_samples=n_samples)["ess"]




def warm_up() -> None:
    """Take one Adam step on a dummy parameter, so a timed training does not pay torch's one-time
    import of its compiler stack at the first optimiser step (seconds on a busy machine)."""
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=1e-3, foreach=True)
    p.sum().backward()
    opt.step()


class KLTracker(Callback):
    """Record the exact reverse KL (:func:`lftutor.toy2d.targets.exact_kl`) every ``every`` steps.

    Attributes:
        steps, kls: lists, filled during training (also at the last step).
    """

    def __init__(self, target, *, every: int = 50, n_samples: int = 4096):
        self.target, self.every, self.n_samples = target, every, n_samples
        self.flow = None
        self.steps: list[int] = []
        self.kls: list[float] = []

    def bind(self, flow) -> KLTracker:
        """Set the flow whose KL is tracked; returns ``self``."""
        self.flow = flow
        return self

    def _record(self, step: int) -> None:
        from lftutor.toy2d.targets import exact_kl

        was_training = self.flow.training
        self.flow.eval()
        self.steps.append(step)
        self.kls.append(exact_kl(self.flow, self.target, n_samples=self.n_samples)["kl"])
        self.flow.train(was_training)

    def on_step(self, history: History) -> None:
        if self.flow is not None and history.step[-1] % self.every == 0:
            self._record(history.step[-1])

    def on_train_end(self, history: History) -> None:
        if self.flow is not None and history.step and (not self.steps or self.steps[-1] != history.step[-1]):
            self._record(history.step[-1])


__all__ = ["AnnealSchedule", "Annealed", "KLTracker", "ess_from", "fit_data", "fit_reverse_kl",
           "mean_nll", "warm_up"]
