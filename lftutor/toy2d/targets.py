r"""Two-dimensional targets: the potentials U1-U4 of Rezende & Mohamed (arXiv:1505.05770, table 1),
a two-component Gaussian mixture, and the two-moons data set; exact :math:`\log Z` by quadrature.

Each potential :math:`U` defines an unnormalised density :math:`p(x) = e^{-U(x)}/Z`. In two
dimensions :math:`Z = \int e^{-U}` can be computed on a grid to many digits, which turns the
training loss into the *exact* reverse KL divergence (up to Monte Carlo error only):

.. math::
    \mathrm{KL}(q\,\|\,p) = E_{x\sim q}\big[\log q(x) + U(x)\big] + \log Z \;\ge 0 .

U2, U3 and U4 depend on :math:`x_1` only through a periodic function, so :math:`e^{-U}` does not
decay along :math:`x_1` and :math:`Z` would be infinite. They are *tapered*: a soft wall
:math:`\frac12\big(\max(|x_1| - 4, 0)/0.25\big)^2` is added, which leaves the familiar picture on
:math:`|x_1| \le 4` unchanged and makes :math:`Z` finite. The wall joins with zero value and
slope but a jump of :math:`1/0.25^2 = 16` in the second derivative, which sets how fast the
quadrature converges (:func:`log_z_grid`).
"""

from __future__ import annotations

import math

import torch

from lftutor._checks import check_field, check_positive_int

TARGET_NAMES = ("U1", "U2", "U3", "U4", "mixture")


def _w1(x1):
    return torch.sin(2 * math.pi * x1 / 4)


def _w2(x1):
    return 3 * torch.exp(-0.5 * ((x1 - 1) / 0.6) ** 2)


def _w3(x1):
    return 3 * torch.sigmoid((x1 - 1) / 0.3)


def taper(x1: torch.Tensor, *, edge: float = 4.0, width: float = 0.25) -> torch.Tensor:
    r"""The soft wall :math:`\frac12(\max(|x_1| - \text{edge}, 0)/\text{width})^2`, shape of ``x1``."""
    return 0.5 * (torch.relu(x1.abs() - edge) / width) ** 2


def _u1(x):
    x1, x2 = x[:, 0], x[:, 1]
    ring = 0.5 * ((x.norm(dim=1) - 2) / 0.4) ** 2
    lobes = torch.logsumexp(torch.stack([-0.5 * ((x1 - 2) / 0.6) ** 2, -0.5 * ((x1 + 2) / 0.6) ** 2]), 0)
    del x2
    return ring - lobes


def _u2(x):
    x1, x2 = x[:, 0], x[:, 1]
    return 0.5 * ((x2 - _w1(x1)) / 0.4) ** 2 + taper(x1)


def _u3(x):
    x1, x2 = x[:, 0], x[:, 1]
    a = -0.5 * ((x2 - _w1(x1)) / 0.35) ** 2
    b = -0.5 * ((x2 - _w1(x1) + _w2(x1)) / 0.35) ** 2
    return -torch.logsumexp(torch.stack([a, b]), 0) + taper(x1)


def _u4(x):
    x1, x2 = x[:, 0], x[:, 1]
    a = -0.5 * ((x2 - _w1(x1)) / 0.4) ** 2
    b = -0.5 * ((x2 - _w1(x1) + _w3(x1)) / 0.35) ** 2
    return -torch.logsumexp(torch.stack([a, b]), 0) + taper(x1)


class Target2D:
    r"""A 2-D target density :math:`p(x) = e^{-U(x)}/Z`; calling it returns :math:`U`.

    Attributes:
        name: ``"U1"`` ... ``"U4"`` or ``"mixture"``.
        box: ``(lo, hi)``, a square outside which :math:`e^{-U}` is negligible (used by the
            quadrature and the plots).

    Shapes:
        ``target(x)``: ``(batch, 2) -> (batch,)``; ``log_prob(x) = -U(x) - log Z``.

    Example:
        >>> u1 = get_target("U1")
        >>> round(u1.log_z, 6) == round(log_z_grid(u1, n=1201), 6)
        True
    """

    def __init__(self, name: str, potential, box: tuple[float, float]):
        self.name = name
        self._potential = potential
        self.box = box
        self._log_z: float | None = None

    def __repr__(self) -> str:
        return f"Target2D({self.name!r})"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_field(x, (2,), name="x")
        return self._potential(x)

    @property
    def log_z(self) -> float:
        """:math:`\\log\\int e^{-U}` by quadrature (:func:`log_z_grid`, n = 801), cached."""
        if self._log_z is None:
            self._log_z = log_z_grid(self, n=801)
        return self._log_z

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised log-density, ``(batch, 2) -> (batch,)``."""
        return -self(x) - self.log_z


class GaussianMixture2D(Target2D):
    r"""Equal-weight mixture :math:`\frac12 N(\mu_1, I) + \frac12 N(\mu_2, I)`, :math:`\mu_1 = (1, 1)`,
    :math:`\mu_2 = (-2, -2)` (the target of the Pyro normalizing-flow notebook). Exactly
    normalised, :math:`\log Z = 0`; it can also be sampled, for maximum-likelihood training.
    """

    def __init__(self, means=((1.0, 1.0), (-2.0, -2.0)), scale: float = 1.0):
        self.means = torch.tensor(means, dtype=torch.float64)
        self.scale = float(scale)
        super().__init__("mixture", self._mixture_u, (-9.0, 8.0))

    def _mixture_u(self, x):
        means = self.means.to(x)
        sq = ((x[:, None, :] - means[None]) ** 2).sum(-1) / self.scale**2
        log_comp = -0.5 * sq - math.log(2 * math.pi * self.scale**2) - math.log(len(means))
        return -torch.logsumexp(log_comp, dim=1)

    def sample(self, n: int, *, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``n`` exact samples, shape ``(n, 2)``."""
        check_positive_int(n, name="n")
        idx = torch.randint(len(self.means), (n,), generator=generator)
        eps = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return (self.means[idx] + self.scale * eps).to(dtype)


_BOX = (-6.0, 6.0)


def get_target(name: str) -> Target2D:
    """The target called ``name`` (one of :data:`TARGET_NAMES`)."""
    if name == "mixture":
        return GaussianMixture2D()
    potentials = {"U1": _u1, "U2": _u2, "U3": _u3, "U4": _u4}
    if name not in potentials:
        raise ValueError(f"expected a target in {TARGET_NAMES}, got {name!r}")
    return Target2D(name, potentials[name], _BOX)


def grid(box: tuple[float, float], n: int, dtype=torch.float64) -> tuple[torch.Tensor, float]:
    """Midpoints of an ``n x n`` grid on the square ``box``: ``(points (n*n, 2), cell area)``."""
    check_positive_int(n, name="n")
    lo, hi = box
    h = (hi - lo) / n
    t = lo + h * (torch.arange(n, dtype=dtype) + 0.5)
    xx, yy = torch.meshgrid(t, t, indexing="xy")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1), h * h


@torch.no_grad()
def log_z_grid(target: Target2D, *, n: int = 1201, box: tuple[float, float] | None = None) -> float:
    r""":math:`\log\int e^{-U(x)}\,dx` by the midpoint rule on an ``n x n`` grid over ``box``.

    The integrand is negligible at the edge of ``target.box``. For the smooth ones (the
    mixture) the rule converges faster than any power of ``n``; the tapered U2-U4 have a jump in
    the second derivative at :math:`|x_1| = 4` (the taper's :math:`\frac12(\cdot)^2` starts
    there), so their error falls as :math:`n^{-3}`: about :math:`8\times 10^{-7}` in
    :math:`\log Z` at ``n = 400``, :math:`10^{-7}` at 800 (the tests compare ``n`` with ``2n``
    and a larger box; ``tests/test_quadrature_convergence.py`` the rate).
    """
    pts, area = grid(target.box if box is None else box, n)
    log_f = torch.cat([-target(chunk) for chunk in pts.split(1 << 18)])
    return (torch.logsumexp(log_f, 0) + math.log(area)).item()


@torch.no_grad()
def exact_kl(flow, target: Target2D, *, n_samples: int = 1 << 16, batch_size: int = 1 << 14
             ) -> dict[str, float]:
    r"""Reverse KL :math:`E_q[\log q + U] + \log Z` in nats, with its Monte Carlo standard error.

    Args:
        flow: anything with ``sample(n) -> (x (n, 2), log_q (n,))``.
        target: a :class:`Target2D`.

    Returns:
        ``{"kl", "kl_stderr", "n_samples"}``.
    """
    check_positive_int(n_samples, name="n_samples")
    parts = []
    remaining = n_samples
    while remaining > 0:
        x, log_q = flow.sample(min(batch_size, remaining))
        parts.append(log_q.double() + target(x.double()))
        remaining -= x.shape[0]
    d = torch.cat(parts)
    return {"kl": d.mean().item() + target.log_z,
            "kl_stderr": (d.std() / math.sqrt(d.numel())).item(), "n_samples": n_samples}


def two_moons(n: int, *, noise: float = 0.1, seed: int = 0, dtype: torch.dtype = torch.float32
              ) -> torch.Tensor:
    r"""``n`` points of the two-moons data set, seeded, centred and scaled to unit-ish spread.

    Half the points lie on the upper half circle :math:`(\cos t, \sin t)`, half on the lower one
    shifted to :math:`(1 - \cos t, \frac12 - \sin t)`, :math:`t \sim U(0, \pi)`, plus Gaussian
    noise of standard deviation ``noise``; the result is mapped by
    :math:`x \mapsto 2\,(x - (\frac12, \frac14))` so that the standard normal base fits it.

    Returns:
        ``(n, 2)`` points, in random order.
    """
    check_positive_int(n, name="n")
    gen = torch.Generator().manual_seed(seed)
    upper = torch.rand(n, generator=gen, dtype=torch.float64) < 0.5
    t = math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    pts = torch.stack([x, y], dim=1) + noise * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return (2 * (pts - torch.tensor([0.5, 0.25], dtype=torch.float64))).to(dtype)
