"""Training: the reverse-KL and ESS metrics, the one training loop, recipes, live plots.

Modules: :mod:`~lftutor.training.metrics`, :mod:`~lftutor.training.loop` (``train``,
``evaluate``, callbacks, gradient estimators), :mod:`~lftutor.training.recipes` (``FAST``,
``TUTORIAL``), :mod:`~lftutor.training.live` (``LivePlot``, ``ProgressBar``).
"""

from lftutor.training.loop import Callback, History, cosine_schedule, evaluate, train
from lftutor.training.metrics import acceptance_rate, ess, log_weights, reverse_kl

__all__ = ["Callback", "History", "acceptance_rate", "cosine_schedule", "ess", "evaluate",
           "log_weights", "reverse_kl", "train"]
