r"""Error analysis of Markov chains: autocorrelation times, binned jackknife, reweighting.

Conventions: the integrated autocorrelation time is
:math:`\tau_{\rm int} = \tfrac12 + \sum_{t\ge1}\rho(t)`, so independent samples have
:math:`\tau_{\rm int} = 1/2` and the error of a mean is :math:`\sigma\sqrt{2\tau_{\rm int}/N}`
(U. Wolff, hep-lat/0306017). The window is chosen automatically by ``emcee``'s implementation of
Sokal's procedure (its :math:`\tau = 1 + 2\sum\rho = 2\tau_{\rm int}`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def _series(x, name: str = "x") -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"expected {name} as a 1-D series of at least 2 values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"expected finite values in {name}")
    return arr


def autocorrelation(x) -> np.ndarray:
    r"""Normalised autocorrelation function :math:`\rho(t)`, ``t = 0..N-1`` (:math:`\rho(0)=1`)."""
    from emcee.autocorr import function_1d

    return function_1d(_series(x))


def tau_int(x, *, c: float = 5.0) -> float:
    r"""Integrated autocorrelation time :math:`\tau_{\rm int} = \tfrac12 + \sum_{t\ge1}\rho(t)`.

    A chain shorter than about 50 :math:`\tau` gives a less reliable (usually low) estimate;
    no error is raised, but the caller should run longer.
    """
    import warnings

    from emcee.autocorr import integrated_time

    arr = _series(x)
    if np.ptp(arr) == 0:
        return 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # emcee's logger warns on short chains; it still returns its best estimate
        import logging

        logger = logging.getLogger("emcee.autocorr")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            tau = float(integrated_time(arr, c=c, quiet=True)[0])
        finally:
            logger.setLevel(level)
    return max(0.5, tau / 2)


def jackknife(estimator: Callable[..., float], *series, bin_size: int = 1) -> tuple[float, float]:
    r"""Binned jackknife estimate and error of ``estimator(*series)``.

    The series (equal length, one per per-configuration quantity) are cut into ``N/b`` bins of
    ``bin_size`` consecutive measurements; dropping one bin at a time gives
    :math:`\sigma^2 = \frac{n-1}{n}\sum_k(\hat\theta_{(k)} - \bar\theta)^2`. Bins much longer than
    :math:`\tau_{\rm int}` make the error account for autocorrelation.

    Returns:
        ``(estimate on all data, error)``.
    """
    arrays = [_series(s, "each series") for s in series]
    n = arrays[0].size
    if any(a.size != n for a in arrays):
        raise ValueError(f"expected series of equal length, got {[a.size for a in arrays]}")
    if not isinstance(bin_size, int) or bin_size < 1:
        raise ValueError(f"expected a positive integer bin_size, got {bin_size!r}")
    n_bins = n // bin_size
    if n_bins < 2:
        raise ValueError(f"expected at least 2 bins, got {n_bins} (N={n}, bin_size={bin_size})")
    arrays = [a[: n_bins * bin_size] for a in arrays]
    full = float(estimator(*arrays))
    keep = np.ones(n_bins * bin_size, dtype=bool)
    estimates = np.empty(n_bins)
    for k in range(n_bins):
        keep[:] = True
        keep[k * bin_size:(k + 1) * bin_size] = False
        estimates[k] = estimator(*[a[keep] for a in arrays])
    err = math.sqrt((n_bins - 1) / n_bins * np.sum((estimates - estimates.mean()) ** 2))
    return full, err


def mean_with_error(x) -> dict[str, float]:
    r"""Mean of a chain with its autocorrelation-aware error :math:`\sigma\sqrt{2\tau_{\rm int}/N}`."""
    arr = _series(x)
    tau = tau_int(arr)
    return {"mean": float(arr.mean()), "err": float(arr.std(ddof=1) * math.sqrt(2 * tau / arr.size)),
            "tau_int": tau}


def reweight(values, log_weights) -> dict[str, float]:
    r"""Self-normalised importance sampling :math:`\langle O\rangle \approx \sum_i w_i O_i/\sum_i w_i`.

    Args:
        values: :math:`O_i` for samples :math:`\phi_i \sim q`, shape ``(N,)``.
        log_weights: :math:`\log p - \log q` (any constant offset cancels), shape ``(N,)``.

    Returns:
        ``{"mean", "err", "ess"}``: the error is the delta-method standard error,
        :math:`\sqrt{\sum_i \bar w_i^2 (O_i - \hat O)^2}` with normalised weights :math:`\bar w`.
    """
    o = _series(values, "values")
    lw = _series(log_weights, "log_weights")
    if o.size != lw.size:
        raise ValueError(f"expected values and log_weights of equal length, got {o.size} and {lw.size}")
    w = np.exp(lw - lw.max())
    w /= w.sum()
    mean = float(np.sum(w * o))
    return {"mean": mean, "err": float(math.sqrt(np.sum(w**2 * (o - mean) ** 2))),
            "ess": float(1.0 / np.sum(w**2) / o.size)}
