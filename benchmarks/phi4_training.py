"""phi^4 training recipes side by side: ESS and acceptance reached in the same wall-time budgets.

Usage:  .venv/bin/python benchmarks/phi4_training.py [--budgets 30 60 120] [--seeds 0 1 2]
            [--recipes tutorial tutorial@1 fast fast:path] [--L 8 --m2 -4 --lam 8] [--jsonl FILE]
            [--steps]

A recipe name may be followed by ``[field=value,...]`` to replace fields of the recipe
(``"fast[batch_size=128]"``; quote it in a shell), may end in ``@N`` to train it with N torch
threads instead of its own setting (``tutorial`` keeps torch's default), and in ``:path`` or
``:reparam`` to override its gradient estimator. With ``--steps`` the budgets are numbers of
optimiser steps instead of seconds: equal work for every recipe, the fair comparison on a
machine shared with other users (wall-time budgets then measure the load as much as the recipe).
Runs are interleaved (seed, budget, then recipe), so a change of the machine's load during the
benchmark hits every recipe alike. Each row: optimiser steps done, training seconds, and ESS and
independence-Metropolis acceptance on 8192 fresh samples (float32 training, float64 weights for
the metrics), the process's CPU time per step (``cpu ms/step``: this recipe's own cost, which
other users of the machine barely change), and the fraction of fresh samples with positive
magnetization (``M>0``: 0.5 for a flow that covers both signs of the field, near 0 or 1 for one
that lost a mode, whose ESS cannot show it).
Ends with a summary: median and minimum ESS per recipe and budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import statistics
import time

import torch

from lftutor import ScalarPhi4Action
from lftutor.course import seed_all
from lftutor.training.loop import evaluate, train
from lftutor.training.recipes import get_recipe

_SPEC = re.compile(r"^(?P<name>[\w-]+)(\[(?P<fields>[^\]]*)\])?(@(?P<threads>\d+))?(:(?P<gradient>\w+))?$")


def resolve(spec: str):
    """``"fast"``, ``"tutorial@1"``, ``"fast:path"``, ``"fast[batch_size=128,lr=0.005]@1"`` -> a recipe.

    Fields of the recipe are replaced inside ``[...]`` (numbers, ``true``/``false``, or bare
    words for strings), threads after ``@``, the gradient estimator after ``:``.
    """
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(f"expected 'name[field=value,...]@threads:gradient' (all but the name "
                         f"optional), got {spec!r}")
    recipe = get_recipe(match["name"])
    overrides = {}
    for item in filter(None, (match["fields"] or "").split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"expected field=value inside [...], got {item!r} in {spec!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value.strip()
    if overrides:
        recipe = dataclasses.replace(recipe, name=spec, **overrides)
    if match["threads"]:
        recipe = dataclasses.replace(recipe, name=spec, num_threads=int(match["threads"]))
    if match["gradient"]:
        if match["gradient"] not in ("path", "reparam"):
            raise ValueError(f"expected ':path' or ':reparam' after a recipe name, got {spec!r}")
        recipe = dataclasses.replace(recipe, name=spec, gradient=match["gradient"])
    return recipe


def run(spec: str, seed: int, budget: float, *, L: int, m2: float, lam: float,
        eval_samples: int, in_steps: bool = False) -> dict:
    recipe = resolve(spec)
    seed_all(seed)
    action = ScalarPhi4Action(m2, lam)
    flow = recipe.build_flow((L, L), dtype=torch.float32)
    start, cpu_start = time.perf_counter(), time.process_time()
    limit = {"steps": int(budget)} if in_steps else {"time_budget": budget}
    hist = train(flow, action, **limit, **recipe.train_kwargs())
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the evaluation is not timed; keep it off the other processes' way
    try:
        ev = evaluate(flow, action, n_samples=eval_samples,
                      generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():  # a flow that lost one sign of the field shows it here
            positive = float((flow.sample(eval_samples)[0].flatten(1).sum(1) > 0).double().mean())
    finally:
        torch.set_num_threads(threads)
    return {"recipe": spec, "seed": seed, "budget": budget, "steps": len(hist),
            "seconds": round(seconds, 1), "cpu_ms_per_step": round(1e3 * cpu_seconds / max(len(hist), 1), 1),
            "ess": ev["ess"], "acceptance": ev["acceptance"],
            "loss": ev["loss"], "positive": positive, "load": round(os.getloadavg()[0], 2)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", type=float, nargs="+", default=[30, 60, 120])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--recipes", nargs="+", default=["tutorial", "tutorial@1", "fast"])
    p.add_argument("--L", type=int, default=8)
    p.add_argument("--m2", type=float, default=-4.0)
    p.add_argument("--lam", type=float, default=8.0)
    p.add_argument("--eval-samples", type=int, default=8192)
    p.add_argument("--jsonl", help="also append every row as JSON to this file")
    p.add_argument("--steps", action="store_true",
                   help="budgets are numbers of training steps, not seconds (fair on a shared machine)")
    args = p.parse_args(argv)
    for spec in args.recipes:
        resolve(spec)  # fail early on a bad name
    for spec in args.recipes:  # untimed: the process's first steps pay one-time costs (seconds)
        recipe = resolve(spec)
        train(recipe.build_flow((args.L, args.L)), ScalarPhi4Action(args.m2, args.lam), steps=3,
              **{**recipe.train_kwargs(), "batch_size": 8})

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__} (default {torch.get_num_threads()} threads), L={args.L}, "
          f"m2={args.m2}, lam={args.lam}, {args.eval_samples} fresh samples per row")
    w = max(12, *(len(spec) for spec in args.recipes))
    print(f"{'recipe':>{w}} {'budget':>6} {'seed':>4} {'steps':>6} {'sec':>6} {'ESS':>7} "
          f"{'accept':>7} {'loss':>8} {'M>0':>5} {'load':>5} {'cpu ms/step':>11}", flush=True)
    rows = []
    for seed in args.seeds:
        for budget in args.budgets:
            for spec in args.recipes:
                r = run(spec, seed, budget, L=args.L, m2=args.m2, lam=args.lam,
                        eval_samples=args.eval_samples, in_steps=args.steps)
                rows.append(r)
                print(f"{r['recipe']:>{w}} {r['budget']:>6g} {r['seed']:>4} {r['steps']:>6} "
                      f"{r['seconds']:>6.1f} {r['ess']:>7.3f} {r['acceptance']:>7.3f} "
                      f"{r['loss']:>8.3f} {r['positive']:>5.2f} {r['load']:>5.2f} "
                      f"{r['cpu_ms_per_step']:>11.1f}", flush=True)
                if args.jsonl:
                    with open(args.jsonl, "a") as f:
                        f.write(json.dumps(r) + "\n")

    print("\n# ESS on fresh samples: median [min, max] over seeds")
    unit = "steps" if args.steps else "s"
    print(f"{'recipe':>{w}} " + " ".join(f"{f'{b:g} {unit}':>20}" for b in args.budgets))
    for spec in args.recipes:
        cells = []
        for b in args.budgets:
            ess = sorted(r["ess"] for r in rows if r["recipe"] == spec and r["budget"] == b)
            cells.append(f"{statistics.median(ess):.3f} [{ess[0]:.3f}, {ess[-1]:.3f}]")
        print(f"{spec:>{w}} " + " ".join(f"{c:>20}" for c in cells))


if __name__ == "__main__":
    main()
