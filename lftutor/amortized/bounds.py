r"""Bounds on :math:`\log p(x)` for a latent-variable model: the ELBO and the importance-sampled
(IWAE) estimate, both from log-weights :math:`\log w = \log p(x, z) - \log q(z\mid x)`.

.. math::
    \mathrm{ELBO}(x) = E_{q}[\log w] \;\le\;
    \mathcal L_K(x) = E_{z_{1..K}\sim q}\Big[\log\frac1K\sum_{k=1}^K w_k\Big] \;\le\; \log p(x),

and :math:`\mathcal L_K` increases with :math:`K` towards :math:`\log p(x)` (Burda et al.,
arXiv:1509.00519). With :math:`K = 1000` or more samples per image it is the usual estimate of
the held-out log-likelihood (Rezende & Mohamed, arXiv:1505.05770, sec. 6.2). The average is
taken in log space, :math:`\log\frac1K\sum_k e^{\log w_k} = \operatorname{logsumexp}_k\log w_k
- \log K`: the weights themselves (:math:`e^{-40}` and smaller for digits) underflow.
"""

from __future__ import annotations

import math

import torch


def log_mean_exp(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    r""":math:`\log\frac1K\sum_k e^{a_k}` along ``dim`` (size :math:`K`), without overflow or underflow.

    Example:
        >>> log_mean_exp(torch.tensor([[-1000.0], [-1000.0]])).item()
        -1000.0
    """
    if not isinstance(log_w, torch.Tensor) or log_w.dim() == 0:
        raise ValueError(f"expected a tensor with a sample dimension, got {log_w!r}")
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def elbo(log_p_xz: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    r"""Monte-Carlo ELBO per data point: :math:`\frac1n\sum_s[\log p(x, z_s) - \log q(z_s\mid x)]`.

    Args:
        log_p_xz, log_q: ``(n_samples, batch)``, one row per posterior sample.

    Returns:
        ``(batch,)``.
    """
    if log_p_xz.shape != log_q.shape or log_q.dim() != 2:
        raise ValueError(f"expected log_p_xz and log_q of the same shape (n_samples, batch), "
                         f"got {tuple(log_p_xz.shape)} and {tuple(log_q.shape)}")
    return (log_p_xz - log_q).mean(0)


#: decoder evaluations drawn at once by :func:`iwae_log_likelihood` (about 90 MB for the 40-D VAEs)
MAX_EVALUATIONS = 25_000


@torch.no_grad()
def iwae_log_likelihood(model, x: torch.Tensor, *, k: int = 1000, chunk: int | None = None,
                        generator_seed: int | None = None) -> torch.Tensor:
    r"""Importance-sampled :math:`\log p(x)` per image, :math:`\mathcal L_K` with ``k`` samples each.

    Args:
        model: has ``log_weights(x, n) -> (n, batch)`` (:meth:`lftutor.amortized.vae.VAE.log_weights`).
        x: ``(batch, n_pixels)``.
        k: samples per image (the bound tightens as ``k`` grows).
        chunk: samples drawn at once (memory: ``chunk * batch`` decoder evaluations); default
            ``MAX_EVALUATIONS // batch`` (300 test images at 250 samples at once had raised unit 9's
            peak memory by 265 MB, near Binder's 1 GB).
        generator_seed: seed torch's global generator first (reproducible estimates).

    Returns:
        ``(batch,)`` float64 estimates of :math:`\log p(x)`; see :func:`mean_and_stderr`.
    """
    if chunk is None:
        chunk = max(1, MAX_EVALUATIONS // max(1, x.shape[0]))
    if k < 1 or chunk < 1:
        raise ValueError(f"expected positive k and chunk, got k={k}, chunk={chunk}")
    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    parts = []
    done = 0
    while done < k:
        n = min(chunk, k - done)
        parts.append(torch.logsumexp(model.log_weights(x, n).to(torch.float64), dim=0))
        done += n
    return torch.logsumexp(torch.stack(parts), dim=0) - math.log(k)


def mean_and_stderr(values: torch.Tensor) -> tuple[float, float]:
    """Mean over images and its standard error :math:`s/\\sqrt N` (``(N,)`` -> two floats)."""
    values = values.detach().to(torch.float64).flatten()
    n = values.numel()
    if n < 2:
        raise ValueError(f"expected at least two values for a standard error, got {n}")
    return values.mean().item(), (values.std() / math.sqrt(n)).item()
