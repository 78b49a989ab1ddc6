"""One training run of a variant of the fast recipe, for tuning: prints one JSON line.

Usage:  .venv/bin/python benchmarks/phi4_variant.py SEED BUDGET_SECONDS GRADIENT ['{"lr": 0.005}']

GRADIENT is ``reparam`` or ``path``; the optional JSON object overrides fields of
``lftutor.training.recipes.FAST`` (``dataclasses.replace``). Trains at L=8, m2=-4, lam=8 in float32 and
reports steps, ESS and acceptance on 8192 fresh samples, the loss, and ``pos``, the fraction of
fresh samples with positive magnetization.
"""

import dataclasses
import json
import sys
import time

import torch

from lftutor import ScalarPhi4Action
from lftutor.course import seed_all
from lftutor.training.loop import evaluate, train
from lftutor.training.recipes import FAST


def main() -> None:
    seed, budget, gradient = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    over = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    recipe = dataclasses.replace(FAST, **{k: tuple(v) if isinstance(v, list) else v
                                          for k, v in over.items()})
    seed_all(seed)
    action = ScalarPhi4Action(-4.0, 8.0)
    flow = recipe.build_flow((8, 8), dtype=torch.float32)
    start = time.perf_counter()
    history = train(flow, action, time_budget=budget, **{**recipe.train_kwargs(), "gradient": gradient})
    seconds = time.perf_counter() - start
    torch.set_num_threads(1)
    ev = evaluate(flow, action, n_samples=8192, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        phi, _ = flow.sample(8192)
    pos = float((phi.flatten(1).sum(1) > 0).double().mean())
    print(json.dumps({"seed": seed, "budget": budget, "gradient": gradient, "over": over,
                      "steps": len(history), "sec": round(seconds, 1), "ess": round(ev["ess"], 3),
                      "acc": round(ev["acceptance"], 3), "loss": round(ev["loss"], 3),
                      "pos": round(pos, 3)}), flush=True)


if __name__ == "__main__":
    main()
