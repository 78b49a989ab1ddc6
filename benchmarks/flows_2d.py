"""Flows on 2-D densities (unit 7): exact reverse KL after a fixed wall time, and the libraries.

Usage:
    .venv/bin/python benchmarks/flows_2d.py grid [--budget 60] [--seeds 0 1 2] [--clock cpu]
        [--families planar radial householder sylvester ...] [--targets U1 U2 U3 U4 mixture]
    .venv/bin/python benchmarks/flows_2d.py libraries [--budget 60] [--seeds 0] [--target U1]
        [--layers 32] [--batch-size 128]

``grid``: one row per family x target, the exact KL (nats; E_q[log q + U] + log Z with the grid
log Z, 65536 fresh samples) after ``--budget`` seconds of training on one thread, median and
range over the seeds, and steps per second. ``--clock cpu`` measures the budget in this process's
CPU seconds instead of wall time: what a dedicated core gives, on a machine shared with others.

``libraries``: the same target, number of layers, batch, learning rate, schedule, annealing and
wall time for lftutor's planar/radial/Sylvester layers, Pyro's ``Planar``/``Radial``/``Sylvester``
and normflows' ``Planar`` (benchmark-only extras). Every row's exact KL is computed the same way
from the flow's own samples and log-densities; the steps-per-second ratio is lftutor / library.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from lftutor.toy2d.flows import available_families, make_flow, training_defaults
from lftutor.toy2d.targets import TARGET_NAMES, exact_kl, get_target
from lftutor.toy2d.training import fit_reverse_kl, warm_up
from lftutor.training.loop import TrainingDiverged, cosine_schedule

LAYERS = {"planar": 32, "radial": 32, "householder": 2, "sylvester": 16}
AR_LAYERS = 4


def run_lftutor(family: str, target_name: str, seed: int, budget: float, *, layers: int | None = None,
                batch_size: int | None = None, lr: float | None = None, anneal: float = 0.3,
                clock=time.perf_counter) -> dict:
    torch.manual_seed(seed)
    target = get_target(target_name)
    target.log_z  # noqa: B018 - computed before the clock starts
    k = layers or LAYERS.get(family, AR_LAYERS)
    d = training_defaults(family)
    flow = make_flow(family, k)
    steps = []
    try:
        hist = fit_reverse_kl(flow, target, time_budget=budget, batch_size=batch_size or d["batch_size"],
                              lr=lr or d["lr"], anneal=anneal, clock=clock,
                              callbacks=[lambda h: steps.append(h.seconds[-1])])
    except TrainingDiverged as err:  # reported as a row, not a crash of the whole table
        print(f"# {family} on {target_name}, seed {seed}: {err}", flush=True)
        return {"impl": f"lftutor {family}", "family": family, "target": target_name, "seed": seed,
                "layers": k, "steps": len(steps), "steps_per_s": len(steps) / max(steps[-1], 1e-9),
                "kl": float("nan"), "kl_stderr": float("nan")}
    seconds = hist.seconds[-1]
    kl = exact_kl(flow, target)
    return {"impl": f"lftutor {family}", "family": family, "target": target_name, "seed": seed,
            "layers": k, "steps": len(hist), "steps_per_s": len(hist) / seconds, "kl": kl["kl"],
            "kl_stderr": kl["kl_stderr"]}


# ---------------------------------------------------------------------------- other libraries


class _PyroFlow(torch.nn.Module):
    """Pyro transforms on a standard normal, with ``sample(n) -> (x, log_q)``."""

    def __init__(self, kind: str, layers: int):
        super().__init__()
        import pyro.distributions as pdist
        import pyro.distributions.transforms as T

        make = {"planar": lambda: T.planar(2), "radial": lambda: T.radial(2),
                "sylvester": lambda: T.sylvester(2, count_transforms=2)}[kind]
        self.transforms = torch.nn.ModuleList([make() for _ in range(layers)])
        base = pdist.Normal(torch.zeros(2), torch.ones(2)).to_event(1)
        self.dist = pdist.TransformedDistribution(base, list(self.transforms))

    def sample(self, n: int):
        x = self.dist.rsample((n,))
        return x, self.dist.log_prob(x)  # log_prob reads the transforms' caches of this sample


class _NormflowsFlow(torch.nn.Module):
    def __init__(self, layers: int):
        super().__init__()
        import normflows as nf

        self.model = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False),
                                        [nf.flows.Planar((2,)) for _ in range(layers)])

    def sample(self, n: int):
        return self.model.sample(n)


def run_library(impl: str, target_name: str, seed: int, budget: float, *, layers: int, batch_size: int,
                lr: float, anneal: float = 0.3) -> dict:
    """The lftutor loop's recipe (Adam, cosine decay, linear annealing) in a plain loop."""
    torch.manual_seed(seed)
    target = get_target(target_name)
    target.log_z  # noqa: B018
    flow = _NormflowsFlow(layers) if impl == "normflows planar" else _PyroFlow(impl.split()[-1], layers)
    opt = torch.optim.Adam(flow.parameters(), lr=lr, foreach=True)
    start = time.perf_counter()
    steps = 0
    while (elapsed := time.perf_counter() - start) < budget:
        progress = elapsed / budget
        for g in opt.param_groups:
            g["lr"] = lr * cosine_schedule(progress)
        beta = min(1.0, 0.05 + 0.95 * progress / anneal) if anneal else 1.0
        x, log_q = flow.sample(batch_size)
        loss = (log_q + beta * target(x)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    seconds = time.perf_counter() - start
    kl = exact_kl(_NoGrad(flow), target, batch_size=4096)
    return {"impl": impl, "family": impl.split()[-1], "target": target_name, "seed": seed, "layers": layers,
            "steps": steps, "steps_per_s": steps / seconds, "kl": kl["kl"], "kl_stderr": kl["kl_stderr"]}


class _NoGrad:
    def __init__(self, flow):
        self.flow = flow

    def sample(self, n):
        with torch.no_grad():
            x, lq = self.flow.sample(n)
        return x.detach(), lq.detach()


# ---------------------------------------------------------------------------- tables


def _fmt(values: list[float]) -> str:
    if any(v != v for v in values):
        finite = [v for v in values if v == v]
        rest = f", {_fmt(finite)}" if finite else ""
        return f"diverged ({len(values) - len(finite)}/{len(values)}){rest}"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.3f}"
    return f"{med:.3f} [{min(values):.3f}, {max(values):.3f}]"


def grid(args) -> None:
    families = args.families or list(available_families())
    rows = []
    for family in families:
        for target in args.targets:
            for seed in args.seeds:
                row = run_lftutor(family, target, seed, args.budget,
                                  clock=time.process_time if args.clock == "cpu" else time.perf_counter)
                rows.append(row)
                print(f"# {row}", flush=True)
    print(f"\n| family (layers) | {' | '.join(args.targets)} | steps/s (median) |")
    print(f"| --- | {' | '.join('---' for _ in args.targets)} | --- |")
    for family in families:
        cells, sps = [], []
        for target in args.targets:
            rs = [r for r in rows if r["family"] == family and r["target"] == target]
            cells.append(_fmt([r["kl"] for r in rs]))
            sps += [r["steps_per_s"] for r in rs]
        k = LAYERS.get(family, AR_LAYERS)
        print(f"| {family} ({k}) | {' | '.join(cells)} | {statistics.median(sps):.0f} |")


def libraries(args) -> None:
    impls = ["lftutor planar", "pyro planar", "normflows planar", "lftutor radial", "pyro radial",
             "lftutor sylvester", "pyro sylvester"]
    rows = []
    # Seed-major order: every implementation of one seed runs within minutes of the others, so a
    # change of the machine's load over the run hits all of them alike.
    for seed in args.seeds:
        for impl in impls:
            cpu0 = time.process_time()
            if impl.startswith("lftutor"):
                row = run_lftutor(impl.split()[-1], args.target, seed, args.budget, layers=args.layers,
                                  batch_size=args.batch_size, lr=args.lr)
            else:
                row = run_library(impl, args.target, seed, args.budget, layers=args.layers,
                                  batch_size=args.batch_size, lr=args.lr)
            # CPU time of this process per step (training and the final KL estimate): what the
            # implementation costs, whatever else the machine runs.
            row["cpu_ms_per_step"] = 1e3 * (time.process_time() - cpu0) / max(row["steps"], 1)
            rows.append(row)
            print(f"# {row}", flush=True)
    print(f"\n| implementation ({args.layers} layers, {args.target}) | exact KL | steps/s | "
          "steps/s ratio lftutor / this | CPU ms per step |")
    print("| --- | --- | --- | --- | --- |")
    for impl in impls:
        rs = [r for r in rows if r["impl"] == impl]
        ours = [r for r in rows if r["impl"] == f"lftutor {rs[0]['family']}"]
        sps = statistics.median(r["steps_per_s"] for r in rs)
        ratio = statistics.median(r["steps_per_s"] for r in ours) / sps
        cpu = statistics.median(r["cpu_ms_per_step"] for r in rs)
        print(f"| {impl} | {_fmt([r['kl'] for r in rs])} | {sps:.0f} | {ratio:.2f} | {cpu:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    g = sub.add_parser("grid")
    g.add_argument("--families", nargs="+", default=None)
    g.add_argument("--targets", nargs="+", default=list(TARGET_NAMES))
    g.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="measure --budget in wall seconds or in this process's CPU seconds")
    lib = sub.add_parser("libraries")
    lib.add_argument("--target", default="U1")
    lib.add_argument("--layers", type=int, default=32)
    lib.add_argument("--batch-size", type=int, default=128)
    lib.add_argument("--lr", type=float, default=1e-2)
    for p in (g, lib):
        p.add_argument("--budget", type=float, default=60.0)
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        p.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warm_up()
    print(f"# {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), "
          f"budget {args.budget:g} s ({getattr(args, 'clock', 'wall')} clock), seeds {args.seeds}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    (grid if args.what == "grid" else libraries)(args)


if __name__ == "__main__":
    main()
