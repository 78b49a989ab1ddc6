"""Plots of unit 9: digits, latent spaces, decoded manifolds, posteriors, training curves, and the
amortized flow over the ring family. Each function returns its matplotlib figure."""

from __future__ import annotations

import numpy as np
import torch

from lftutor.amortized.bounds import log_mean_exp
from lftutor.amortized.vae import bernoulli_log_likelihood
from lftutor.bijections.conditional import standard_normal_log_prob


def show_digits(images, labels=None, *, n: int = 12, title: str = ""):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(1.1 * n, 1.5))
    for i, ax in enumerate(axes):
        ax.imshow(np.asarray(images[i]).reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if labels is not None:
            ax.set_title(str(int(labels[i])), fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


@torch.no_grad()
def posterior_means(model, x, n_samples: int = 20) -> torch.Tensor:
    """Mean of ``n_samples`` posterior samples per image, ``(batch, D)`` (for flow posteriors the mean
    of :math:`q_K` is not :math:`\\mu`)."""
    z, _ = model.sample_posterior(x, n_samples)
    return z.mean(0)


def plot_latent_space(model, x, labels, *, ax=None, title: str = ""):
    """Posterior means of ``x`` in a 2-D latent space, coloured by digit."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.6))
    z = posterior_means(model, x).numpy()
    sc = ax.scatter(z[:, 0], z[:, 1], c=np.asarray(labels), cmap="tab10", s=8, vmin=-0.5, vmax=9.5)
    ax.figure.colorbar(sc, ax=ax, ticks=range(10), label="digit")
    ax.set(xlabel="$z_1$", ylabel="$z_2$", title=title or "Test images in latent space")
    return ax.figure


@torch.no_grad()
def plot_decoded_manifold(model, *, n: int = 15, extent: float = 2.5, ax=None, title: str = ""):
    """Decoded pixel probabilities on an ``n x n`` grid of latent points (2-D latent only)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5.5))
    t = torch.linspace(-extent, extent, n)
    canvas = np.zeros((8 * n, 8 * n))
    for i, z2 in enumerate(reversed(t)):  # top row = largest z2
        z = torch.stack([t, torch.full_like(t, z2)], dim=1)
        imgs = torch.sigmoid(model.decode(z)).reshape(n, 8, 8).numpy()
        for j in range(n):
            canvas[8 * i:8 * i + 8, 8 * j:8 * j + 8] = imgs[j]
    ax.imshow(canvas, cmap="gray_r", extent=(-extent, extent, -extent, extent))
    ax.set(xlabel="$z_1$", ylabel="$z_2$", title=title or "Decoded images over the latent plane")
    return ax.figure


@torch.no_grad()
def true_posterior_on_grid(model, x, *, extent: float = 4.0, n: int = 120) -> tuple[np.ndarray, float]:
    """:math:`p(z\\mid x)` of a 2-D-latent model on an ``n x n`` grid (normalised there) and
    :math:`\\log p(x)` from the same grid. ``x``: ``(64,)``."""
    t = torch.linspace(-extent, extent, n)
    zz = torch.stack(torch.meshgrid(t, t, indexing="xy"), -1).reshape(-1, 2)
    log_joint = bernoulli_log_likelihood(model.decode(zz), x[None]) + standard_normal_log_prob(zz)
    h2 = float((t[1] - t[0]) ** 2)
    log_px = torch.logsumexp(log_joint, 0).item() + np.log(h2)
    dens = torch.exp(log_joint - log_px).reshape(n, n).numpy()
    return dens, log_px


def plot_posteriors(models: dict, x, *, n_samples: int = 400, extent: float = 4.0, title: str = ""):
    """For each image (rows): the image, then per model the exact posterior (shaded, from the grid)
    and samples of the model's :math:`q(z\\mid x)` (dots)."""
    import matplotlib.pyplot as plt

    names = list(models)
    fig, axes = plt.subplots(len(x), len(names) + 1, figsize=(2.8 * (len(names) + 1), 2.6 * len(x)),
                             squeeze=False)
    for r, xi in enumerate(x):
        axes[r, 0].imshow(np.asarray(xi).reshape(8, 8), cmap="gray_r")
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        axes[r, 0].set_title("test image", fontsize=9)
        for c, name in enumerate(names, start=1):
            model, ax = models[name], axes[r, c]
            dens, _ = true_posterior_on_grid(model, xi, extent=extent)
            ax.imshow(dens, origin="lower", extent=(-extent, extent, -extent, extent), cmap="Blues")
            with torch.no_grad():
                z, _ = model.sample_posterior(xi[None], n_samples)
            z = z[:, 0].numpy()
            ax.scatter(z[:, 0], z[:, 1], s=2, color="tab:red", alpha=0.4)
            ax.set(xlim=(-extent, extent), ylim=(-extent, extent))
            ax.set_title(f"{name}: q (dots) vs p(z|x)", fontsize=9)
            if r == len(x) - 1:
                ax.set_xlabel("$z_1$")
            if c == 1:
                ax.set_ylabel("$z_2$")
    fig.suptitle(title or "Posteriors: exact p(z|x) shaded, samples of q(z|x) as dots", fontsize=11)
    fig.tight_layout()
    return fig


def plot_training_curves(curves: dict, *, title: str = ""):
    """Held-out ELBO (dashed) and IWAE log p(x) (solid) against the step, one colour per posterior."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, (name, curve) in enumerate(curves.items()):
        color = f"C{i}"
        ax.plot(curve.steps, curve.elbo, ls="--", color=color, label=f"{name}: ELBO")
        ax.plot(curve.steps, curve.log_likelihood, ls="-", color=color, label=f"{name}: log p(x) (IWAE)")
    ax.set(xlabel="training step", ylabel="nats per test image",
           title=title or "Held-out ELBO and log-likelihood during training")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    lo = min(min(c.elbo[len(c.elbo) // 4:] or c.elbo) for c in curves.values())
    hi = max(max(c.log_likelihood) for c in curves.values())
    ax.set_ylim(lo - 0.5, hi + 0.5)
    return fig


def iwae_versus_k(model, x, ks, *, repeats: int = 20) -> tuple[list[float], list[float]]:
    """Mean and standard error over ``repeats`` of the IWAE bound :math:`\\mathcal L_K` (averaged over the
    images of ``x``) for each ``K`` in ``ks``."""
    means, errs = [], []
    with torch.no_grad():
        for k in ks:
            vals = torch.stack([log_mean_exp(model.log_weights(x, k), 0).mean() for _ in range(repeats)])
            means.append(vals.mean().item())
            errs.append((vals.std() / np.sqrt(repeats)).item() if repeats > 1 else 0.0)
    return means, errs


@torch.no_grad()
def plot_family(flow, thetas, *, extent: float = 4.5, n: int = 150, n_samples: int = 2000, title: str = ""):
    """Top: the targets :math:`e^{-U_\\theta}`; bottom: samples of the amortized :math:`q(z\\mid\\theta)`."""
    import matplotlib.pyplot as plt

    from lftutor.amortized.family import context, ring_energy

    fig, axes = plt.subplots(2, len(thetas), figsize=(2.9 * len(thetas), 5.6), squeeze=False)
    t = torch.linspace(-extent, extent, n, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(t, t, indexing="xy"), -1).reshape(-1, 2)
    for i, theta in enumerate(thetas):
        dens = torch.exp(-ring_energy(zz, float(theta))).reshape(n, n).numpy()
        axes[0, i].imshow(dens, origin="lower", extent=(-extent, extent, -extent, extent), cmap="viridis")
        axes[0, i].set_title(f"target, theta = {theta:g}", fontsize=9)
        z, _ = flow.sample(context(float(theta), n_samples))
        axes[1, i].hist2d(z[:, 0].numpy(), z[:, 1].numpy(), bins=60,
                          range=[[-extent, extent], [-extent, extent]], cmap="viridis")
        axes[1, i].set_title(f"amortized q, theta = {theta:g}", fontsize=9)
        axes[1, i].set_xlabel("$z_1$")
    axes[0, 0].set_ylabel("$z_2$")
    axes[1, 0].set_ylabel("$z_2$")
    fig.suptitle(title or "One conditional flow for the whole family", fontsize=11)
    fig.tight_layout()
    return fig
