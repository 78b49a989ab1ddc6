"""chi_2 at L=8, m2=-4, lam=8 from flow-based Metropolis and from HMC, with autocorrelation-aware errors.

Usage:  .venv/bin/python benchmarks/chi2_agreement.py [--train-budget 120] [--flow-samples 131072]
            [--recipe fast] [--hmc-samples 192000] [--seed 0] [--threads N]

Trains a flow with the chosen recipe (or loads --weights), runs an independence Metropolis chain
of --flow-samples proposals and an HMC run of --hmc-samples trajectories (32 chains), and prints
chi_2 +- error, tau_int and acceptance for each, their difference in combined standard errors,
and each one's distance from the tutorial's HMC reference 0.75 +- 0.01.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import torch

from lftutor import ScalarPhi4Action
from lftutor.lattice.mcmc import flow_metropolis, hmc, phi4_force
from lftutor.lattice.observables import chi2_from_chain, magnetization
from lftutor.training.loop import evaluate, train
from lftutor.training.recipes import get_recipe

REFERENCE = (0.75, 0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--L", type=int, default=8)
    parser.add_argument("--m2", type=float, default=-4.0)
    parser.add_argument("--lam", type=float, default=8.0)
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--train-budget", type=float, default=120.0)
    parser.add_argument("--flow-samples", type=int, default=131072)
    parser.add_argument("--hmc-samples", type=int, default=192000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    action = ScalarPhi4Action(args.m2, args.lam)
    volume = args.L * args.L
    print(f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"L={args.L}, m2={args.m2}, lam={args.lam}, seed {args.seed}")

    recipe = get_recipe(args.recipe)
    flow = recipe.build_flow((args.L, args.L))
    if args.weights:
        flow.load_state_dict(torch.load(args.weights, map_location="cpu"))
    else:
        train(flow, action, time_budget=args.train_budget, **recipe.train_kwargs())
    flow.eval()
    quality = evaluate(flow, action, n_samples=8192)
    start = time.perf_counter()
    chain = flow_metropolis(flow, action, args.flow_samples, observable=magnetization)
    flow_s = time.perf_counter() - start
    flow_res = chi2_from_chain(chain.configs.numpy(), volume)

    start = time.perf_counter()
    n_chains = 32
    hchain = hmc(action, torch.zeros(n_chains, args.L, args.L, dtype=torch.float64),
                 args.hmc_samples // n_chains, step_size=0.1, n_leapfrog=10,
                 force=lambda p: phi4_force(p, args.m2, args.lam), observable=magnetization)
    hmc_s = time.perf_counter() - start
    keep = hchain.configs[hchain.configs.shape[0] // 10:]
    hmc_res = chi2_from_chain(keep.numpy(), volume)

    print("| sampler | chi_2 | error | tau_int (M^2) | acceptance | samples | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| flow ({recipe.name}, ESS {quality['ess']:.3f}) | {flow_res['chi2']:.4f} | "
          f"{flow_res['chi2_err']:.4f} | "
          f"{flow_res['tau_int']:.2f} | {chain.acceptance:.3f} | {flow_res['n']} | {flow_s:.1f} |")
    print(f"| HMC (eps 0.1, 10 steps, {n_chains} chains) | {hmc_res['chi2']:.4f} | "
          f"{hmc_res['chi2_err']:.4f} | "
          f"{hmc_res['tau_int']:.2f} | {hchain.acceptance:.3f} | {hmc_res['n']} | {hmc_s:.1f} |")
    diff = (flow_res["chi2"] - hmc_res["chi2"]) / math.hypot(flow_res["chi2_err"], hmc_res["chi2_err"])
    print(f"flow - HMC = {diff:+.2f} combined sigma")
    for name, r in (("flow", flow_res), ("HMC", hmc_res)):
        d = (r["chi2"] - REFERENCE[0]) / math.hypot(r["chi2_err"], REFERENCE[1])
        print(f"{name} - reference 0.75(1) = {d:+.2f} combined sigma")


if __name__ == "__main__":
    main()
