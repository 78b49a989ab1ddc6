r"""Training a flow by minimising the reverse KL divergence (arXiv:2101.08176, sec. 4).

The loop returns a :class:`History` and reports to callbacks; live plots and progress bars are
callbacks (see :mod:`lftutor.training.live`), not code inside the loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import torch

from lftutor._checks import check_positive_int
from lftutor.training.metrics import acceptance_rate, ess, log_weights, reverse_kl

__all__ = ["Callback", "History", "TrainingDiverged", "cosine_schedule", "evaluate",
           "path_gradient_loss", "train"]


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message names the step."""


@dataclass
class History:
    """Per-step record of a training run (lists of equal length, one entry per step).

    Attributes:
        step: global step number (continues across calls that pass the same history).
        loss: reverse-KL loss of the batch.
        ess: ESS of the batch (``nan`` on steps where it was not computed).
        logw_mean, logw_std: mean and standard deviation of the batch's log-weights.
        seconds: wall time since the start of this call to :func:`train`.
        lr: learning rate used for the step.
        objective: what ``loss`` is: ``"reverse_kl"`` (the reverse-KL loss, up to log Z),
            ``"nll"`` (mean negative log-likelihood of data) or ``"custom"`` (a ``loss_fn``).
        time_budget, steps_budget: the budgets of the current call to :func:`train` (``None`` when
            not set), so that callbacks such as a progress bar can show elapsed against budget.
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    ess: list[float] = field(default_factory=list)
    logw_mean: list[float] = field(default_factory=list)
    logw_std: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    objective: str = "reverse_kl"
    time_budget: float | None = None
    steps_budget: int | None = None

    def __len__(self) -> int:
        return len(self.step)

    def as_dict(self) -> dict[str, list]:
        """The per-step lists (not the run's settings ``objective`` and the budgets)."""
        return {k: v for k, v in asdict(self).items() if isinstance(v, list)}


class Callback:
    """Base class for training callbacks; override what you need. All return ``None``."""

    def on_train_begin(self, history: History) -> None: ...

    def on_step(self, history: History) -> None: ...

    def on_train_end(self, history: History) -> None: ...


def _as_callback(cb) -> Callback:
    if isinstance(cb, Callback):
        return cb
    if callable(cb):  # a plain function is called after every step
        wrapper = Callback()
        wrapper.on_step = cb  # type: ignore[method-assign]
        return wrapper
    raise ValueError(f"expected a Callback or a callable(history), got {type(cb).__name__}")


def cosine_schedule(progress: float) -> float:
    """Learning-rate factor that decays from 1 to 0.05 along a half cosine, ``progress`` in [0, 1]."""
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def train(flow, action: Callable[[torch.Tensor], torch.Tensor] | None = None, *,
          data: torch.Tensor | Callable[[int], torch.Tensor] | None = None,
          loss_fn: Callable | None = None, steps: int | None = None,
          time_budget: float | None = None, batch_size: int = 64, lr: float = 1e-3,
          optimizer: torch.optim.Optimizer | None = None,
          lr_schedule: Callable[[float], float] | None = None, ess_every: int = 1,
          num_threads: int | None = None, gradient: str = "reparam", callbacks: Iterable = (),
          history: History | None = None, generator: torch.Generator | None = None,
          clock: Callable[[], float] = time.perf_counter) -> History:
    r"""Train ``flow`` with Adam on one of three objectives; returns the :class:`History`.

    * ``action=S`` (**reverse KL**, variational inference; the lattice units): each step draws
      ``batch_size`` samples :math:`\phi\sim q`, computes
      :math:`\mathcal L = \frac1N\sum_i[\log q(\phi_i) + S(\phi_i)]` and takes one step.
    * ``data=X`` (**forward KL**, maximum likelihood on samples of the target): each step takes a
      random minibatch :math:`x_i` of ``X`` and minimises :math:`-\frac1N\sum_i\log q(x_i)`
      (needs ``flow.log_prob``, i.e. every layer's ``reverse``). ``X`` is a tensor
      ``(n_data, *event_shape)`` or a function ``n -> (n, *event_shape)`` that draws fresh data.
    * ``loss_fn=f`` (**any objective**, e.g. a negative ELBO): ``f(flow, batch_size)`` returns the
      scalar loss, or ``(loss, metrics)`` with a dict of floats/0-dim tensors (an ``"ess"`` entry is
      recorded as the ESS).

    ``history.objective`` says which (``"reverse_kl"``, ``"nll"``, ``"custom"``); ESS and the
    log-weight statistics are ``nan`` where the objective has none.

    Args:
        flow: a :class:`lftutor.Flow` (anything with ``sample(n) -> (phi, log_q)`` for reverse KL,
            ``log_prob(x) -> (batch,)`` for maximum likelihood), or any module for ``loss_fn``.
        action: ``S``, maps ``(batch, *L)`` to ``(batch,)``.
        data: training data for maximum likelihood (see above).
        loss_fn: a custom objective (see above).
        steps: number of optimiser steps; and/or
        time_budget: wall-time budget in seconds (training stops at the first step that ends
            after it). At least one of the two is required; with both, the first reached wins.
        batch_size: samples per step.
        lr: base learning rate for Adam (ignored when ``optimizer`` is given).
        lr_schedule: factor applied to the base rate as a function of progress in [0, 1]
            (fraction of steps or of the time budget), e.g. :func:`cosine_schedule`.
        ess_every: compute the batch ESS every this many steps (it costs a little).
        num_threads: torch's CPU threads during training, restored afterwards (``None``: keep).
        gradient: the reverse-KL gradient estimator. ``"reparam"``: differentiate the loss through
            the sample and through :math:`\log q` alike (the tutorial's). ``"path"``: the *path
            gradient* (:func:`path_gradient_loss`), which has the same mean and vanishes sample
            by sample when :math:`q = p`, so its noise dies out as training converges
            (arXiv:1703.09194, arXiv:2207.08219). It costs one reverse pass more per step.
        callbacks: :class:`Callback` objects or plain ``f(history)`` functions.
        history: continue an earlier run's history (steps keep counting).
        generator: random generator for the minibatch indices of ``data``.
        clock: what ``time_budget`` and ``history.seconds`` are measured on: wall time
            (``time.perf_counter``, the default), or e.g. ``time.process_time``, this process's
            CPU seconds, which other jobs on a shared machine do not eat into (benchmarks).

    Returns:
        The :class:`History`.

    Raises:
        TrainingDiverged: the loss became NaN or infinite (names the step).

    Example:
        >>> model = torch.nn.Linear(1, 1)
        >>> history = train(model, loss_fn=lambda m, n: (m(torch.ones(n, 1)) ** 2).mean(), steps=3)
        >>> history.objective, len(history)
        ('custom', 3)
    """
    objective = _objective(action, data, loss_fn)
    _check_settings(data=data, steps=steps, time_budget=time_budget, batch_size=batch_size,
                    ess_every=ess_every, num_threads=num_threads, gradient=gradient)
    callbacks = [_as_callback(cb) for cb in callbacks]
    history = History() if history is None else history
    history.objective = objective
    history.time_budget, history.steps_budget = time_budget, steps
    if optimizer is None:
        optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    first_step = history.step[-1] + 1 if history.step else 0

    threads_before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    if action is not None:
        step = _reverse_kl_step(flow, action, optimizer, batch_size, gradient, first_step)
    elif data is not None:
        step = _likelihood_step(flow, data, optimizer, batch_size, generator, first_step)
    else:
        step = _custom_step(flow, loss_fn, optimizer, batch_size, first_step)
    # Whatever ends the run (the budget, a TrainingDiverged, an interrupt), the thread count and
    # the learning rate are restored and the callbacks hear the end (a live plot draws its last
    # state, a progress bar closes).
    try:
        flow.train()
        for cb in callbacks:
            cb.on_train_begin(history)
        _run_steps(step, history, optimizer, base_lrs, callbacks, steps=steps,
                   time_budget=time_budget, lr_schedule=lr_schedule, ess_every=ess_every,
                   first_step=first_step, clock=clock)
    finally:
        torch.set_num_threads(threads_before)
        _scale_lr(optimizer, base_lrs, 1.0)
        for cb in callbacks:
            cb.on_train_end(history)
        flow.eval()
    return history


def _objective(action, data, loss_fn) -> str:
    """Which objective the arguments ask for: ``"reverse_kl"``, ``"nll"`` or ``"custom"``."""
    given = [name for name, value in (("action", action), ("data", data), ("loss_fn", loss_fn))
             if value is not None]
    if len(given) != 1:
        raise ValueError("expected exactly one objective: an action S (reverse KL), data= (maximum "
                         f"likelihood) or loss_fn= (custom), got {given or 'none'}")
    if data is not None and not callable(data):
        if not isinstance(data, torch.Tensor) or data.dim() < 2 or data.shape[0] == 0:
            raise ValueError("expected data= a tensor (n_data, *event_shape) with n_data >= 1 or a "
                             f"function n -> samples, got {_describe(data)}")
    return {"action": "reverse_kl", "data": "nll", "loss_fn": "custom"}[given[0]]


def _check_settings(*, data, steps, time_budget, batch_size, ess_every, num_threads, gradient) -> None:
    """The budget and the settings of :func:`train`; ``ValueError`` names the first bad one."""
    if steps is None and time_budget is None:
        raise ValueError("expected steps=N or time_budget=SECONDS (or both), got neither")
    if steps is not None:
        check_positive_int(steps, name="steps")
    if time_budget is not None and not (isinstance(time_budget, (int, float)) and time_budget > 0):
        raise ValueError(f"expected a positive time_budget in seconds, got {time_budget!r}")
    check_positive_int(batch_size, name="batch_size")
    check_positive_int(ess_every, name="ess_every")
    if num_threads is not None:
        check_positive_int(num_threads, name="num_threads")
    if gradient not in ("reparam", "path"):
        raise ValueError(f"expected gradient='reparam' or 'path', got {gradient!r}")


def _scale_lr(optimizer, base_lrs: list[float], factor: float) -> None:
    for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
        group["lr"] = base * factor


def _run_steps(step, history: History, optimizer, base_lrs: list[float], callbacks: list[Callback], *,
               steps, time_budget, lr_schedule, ess_every: int, first_step: int, clock) -> None:
    """Take steps until the first budget is reached, recording each in ``history``."""
    start = clock()
    i = 0
    while True:
        elapsed = clock() - start
        progress = max(i / steps if steps else 0.0,
                       elapsed / time_budget if time_budget else 0.0)
        if (steps is not None and i >= steps) or (time_budget is not None and elapsed >= time_budget):
            break
        _scale_lr(optimizer, base_lrs, lr_schedule(progress) if lr_schedule is not None else 1.0)
        stats = step(i % ess_every == 0)
        history.step.append(first_step + i)
        history.loss.append(stats[0])
        history.ess.append(stats[1])
        history.logw_mean.append(stats[2])
        history.logw_std.append(stats[3])
        history.seconds.append(clock() - start)
        history.lr.append(optimizer.param_groups[0]["lr"])
        for cb in callbacks:
            cb.on_step(history)
        i += 1


_NAN = float("nan")


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def _diverged(value: float, step: int) -> TrainingDiverged:
    return TrainingDiverged(
        f"the loss became {value} at step {step}: the flow produced values where q or the target "
        "overflow. Lower the learning rate, use a final tanh in the conditioners, or train in "
        "float64.")


def _reverse_kl_step(flow, action, optimizer, batch_size, gradient, first_step):
    """One reverse-KL step; returns ``[loss, ess, logw_mean, logw_std]`` as floats.

    The statistics are gathered in one tensor and read with a single ``tolist()``: one host-device
    synchronisation per step (each ``.item()`` is one, which a GPU waits for).
    """
    count = [first_step]

    def step(with_ess: bool) -> list[float]:
        phi, log_q = flow.sample(batch_size)
        log_p = -action(phi)
        loss = reverse_kl(log_p, log_q)
        with torch.no_grad():
            lw = log_weights(log_p.detach(), log_q.detach())
            nan = torch.full((), _NAN, dtype=lw.dtype, device=lw.device)
            stats = torch.stack([loss.detach().to(lw.dtype), ess(log_p, log_q) if with_ess else nan,
                                 lw.mean(), lw.std() if lw.numel() > 1 else torch.zeros_like(nan)])
            values = stats.tolist()
        if not math.isfinite(values[0]):
            raise _diverged(values[0], count[0])
        optimizer.zero_grad(set_to_none=True)
        if gradient == "path":
            path_gradient_loss(flow, phi, log_p).backward()
        else:
            loss.backward()
        optimizer.step()
        count[0] += 1
        return values

    return step


def _descend(loss: torch.Tensor, optimizer, count: list[int]) -> float:
    """Check ``loss`` is finite, take one optimiser step on it, count the step; return its value."""
    value = loss.item()
    if not math.isfinite(value):
        raise _diverged(value, count[0])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    count[0] += 1
    return value


def _likelihood_step(flow, data, optimizer, batch_size, generator, first_step):
    """One maximum-likelihood step on a minibatch of ``data``; returns ``[nll, nan, nan, nan]``."""
    count = [first_step]

    def step(with_ess: bool) -> list[float]:
        if callable(data):
            x = data(batch_size)
        else:
            index = torch.randint(data.shape[0], (batch_size,), generator=generator)
            x = data[index.to(data.device)]
        value = _descend(-flow.log_prob(x).mean(), optimizer, count)
        return [value, _NAN, _NAN, _NAN]

    return step


def _custom_step(model, loss_fn, optimizer, batch_size, first_step):
    """One step on ``loss_fn(model, batch_size)``; returns ``[loss, ess or nan, nan, nan]``."""
    count = [first_step]

    def step(with_ess: bool) -> list[float]:
        out = loss_fn(model, batch_size)
        loss, metrics = out if isinstance(out, tuple) else (out, {})
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(f"expected loss_fn to return a scalar tensor (or (loss, metrics)), got "
                             f"{_describe(loss)}")
        value = _descend(loss, optimizer, count)
        return [value, float(metrics.get("ess", _NAN)), _NAN, _NAN]

    return step


def path_gradient_loss(flow, phi: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    r"""A surrogate whose gradient is the path gradient of the reverse KL.

    With :math:`\phi = f_\theta(z)`, the reverse KL :math:`E_z[\log q_\theta(\phi) - \log p(\phi)]`
    has two kinds of dependence on :math:`\theta`: through the sample :math:`\phi` and through
    the density :math:`q_\theta` at a fixed point. The second has zero mean (it is the score,
    :math:`E_q[\nabla_\theta\log q_\theta] = 0`) and only adds noise. The path gradient keeps the
    first alone:

    .. math::
        \nabla_\theta \frac1N\sum_i \big[\log q_{\bar\theta}(f_\theta(z_i))
        - \log p(f_\theta(z_i))\big],\qquad \bar\theta = \theta \text{ held fixed},

    i.e. :math:`\log q` is re-evaluated at the sampled fields through the reverse map with
    detached parameters. When :math:`q = p` the bracket is constant in :math:`\phi`, so every
    sample's gradient is zero (Roeder et al., arXiv:1703.09194; for flows on the lattice,
    Vaitl et al., arXiv:2207.08219).

    Args:
        flow: a :class:`lftutor.Flow` (needs ``log_prob``, i.e. every layer's ``reverse``).
        phi: ``(batch, *L)`` fields drawn by ``flow.sample``, still attached to the graph.
        log_p: ``(batch,)`` unnormalised target log-density of ``phi`` (attached too).

    Returns:
        A scalar to call ``backward()`` on. Its value is the batch's reverse-KL loss, up to the
        round-off of the forward-reverse round trip.
    """
    frozen = {name: t.detach() for name, t in
              [*flow.named_parameters(), *flow.named_buffers()]}
    log_q = torch.func.functional_call(_LogProb(flow), {f"flow.{k}": v for k, v in frozen.items()},
                                       (phi,))
    return (log_q - log_p).mean()


class _LogProb(torch.nn.Module):
    """``forward = flow.log_prob``, so that :func:`torch.func.functional_call` can swap weights."""

    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def forward(self, phi):
        return self.flow.log_prob(phi)


@torch.no_grad()
def evaluate(flow, action, *, n_samples: int = 8192, batch_size: int = 1024,
             generator: torch.Generator | None = None) -> dict[str, float]:
    """ESS, Metropolis acceptance, loss and log-weight statistics on fresh samples, without grad.

    Returns:
        ``{"ess", "acceptance", "loss", "logw_mean", "logw_std", "n_samples"}``.
    """
    check_positive_int(n_samples, name="n_samples")
    check_positive_int(batch_size, name="batch_size")
    log_p, log_q = [], []
    remaining = n_samples
    while remaining > 0:
        phi, lq = flow.sample(min(batch_size, remaining))
        log_p.append(-action(phi))
        log_q.append(lq)
        remaining -= phi.shape[0]
    log_p = torch.cat(log_p).to(torch.float64)
    log_q = torch.cat(log_q).to(torch.float64)
    lw = log_weights(log_p, log_q)
    return {
        "ess": ess(log_p, log_q).item(),
        "acceptance": acceptance_rate(log_p, log_q, generator=generator),
        "loss": reverse_kl(log_p, log_q).item(),
        "logw_mean": lw.mean().item(),
        "logw_std": lw.std().item(),
        "n_samples": n_samples,
    }
