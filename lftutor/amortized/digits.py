r"""The 8x8 handwritten digits of scikit-learn (``load_digits``, 1,797 images, bundled: no download),
binarized once with a fixed seed and split once into a fixed training and test set.

Each pixel holds an intensity :math:`v\in\{0,\dots,16\}`. We draw one binary image
:math:`x_i\sim\mathrm{Bernoulli}(v_i/16)` per digit with a fixed generator, so that the
likelihood of the VAE, :math:`p(x\mid z) = \prod_i \mathrm{Bern}(x_i;\,\pi_i(z))`, is a proper
probability of discrete data and :math:`\log p(x)\le 0` is comparable between models and runs.

Example:
    >>> split = load_digits_split()
    >>> split.train.shape, split.test.shape, split.train.dtype
    (torch.Size([1497, 64]), torch.Size([300, 64]), torch.float32)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

N_TEST = 300
IMAGE_SHAPE = (8, 8)
N_PIXELS = 64


@dataclass(frozen=True)
class DigitsSplit:
    """Binarized digits, flattened to 64 pixels, and their labels.

    Attributes:
        train: ``(1497, 64)`` float tensor of 0s and 1s.
        test: ``(300, 64)`` float tensor of 0s and 1s.
        train_labels, test_labels: ``(n,)`` int64 digit classes 0-9.
        train_intensity, test_intensity: ``(n, 64)`` the grey levels ``v / 16`` in [0, 1].
    """

    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor
    test_labels: torch.Tensor
    train_intensity: torch.Tensor
    test_intensity: torch.Tensor


@lru_cache(maxsize=4)
def _load(seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    intensity = digits.data.astype(np.float64) / 16.0  # (1797, 64) in [0, 1]
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    binary = (rng.random(intensity.shape) < intensity).astype(np.float32)
    order = rng.permutation(len(labels))
    test, train = order[:N_TEST], order[N_TEST:]
    return binary, intensity.astype(np.float32), labels, train, test


def load_digits_split(seed: int = 0, *, dtype: torch.dtype = torch.float32) -> DigitsSplit:
    """The binarized digits and the fixed split (300 test images, 1,497 training images).

    Args:
        seed: seed of the binarization and of the split; keep the default 0 to compare with the
            course's numbers (a different seed is a different data set).
        dtype: floating dtype of the images.

    Returns:
        A :class:`DigitsSplit`; the same tensors for the same seed, on every machine.
    """
    binary, intensity, labels, train, test = _load(int(seed))

    def t(a):
        return torch.as_tensor(a).to(dtype)

    return DigitsSplit(train=t(binary[train]), test=t(binary[test]),
                       train_labels=torch.as_tensor(labels[train]),
                       test_labels=torch.as_tensor(labels[test]),
                       train_intensity=t(intensity[train]), test_intensity=t(intensity[test]))
