r"""Exact sampling: flow-based independence Metropolis (arXiv:1904.12072) and HMC.

A trained flow :math:`q` is only an approximation of :math:`p \propto e^{-S}`; an accept/reject
step on the log-weights :math:`\log w = \log p - \log q` makes the chain's stationary
distribution exactly :math:`p`, however imperfect :math:`q` is. Hybrid Monte Carlo
(Duane et al. 1987) is the classical baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lftutor._checks import check_field, check_positive_int


@dataclass
class Chain:
    """A Markov chain's output.

    Attributes:
        configs: the chain's configurations, ``(n_samples, *lattice_shape)`` (or observables
            along the chain when an ``observable`` was given: ``(n_samples, ...)``).
        accepted: whether each step accepted its proposal, ``(n_samples,)`` bool.
        acceptance: fraction of accepted proposals.
    """

    configs: torch.Tensor
    accepted: torch.Tensor
    acceptance: float


def metropolis_accept(log_w_current: torch.Tensor, log_w_proposal: torch.Tensor,
                      u: torch.Tensor) -> torch.Tensor:
    r"""The independence-Metropolis test: accept iff :math:`u < \min(1, w'/w)`, in log space.

    Args:
        log_w_current, log_w_proposal: log-weights :math:`\log p - \log q`, any matching shape.
        u: uniform random numbers in (0, 1), same shape.

    Returns:
        Bool tensor: True where the proposal is accepted.
    """
    return torch.log(u) < (log_w_proposal - log_w_current)


@torch.no_grad()
def flow_metropolis(flow, action: Callable[[torch.Tensor], torch.Tensor], n_samples: int, *,
                    batch_size: int = 1024, observable: Callable | None = None,
                    generator: torch.Generator | None = None) -> Chain:
    r"""Independence Metropolis-Hastings with proposals drawn from the flow in batches.

    Proposal :math:`\phi'\sim q` replaces the current :math:`\phi` with probability
    :math:`\min\big(1, \frac{p(\phi')q(\phi)}{p(\phi)q(\phi')}\big)`. The first proposal is
    always accepted (it starts the chain).

    Args:
        flow: has ``sample(n) -> (phi, log_q)``.
        action: ``S``, ``(batch, *L) -> (batch,)``.
        n_samples: length of the chain.
        batch_size: proposals drawn per call to the flow.
        observable: if given, store ``observable(phi)`` (per configuration, leading dim batch)
            instead of the configurations.

    Returns:
        :class:`Chain`.
    """
    check_positive_int(n_samples, name="n_samples")
    check_positive_int(batch_size, name="batch_size")
    out, accepted = [], torch.zeros(n_samples, dtype=torch.bool)
    current_phi, current_lw = None, -math.inf  # -inf: the first proposal is always accepted
    done = 0
    while done < n_samples:
        phi, log_q = flow.sample(min(batch_size, n_samples - done))
        n = phi.shape[0]
        log_w = (-action(phi) - log_q).to(torch.float64).cpu()
        log_u = torch.log(torch.rand(n, dtype=torch.float64, generator=generator))
        # Sequential by nature (each test compares with the current state), but only on
        # scalars; index 0 of `pool` is the state carried over from the previous batch.
        idx = torch.empty(n, dtype=torch.long)
        current = 0
        for i, (lw, lu) in enumerate(zip(log_w.tolist(), log_u.tolist(), strict=True)):
            if lu < lw - current_lw:
                current, current_lw = i + 1, lw
                accepted[done + i] = True
            idx[i] = current
        pool = phi if current_phi is None else torch.cat([current_phi[None], phi])
        if current_phi is None:
            idx -= 1  # no carried state before the first batch (idx 0 never occurs: first accepted)
        chosen = pool[idx.to(pool.device)]
        current_phi = chosen[-1].clone()
        out.append((observable(chosen) if observable is not None else chosen).cpu())
        done += n
    acceptance = accepted[1:].double().mean().item() if n_samples > 1 else 1.0
    return Chain(torch.cat(out), accepted, acceptance)


def phi4_force(phi: torch.Tensor, m2: float, lam: float) -> torch.Tensor:
    r""":math:`\partial S/\partial\phi(x) = 2\sum_\mu[2\phi(x) - \phi(x+\hat\mu) - \phi(x-\hat\mu)]
    + 2m^2\phi(x) + 4\lambda\phi(x)^3` for :class:`lftutor.ScalarPhi4Action`."""
    d = phi.dim() - 1
    nbr = sum(torch.roll(phi, 1, mu) + torch.roll(phi, -1, mu) for mu in range(1, d + 1))
    return 2 * (2 * d * phi - nbr) + 2 * m2 * phi + 4 * lam * phi**3


def _autograd_force(action):
    def force(phi):
        with torch.enable_grad():
            x = phi.detach().requires_grad_(True)
            return torch.autograd.grad(action(x).sum(), x)[0]

    return force


@torch.no_grad()
def hmc(action: Callable[[torch.Tensor], torch.Tensor], phi0: torch.Tensor, n_samples: int, *,
        step_size: float = 0.1, n_leapfrog: int = 10, force: Callable | None = None,
        observable: Callable | None = None, generator: torch.Generator | None = None) -> Chain:
    r"""Hybrid Monte Carlo with the leapfrog integrator, for ``batch`` independent chains at once.

    Each trajectory draws momenta :math:`\pi\sim N(0,1)`, integrates
    :math:`H = \tfrac12\pi^2 + S(\phi)` for ``n_leapfrog`` steps of size ``step_size`` and accepts
    with probability :math:`\min(1, e^{-\Delta H})`.

    Args:
        action: ``S``, ``(batch, *L) -> (batch,)``.
        phi0: starting configurations, ``(n_chains, *L)``.
        n_samples: trajectories per chain.
        force: :math:`\partial S/\partial\phi`; autograd of ``action`` if None (e.g. use
            :func:`phi4_force` for speed).
        observable: store ``observable(phi)`` instead of configurations.

    Returns:
        :class:`Chain` with ``configs`` of shape ``(n_samples, n_chains, ...)`` and
        ``accepted`` of shape ``(n_samples, n_chains)``.
    """
    check_field(phi0, name="phi0")
    check_positive_int(n_samples, name="n_samples")
    check_positive_int(n_leapfrog, name="n_leapfrog")
    if not step_size > 0:
        raise ValueError(f"expected step_size > 0, got {step_size}")
    force = force or _autograd_force(action)
    phi = phi0.clone()
    s_phi = action(phi)
    out, accepted = [], torch.zeros(n_samples, phi.shape[0], dtype=torch.bool)
    for n in range(n_samples):
        pi = torch.randn(phi.shape, dtype=phi.dtype, generator=generator).to(phi.device)
        h0 = 0.5 * (pi**2).flatten(1).sum(1) + s_phi
        x = phi.clone()
        p = pi - 0.5 * step_size * force(x)
        for k in range(n_leapfrog):
            x = x + step_size * p
            if k < n_leapfrog - 1:
                p = p - step_size * force(x)
        p = p - 0.5 * step_size * force(x)
        s_new = action(x)
        h1 = 0.5 * (p**2).flatten(1).sum(1) + s_new
        u = torch.rand(phi.shape[0], dtype=torch.float64, generator=generator).to(phi.device)
        acc = torch.log(u) < -(h1 - h0).to(torch.float64)
        shape = (-1,) + (1,) * (phi.dim() - 1)
        phi = torch.where(acc.view(shape), x, phi)
        s_phi = torch.where(acc, s_new, s_phi)
        accepted[n] = acc.cpu()
        out.append((observable(phi) if observable is not None else phi).cpu())
    return Chain(torch.stack(out), accepted, accepted.double().mean().item())


@torch.no_grad()
def tune_hmc(action: Callable[[torch.Tensor], torch.Tensor], phi0: torch.Tensor, *,
             target: float = 0.8, trajectory_length: float = 1.0, force: Callable | None = None,
             trajectories: int = 40, max_leapfrog: int = 512,
             generator: torch.Generator | None = None) -> dict:
    r"""Leapfrog steps for a target acceptance at a fixed trajectory length.

    The energy error of a leapfrog trajectory grows with the volume at a fixed step size
    (:math:`\langle\Delta H\rangle \propto V\epsilon^4`), so a step that accepts 80 % at
    ``L = 6`` accepts far less at ``L = 14``; comparing autocorrelation times across ``L``
    needs the same acceptance everywhere. The trajectory length is held fixed (the physics of
    one trajectory), and the number of steps is increased by factors of about 1.25 until the
    acceptance of ``trajectories`` trajectories of every chain (after as many for
    thermalization) reaches ``target``.

    Args:
        action, force: as for :func:`hmc`.
        phi0: starting configurations, ``(n_chains, *L)``.
        target: acceptance to reach, in (0, 1).
        trajectory_length: ``step_size * n_leapfrog``, held fixed.

    Returns:
        ``{"step_size", "n_leapfrog", "acceptance", "phi"}`` (``phi``: the thermalized
        configurations, to start the production chain from).
    """
    if not 0 < target < 1:
        raise ValueError(f"expected a target acceptance in (0, 1), got {target}")
    if not trajectory_length > 0:
        raise ValueError(f"expected trajectory_length > 0, got {trajectory_length}")
    n_leapfrog, phi = 2, phi0
    while True:
        step = trajectory_length / n_leapfrog
        chain = hmc(action, phi, 2 * trajectories, step_size=step, n_leapfrog=n_leapfrog,
                    force=force, generator=generator)
        phi = chain.configs[-1]
        acceptance = chain.accepted[trajectories:].double().mean().item()  # after thermalizing
        if acceptance >= target or n_leapfrog >= max_leapfrog:
            return {"step_size": step, "n_leapfrog": n_leapfrog, "acceptance": acceptance,
                    "phi": phi}
        n_leapfrog = max(n_leapfrog + 1, round(n_leapfrog * 1.25))
