"""Plots for unit 7: true against learned densities, samples layer by layer, KDEs, data fits.

Every function returns the matplotlib figure; axes are labelled and titles say what to look at.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lftutor.toy2d.targets import Target2D, grid


@torch.no_grad()
def density_on_grid(log_density, box: tuple[float, float], n: int = 200, *,
                    dtype: torch.dtype = torch.float32) -> np.ndarray:
    """``exp(log_density(x))`` on the ``n x n`` midpoint grid of ``box``; shape ``(n, n)`` (rows: x2)."""
    pts, _ = grid(box, n, dtype=torch.float64)
    values = torch.cat([log_density(chunk.to(dtype)).double() for chunk in pts.split(1 << 14)])
    return values.exp().reshape(n, n).numpy()


def _flow_dtype(flow) -> torch.dtype:
    param = next(flow.parameters(), None)
    return param.dtype if param is not None else torch.float32


def _show(ax, dens, box, title):
    ax.imshow(dens, origin="lower", extent=(*box, *box), cmap="viridis", aspect="equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)


def plot_true_vs_learned(target: Target2D, flow, *, n: int = 200, box=None, title: str | None = None):
    r"""Left: the normalised target :math:`e^{-U}/Z`; right: the flow's :math:`q` (through ``log_prob``)."""
    import matplotlib.pyplot as plt

    box = target.box if box is None else box
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=100)
    dtype = _flow_dtype(flow)
    _show(axes[0], density_on_grid(target.log_prob, box, n, dtype=torch.float64), box,
          f"target {target.name}: $e^{{-U}}/Z$")
    _show(axes[1], density_on_grid(flow.log_prob, box, n, dtype=dtype), box, "flow: $q(x)$")
    fig.suptitle(title or "Does the flow put its mass where the target does?")
    fig.tight_layout()
    return fig


@torch.no_grad()
def samples_per_layer(flow, n: int = 1000, *, generator: torch.Generator | None = None
                      ) -> list[np.ndarray]:
    """Samples of the prior and after each layer: a list of ``len(flow.layers) + 1`` arrays ``(n, 2)``."""
    dtype = _flow_dtype(flow)
    z = torch.randn(n, 2, generator=generator, dtype=torch.float64).to(dtype)
    out = [z.double().numpy()]
    for layer in flow.layers:
        z, _ = layer(z)
        out.append(z.double().numpy())
    return out


def plot_layer_samples(flow, *, n: int = 1000, ncols: int = 6, max_panels: int = 18, box=(-5, 5),
                       generator: torch.Generator | None = None):
    """Small multiples: the samples after each layer, coloured by their radius in the prior.

    Points that start close to each other keep their colour, so the panels show how each layer
    moves, stretches and folds the Gaussian. With many layers, ``max_panels`` evenly spaced ones.
    """
    import matplotlib.pyplot as plt

    stages = samples_per_layer(flow, n, generator=generator)
    radius = np.linalg.norm(stages[0], axis=1)
    idx = np.unique(np.linspace(0, len(stages) - 1, min(max_panels, len(stages))).round().astype(int))
    ncols = min(ncols, len(idx))
    nrows = math.ceil(len(idx) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.2 * nrows + 0.4), dpi=100,
                             squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat[len(idx):]:
        ax.set_visible(False)
    for ax, k in zip(axes.flat, idx, strict=False):
        ax.scatter(stages[k][:, 0], stages[k][:, 1], c=radius, s=2, cmap="plasma", vmin=0, vmax=3)
        ax.set_title("prior" if k == 0 else f"after layer {k}", fontsize=9)
        ax.set_xlim(*box)
        ax.set_ylim(*box)
        ax.set_aspect("equal")
    for ax in axes[-1]:
        ax.set_xlabel("$x_1$")
    for ax in axes[:, 0]:
        ax.set_ylabel("$x_2$")
    fig.suptitle("Samples after each layer, coloured by their starting radius |z|")
    fig.tight_layout()
    return fig


def plot_layer_kdes(flow, *, n: int = 500, max_panels: int = 6, box=(-5, 5),
                    generator: torch.Generator | None = None):
    """Seaborn KDE plots of the samples after a few intermediate layers (first: the prior)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    stages = samples_per_layer(flow, n, generator=generator)
    idx = np.unique(np.linspace(0, len(stages) - 1, min(max_panels, len(stages))).round().astype(int))
    fig, axes = plt.subplots(1, len(idx), figsize=(2.6 * len(idx), 2.9), dpi=100, squeeze=False,
                             sharex=True, sharey=True)
    for ax, k in zip(axes[0], idx, strict=True):
        sns.kdeplot(x=stages[k][:, 0], y=stages[k][:, 1], fill=True, levels=30, cmap="viridis",
                    thresh=0.02, ax=ax)
        ax.set_title("prior" if k == 0 else f"after {k} layer{'s' if k > 1 else ''}", fontsize=9)
        ax.set_xlim(*box)
        ax.set_ylim(*box)
        ax.set_aspect("equal")
        ax.set_xlabel("$x_1$")
    axes[0, 0].set_ylabel("$x_2$")
    fig.suptitle("Kernel density estimates of the intermediate flows")
    fig.tight_layout()
    return fig


def plot_data_density(flow, data: torch.Tensor, *, box=(-4, 4), n: int = 200, max_points: int = 1000,
                      title: str = "Density learned by maximum likelihood, with the data"):
    """A data-trained flow's density map (left) and the same map with the data on top (right)."""
    import matplotlib.pyplot as plt

    dens = density_on_grid(flow.log_prob, box, n, dtype=_flow_dtype(flow))
    pts = data[:max_points].detach().double().numpy()
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=100)
    _show(axes[0], dens, box, "flow: $q(x)$")
    _show(axes[1], dens, box, "$q(x)$ and training points")
    axes[1].scatter(pts[:, 0], pts[:, 1], s=2, c="white", alpha=0.6)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_kl_curve(steps, kls, *, title: str = "Exact reverse KL during training"):
    """The exact KL (nats, log scale) against the training step."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.semilogy(steps, kls, marker="o", ms=3)
    ax.set_xlabel("training step")
    ax.set_ylabel("KL(q || p) [nats]")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_samples_vs_target(target: Target2D, samples_by_name: dict, *, n: int = 200, box=None,
                           title: str = "Samples of each flow on the target's contours"):
    """One panel per entry of ``samples_by_name`` (``name -> (N, 2)`` samples) on the target's contours."""
    import matplotlib.pyplot as plt

    box = target.box if box is None else box
    dens = density_on_grid(target.log_prob, box, n, dtype=torch.float64)
    t = np.linspace(*box, n + 1)
    mid = 0.5 * (t[1:] + t[:-1])
    fig, axes = plt.subplots(1, len(samples_by_name), figsize=(4 * len(samples_by_name), 4), dpi=100,
                             squeeze=False)
    for ax, (name, s) in zip(axes[0], samples_by_name.items(), strict=True):
        s = np.asarray(s.detach().double() if torch.is_tensor(s) else s)
        ax.contour(mid, mid, dens, levels=8, cmap="Greys")
        ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.4)
        ax.set_xlim(*box)
        ax.set_ylim(*box)
        ax.set_aspect("equal")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
