r"""Exact global symmetries for flows: the :math:`Z_2` mirror :math:`\phi \to -\phi` of phi^4.

(The same mixture serves any target that is even under a sign flip of the field, e.g. charge
conjugation :math:`\theta\to-\theta` of U(1) links: :mod:`lftutor.bijections.plaquette_chain`.)

The phi^4 action is even, :math:`S(-\phi) = S(\phi)`, so the target is mirror symmetric, but a
flow learns the symmetry only approximately. :class:`Z2Symmetric` builds it in: the even mixture
:math:`q_s = \tfrac12(q + \tilde q)` of a flow :math:`q` and its mirror image
:math:`\tilde q(\phi) = q(-\phi)`. Since the KL divergence is convex in its first argument and
:math:`D(\tilde q\|p) = D(q\|p)` for an even :math:`p`,

.. math::
    D_{KL}(q_s\|p) \le \tfrac12 D_{KL}(q\|p) + \tfrac12 D_{KL}(\tilde q\|p) = D_{KL}(q\|p):

the mixture is never worse than the flow inside it. In the broken phase (:math:`m^2` negative
enough), where the distribution has one mode per sign of the magnetization, it also removes
*mode collapse*: reverse-KL training is mode seeking and often finds one sign only, which the
flow's own samples cannot reveal; the mixture covers both. (arXiv:2107.00734 discusses mode
collapse and such mixtures for lattice theories.)

The alternative without the extra reverse pass is a flow whose every layer is odd,
:mod:`lftutor.bijections.odd_splines`; its density is even by construction. It is a smaller family
(an odd flow is a flow whose mixture is itself) and trained worse at equal time at the course's
phi^4 point (``benchmarks/README.md``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lftutor._checks import check_field, check_positive_int

__all__ = ["Z2Symmetric"]

_LOG_2 = math.log(2.0)


class Z2Symmetric(nn.Module):
    r"""The mirror-symmetric mixture of a flow: :math:`q_s(\phi) = \tfrac12[q(\phi) + q(-\phi)]`.

    Sampling draws :math:`\phi = \sigma f(z)` with a fair random sign :math:`\sigma = \pm1`; the
    density is exact,

    .. math::
        \log q_s(\phi) = \operatorname{logaddexp}\big(\log q(\phi), \log q(-\phi)\big) - \log 2,

    and needs one reverse pass of the flow (for :math:`-\phi`) besides the forward one. Then
    :math:`q_s(-\phi) = q_s(\phi)` for any weights, and a flow that found one mode serves both.
    This is a model with ``sample`` and ``log_prob``, not a bijection: it has no ``forward`` or
    ``reverse``.

    Args:
        flow: a :class:`lftutor.Flow` (anything with ``sample(n)``, ``log_prob(phi)`` and
            ``lattice_shape``).

    Shapes:
        ``sample(n) -> ((n, *L), (n,))``; ``log_prob``: ``(batch, *L) -> (batch,)``.

    Example:
        >>> from lftutor import Flow, SimpleNormal
        >>> from lftutor.bijections.splines import ZeroModeSpline
        >>> model = Z2Symmetric(Flow(SimpleNormal.standard((4, 4)), [ZeroModeSpline((4, 4))]))
        >>> phi, log_q = model.sample(3)
        >>> torch.allclose(model.log_prob(-phi), log_q, atol=1e-5)
        True
    """

    def __init__(self, flow: nn.Module):
        super().__init__()
        self.flow = flow

    @property
    def lattice_shape(self) -> tuple[int, ...]:
        return tuple(self.flow.lattice_shape)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` fields of the mixture and their exact log-density."""
        check_positive_int(n, name="the batch size")
        phi, log_q = self.flow.sample(n)
        log_q_mirror = self.flow.log_prob(-phi)
        sign = torch.randint(0, 2, (n,), device=phi.device).to(phi.dtype) * 2 - 1
        phi = phi * sign.view(n, *([1] * (phi.dim() - 1)))
        return phi, torch.logaddexp(log_q, log_q_mirror) - _LOG_2

    def log_prob(self, phi: torch.Tensor) -> torch.Tensor:
        """:math:`\\log q_s(\\phi)` for ``(batch, *L)`` fields."""
        check_field(phi, self.lattice_shape, name="phi")
        # One reverse pass over the batch and its mirror image together: the same arithmetic as two
        # passes, in half the operations (kernel launches, on a GPU).
        log_q, log_q_mirror = self.flow.log_prob(torch.cat([phi, -phi])).chunk(2)
        return torch.logaddexp(log_q, log_q_mirror) - _LOG_2
