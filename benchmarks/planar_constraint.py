"""Planar flows with and without the invertibility reparametrisation u -> u_hat (unit 7, section 3).

Usage:
    .venv/bin/python benchmarks/planar_constraint.py [--target U1] [--steps 2000] [--anneal 0.5]
        [--seeds 0 1 2] [--init-scale 0.5 0.01] [--layers 32]

For each initial scale of ``w`` and ``u`` (``Planar(init_scale=...)``; lftutor's default is 0.5)
and each seed, trains the notebook's flow (32 planar layers, reverse KL, Adam lr 1e-2, batch 128,
the same steps and annealing as section 6) twice from the same initial parameters: once with
lftutor's constrained ``u_hat`` (w.u_hat = -1 + softplus(w.u)) and once with ``u`` used as it is.
Prints the exact KL (E_q[log q + U] + log Z, 65536 fresh samples) and, over the layers at the end
of training, the smallest w.u_hat (a value below -1 means a folded, non-invertible layer) and the
smallest ||w||. Steps, not wall time, so the two runs of a pair are compared at equal work.
"""

from __future__ import annotations

import argparse
import time

import torch

from lftutor.bijections.flow import Flow
from lftutor.bijections.planar import Planar
from lftutor.course import seed_all
from lftutor.lattice.priors import SimpleNormal
from lftutor.toy2d.targets import TARGET_NAMES, exact_kl, get_target
from lftutor.toy2d.training import fit_reverse_kl


class FreePlanar(Planar):
    """A planar layer that uses its ``u`` as it is: nothing keeps w.u >= -1."""

    def u_hat(self) -> torch.Tensor:
        return self.u


def planar_flow(n_layers: int, *, constrained: bool, init_scale: float) -> Flow:
    cls = Planar if constrained else FreePlanar
    return Flow(SimpleNormal.standard((2,)), [cls(2, init_scale=init_scale) for _ in range(n_layers)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="U1", choices=TARGET_NAMES)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--anneal", type=float, default=0.5)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--init-scale", type=float, nargs="+", default=[0.5, 0.01])
    args = parser.parse_args()
    torch.set_num_threads(1)
    target = get_target(args.target)
    print(f"{args.target}, {args.layers} planar layers, {args.steps} steps, anneal {args.anneal}")
    print("| init scale | seed | u | exact KL (nats) | min w.u_hat | min ||w|| | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for scale in args.init_scale:
        for seed in args.seeds:
            for constrained in (True, False):
                seed_all(seed)
                flow = planar_flow(args.layers, constrained=constrained, init_scale=scale)
                start = time.perf_counter()
                fit_reverse_kl(flow, target, steps=args.steps, batch_size=128, lr=1e-2,
                               anneal=args.anneal)
                seconds = time.perf_counter() - start
                kl = exact_kl(flow, target)
                with torch.no_grad():
                    wu = min(float(layer.w @ layer.u_hat()) for layer in flow.layers)
                    wn = min(float(layer.w.norm()) for layer in flow.layers)
                print(f"| {scale:g} | {seed} | {'u_hat' if constrained else 'free'} | "
                      f"{kl['kl']:.4f} +- {kl['kl_stderr']:.4f} | {wu:+.3f} | {wn:.3f} | {seconds:.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
