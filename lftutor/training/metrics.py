r"""Figures of merit of a flow against an unnormalised target :math:`p \propto e^{-S}`.

All functions take ``log_p`` (that is :math:`-S`) and ``log_q`` of shape ``(batch,)`` for the
same batch of flow samples.
"""

from __future__ import annotations

import math

import torch

from lftutor._checks import check_batch

__all__ = ["acceptance_rate", "ess", "log_weights", "reverse_kl"]


def _check_pair(log_p: torch.Tensor, log_q: torch.Tensor) -> None:
    check_batch(log_p, name="log_p")
    check_batch(log_q, name="log_q")
    if log_p.shape != log_q.shape:
        raise ValueError(f"expected log_p and log_q of the same shape (batch,), got "
                         f"{tuple(log_p.shape)} and {tuple(log_q.shape)}")


def log_weights(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    r"""Log importance weights :math:`\log w_i = \log p(\phi_i) - \log q(\phi_i)`, ``(batch,)``.

    With :math:`\log p = -S` they exceed the normalised log-weights by :math:`\log Z`, which cancels in
    every self-normalised quantity (ESS, acceptance, reweighted averages).
    """
    _check_pair(log_p, log_q)
    return log_p - log_q


def reverse_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    r"""Monte-Carlo reverse KL loss :math:`\frac1N\sum_i[\log q(\phi_i) - \log p(\phi_i)]`.

    For samples :math:`\phi_i\sim q` this estimates :math:`D_{KL}(q\|p) - \log Z`; the offset
    does not depend on the flow, so minimising it minimises the KL divergence.

    Returns:
        A scalar tensor (differentiable).
    """
    _check_pair(log_p, log_q)
    return (log_q - log_p).mean()


def ess(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    r"""Normalised effective sample size of importance weights, in :math:`[1/N, 1]`.

    .. math::
        \mathrm{ESS} = \frac{\big(\frac1N\sum_i w_i\big)^2}{\frac1N\sum_i w_i^2}
        = \frac1N \exp\big(2\,\mathrm{LSE}(\log w) - \mathrm{LSE}(2\log w)\big)

    Computed with log-sum-exp, so log-weights of any size (e.g. :math:`\pm 10^4`) are safe.

    Returns:
        A scalar tensor (no gradient).
    """
    lw = log_weights(log_p, log_q).detach()
    # ESS is invariant under a shift of log w; shifting by the max keeps float32 precise when
    # the log-weights are large (e.g. the unknown log Z offset is in the thousands).
    lw = lw - lw.max()
    n = lw.shape[0]
    return torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0) - math.log(n))


def acceptance_rate(log_p: torch.Tensor, log_q: torch.Tensor, *,
                    generator: torch.Generator | None = None) -> float:
    r"""Acceptance rate of an independence Metropolis chain run over the batch in order.

    Proposal :math:`\phi'` replaces the current :math:`\phi` with probability
    :math:`\min\big(1, w(\phi')/w(\phi)\big)`, :math:`w = p/q` (arXiv:1904.12072, eq. 9).
    The first sample starts the chain, so ``N - 1`` proposals are counted.
    """
    lw = log_weights(log_p, log_q).detach().to(torch.float64).cpu()
    if lw.shape[0] < 2:
        raise ValueError(f"expected at least 2 samples to run a chain, got {lw.shape[0]}")
    u = torch.rand(lw.shape[0], dtype=torch.float64, generator=generator)
    current, accepted = lw[0].item(), 0
    for i in range(1, lw.shape[0]):
        if math.log(u[i].item()) < lw[i].item() - current:
            current, accepted = lw[i].item(), accepted + 1
    return accepted / (lw.shape[0] - 1)
