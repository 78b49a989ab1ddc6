r"""A variational autoencoder for the binarized 8x8 digits, with three kinds of posterior.

Generative model: :math:`z\sim\mathcal N(0, I_D)`, :math:`x\mid z\sim\prod_{i=1}^{64}
\mathrm{Bern}(x_i;\ \sigma(\ell_i(z)))` with logits :math:`\ell(z)` from a decoder network.

Posterior (amortized: one encoder for every image, Rezende & Mohamed arXiv:1505.05770, sec. 6.2):
the encoder maps :math:`x` to :math:`\mu(x)`, :math:`\log\sigma(x)` and a feature vector
:math:`h(x)`; then

* ``"gaussian"``: :math:`z = \mu + \sigma\odot\epsilon`, :math:`\epsilon\sim\mathcal N(0, I)`;
* ``"planar"``: :math:`z_K = f_K\circ\cdots\circ f_1(z_0)`, with :math:`z_0` the Gaussian sample
  and :math:`K` planar layers whose :math:`(u_k, w_k, b_k)` are linear in :math:`h(x)`
  (:class:`~lftutor.bijections.conditional.ConditionalPlanar`);
* ``"iaf"``: the same with :math:`K` affine autoregressive layers that see :math:`h(x)`
  (arXiv:1606.04934; :class:`~lftutor.bijections.conditional.ConditionalIAF`).

In each case :math:`\log q_K(z_K\mid x) = \log q_0(z_0\mid x) - \sum_k\log|\det\partial f_k/
\partial z_{k-1}|`, and the ELBO is :math:`E_q[\log p(x\mid z_K) + \log p(z_K) - \log q_K(z_K\mid x)]`.

Example:
    >>> model = VAE(latent_dim=2, posterior="planar", n_layers=4)
    >>> x = torch.bernoulli(torch.full((3, 64), 0.3))
    >>> model.log_weights(x, 5).shape
    torch.Size([5, 3])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lftutor.amortized.bounds import elbo as _elbo
from lftutor.amortized.digits import N_PIXELS
from lftutor.bijections.conditional import (
    ConditionalFlow,
    ConditionalIAF,
    ConditionalPlanar,
    standard_normal_log_prob,
)
from lftutor.training.loop import Callback

POSTERIORS = ("gaussian", "planar", "iaf")


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_i [x_i\log\sigma(\ell_i) + (1-x_i)\log(1-\sigma(\ell_i))]` over the last axis."""
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)


class VAE(nn.Module):
    r"""Encoder, posterior flow and Bernoulli decoder for 64-pixel binary images.

    Args:
        latent_dim: :math:`D` (2 to draw the latent space, 40 as in the paper's MNIST runs).
        posterior: ``"gaussian"``, ``"planar"`` or ``"iaf"``.
        n_layers: :math:`K`, layers of the posterior flow (ignored for ``"gaussian"``).
        hidden: width of the two hidden layers of encoder and decoder.
        iaf_hidden: width of the masked layers of each IAF layer.

    The posterior's layers are ``self.flow.layers`` (a
    :class:`~lftutor.bijections.conditional.ConditionalFlow` whose base, unused here, is replaced
    by the encoder's Gaussian :math:`q_0(z_0\mid x)`).

    Shapes:
        ``encode(x)``: ``(batch, 64) -> mu, log_sigma (batch, D), h (batch, hidden)``;
        ``sample_posterior(x, n)``: ``-> z (n, batch, D), log_q (n, batch)``;
        ``log_joint(x, z)``: ``(batch, 64), (n, batch, D) -> (n, batch)``;
        ``log_weights(x, n)``: ``-> (n, batch)``; ``elbo(x, n)``: ``-> (batch,)``.
    """

    def __init__(self, latent_dim: int = 2, posterior: str = "gaussian", *, n_layers: int = 8,
                 hidden: int = 128, iaf_hidden: int = 48):
        super().__init__()
        if posterior not in POSTERIORS:
            raise ValueError(f"expected posterior in {POSTERIORS}, got {posterior!r}")
        self.latent_dim, self.posterior, self.hidden = int(latent_dim), posterior, int(hidden)
        self.iaf_hidden = int(iaf_hidden)
        self.n_layers = 0 if posterior == "gaussian" else int(n_layers)
        D = self.latent_dim
        self.encoder = nn.Sequential(nn.Linear(N_PIXELS, hidden), nn.ELU(),
                                     nn.Linear(hidden, hidden), nn.ELU())
        self.mu = nn.Linear(hidden, D)
        self.log_sigma = nn.Linear(hidden, D)
        if posterior == "planar":
            layers = [ConditionalPlanar(D, hidden) for _ in range(self.n_layers)]
        elif posterior == "iaf":
            layers = [ConditionalIAF(D, hidden, hidden=iaf_hidden, reverse_order=bool(k % 2))
                      for k in range(self.n_layers)]
        else:
            layers = []
        self.flow = ConditionalFlow(D, layers)
        self.decoder = nn.Sequential(nn.Linear(D, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(),
                                     nn.Linear(hidden, N_PIXELS))

    def _check_x(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != N_PIXELS:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected images of shape (batch, {N_PIXELS}), got {got}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self._check_x(x)
        h = self.encoder(x)
        return self.mu(h), self.log_sigma(h), h

    def flow_forward(self, z0: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Push ``z0 (batch, D)`` through the posterior flow with features ``h (batch, hidden)``:
        ``z_K (batch, D)`` and the summed log-dets ``(batch,)``."""
        return self.flow.forward(z0, h)

    def sample_posterior(self, x: torch.Tensor, n: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`n` reparametrized samples :math:`z_K\sim q(\cdot\mid x)` per image, and their log q."""
        mu, log_sigma, h = self.encode(x)
        batch, D = mu.shape
        eps = torch.randn(n, batch, D, dtype=mu.dtype, device=mu.device)
        z0 = mu + torch.exp(log_sigma) * eps
        log_q0 = standard_normal_log_prob(eps) - log_sigma.sum(-1)
        if not self.n_layers:
            return z0, log_q0
        zK, log_det = self.flow_forward(z0.reshape(n * batch, D), h.repeat(n, 1))
        return zK.reshape(n, batch, D), log_q0 - log_det.reshape(n, batch)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(..., 64)`` of the pixels for latents ``(..., D)``."""
        return self.decoder(z)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(x\mid z) + \log p(z)` for ``x (batch, 64)`` and ``z (n, batch, D)``."""
        return bernoulli_log_likelihood(self.decode(z), x) + standard_normal_log_prob(z)

    def log_weights(self, x: torch.Tensor, n: int = 1) -> torch.Tensor:
        r""":math:`\log p(x, z_s) - \log q(z_s\mid x)` for ``n`` posterior samples: ``(n, batch)``."""
        z, log_q = self.sample_posterior(x, n)
        return self.log_joint(x, z) - log_q

    def elbo(self, x: torch.Tensor, n: int = 1) -> torch.Tensor:
        """Monte-Carlo ELBO per image with ``n`` samples, ``(batch,)``; differentiable."""
        z, log_q = self.sample_posterior(x, n)
        return _elbo(self.log_joint(x, z), log_q)


def negative_elbo_loss(intensity: torch.Tensor, *, generator: torch.Generator | None = None):
    r"""A ``loss_fn(model, batch_size) -> (loss, metrics)`` for :func:`lftutor.training.loop.train`:
    the negative ELBO (nats per image) of a random minibatch.

    The minibatch is binarized afresh at every step, :math:`x\sim\mathrm{Bern}(v/16)`, from the
    training images' grey levels ``intensity (N, 64)`` ("dynamic binarization"): with 1,497
    images a fixed binarization is learned by heart within a few thousand steps, while fresh
    draws keep the held-out ELBO improving. The test set stays one fixed binarization.
    """

    def loss_fn(model, batch_size):
        idx = torch.randint(0, intensity.shape[0], (batch_size,), generator=generator)
        x = torch.bernoulli(intensity[idx], generator=generator)
        elbo_per_image = model.elbo(x, 1)
        return -elbo_per_image.mean(), {}

    return loss_fn


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, *, k: int = 1000, elbo_samples: int = 10,
             seed: int = 0) -> dict:
    r"""Held-out ELBO and importance-sampled :math:`\log p(x)` with their standard errors.

    Args:
        model: a trained :class:`VAE`.
        x: ``(N, 64)`` test images.
        k: importance samples per image for :math:`\log p(x)` (:func:`iwae_log_likelihood`).
        elbo_samples: posterior samples per image for the ELBO.
        seed: seed of the sampling (the same seed gives the same numbers).

    Returns:
        ``{"test_elbo", "test_elbo_stderr", "test_log_likelihood", "test_log_likelihood_stderr",
        "iwae_samples", "per_image_log_likelihood" (a list), "per_image_elbo" (a list)}``; the
        standard errors are over images, :math:`s/\sqrt N`.
    """
    from lftutor.amortized.bounds import iwae_log_likelihood, mean_and_stderr

    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    per_elbo = model.elbo(x, elbo_samples).to(torch.float64)
    per_ll = iwae_log_likelihood(model, x, k=k)
    model.train(was_training)
    e, e_se = mean_and_stderr(per_elbo)
    ll, ll_se = mean_and_stderr(per_ll)
    return {"test_elbo": e, "test_elbo_stderr": e_se, "test_log_likelihood": ll,
            "test_log_likelihood_stderr": ll_se, "iwae_samples": k,
            "per_image_log_likelihood": per_ll.tolist(), "per_image_elbo": per_elbo.tolist()}


class HeldOutCurve(Callback):
    """Training callback: every ``every`` steps, the held-out ELBO and IWAE estimate (``k``
    samples) of ``x``; ``.steps``, ``.elbo``, ``.log_likelihood`` are lists (for plots)."""

    def __init__(self, model: VAE, x: torch.Tensor, *, every: int = 250, k: int = 100):
        self.model, self.x, self.every, self.k = model, x, int(every), int(k)
        self.steps: list[int] = []
        self.elbo: list[float] = []
        self.log_likelihood: list[float] = []

    def on_train_begin(self, history) -> None: ...

    def on_step(self, history) -> None:
        step = history.step[-1] + 1
        if step % self.every == 0:
            self.record(step)

    def on_train_end(self, history) -> None:
        step = history.step[-1] + 1 if history.step else 0
        if not self.steps or self.steps[-1] != step:
            self.record(step)

    def record(self, step: int) -> None:
        from lftutor.amortized.bounds import iwae_log_likelihood

        state = torch.get_rng_state()
        with torch.no_grad():
            self.model.eval()
            self.elbo.append(self.model.elbo(self.x, 1).mean().item())
            self.log_likelihood.append(iwae_log_likelihood(self.model, self.x, k=self.k).mean().item())
            self.model.train()
        torch.set_rng_state(state)  # evaluating does not change the training's random stream
        self.steps.append(step)


def train_vae(model: VAE, intensity: torch.Tensor, *, steps: int | None = None,
              time_budget: float | None = None, batch_size: int = 100, lr: float = 1e-3,
              callbacks=(), num_threads: int | None = 1):
    """Train ``model`` on the negative ELBO (:func:`negative_elbo_loss`) with Adam and a cosine
    decay, through the package's loop; returns the :class:`~lftutor.training.loop.History`."""
    from lftutor.training.loop import cosine_schedule, train

    return train(model, loss_fn=negative_elbo_loss(intensity), steps=steps, time_budget=time_budget,
                 batch_size=batch_size, lr=lr, lr_schedule=cosine_schedule, callbacks=callbacks,
                 num_threads=num_threads)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
