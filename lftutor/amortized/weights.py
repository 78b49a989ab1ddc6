"""Saving and loading trained VAEs, and the pre-trained 40-D models shipped with the package.

A file holds the constructor arguments and the state dict, weights stored in float16 (the
shipped files stay small; the models are evaluated in float32 after loading, which changes
held-out log-likelihoods by well under 0.01 nats). Buffers the constructor rebuilds (the MADE
masks and degrees of IAF layers) are not stored.

Files written before the posterior layers moved to :mod:`lftutor.bijections.conditional`
(the shipped ones among them) name the layers' tensors differently; :func:`load_vae` renames
them (:func:`upgrade_state`). The functions are the same: an old IAF layer's two input
matrices (of ``z`` and of the context) are the two column blocks of the MADE's first masked
layer, its two output layers the two halves of the MADE's last one.

The shipped files ``lftutor/weights/vae40_<posterior>.pt`` are made by::

    python -m lftutor train vae --latent 40 --posterior <posterior> --steps 3000 --seed 0 \\
        --save lftutor/weights/vae40_<posterior>.pt

(see ``benchmarks/vae.py`` and ``benchmarks/README.md`` for what they reach).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import torch

from lftutor.amortized.vae import VAE

_REBUILT = (".mask", ".degree")  # buffers that the constructor makes from the configuration


def save_vae(model: VAE, path) -> None:
    """Write ``model``'s configuration and float16 weights to ``path`` (see the module docstring)."""
    config = {"latent_dim": model.latent_dim, "posterior": model.posterior,
              "n_layers": max(model.n_layers, 1), "hidden": model.hidden,
              "iaf_hidden": model.iaf_hidden}
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()
             if not k.endswith(_REBUILT)}
    torch.save({"config": config, "state": state}, path)


_OLD_LAYER = re.compile(r"flow\.(\d+)\.(.+)")


def upgrade_state(state: dict) -> dict:
    """Rename (and for IAF layers, join) the tensors of a file written with the first version of
    the posterior layers (``flow.<k>.net.*`` for planar; ``flow.<k>.l1/l2/out_shift/out_scale/
    context_in.*`` for IAF) to the names of the current model (``flow.layers.<k>.net.0.*``,
    ``flow.layers.<k>.made.net.{0,2,4}.*``); a current state comes back unchanged. Float32 out."""
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    old: dict[int, dict[str, torch.Tensor]] = {}
    new = {}
    for key, value in state.items():
        match = _OLD_LAYER.fullmatch(key)
        if match:
            old.setdefault(int(match.group(1)), {})[match.group(2)] = value
        else:
            new[key] = value
    for k, t in old.items():
        prefix = f"flow.layers.{k}."
        if set(t) == {"net.weight", "net.bias"}:  # planar: the linear map of the context
            new[prefix + "net.0.weight"], new[prefix + "net.0.bias"] = t["net.weight"], t["net.bias"]
        elif "l1.weight" in t:  # IAF: the MADE reads [context, z] in its first layer
            new[prefix + "made.net.0.weight"] = torch.cat([t["context_in.weight"], t["l1.weight"]], dim=1)
            new[prefix + "made.net.0.bias"] = t["l1.bias"] + t["context_in.bias"]
            new[prefix + "made.net.2.weight"], new[prefix + "made.net.2.bias"] = t["l2.weight"], t["l2.bias"]
            new[prefix + "made.net.4.weight"] = torch.cat([t["out_shift.weight"], t["out_scale.weight"]])
            new[prefix + "made.net.4.bias"] = torch.cat([t["out_shift.bias"], t["out_scale.bias"]])
        else:
            raise ValueError(f"expected the tensors of a planar or IAF layer for layer {k}, got {sorted(t)}")
    return new


def load_vae(path) -> VAE:
    """The model saved by :func:`save_vae` (or by the first version, renamed by
    :func:`upgrade_state`), in float32 and evaluation mode. Every parameter must be in the file."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = VAE(**blob["config"])
    state = upgrade_state(blob["state"])
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state and not k.endswith(_REBUILT))
    unexpected = sorted(k for k in state if k not in expected)
    if missing or unexpected:
        raise ValueError(f"expected the tensors of a {blob['config']} VAE in {path}, got "
                         f"missing {missing[:5]} and unexpected {unexpected[:5]}")
    model.load_state_dict({k: state.get(k, v) for k, v in expected.items()})
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
