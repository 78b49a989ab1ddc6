"""Saving and loading trained VAEs, and the pre-trained 40-D models shipped with the package.

A file holds the constructor arguments and the state dict, weights stored in float16 (the
shipped files stay small; the models are evaluated in float32 after loading, which changes
held-out log-likelihoods by well under 0.01 nats).

The shipped files ``lftutor/weights/vae40_<posterior>.pt`` are made by::

    python -m lftutor train vae --latent 40 --posterior <posterior> --steps 3000 --seed 0 \\
        --save lftutor/weights/vae40_<posterior>.pt

(see ``benchmarks/vae.py`` and ``benchmarks/README.md`` for what they reach).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from lftutor.amortized.vae import VAE


def save_vae(model: VAE, path) -> None:
    config = {"latent_dim": model.latent_dim, "posterior": model.posterior,
              "n_layers": max(model.n_layers, 1), "hidden": model.hidden,
              "iaf_hidden": model.iaf_hidden}
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save({"config": config, "state": state}, path)


def load_vae(path) -> VAE:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = VAE(**blob["config"])
    keys = set(model.state_dict())  # masks of IAF layers are rebuilt by the constructor, not stored
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state"].items()
                           if k in keys})
    model.eval()
    return model


def pretrained_path(posterior: str, latent: int = 40) -> Path:
    return Path(str(resources.files("lftutor") / "weights" / f"vae{latent}_{posterior}.pt"))


def load_pretrained(posterior: str, latent: int = 40) -> VAE:
    """The shipped VAE with this posterior (``"gaussian"``, ``"planar"`` or ``"iaf"``)."""
    path = pretrained_path(posterior, latent)
    if not path.is_file():
        raise FileNotFoundError(f"no pre-trained weights at {path}; make them with the command in "
                                "lftutor.amortized.weights' docstring")
    return load_vae(path)
