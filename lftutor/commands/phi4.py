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
    phi4.add_argument("--init-from", metavar="WEIGHTS",
                      help="start from weights trained on another lattice size with the same recipe "
                      "(convolutional layers do not depend on L; see lftutor.training.transfer)")
    _add_ensemble_argument(phi4)
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
    p.add_argument("--tune-acceptance", type=float, metavar="TARGET",
                   help="HMC: choose the leapfrog steps for this acceptance at trajectory length "
                   "--step-size x --n-leapfrog (the same acceptance at every L, for comparing "
                   "autocorrelation times); replaces --step-size and --n-leapfrog")
    _add_ensemble_argument(p)
    p.add_argument("--seed", type=int, default=0)
    add_output_arguments(p)
    p.set_defaults(run=mcmc_phi4)


def _add_ensemble_argument(p) -> None:
    from lftutor.lattice.ensembles import ENSEMBLES

    p.add_argument("--ensemble", choices=sorted(ENSEMBLES),
                   help="take --L, --m2 and --lam from a named ensemble (E1-E5: arXiv:1904.12072 "
                   "at m_p L = 4; course: L=8, m2=-4, lam=8)")


def _apply_ensemble(args) -> None:
    if getattr(args, "ensemble", None):
        from lftutor.lattice.ensembles import get_ensemble

        e = get_ensemble(args.ensemble)
        args.L, args.m2, args.lam = e.L, e.m2, e.lam


def train_phi4(args) -> dict:
    from lftutor.lattice.actions import ScalarPhi4Action
    from lftutor.training.recipes import get_recipe

    _apply_ensemble(args)
    device, dtype = setup(args)
    recipe = get_recipe(args.recipe, device)
    flow = recipe.build_flow((args.L, args.L), dtype=dtype, device=device)
    if args.init_from:
        from lftutor.training.transfer import load_transferred

        load_transferred(flow, args.init_from)
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
        "seed": args.seed, "dtype": args.dtype, "device": str(device), "init_from": args.init_from,
        "steps": steps, "train_seconds": round(seconds, 3), "clock": args.clock,
        "ess": metrics["ess"], "acceptance": metrics["acceptance"], "loss": metrics["loss"],
        "eval_samples": metrics["n_samples"],
    }


def mcmc_phi4(args) -> dict:
    """Run the chain, then the statistics: chi_2, the pole mass and the autocorrelation times of
    the magnetization, each with its error."""
    from lftutor.course import seed_all
    from lftutor.lattice.actions import ScalarPhi4Action

    _apply_ensemble(args)
    if args.L % 2:
        raise ValueError(f"expected an even --L (checkerboard masks need it), got {args.L}")
    if not 0 <= args.thermalize < 1:
        raise ValueError(f"expected --thermalize in [0, 1), got {args.thermalize}")
    if args.tune_acceptance is not None and not 0 < args.tune_acceptance < 1:
        raise ValueError(f"expected --tune-acceptance in (0, 1), got {args.tune_acceptance}")
    seed_all(args.seed)
    action = ScalarPhi4Action(args.m2, args.lam)
    result = {"sampler": args.sampler, "L": args.L, "m2": args.m2, "lam": args.lam, "seed": args.seed,
              "ensemble": args.ensemble}
    start, cpu_start = time.perf_counter(), time.process_time()
    chain_of = _hmc_chain if args.sampler == "hmc" else _flow_chain
    sums, acceptance, info = chain_of(args, action)
    result.update(info)
    result["sample_seconds"] = round(time.perf_counter() - start - info.get("train_seconds", 0), 3)
    # this process's CPU time (all threads): what the chain costs, whatever else the machine runs
    result["sample_cpu_seconds"] = round(time.process_time() - cpu_start
                                         - info.get("train_cpu_seconds", 0), 3)
    result.update(_chain_statistics(sums.numpy(), args.L * args.L), acceptance=acceptance)
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def _hmc_chain(args, action):
    """HMC chains (tuned first if asked): time-slice sums ``(N, chains, L)``, acceptance, info."""
    from lftutor.lattice.mcmc import hmc, phi4_force, tune_hmc
    from lftutor.lattice.observables import slice_sums

    force = lambda p: phi4_force(p, args.m2, args.lam)  # noqa: E731
    phi0 = torch.zeros(args.chains, args.L, args.L, dtype=torch.float64)
    step_size, n_leapfrog = args.step_size, args.n_leapfrog
    info = {}
    if args.tune_acceptance is not None:
        tuned = tune_hmc(action, phi0, target=args.tune_acceptance, force=force,
                         trajectory_length=step_size * n_leapfrog)
        step_size, n_leapfrog, phi0 = tuned["step_size"], tuned["n_leapfrog"], tuned["phi"]
        info["tuned_acceptance"] = round(tuned["acceptance"], 4)
    n_per_chain = max(2, args.samples // args.chains)
    chain = hmc(action, phi0, n_per_chain, step_size=step_size, n_leapfrog=n_leapfrog, force=force,
                observable=slice_sums)
    kept = int(args.thermalize * n_per_chain)
    info.update(step_size=step_size, n_leapfrog=n_leapfrog, chains=args.chains)
    return chain.configs[kept:], chain.accepted[kept:].double().mean().item(), info


def _flow_chain(args, action):
    """Flow-based Metropolis from given or freshly trained weights: time-slice sums ``(N, L)``,
    acceptance, info."""
    from lftutor.lattice.mcmc import flow_metropolis
    from lftutor.lattice.observables import slice_sums
    from lftutor.training.recipes import get_recipe

    recipe = get_recipe(args.recipe)
    flow = recipe.build_flow((args.L, args.L))
    info = {"recipe": recipe.name, "weights": args.weights}
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
        start, cpu_start = time.perf_counter(), time.process_time()
        train(flow, action, time_budget=args.train_budget or 120.0, callbacks=[bar],
              **recipe.train_kwargs())
        info["train_seconds"] = round(time.perf_counter() - start, 3)
        info["train_cpu_seconds"] = round(time.process_time() - cpu_start, 3)
    flow.eval()
    chain = flow_metropolis(flow, action, args.samples, observable=slice_sums)
    return chain.configs, chain.acceptance, info


def _chain_statistics(sums, volume: int) -> dict:
    """chi_2 with its error and tau_int(M^2); tau_int of |M|; the pole mass (None, with the
    reason, where the chain cannot resolve it)."""
    import numpy as np

    from lftutor.lattice.observables import chi2_from_chain, pole_mass
    from lftutor.statistics import tau_int

    m = sums.sum(-1)
    m = m if m.ndim == 2 else m[:, None]
    stats = chi2_from_chain(m, volume)
    out = {"chi2": stats["chi2"], "chi2_err": stats["chi2_err"], "tau_int": stats["tau_int"],
           "tau_int_abs_m": float(np.mean([tau_int(np.abs(m[:, k])) for k in range(m.shape[1])])),
           "samples": stats["n"]}
    try:
        mass = pole_mass(sums)
        out.update(m_p=mass["m_p"], m_p_err=mass["m_p_err"], m_p_L=mass["m_p"] * sums.shape[-1],
                   m_p_window=mass["window"])
    except ValueError as err:
        out.update(m_p=None, m_p_err=None, m_p_L=None, m_p_note=str(err))
    return out
