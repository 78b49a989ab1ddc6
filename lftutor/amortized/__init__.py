r"""Amortized inference with flows (Rezende & Mohamed, arXiv:1505.05770, sec. 6.2).

Two ways of paying for inference once instead of once per problem:

* :mod:`~lftutor.amortized.family`: one *conditional* flow :math:`q(z\mid\theta)` for a whole
  family of 2-D targets :math:`p_\theta \propto e^{-U_\theta}`, trained by the reverse KL
  averaged over :math:`\theta`, with the exact KL per :math:`\theta` from a grid :math:`\log Z`
  and the *amortization gap* against flows trained for one :math:`\theta` each;
* :mod:`~lftutor.amortized.vae`: a variational autoencoder for the 8x8 digits of
  :mod:`~lftutor.amortized.digits`, whose encoder produces the posterior :math:`q(z\mid x)`:
  a diagonal Gaussian, a planar flow or an inverse autoregressive flow (IAF);
  :mod:`~lftutor.amortized.bounds` has the ELBO and the importance-sampled (IWAE) estimate of
  the held-out :math:`\log p(x)`.

The conditional layers used by both (planar with per-sample parameters, IAF with a context,
optionally odd) are the package's bijections, :mod:`lftutor.bijections.conditional`.
"""

from lftutor.amortized.bounds import elbo, iwae_log_likelihood, log_mean_exp
from lftutor.amortized.digits import DigitsSplit, load_digits_split

__all__ = ["DigitsSplit", "elbo", "iwae_log_likelihood", "load_digits_split", "log_mean_exp"]
