"""``python -m lftutor train phi4`` and ``python -m lftutor mcmc phi4``: scalar phi^4 theory."""

from __future__ import annotations

import sys
import time

import torch

from lftutor.commands._common import (
    add_chain_arguments,
    add_output_arguments,
    add_sampler_arguments,
    add_training_arguments,
    positive_int,
    run_training,
    setup,
)


def register(train, mcmc) -> None:
    """Add ``phi4`` to the ``train`` and ``mcmc`` sub-command groups."""
    from lftutor.training.recipes import RECIPES

    tsub = train
    phi4 = tsub.add_parser("phi4", help="scalar phi^4 theory on an L x L periodic lattice")
    phi4.add_argument("--L", type=positive_int, default=8, help="lattice extent (even)")
    phi4.add_argument("--m2", type=float, default=-4.0, help="bare mass squared")
    phi4.add_argument("--lam", type=float, default=8.0, help="quartic coupling")
    phi4.add_argument("--recipe", choices=[*sorted(RECIPES), "auto"], default="auto",
                      help="architecture and optimiser settings (default auto: fast on a CPU, "
                      "fast-gpu on CUDA)")
    phi4.add_argument("--batch-size", type=positive_int, help="override the recipe's batch size")
    phi4.add_argument("--gradient", choices=["path", "reparam"],
                      help="override the recipe's reverse-KL gradient estimator (path gradients pay "
                      "off in long runs, see benchmarks/README.md)")
    add_training_arguments(phi4, default_budget=120)

    phi4.set_defaults(run=train_phi4)

    msub = mcmc
    p = msub.add_parser("phi4", help="scalar phi^4 theory on an L x L periodic lattice")
    p.add_argument("--L", type=positive_int, default=8, help="lattice extent (even)")
    p.add_argument("--m2", type=float, default=-4.0)
    p.add_argument("--lam", type=float, default=8.0)
    add_sampler_arguments(
        p, weights_help="trained flow weights (from train --save)",
        train_budget_help="train a flow for this long first (default 120 when no --weights)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="fast",
                   help="architecture of the flow (must match --weights)")
    add_chain_arguments(
        p, samples=65536, samples_help="chain length (for HMC: trajectories in total, over all chains)",
        chains=32, thermalize_help="HMC: fraction of each chain discarded (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    add_output_arguments(p)
    p.set_defaults(run=mcmc_phi4)


def train_phi4(args) -> dict:
    from lftutor.lattice.actions import ScalarPhi4Action
    from lftutor.training.recipes import get_recipe

    device, dtype = setup(args)
    recipe = get_recipe(args.recipe, device)
    flow = recipe.build_flow((args.L, args.L), dtype=dtype, device=device)
    action = ScalarPhi4Action(args.m2, args.lam)
    kwargs = recipe.train_kwargs()
    if args.batch_size:
        kwargs["batch_size"] = args.batch_size
    if args.gradient:
        kwargs["gradient"] = args.gradient
    metrics, steps, seconds = run_training(args, flow, action, **kwargs)
    return {
        "model": "phi4", "L": args.L, "m2": args.m2, "lam": args.lam, "recipe": recipe.name,
        "gradient": kwargs["gradient"], "batch_size": kwargs["batch_size"],
        "seed": args.seed, "dtype": args.dtype, "device": str(device),
        "steps": steps, "train_seconds": round(seconds, 3),
        "ess": metrics["ess"], "acceptance": metrics["acceptance"], "loss": metrics["loss"],
        "eval_samples": metrics["n_samples"],
    }


def mcmc_phi4(args) -> dict:
    from lftutor.course import seed_all
    from lftutor.lattice.actions import ScalarPhi4Action
    from lftutor.lattice.mcmc import flow_metropolis, hmc, phi4_force
    from lftutor.lattice.observables import chi2_from_chain, magnetization
    from lftutor.training.recipes import get_recipe

    if args.L % 2:
        raise ValueError(f"expected an even --L (checkerboard masks need it), got {args.L}")
    if not 0 <= args.thermalize < 1:
        raise ValueError(f"expected --thermalize in [0, 1), got {args.thermalize}")
    seed_all(args.seed)
    action = ScalarPhi4Action(args.m2, args.lam)
    volume = args.L * args.L
    start = time.perf_counter()
    result = {"sampler": args.sampler, "L": args.L, "m2": args.m2, "lam": args.lam, "seed": args.seed}
    if args.sampler == "hmc":
        n_per_chain = max(2, args.samples // args.chains)
        phi0 = torch.zeros(args.chains, args.L, args.L, dtype=torch.float64)
        chain = hmc(action, phi0, n_per_chain, step_size=args.step_size, n_leapfrog=args.n_leapfrog,
                    force=lambda p: phi4_force(p, args.m2, args.lam), observable=magnetization)
        m = chain.configs[int(args.thermalize * n_per_chain):]
        result.update(step_size=args.step_size, n_leapfrog=args.n_leapfrog, chains=args.chains)
    else:
        recipe = get_recipe(args.recipe)
        flow = recipe.build_flow((args.L, args.L))
        if args.weights:
            try:
                flow.load_state_dict(torch.load(args.weights, map_location="cpu"))
            except (RuntimeError, OSError) as err:
                raise ValueError(f"could not load --weights {args.weights} into a '{recipe.name}' flow "
                                 f"for L={args.L}: {str(err).splitlines()[0]}") from None
        else:
            from lftutor.training.live import ProgressBar
            from lftutor.training.loop import train

            bar = ProgressBar(file=sys.stderr, disable=args.quiet, mininterval=1.0)
            train(flow, action, time_budget=args.train_budget or 120.0, callbacks=[bar],
                  **recipe.train_kwargs())
        flow.eval()
        chain = flow_metropolis(flow, action, args.samples, observable=magnetization)
        m = chain.configs
        result.update(recipe=recipe.name, weights=args.weights)
    stats = chi2_from_chain(m.numpy(), volume)
    result.update(chi2=stats["chi2"], chi2_err=stats["chi2_err"], tau_int=stats["tau_int"],
                  acceptance=chain.acceptance, samples=stats["n"],
                  seconds=round(time.perf_counter() - start, 3))
    return result
