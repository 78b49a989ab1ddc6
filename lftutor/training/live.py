"""Watching training: a live ESS/loss plot and a progress bar, both as training callbacks.

The plot redraws at most once every ``min_interval`` seconds (a matplotlib redraw costs about
0.2 s, which would otherwise dominate a fast training step), updates a single display handle
in place and closes its figure, so a saved notebook holds one image, not one per redraw.
Outside a Jupyter kernel (a script, a terminal, the grader) it draws nothing until the end,
where it can save a PNG.
"""

from __future__ import annotations

import time

import numpy as np

from lftutor.training.loop import Callback, History


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, classic notebook, Colab)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def moving_average(x, window: int = 10) -> np.ndarray:
    """Trailing moving average of a 1-D series, ignoring NaNs; same length as ``x``."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return x
    valid = ~np.isnan(x)
    csum = np.cumsum(np.where(valid, x, 0.0))
    ccount = np.cumsum(valid)
    lo = np.arange(x.size) - window
    sums = csum - np.where(lo >= 0, csum[np.clip(lo, 0, None)], 0.0)
    counts = ccount - np.where(lo >= 0, ccount[np.clip(lo, 0, None)], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def plot_history(history: History, *, ax_ess=None, window: int = 10, title: str | None = None):
    """ESS (left axis) and reverse-KL loss (right axis) against the training step.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if ax_ess is None:
        fig, ax_ess = plt.subplots(figsize=(7, 3.5), dpi=100)
    fig = ax_ess.figure
    steps = np.asarray(history.step)
    ess = np.asarray(history.ess, dtype=float)
    loss = np.asarray(history.loss, dtype=float)
    ax_ess.plot(steps, ess, color="tab:blue", alpha=0.25, lw=0.8)
    ax_ess.plot(steps, moving_average(ess, window), color="tab:blue", label="ESS (moving avg.)")
    ax_ess.set_ylim(0, 1)
    ax_ess.set_xlabel("training step")
    ax_ess.set_ylabel("ESS", color="tab:blue")
    ax_loss = ax_ess.twinx()
    ax_loss.plot(steps, loss, color="tab:orange", alpha=0.25, lw=0.8)
    ax_loss.plot(steps, moving_average(loss, window), color="tab:orange", label="loss (moving avg.)")
    ax_loss.set_ylabel("reverse KL loss", color="tab:orange")
    if len(steps):
        last = f"step {steps[-1]}: ESS {np.nanmean(ess[-window:]):.3f}, loss {np.mean(loss[-window:]):.2f}"
    else:
        last = "no steps yet"
    ax_ess.set_title(title or f"Training: ESS should rise while the loss falls ({last})", fontsize=9)
    fig.tight_layout()
    return fig


class LivePlot(Callback):
    """Live ESS and loss while training, redrawn in place at most once per ``min_interval`` s.

    Args:
        min_interval: seconds between redraws.
        window: moving-average window in steps.
        save_to: optional path of a PNG written at the end of training (useful headless).
    """

    def __init__(self, *, min_interval: float = 1.0, window: int = 10, save_to: str | None = None):
        self.min_interval, self.window, self.save_to = min_interval, window, save_to
        self._handle = None
        self._last = -float("inf")
        self.redraws = 0

    def _render(self, history: History):
        fig = plot_history(history, window=self.window)
        if in_notebook():
            from IPython.display import display

            if self._handle is None:
                self._handle = display(fig, display_id=True)
            else:
                self._handle.update(fig)
            self.redraws += 1
        return fig

    def on_train_begin(self, history: History) -> None:
        self._handle, self._last = None, -float("inf")

    def on_step(self, history: History) -> None:
        if not in_notebook():
            return
        now = time.perf_counter()
        if now - self._last >= self.min_interval:
            self._last = now
            import matplotlib.pyplot as plt

            plt.close(self._render(history))  # keep one image: the handle, not an inline copy

    def on_train_end(self, history: History) -> None:
        if not in_notebook() and self.save_to is None:
            return
        import matplotlib.pyplot as plt

        fig = self._render(history)  # the final state, always drawn
        if self.save_to is not None:
            fig.savefig(self.save_to, dpi=100)
        plt.close(fig)


class ProgressBar(Callback):
    """A ``tqdm.auto`` bar showing ESS and loss, a notebook widget or a terminal bar.

    Args:
        total: expected number of steps (``None`` for a time budget: the bar counts up).
        every: update the postfix every this many steps.
        **tqdm_kwargs: passed to tqdm (e.g. ``file=sys.stderr``, ``disable=True``).
    """

    def __init__(self, total: int | None = None, *, every: int = 10, window: int = 10,
                 **tqdm_kwargs):
        self.total, self.every, self.window, self.kwargs = total, every, window, tqdm_kwargs
        self.bar = None

    def on_train_begin(self, history: History) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc="training", unit="step", **self.kwargs)

    def on_step(self, history: History) -> None:
        self.bar.update(1)
        if len(history) % self.every == 0:
            ess = np.nanmean(np.asarray(history.ess[-self.window:], dtype=float))
            self.bar.set_postfix(ess=f"{ess:.3f}", loss=f"{np.mean(history.loss[-self.window:]):.2f}",
                                 refresh=False)

    def on_train_end(self, history: History) -> None:
        if self.bar is not None:
            self.bar.close()
