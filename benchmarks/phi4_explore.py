"""Variants of the fast phi^4 recipe at equal work: ESS after a number of steps, CPU time per step.

Usage (from the repository root; one line of JSON per run)::

    .venv/bin/python benchmarks/phi4_explore.py --steps 2200 --seeds 0 1 2
    .venv/bin/python benchmarks/phi4_explore.py --steps 3250 --set '{"batch_size": 64}'
    .venv/bin/python benchmarks/phi4_explore.py --steps 3500 \\
        --set '{"coupling": "odd-spline", "z2_symmetric": false}'
    .venv/bin/python benchmarks/phi4_explore.py --steps 1900 \\
        --phases '[[0.5, {}], [0.5, {"gradient": "path"}]]'
    .venv/bin/python benchmarks/phi4_explore.py --steps 2340 --ema 0.02

``--set`` replaces fields of ``FAST`` (:class:`lftutor.training.recipes.Recipe`); ``--phases``
splits the steps into consecutive trainings with their own :func:`lftutor.training.loop.train`
keywords (a batch-size schedule, or path gradients after a warm-up), sharing one Adam optimiser
and one learning-rate schedule over all the steps; ``--ema`` evaluates an exponential moving
average of the weights (this factor per step) instead of the last ones. Budgets are in steps,
not seconds, and training runs on one thread: on a machine shared with other users this is
equal work for every variant, and the CPU time per step (``cpu_ms``, the process's own) says
what a step costs. To compare at equal time, give each variant the steps that its ``cpu_ms``
buys in the time of the reference's steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import torch

from lftutor import ScalarPhi4Action
from lftutor.course import seed_all
from lftutor.training.loop import evaluate, train
from lftutor.training.recipes import FAST


def run(overrides: dict, seed: int, steps: int, phases: list, ema: float | None, *,
        L: int = 8, m2: float = -4.0, lam: float = 8.0, eval_samples: int = 8192) -> dict:
    recipe = dataclasses.replace(FAST, **{k: tuple(v) if isinstance(v, list) else v
                                          for k, v in overrides.items()})
    seed_all(seed)
    torch.set_num_threads(1)
    action = ScalarPhi4Action(m2, lam)
    flow = recipe.build_flow((L, L))
    kwargs = recipe.train_kwargs()
    schedule = kwargs.pop("lr_schedule") or (lambda p: 1.0)
    optimizer = torch.optim.Adam(flow.parameters(), lr=kwargs.pop("lr"))
    params = list(flow.parameters())
    average = [p.detach().clone() for p in params] if ema else None

    def update_average(history):
        with torch.no_grad():
            torch._foreach_lerp_(average, [p.detach() for p in params], ema)

    wall, cpu = time.perf_counter(), time.process_time()
    done, history = 0, None
    for i, (fraction, phase) in enumerate(phases):
        n = steps - done if i == len(phases) - 1 else int(round(fraction * steps))
        history = train(flow, action, steps=n, optimizer=optimizer, history=history,
                        callbacks=[update_average] if ema else [],
                        lr_schedule=lambda p, a=done, n=n: schedule((a + p * n) / steps),
                        **{**kwargs, **phase})
        done += n
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if ema:
        with torch.no_grad():
            for p, a in zip(params, average, strict=True):
                p.copy_(a)
    ev = evaluate(flow, action, n_samples=eval_samples, generator=torch.Generator().manual_seed(seed))
    return {"set": overrides, "phases": phases, "ema": ema, "seed": seed, "steps": steps,
            "cpu_ms": round(1e3 * cpu / steps, 2), "wall_ms": round(1e3 * wall / steps, 2),
            "ess": round(ev["ess"], 4), "acceptance": round(ev["acceptance"], 4),
            "loss": round(ev["loss"], 4), "load": round(os.getloadavg()[0], 2)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--set", default="{}", help="JSON: fields of FAST to replace")
    p.add_argument("--phases", default="[[1.0, {}]]",
                   help="JSON: [[fraction of steps, train() keywords], ...]; the last takes the rest")
    p.add_argument("--ema", type=float, default=None, help="weight averaging factor per step")
    p.add_argument("--eval-samples", type=int, default=8192)
    args = p.parse_args(argv)
    for seed in args.seeds:
        print(json.dumps(run(json.loads(args.set), seed, args.steps, json.loads(args.phases), args.ema,
                             eval_samples=args.eval_samples)), flush=True)


if __name__ == "__main__":
    main()
