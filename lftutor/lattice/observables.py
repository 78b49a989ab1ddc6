r"""Observables of the scalar field on a periodic lattice (arXiv:1904.12072, sec. IV).

Per-configuration quantities take fields of shape ``(batch, *lattice_shape)`` and return
``(batch,)``; ensemble quantities (two-point function, susceptibility) average over the batch.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
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


def slice_sums(phi: torch.Tensor) -> torch.Tensor:
    r"""Zero-momentum time slices :math:`s(t) = \sum_{\vec x}\phi(\vec x, t)`, the last axis as
    time: ``(batch, *L) -> (batch, T)``. Their sum over ``t`` is the magnetization; the pole mass
    comes from their correlator (:func:`pole_mass`), so a chain needs to keep only these."""
    check_field(phi, name="phi")
    return phi.flatten(1, -2).sum(1) if phi.dim() > 2 else phi


def _bin_means(x: np.ndarray, bin_size: int) -> np.ndarray:
    """``(N, n_chains, ...) -> (n_bins * n_chains, ...)``: means of ``bin_size`` consecutive
    measurements of each chain (a bin never spans two chains)."""
    n_bins = x.shape[0] // bin_size
    x = x[: n_bins * bin_size].reshape(n_bins, bin_size, *x.shape[1:]).mean(1)
    return np.moveaxis(x, 1, 0).reshape(-1, *x.shape[2:])


def _finite_or_none(x: np.ndarray) -> list:
    """A list for JSON: NaN (undefined) becomes None."""
    return [float(v) if np.isfinite(v) else None for v in x]


def pole_mass(sums, *, bin_size: int | None = None, window: tuple[int, int] | None = None
              ) -> dict:
    r"""Pole mass from a chain of time-slice sums, with binned-jackknife errors.

    The connected zero-momentum correlator, averaged over time translations,
    :math:`C(t) = \frac1T\sum_{t_0}\langle s(t_0)s(t_0+t)\rangle - \bar s^2`, falls like
    :math:`\cosh(m_p(t - T/2))` for large :math:`t` on a periodic lattice, so the effective mass
    :math:`m(t) = \mathrm{arccosh}\frac{C(t-1)+C(t+1)}{2C(t)}` has a plateau at :math:`m_p`
    once excited states have died out. The estimate is the mean of :math:`m(t)` over
    ``window`` (arXiv:1904.12072, sec. IV; the line of constant physics there is
    :math:`m_pL = 4`).

    Args:
        sums: :func:`slice_sums` along the chain, ``(N, T)``, or ``(N, n_chains, T)`` for
            parallel chains (HMC).
        bin_size: measurements per jackknife bin; default about :math:`20\tau_{\rm int}` of
            :math:`M^2` (at least 20 bins), so the error accounts for autocorrelation.
        window: ``(t_min, t_max)``, inclusive; default ``(max(1, T//6), T//2 - 1)``: from where
            excited states have died out (at ``T = 14`` on E5, :math:`m(1)L` is 4.16 but the
            plateau from ``t = 2`` is 4.01) to before the midpoint, where :math:`C` is smallest
            and noisiest.

    Returns:
        ``{"m_p", "m_p_err", "m_eff", "m_eff_err", "window", "bin_size", "n_bins"}``;
        ``m_eff`` for ``t = 0 .. T/2`` (None where :math:`C` is too noisy for the arccosh, and
        at ``t = 0``, where :math:`C(1)/C(0) < 1`).

    Raises:
        ValueError: wrong shape, fewer than 4 time slices, or a window where the effective
            mass is undefined (the chain is too short or the mass too large for this ``T``).
    """
    from lftutor.statistics import tau_int

    x = np.asarray(sums, dtype=float)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or x.shape[-1] < 4:
        raise ValueError(f"expected time-slice sums of shape (N, T) or (N, n_chains, T) with "
                         f"T >= 4, got {tuple(np.shape(sums))}")
    n, chains, t_len = x.shape
    t_min, t_max = window or (max(1, t_len // 6), max(1, t_len // 2 - 1))
    if not 1 <= t_min <= t_max <= t_len // 2:
        raise ValueError(f"expected a window 1 <= t_min <= t_max <= T/2 = {t_len // 2}, "
                         f"got {(t_min, t_max)}")
    if bin_size is None:
        m2 = x.sum(-1) ** 2
        tau = float(np.mean([tau_int(m2[:, k]) for k in range(chains)]))
        bin_size = max(1, min(int(math.ceil(20 * tau)), n * chains // 20, n // 2))
    f = np.fft.rfft(x, axis=-1)
    c = np.fft.irfft(np.abs(f) ** 2, n=t_len, axis=-1) / t_len  # per config, (N, chains, T)
    bins_c = _bin_means(c, bin_size)
    bins_s = _bin_means(x.mean(-1), bin_size)
    n_bins = bins_c.shape[0]
    if n_bins < 2:
        raise ValueError(f"expected at least 2 jackknife bins, got {n_bins} (N={n}, "
                         f"bin_size={bin_size})")

    def masses(cbar: np.ndarray, sbar: float) -> np.ndarray:
        corr = cbar - sbar**2
        with np.errstate(invalid="ignore", divide="ignore"):
            arg = (np.roll(corr, 1) + np.roll(corr, -1)) / (2 * corr)
            return np.where(arg >= 1, np.arccosh(np.maximum(arg, 1)), np.nan)[: t_len // 2 + 1]

    full = masses(bins_c.mean(0), bins_s.mean())
    total_c, total_s = bins_c.sum(0), bins_s.sum()
    jack = np.stack([masses((total_c - bins_c[k]) / (n_bins - 1), (total_s - bins_s[k]) / (n_bins - 1))
                     for k in range(n_bins)])
    window_slice = slice(t_min, t_max + 1)
    if np.isnan(full[window_slice]).any() or np.isnan(jack[:, window_slice]).any():
        raise ValueError(f"the effective mass is undefined (noise) somewhere in t = {t_min}..{t_max}: "
                         f"run a longer chain or choose a smaller window")
    factor = (n_bins - 1) / n_bins
    with warnings.catch_warnings():  # an all-NaN column (noise beyond the window) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        m_eff_err = np.sqrt(factor * np.sum((jack - np.nanmean(jack, 0)) ** 2, 0))
    plateau = jack[:, window_slice].mean(1)
    return {"m_p": float(full[window_slice].mean()),
            "m_p_err": float(math.sqrt(factor * np.sum((plateau - plateau.mean()) ** 2))),
            "m_eff": _finite_or_none(full), "m_eff_err": _finite_or_none(m_eff_err),
            "window": [t_min, t_max],
            "bin_size": int(bin_size), "n_bins": int(n_bins)}


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
