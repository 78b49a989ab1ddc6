"""Free-field coupling models at L=8, m2=0.25: what each reaches in the same wall-time budget.

Usage:  .venv/bin/python benchmarks/gff_models.py [--budget 30] [--seeds 0 1 2] [--threads 1]
            [--models linear nonlinear equivariant] [--gradients path reparam]

Prints one row per model and seed: steps, ESS and Metropolis acceptance on 8192 fresh samples,
the exact KL (from the known log Z) and, for the linear model, the relative Frobenius error of
J J^T against the exact covariance.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from lftutor import FreeFieldAction
from lftutor.bijections.free_field import GFF_MODELS, exact_kl
from lftutor.bijections.jacobians import model_jacobian
from lftutor.training.loop import cosine_schedule, evaluate, train

SETTINGS = {  # batch size, learning rate, layers (the CLI's defaults for the linear model)
    "linear": dict(batch_size=1024, lr=2e-2, n_layers=4),
    "nonlinear": dict(batch_size=1024, lr=5e-3, n_layers=4),
    "equivariant": dict(batch_size=1024, lr=2e-2, n_layers=4),
}


def run(model: str, seed: int, budget: float, L: int, m2: float, gradient: str) -> dict:
    torch.manual_seed(seed)
    gff = FreeFieldAction(m2, (L, L))
    s = SETTINGS[model]
    flow = GFF_MODELS[model]((L, L), n_layers=s["n_layers"])
    start = time.perf_counter()
    hist = train(flow, gff, time_budget=budget, batch_size=s["batch_size"], lr=s["lr"],
                 lr_schedule=cosine_schedule, ess_every=10, gradient=gradient)
    seconds = time.perf_counter() - start
    ev = evaluate(flow, gff, n_samples=8192)
    row = {"model": model, "gradient": gradient, "seed": seed, "steps": len(hist), "seconds": seconds,
           "ess": ev["ess"],
           "acceptance": ev["acceptance"], "kl": exact_kl(ev["loss"], gff.log_z), "jjt_err": float("nan")}
    if model == "linear":
        flow64 = flow.double()
        jac = model_jacobian(flow64, torch.zeros(1, L, L, dtype=torch.float64))[0]
        sigma = gff.covariance
        row["jjt_err"] = (torch.linalg.norm(jac @ jac.T - sigma) / torch.linalg.norm(sigma)).item()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=30.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(GFF_MODELS))
    parser.add_argument("--L", type=int, default=8)
    parser.add_argument("--m2", type=float, default=0.25)
    parser.add_argument("--gradients", nargs="+", default=["path", "reparam"],
                        choices=["path", "reparam"], help="gradient estimators to compare")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, budget {args.budget:g} s, L={args.L}, m2={args.m2}")
    print("| model | gradient | seed | steps | ESS | acceptance | exact KL | J J^T vs Sigma (rel.) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for model in args.models:
        for seed in args.seeds:
            for gradient in args.gradients:
                r = run(model, seed, args.budget, args.L, args.m2, gradient)
                print(f"| {r['model']} | {gradient} | {r['seed']} | {r['steps']} | {r['ess']:.4f} | "
                      f"{r['acceptance']:.3f} | {r['kl']:.4f} | {r['jjt_err']:.2e} |", flush=True)


if __name__ == "__main__":
    main()
