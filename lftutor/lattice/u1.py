r"""Two-dimensional U(1) lattice gauge theory: links, plaquettes, the Wilson action, topology.

A configuration is a field of angles :math:`\theta_\mu(x)\in\mathbb R` (mod :math:`2\pi`) on the
links of a periodic :math:`L_0\times L_1` lattice, stored as a tensor of shape
``(batch, 2, L0, L1)``: ``theta[:, mu, x0, x1]`` is the link from :math:`x` to
:math:`x+\hat\mu`, the link variable being :math:`U_\mu(x) = e^{i\theta_\mu(x)}`.

The plaquette at :math:`x` goes around the elementary square counter-clockwise,

.. math::
    \theta_P(x) = \theta_0(x) + \theta_1(x+\hat 0) - \theta_0(x+\hat 1) - \theta_1(x),

the Wilson action is :math:`S = -\beta\sum_x\cos\theta_P(x)`, and a gauge transformation
:math:`\alpha(x)` acts as :math:`\theta_\mu(x)\to\alpha(x)+\theta_\mu(x)-\alpha(x+\hat\mu)`,
which leaves every plaquette unchanged. The topological charge
:math:`Q = \frac1{2\pi}\sum_x[\theta_P(x)]_{(-\pi,\pi]}` (plaquette angles wrapped) is an integer
on a periodic lattice. Flows for this theory: Kanwar et al., arXiv:2003.06413; the tutorial
arXiv:2101.08176, sec. 5.

**Exact results.** On a torus the plaquette angles (wrapped) are independent except for one
constraint, :math:`\sum_x\theta_P(x) = 2\pi Q`, and the holonomies decouple. With
:math:`g_\nu(\beta) = \frac1{2\pi}\int_{-\pi}^{\pi}d\phi\,e^{\beta\cos\phi}\cos(\nu\phi)`
(equal to the modified Bessel function :math:`I_n(\beta)` at integer :math:`\nu=n`) and
:math:`V = L_0L_1` plaquettes, the character expansion gives (Haar measure of mass 1 per link)

.. math::
    Z = \sum_{n\in\mathbb Z} I_n(\beta)^V,\qquad
    \langle\cos\theta_P\rangle = \frac{\sum_n I_n^{V-1}\,\tfrac12(I_{n-1}+I_{n+1})}{\sum_n I_n^V},
    \qquad
    Z(\vartheta) = \sum_Q Z_Q e^{i\vartheta Q} = \sum_{n} g_{n+\vartheta/2\pi}(\beta)^V,

so :math:`P(Q) = \frac1{2\pi}\int_{-\pi}^{\pi}d\vartheta\,\cos(\vartheta Q)\,Z(\vartheta)/Z(0)`
and :math:`\chi_{\rm top} = \langle Q^2\rangle/V`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from lftutor._checks import check_positive_int

TWO_PI = 2 * math.pi


# --------------------------------------------------------------------------------------------
# Fields, plaquettes, action, gauge transformations, topology
# --------------------------------------------------------------------------------------------

def lattice_shape_of(lattice) -> tuple[int, int]:
    """``L`` or ``(L0, L1)`` as a tuple of two positive ints."""
    if isinstance(lattice, int) and not isinstance(lattice, bool):
        lattice = (lattice, lattice)
    try:
        shape = tuple(lattice)
    except TypeError:
        raise ValueError(f"expected L or (L0, L1), got {lattice!r}") from None
    if len(shape) != 2 or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in shape):
        raise ValueError(f"expected L or (L0, L1) of positive ints, got {lattice!r}")
    return shape


def check_links(theta, lattice=None, *, name: str = "theta") -> torch.Tensor:
    """Check that ``theta`` is a floating tensor of link angles, shape ``(batch, 2, L0, L1)``."""
    if not isinstance(theta, torch.Tensor):
        raise ValueError(f"expected {name} to be a torch.Tensor of shape (batch, 2, L0, L1), "
                         f"got {type(theta).__name__}")
    if not theta.is_floating_point():
        raise ValueError(f"expected {name} to have a floating dtype, got {theta.dtype}")
    if theta.dim() != 4 or theta.shape[1] != 2:
        raise ValueError(f"expected {name} of shape (batch, 2, L0, L1) (one angle per link, two "
                         f"directions), got {tuple(theta.shape)}")
    if lattice is not None and tuple(theta.shape[2:]) != lattice_shape_of(lattice):
        dims = ", ".join(map(str, lattice_shape_of(lattice)))
        raise ValueError(f"expected {name} of shape (batch, 2, {dims})"
                         f", got {tuple(theta.shape)}")
    return theta


def wrap(x: torch.Tensor) -> torch.Tensor:
    r"""Angles mapped into :math:`(-\pi, \pi]`: :math:`x - 2\pi\lceil (x-\pi)/2\pi\rceil`."""
    return x - TWO_PI * torch.ceil((x - math.pi) / TWO_PI)


def plaquettes(theta: torch.Tensor) -> torch.Tensor:
    r"""Plaquette angles :math:`\theta_P(x)=\theta_0(x)+\theta_1(x+\hat0)-\theta_0(x+\hat1)-\theta_1(x)`.

    Not wrapped (the sum of four link angles). Periodic boundaries.

    Shapes:
        ``(batch, 2, L0, L1) -> (batch, L0, L1)``.

    Example:
        >>> theta = torch.zeros(1, 2, 4, 4); theta[0, 0, 1, 2] = 0.5
        >>> p = plaquettes(theta)
        >>> p[0, 1, 2].item(), p[0, 1, 1].item()   # + at x, - at x - 1hat
        (0.5, -0.5)
    """
    check_links(theta)
    t0, t1 = theta[:, 0], theta[:, 1]
    return t0 + torch.roll(t1, -1, dims=1) - torch.roll(t0, -1, dims=2) - t1


def average_plaquette(theta: torch.Tensor) -> torch.Tensor:
    r""":math:`\frac1V\sum_x\cos\theta_P(x)`, shape ``(batch,)``."""
    return torch.cos(plaquettes(theta)).flatten(1).mean(dim=1)


def topological_charge(theta: torch.Tensor) -> torch.Tensor:
    r"""Geometric charge :math:`Q=\frac1{2\pi}\sum_x[\theta_P(x)]_{(-\pi,\pi]}`, shape ``(batch,)``.

    An integer (up to round-off) on a periodic lattice: the unwrapped plaquettes sum to zero
    because every link enters two plaquettes with opposite signs.
    """
    return wrap(plaquettes(theta)).flatten(1).sum(dim=1) / TWO_PI


def topological_susceptibility(q, volume: int) -> float:
    r""":math:`\chi_{\rm top} = \langle Q^2\rangle / V` from charges ``q`` (any 1-D array)."""
    q = np.asarray(q, dtype=float)
    return float(np.mean(q**2) / volume)


class U1GaugeAction:
    r"""Wilson action :math:`S(\theta) = -\beta\sum_x\cos\theta_P(x)` of 2-D U(1) gauge theory.

    Args:
        beta: inverse coupling :math:`\beta \ge 0`.

    Shapes:
        ``__call__``: ``(batch, 2, L0, L1) -> (batch,)``; ``force``: same shape as the links.

    Example:
        >>> U1GaugeAction(2.0)(torch.zeros(3, 2, 4, 4))
        tensor([-32., -32., -32.])
    """

    def __init__(self, beta: float):
        beta = float(beta)
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"expected a finite beta >= 0, got {beta}")
        self.beta = beta

    def __repr__(self) -> str:
        return f"U1GaugeAction(beta={self.beta})"

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return -self.beta * torch.cos(plaquettes(theta)).flatten(1).sum(dim=1)

    def force(self, theta: torch.Tensor) -> torch.Tensor:
        r""":math:`\partial S/\partial\theta_\mu(x)`.

        :math:`\theta_0(x)` enters :math:`\theta_P(x)` with + and :math:`\theta_P(x-\hat1)` with -;
        :math:`\theta_1(x)` enters :math:`\theta_P(x-\hat0)` with + and :math:`\theta_P(x)` with -:

        .. math::
            \frac{\partial S}{\partial\theta_0(x)} = \beta[\sin\theta_P(x)-\sin\theta_P(x-\hat1)],\quad
            \frac{\partial S}{\partial\theta_1(x)} = \beta[\sin\theta_P(x-\hat0)-\sin\theta_P(x)].
        """
        s = torch.sin(plaquettes(theta))
        f0 = s - torch.roll(s, 1, dims=2)
        f1 = torch.roll(s, 1, dims=1) - s
        return self.beta * torch.stack([f0, f1], dim=1)


def gauge_transform(theta: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    r""":math:`\theta_\mu(x)\to\alpha(x)+\theta_\mu(x)-\alpha(x+\hat\mu)`.

    Args:
        theta: links, ``(batch, 2, L0, L1)``.
        alpha: gauge angles, ``(batch, L0, L1)`` or ``(L0, L1)`` (the same for every sample).

    Returns:
        Transformed links, same shape as ``theta`` (not wrapped).
    """
    check_links(theta)
    if alpha.shape[-2:] != theta.shape[-2:] or alpha.dim() not in (2, 3):
        raise ValueError(f"expected alpha of shape (batch, L0, L1) or (L0, L1) = "
                         f"{tuple(theta.shape[-2:])}, got {tuple(alpha.shape)}")
    if alpha.dim() == 2:
        alpha = alpha.expand(theta.shape[0], *alpha.shape)
    a0 = alpha - torch.roll(alpha, -1, dims=1)
    a1 = alpha - torch.roll(alpha, -1, dims=2)
    return theta + torch.stack([a0, a1], dim=1)


def random_gauge(theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``theta`` after a uniformly random gauge transformation (one per sample)."""
    alpha = TWO_PI * torch.rand(theta.shape[0], *theta.shape[2:], dtype=theta.dtype,
                                generator=generator).to(theta.device)
    return gauge_transform(theta, alpha)


def uniform_links(n: int, lattice, *, dtype=torch.float64,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    r"""``n`` configurations drawn from the Haar measure: angles uniform in :math:`(-\pi,\pi)`."""
    check_positive_int(n, name="n")
    shape = lattice_shape_of(lattice)
    return math.pi * (2 * torch.rand(n, 2, *shape, dtype=dtype, generator=generator) - 1)


# --------------------------------------------------------------------------------------------
# Exact results (character expansion)
# --------------------------------------------------------------------------------------------

def _volume(lattice) -> int:
    l0, l1 = lattice_shape_of(lattice)
    return l0 * l1


def _check_beta(beta) -> float:
    beta = float(beta)
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"expected a finite beta >= 0, got {beta}")
    return beta


def _n_max(beta: float) -> int:
    return int(40 + 8 * math.sqrt(beta + 1))


def exact_log_z(beta: float, lattice) -> float:
    r""":math:`\log Z = \log\sum_n I_n(\beta)^V` (Haar measure of total mass 1 per link)."""
    from scipy.special import ive

    beta, volume = _check_beta(beta), _volume(lattice)
    n = np.arange(-_n_max(beta), _n_max(beta) + 1)
    with np.errstate(divide="ignore"):  # I_n(0) = 0 for n != 0
        log_i = np.log(ive(n, beta)) + beta  # log I_n(beta), scaled to avoid overflow
    top = log_i.max()
    return float(volume * top + np.log(np.sum(np.exp(volume * (log_i - top)))))


def exact_plaquette(beta: float, lattice) -> float:
    r""":math:`\langle\cos\theta_P\rangle = \frac1V\,\partial_\beta\log Z`, from Bessel functions.

    Example:
        >>> round(exact_plaquette(2.0, 8), 6)    # the tutorial's point, L = 8, beta = 2
        0.697775
    """
    from scipy.special import ive

    beta, volume = _check_beta(beta), _volume(lattice)
    m = _n_max(beta)
    n = np.arange(-m - 1, m + 2)
    i = ive(n, beta)  # e^{-beta} I_n; the common factor cancels in the ratio
    core, deriv = i[1:-1], 0.5 * (i[:-2] + i[2:])
    weights = (core / core.max()) ** (volume - 1)
    return float(np.sum(weights * deriv) / np.sum(weights * core))


@functools.lru_cache(maxsize=4)
def _nodes(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, pi] (computing them costs an eigenproblem)."""
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    return 0.5 * math.pi * (x + 1), 0.5 * math.pi * w


def _g(nu: np.ndarray, beta: float, n_nodes: int = 512) -> np.ndarray:
    r""":math:`e^{-\beta}g_\nu(\beta)=\frac1\pi\int_0^\pi e^{\beta(\cos\phi-1)}\cos(\nu\phi)\,d\phi`."""
    phi, w = _nodes(n_nodes)
    kernel = np.exp(beta * (np.cos(phi) - 1)) * w / math.pi
    return np.cos(np.multiply.outer(nu, phi)) @ kernel


def exact_charge_distribution(beta: float, lattice, *, q_max: int | None = None,
                              n_theta: int = 64) -> tuple[np.ndarray, np.ndarray]:
    r"""The exact distribution :math:`P(Q)` of the topological charge on the periodic lattice.

    Evaluates :math:`Z(\vartheta)/Z(0)=\sum_n g_{n+\vartheta/2\pi}^V/\sum_n g_n^V` on a uniform
    grid of ``n_theta`` angles (a periodic function: the trapezoid rule converges exponentially)
    and Fourier-transforms it. The sum over :math:`n` runs outwards from 0 until the terms fall
    below :math:`10^{-17}` of the largest. Accurate for :math:`V\ge 4` plaquettes.

    Returns:
        ``(q, p)``: integers :math:`-q_{\max}..q_{\max}` and their probabilities (sum 1).
    """
    beta, volume = _check_beta(beta), _volume(lattice)
    if q_max is None:
        q_max = min(volume // 2, 40)
    theta = TWO_PI * (np.arange(n_theta) + 0.5) / n_theta - math.pi
    scale = float(_g(np.zeros(1), beta)[0])  # g_0 is the largest |g_nu|
    z_theta, z0 = np.zeros(n_theta), 0.0
    n_cap = _n_max(beta) + 160 // max(volume - 2, 1)
    for n in range(n_cap + 1):
        rows = [n] if n == 0 else [n, -n]
        small = True
        for k in rows:
            term = (_g(k + theta / TWO_PI, beta) / scale) ** volume
            z_theta += term
            z0 += (float(_g(np.array([float(k)]), beta)[0]) / scale) ** volume
            small &= bool(np.abs(term).max() < 1e-17)
        if small and n > 2:
            break
    q = np.arange(-q_max, q_max + 1)
    p = (np.cos(np.multiply.outer(q, theta)) @ z_theta) / n_theta / z0
    return q, np.clip(p, 0.0, None)


def exact_chi_top(beta: float, lattice) -> float:
    r""":math:`\chi_{\rm top}=\langle Q^2\rangle/V` from :func:`exact_charge_distribution`.

    In infinite volume :math:`\chi_{\rm top}=\langle\theta_P^2\rangle/4\pi^2` for one plaquette
    distributed as :math:`e^{\beta\cos\theta_P}`, which tends to :math:`1/(4\pi^2\beta)` only as
    :math:`\beta\to\infty`; on a finite lattice, once :math:`V/\beta` is small, :math:`Q = 0`
    dominates and the value falls below both.

    Example:
        >>> round(exact_chi_top(2.0, 8), 5)  # the tutorial's point; 1/(4 pi^2 beta) = 0.01267
        0.01936
        >>> round(exact_chi_top(8.0, 8), 5), round(exact_chi_top(8.0, 32), 5)  # finite volume
        (0.00262, 0.0034)
    """
    q, p = exact_charge_distribution(beta, lattice)
    return float(np.sum(q**2 * p) / np.sum(p) / _volume(lattice))


# --------------------------------------------------------------------------------------------
# HMC
# --------------------------------------------------------------------------------------------

def leapfrog(theta: torch.Tensor, momentum: torch.Tensor, force: Callable[[torch.Tensor], torch.Tensor],
             step_size: float, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Leapfrog integration of :math:`\dot\theta=\pi`, :math:`\dot\pi=-\partial S/\partial\theta`.

    Half a momentum step, ``n_steps`` alternating full steps, half a momentum step: time
    reversible (flip :math:`\pi` and integrate again to come back) and volume preserving, with
    an energy error :math:`O(\epsilon^2)` over a trajectory of fixed length.

    Shapes:
        ``theta``, ``momentum``: ``(batch, 2, L0, L1)``; returns both, same shapes.
    """
    p = momentum - 0.5 * step_size * force(theta)
    x = theta
    for k in range(n_steps):
        x = x + step_size * p
        if k < n_steps - 1:
            p = p - step_size * force(x)
    p = p - 0.5 * step_size * force(x)
    return x, p


@torch.no_grad()
def u1_hmc(beta: float, theta0: torch.Tensor, n_samples: int, *, step_size: float = 0.1,
           n_leapfrog: int = 10, observable: Callable | None = None,
           generator: torch.Generator | None = None):
    r"""Hybrid Monte Carlo for the Wilson action, ``n_chains`` chains at once.

    The angles are coordinates on the torus :math:`[0,2\pi)^{2V}` with a flat metric, so HMC
    is the algorithm of unit 5 unchanged: momenta :math:`\pi\sim N(0,1)` per link,
    :func:`leapfrog` on :math:`H=\tfrac12\sum\pi^2+S(\theta)` with the analytic force
    :meth:`U1GaugeAction.force`, accept with :math:`\min(1,e^{-\Delta H})`. Accepted links are
    wrapped back into :math:`(-\pi,\pi]` (allowed: :math:`S` is periodic in every angle).

    Args:
        beta: inverse coupling.
        theta0: starting links, ``(n_chains, 2, L0, L1)``.
        n_samples: trajectories per chain (trajectory length ``step_size * n_leapfrog``).
        observable: store ``observable(theta)`` instead of the links (e.g. :func:`u1_observables`).

    Returns:
        :class:`lftutor.lattice.mcmc.Chain`: ``configs`` of shape ``(n_samples, n_chains, ...)``,
        ``accepted`` ``(n_samples, n_chains)``.
    """
    from lftutor.lattice.mcmc import Chain

    check_links(theta0, name="theta0")
    check_positive_int(n_samples, name="n_samples")
    check_positive_int(n_leapfrog, name="n_leapfrog")
    if not step_size > 0:
        raise ValueError(f"expected step_size > 0, got {step_size}")
    action = U1GaugeAction(beta)
    theta = wrap(theta0.clone())
    s_theta = action(theta)
    out, accepted = [], torch.zeros(n_samples, theta.shape[0], dtype=torch.bool)
    for n in range(n_samples):
        pi = torch.randn(theta.shape, dtype=theta.dtype, generator=generator).to(theta.device)
        h0 = 0.5 * (pi**2).flatten(1).sum(1) + s_theta
        x, p = leapfrog(theta, pi, action.force, step_size, n_leapfrog)
        s_new = action(x)
        h1 = 0.5 * (p**2).flatten(1).sum(1) + s_new
        u = torch.rand(theta.shape[0], dtype=torch.float64, generator=generator).to(theta.device)
        acc = torch.log(u) < -(h1 - h0).to(torch.float64)
        theta = torch.where(acc.view(-1, 1, 1, 1), wrap(x), theta)
        s_theta = torch.where(acc, s_new, s_theta)
        accepted[n] = acc.cpu()
        out.append((observable(theta) if observable is not None else theta).cpu())
    return Chain(torch.stack(out), accepted, accepted.double().mean().item())


def u1_observables(theta: torch.Tensor) -> torch.Tensor:
    """``(batch, 2)``: average plaquette and topological charge of each configuration."""
    return torch.stack([average_plaquette(theta), topological_charge(theta)], dim=1)


def chain_summary(plaq: np.ndarray, q: np.ndarray, volume: int) -> dict[str, float]:
    r"""Means with autocorrelation-aware errors for the plaquette and :math:`\chi_{\rm top}`.

    Errors: binned jackknife with bins of about :math:`4\tau_{\rm int}` (at least 1, at most
    N/20), so that bins are nearly independent (units 5, hep-lat/0306017).

    Args:
        plaq, q: 1-D series along one chain (or chains concatenated).

    Returns:
        ``plaquette, plaquette_err, chi_top, chi_top_err, tau_int_plaq, tau_int_q, n``.
    """
    from lftutor.statistics import jackknife, tau_int

    plaq, q = np.asarray(plaq, float), np.asarray(q, float)
    q = np.round(q)
    tau_p, tau_q = tau_int(plaq), tau_int(q)
    n = plaq.size

    def bin_for(tau):
        return int(min(max(1, round(4 * tau)), max(1, n // 20)))

    p_mean, p_err = jackknife(np.mean, plaq, bin_size=bin_for(tau_p))
    chi, chi_err = jackknife(lambda x: np.mean(x**2) / volume, q, bin_size=bin_for(tau_q))
    return {"plaquette": p_mean, "plaquette_err": p_err, "chi_top": chi, "chi_top_err": chi_err,
            "tau_int_plaq": tau_p, "tau_int_q": tau_q, "n": int(n)}


__all__: Sequence[str] = [
    "U1GaugeAction", "average_plaquette", "chain_summary", "check_links", "exact_charge_distribution",
    "exact_chi_top", "exact_log_z", "exact_plaquette", "gauge_transform", "lattice_shape_of", "leapfrog",
    "plaquettes", "random_gauge", "topological_charge", "topological_susceptibility", "u1_hmc",
    "u1_observables", "uniform_links", "wrap",
]
