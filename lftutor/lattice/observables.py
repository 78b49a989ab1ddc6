r"""Observables of the scalar field on a periodic lattice (arXiv:1904.12072, sec. IV).

Per-configuration quantities take fields of shape ``(batch, *lattice_shape)`` and return
``(batch,)``; ensemble quantities (two-point function, susceptibility) average over the batch.
"""

from __future__ import annotations

import math

import torch

from lftutor._checks import check_field


def magnetization(phi: torch.Tensor) -> torch.Tensor:
    r""":math:`M = \sum_x \phi(x)` per configuration: ``(batch, *L) -> (batch,)``."""
    check_field(phi, name="phi")
    return phi.flatten(1).sum(dim=1)


def two_point(phi: torch.Tensor, *, connected: bool = True) -> torch.Tensor:
    r"""Two-point function averaged over the ensemble and over lattice translations.

    .. math::
        G_c(x) = \frac1V\sum_y \big[\langle\phi(y)\phi(y+x)\rangle
                 - \langle\phi(y)\rangle\langle\phi(y+x)\rangle\big]

    Computed with FFTs (the translation average is a circular autocorrelation).

    Returns:
        ``G(x)`` of shape ``lattice_shape``.
    """
    check_field(phi, name="phi")
    phi = phi.to(torch.float64)
    dims = tuple(range(1, phi.dim()))
    volume = math.prod(phi.shape[1:])
    fk = torch.fft.fftn(phi, dim=dims)
    full = torch.fft.ifftn((fk * fk.conj()).mean(0), dim=tuple(d - 1 for d in dims)).real / volume
    if connected:
        mean = phi.mean(0)
        fm = torch.fft.fftn(mean)
        full = full - torch.fft.ifftn(fm * fm.conj()).real / volume
    return full


def susceptibility(phi: torch.Tensor) -> torch.Tensor:
    r"""Two-point susceptibility
    :math:`\chi_2 = \sum_x G_c(x) = (\langle M^2\rangle - \langle M\rangle^2)/V`."""
    m = magnetization(phi).to(torch.float64)
    volume = math.prod(phi.shape[1:])
    return ((m**2).mean() - m.mean() ** 2) / volume


def ising_energy(g: torch.Tensor) -> torch.Tensor:
    r"""Nearest-neighbour ("Ising") energy :math:`E = \frac1d\sum_\mu G_c(\hat\mu)` from ``G``."""
    d = g.dim()
    unit = [tuple(1 if nu == mu else 0 for nu in range(d)) for mu in range(d)]
    return sum(g[u] for u in unit) / d


def time_slice_correlator(g: torch.Tensor) -> torch.Tensor:
    r"""Zero-momentum correlator :math:`C(t) = \sum_{\vec x} G_c(\vec x, t)`, the last axis as time."""
    return g.reshape(-1, g.shape[-1]).sum(0)


def effective_mass(c: torch.Tensor) -> torch.Tensor:
    r"""Effective pole mass :math:`m(t) = \mathrm{arccosh}\frac{C(t-1)+C(t+1)}{2C(t)}` (periodic ``t``).

    NaN where the argument is below 1 (noise).
    """
    arg = (torch.roll(c, 1) + torch.roll(c, -1)) / (2 * c)
    return torch.where(arg >= 1, torch.acosh(arg.clamp(min=1)), torch.full_like(arg, float("nan")))


def chi2_from_chain(m, volume: int, *, n_chains: int = 1) -> dict[str, float]:
    r""":math:`\chi_2 = (\langle M^2\rangle - \langle M\rangle^2)/V` from a chain of magnetizations.

    The error is a binned jackknife with bins of about :math:`20\,\tau_{\rm int}` (at least 20
    bins), so it accounts for autocorrelation; :math:`\tau_{\rm int}` is that of :math:`M^2`.

    Args:
        m: magnetizations along the chain, shape ``(N,)``, or ``(N, n_chains)`` for parallel
            chains (the chains are concatenated; ``tau_int`` is their average).
        volume: number of lattice sites ``V``.

    Returns:
        ``{"chi2", "chi2_err", "tau_int", "n"}``.
    """
    import numpy as np

    from lftutor.statistics import jackknife, tau_int

    arr = np.asarray(m, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"expected magnetizations of shape (N,) or (N, n_chains), got {arr.shape}")
    tau = float(np.mean([tau_int(arr[:, k] ** 2) for k in range(arr.shape[1])]))
    series = arr.T.reshape(-1)
    bin_size = max(1, min(int(math.ceil(20 * tau)), series.size // 20))
    chi2, err = jackknife(lambda x: (np.mean(x**2) - np.mean(x) ** 2) / volume, series, bin_size=bin_size)
    return {"chi2": chi2, "chi2_err": err, "tau_int": tau, "n": int(series.size)}
