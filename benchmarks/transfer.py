"""Transfer across lattice sizes: a flow trained at L = 8 as the start at L = 16 and L = 32.

Issue 24, target 2, at m^2 = -4, lambda = 8 (the course's couplings): at L = 16, the CPU time
for the ESS to reach ``--target`` (default 0.5) from scratch and from the shipped L = 8 weights
(``lftutor/weights/phi4_L8_m2-4_lam8.pt``, recipe ``fast``), over ``--seeds``; at ``--big-L``
(default 32), the ESS reached from the transferred weights within ``--big-budget`` CPU seconds.

Both start the same way: the recipe's optimiser (Adam, its learning rate, its batch) with a
constant rate (a cosine schedule would tie the rate to a budget that differs between the two).
Every ``--every`` CPU seconds of training, the ESS is measured on ``--eval-samples`` fresh
samples; that evaluation is not counted as training time. The clock is this process's CPU time
(``time.process_time``; the recipe trains on one thread), so other jobs on a shared machine do
not eat into the budgets. A run stops at its target or its budget.

Usage (from the repository root; the numbers in benchmarks/README.md came from this)::

    .venv/bin/python benchmarks/transfer.py --seeds 0 1 2 --budget 600 --big-budget 1200 \\
        --json benchmarks/results/transfer.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lftutor.lattice.actions import ScalarPhi4Action  # noqa: E402
from lftutor.training.loop import Callback, evaluate, train  # noqa: E402
from lftutor.training.recipes import get_recipe  # noqa: E402
from lftutor.training.transfer import load_transferred  # noqa: E402


class _Reached(Exception):
    """Raised by the milestone callback to end a run at its target."""


class Milestones(Callback):
    """Measures the ESS on fresh samples every ``every`` CPU seconds of training, keeping the
    time spent measuring out of the training clock; stops the run at ``target``."""

    def __init__(self, flow, action, *, every: float, n_samples: int, target: float):
        self.flow, self.action = flow, action
        self.every, self.n_samples, self.target = every, n_samples, target
        self.paused = 0.0  # CPU seconds spent evaluating
        self.points: list[tuple[float, float]] = []  # (training CPU seconds, ESS)
        self.next_at = 0.0

    def clock(self) -> float:
        return time.process_time() - self.paused

    def measure(self, at: float) -> float:
        start = time.process_time()
        ess = float(evaluate(self.flow, self.action, n_samples=self.n_samples)["ess"])
        self.paused += time.process_time() - start
        self.points.append((round(at, 1), round(ess, 4)))
        self.next_at = at + self.every
        return ess

    def on_step(self, history) -> None:
        at = history.seconds[-1]
        if at >= self.next_at and self.measure(at) >= self.target:
            raise _Reached


def run(size: int, *, seed: int, weights: str | None, target: float, budget: float, every: float,
        n_samples: int, recipe_name: str) -> dict:
    """One training run at ``size`` from scratch (``weights=None``) or from ``weights``."""
    torch.manual_seed(seed)
    recipe = get_recipe(recipe_name)
    flow = recipe.build_flow((size, size))
    if weights:
        load_transferred(flow, weights)
    action = ScalarPhi4Action(-4.0, 8.0)
    kwargs = {k: v for k, v in recipe.train_kwargs().items() if k != "lr_schedule"}
    marks = Milestones(flow, action, every=every, n_samples=n_samples, target=target)
    start = marks.clock()
    reached = marks.measure(0.0) >= target
    if not reached:
        try:
            train(flow, action, time_budget=budget, callbacks=[marks],
                  clock=lambda: marks.clock() - start, **kwargs)
            marks.measure(marks.clock() - start)
        except _Reached:
            pass
    hit = next((t for t, ess in marks.points if ess >= target), None)
    return {"L": size, "seed": seed, "start": "transfer" if weights else "scratch",
            "target": target, "budget": budget, "seconds_to_target": hit,
            "ess_at_start": marks.points[0][1], "ess_final": marks.points[-1][1],
            "points": marks.points}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--L", type=int, default=16)
    p.add_argument("--target", type=float, default=0.5)
    p.add_argument("--budget", type=float, default=600.0, help="CPU seconds per run at --L")
    p.add_argument("--big-L", type=int, default=32)
    p.add_argument("--big-target", type=float, default=0.2)
    p.add_argument("--big-budget", type=float, default=1200.0, help="CPU seconds at --big-L (0: skip)")
    p.add_argument("--every", type=float, default=30.0, help="CPU seconds between ESS measurements")
    p.add_argument("--eval-samples", type=int, default=2048)
    p.add_argument("--weights", default=str(ROOT / "lftutor/weights/phi4_L8_m2-4_lam8.pt"))
    p.add_argument("--recipe", default="fast")
    p.add_argument("--json", metavar="FILE", help="write every run here")
    args = p.parse_args(argv)
    common = {"every": args.every, "n_samples": args.eval_samples, "recipe_name": args.recipe}
    runs = []
    for seed in args.seeds:
        for weights in (None, args.weights):
            runs.append(run(args.L, seed=seed, weights=weights, target=args.target,
                            budget=args.budget, **common))
            print(json.dumps(runs[-1]), flush=True)
    if args.big_budget > 0:
        runs.append(run(args.big_L, seed=args.seeds[0], weights=args.weights,
                        target=args.big_target, budget=args.big_budget,
                        **{**common, "every": 2 * args.every}))
        print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for start in ("scratch", "transfer"):
        times = [r["seconds_to_target"] for r in runs
                 if r["L"] == args.L and r["start"] == start]
        summary[start] = {"seconds_to_target": times,
                          "median": statistics.median(t if t is not None else float("inf")
                                                      for t in times)}
    print(json.dumps({"summary": summary}), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs,
                                               "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
