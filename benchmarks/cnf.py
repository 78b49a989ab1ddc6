"""Continuous flow on standardized two moons: held-out NLL against a planar flow and zuko's CNF.

One run, side by side, same data, seeds, loop (``lftutor.training.loop.train``, Adam with cosine
decay) and wall-time budget for every model::

    .venv/bin/python benchmarks/cnf.py --budget 60 --seeds 0 1 2

Parts: ``compare`` (held-out NLL after the same wall time: our CNF, unit 7's planar flow with
its closed-form direction on the data side, zuko's CNF), ``trace`` (exact against Hutchinson
trace: seconds per training step and NFE, ours and zuko's; and the cost of one field evaluation
with each trace against the dimension), ``solver`` (dopri5 against fixed-step RK4: accuracy and
cost of the log-density of a trained model, and a training run with each). Prints markdown.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from lftutor.bijections.continuous import ContinuousFlow, Inverse, MLPField, make_cnf
from lftutor.bijections.flow import Flow
from lftutor.bijections.planar import Planar
from lftutor.commands.cnf import two_moons_split
from lftutor.lattice.priors import SimpleNormal
from lftutor.training.loop import cosine_schedule, train

N_TRAIN, N_TEST = 20000, 5000


class ZukoModel(torch.nn.Module):
    """zuko's lazy CNF behind ``log_prob``, so the same loop trains it."""

    def __init__(self, exact: bool = True, tol: float = 1e-3):
        import zuko

        super().__init__()
        self.flow = zuko.flows.CNF(2, hidden_features=(64, 64), atol=tol, rtol=tol, exact=exact)

    def set(self, *, exact: bool, tol: float) -> None:
        self.flow.transform.exact = exact
        self.flow.transform.atol = self.flow.transform.rtol = tol

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow().log_prob(x)


def planar_flow(n_layers: int = 32) -> Flow:
    """Unit 7's planar layers with their closed-form direction on the data side (fast log q)."""
    return Flow(SimpleNormal.standard((2,)), [Inverse(Planar(2)) for _ in range(n_layers)])


def make(model: str):
    if model == "cnf":
        return make_cnf(2, field="mlp", rtol=1e-3, atol=1e-3), 1e-2, 256
    if model == "cnf-hutchinson":
        flow = make_cnf(2, field="mlp", rtol=1e-3, atol=1e-3, trace="hutchinson", probe="rademacher")
        return flow, 1e-2, 256
    if model == "cnf-rk4":
        return make_cnf(2, field="mlp", method="rk4", step_size=0.1), 1e-2, 256
    if model == "cnf-planar":
        return make_cnf(2, field="planar", field_kwargs={"n_units": 32}, rtol=1e-3, atol=1e-3), 1e-2, 256
    if model == "planar":
        return planar_flow(32), 1e-2, 512
    if model == "zuko":
        return ZukoModel(exact=True), 1e-2, 256
    if model == "zuko-hutchinson":
        return ZukoModel(exact=False), 1e-2, 256
    raise ValueError(model)


@torch.no_grad()
def held_out_nll(model, test: torch.Tensor) -> float:
    """Exact trace, tolerance 1e-5, for every continuous model."""
    if isinstance(model, ZukoModel):
        model.set(exact=True, tol=1e-5)
    for m in model.modules():
        if isinstance(m, ContinuousFlow):
            m.trace, m.method, m.rtol, m.atol = "exact", "dopri5", 1e-5, 1e-5
    return float(-torch.cat([model.log_prob(c) for c in test.split(2500)]).mean())


def run_cpu(model_name: str, seed: int, budget: float, data, test):
    """The same training (Adam, cosine decay, minibatches) with a budget of *CPU* seconds.

    On an oversubscribed machine (load average 20 on 2 cores while measuring) wall time measures
    the other users more than the model; the process's CPU time, with one thread, is what a
    dedicated core would take.
    """
    torch.manual_seed(seed)
    model, lr, batch = make(model_name)
    cnf = next((m for m in model.modules() if isinstance(m, ContinuousFlow)), None)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    nfe, steps = [], 0
    start, wall = time.process_time(), time.perf_counter()
    while (used := time.process_time() - start) < budget:
        for group in opt.param_groups:
            group["lr"] = lr * cosine_schedule(used / budget)
        x = data[torch.randint(data.shape[0], (batch,), generator=gen)]
        loss = -model.log_prob(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
        if cnf is not None:
            nfe.append(cnf.nfe)
    cpu = time.process_time() - start
    return model, {"model": model_name, "seed": seed, "steps": steps, "seconds": cpu,
                   "wall": time.perf_counter() - wall, "s_per_step": cpu / steps,
                   "nfe": statistics.mean(nfe) if nfe else float("nan"), "nll": held_out_nll(model, test)}


def run(model_name: str, seed: int, budget: float, data, test, clock: str = "wall"):
    if clock == "cpu":
        return run_cpu(model_name, seed, budget, data, test)
    torch.manual_seed(seed)
    model, lr, batch = make(model_name)
    nfe = []
    cnf = next((m for m in model.modules() if isinstance(m, ContinuousFlow)), None)
    cb = [lambda h: nfe.append(cnf.nfe)] if cnf is not None else []
    start = time.perf_counter()
    hist = train(model, data=data, time_budget=budget, batch_size=batch, lr=lr,
                 lr_schedule=cosine_schedule, num_threads=1, callbacks=cb,
                 generator=torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - start
    return model, {"model": model_name, "seed": seed, "steps": len(hist), "seconds": seconds,
                   "s_per_step": seconds / len(hist), "nfe": statistics.mean(nfe) if nfe else float("nan"),
                   "nll": held_out_nll(model, test)}


def true_nll(test: torch.Tensor, noise: float, seed: int = 0) -> tuple[float, float]:
    """Held-out NLL under the data's own density (the floor no model can beat on average).

    Unit 7's generator puts ``2 (c(t) - (1/2, 1/4)) + 2 noise eps`` with ``t ~ U(0, pi)`` on one of
    two half circles ``c``; its density is a mixture of Gaussians along the curves, computed here
    by quadrature over ``t`` (4000 points per moon), then mapped to the standardized variable.

    Returns:
        (mean NLL, its standard error over the held-out points).
    """
    import math

    from lftutor.toy2d.targets import two_moons

    train = two_moons(N_TRAIN, seed=seed, noise=noise).double()
    mean, std = train.mean(0), train.std(0)
    x = test.double() * std + mean
    n_t = 4000
    t = (torch.arange(n_t, dtype=torch.float64) + 0.5) * math.pi / n_t
    upper = torch.stack([torch.cos(t), torch.sin(t)], 1)
    lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], 1)
    centres = 2 * (torch.cat([upper, lower]) - torch.tensor([0.5, 0.25], dtype=torch.float64))
    s2 = (2 * noise) ** 2
    d2 = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    log_p = torch.logsumexp(-d2 / (2 * s2), 1) - math.log(2 * n_t) - math.log(2 * math.pi * s2)
    log_p = log_p + torch.log(std).sum()
    return float(-log_p.mean()), float(log_p.std() / math.sqrt(len(x)))


def part_compare(args, data, test, trained):
    floor, err = true_nll(test, args.noise)
    print(f"data's own held-out NLL (exact density by quadrature): {floor:.4f} +- {err:.4f}", flush=True)
    rows = []
    for name in args.models:  # warm-up (first calls of torchdiffeq / torch.func are slow)
        run(name, 0, 1.0, data, test[:100])
    for seed in args.seeds:
        for name in args.models:
            model, row = run(name, seed, args.budget, data, test, args.clock)
            trained[(name, seed)] = model
            rows.append(row)
            print(f"  {name:16s} seed {seed}: NLL {row['nll']:.4f}, {row['steps']} steps, "
                  f"{row['s_per_step'] * 1e3:.0f} ms/step ({args.clock}), NFE {row['nfe']:.1f}", flush=True)
    print("\n| model | seed | held-out NLL | steps | ms/step | mean NFE per step (fwd) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['seed']} | {r['nll']:.4f} | {r['steps']} | {r['s_per_step'] * 1e3:.0f} "
              f"| {r['nfe']:.1f} |")
    names = list(dict.fromkeys(r["model"] for r in rows))
    print("\n| model | median NLL | median ms/step |\n| --- | --- | --- |")
    med = {}
    for n in names:
        sub = [r for r in rows if r["model"] == n]
        med[n] = (statistics.median(r["nll"] for r in sub), statistics.median(r["s_per_step"] for r in sub))
        print(f"| {n} | {med[n][0]:.4f} | {med[n][1] * 1e3:.0f} |")
    for other in ("planar", "zuko"):
        if "cnf" in med and other in med:
            paired = [r2["nll"] - r1["nll"] for r1 in rows if r1["model"] == "cnf"
                      for r2 in rows if r2["model"] == other and r2["seed"] == r1["seed"]]
            print(f"\n{other} NLL - cnf NLL per seed: {', '.join(f'{d:+.4f}' for d in paired)}; "
                  f"ms/step ratio {other}/cnf = {med[other][1] / med['cnf'][1]:.2f}")


def part_trace(args):
    """Cost of one evaluation of the augmented field (value + trace) against the dimension."""
    print("\n| D | exact trace (ms) | Hutchinson (ms) | exact / Hutchinson |\n| --- | --- | --- | --- |")
    from lftutor.bijections.trace import exact_trace, hutchinson_trace

    for dim in (2, 8, 32, 128):
        torch.manual_seed(0)
        field = MLPField(dim, hidden=(64, 64))
        z = torch.randn(256, dim)
        t = torch.tensor(0.5)
        v = torch.randn_like(z)
        times = {}

        def f(y, field=field, t=t):
            return field(t, y)

        for name, fn in (("exact", lambda f=f, z=z: exact_trace(f, z)),
                         ("hutch", lambda f=f, z=z, v=v: hutchinson_trace(f, z, v))):
            samples = []
            for _ in range(30):
                start = time.perf_counter()
                out, tr = fn()
                tr.sum().backward() if tr.requires_grad else None
                samples.append(time.perf_counter() - start)
            times[name] = statistics.median(samples)
        print(f"| {dim} | {times['exact'] * 1e3:.2f} | {times['hutch'] * 1e3:.2f} | "
              f"{times['exact'] / times['hutch']:.2f} |")


@torch.no_grad()
def part_solver(args, data, test, trained):
    """Accuracy and cost of log q on held-out points for a trained CNF, per solver."""
    key = ("cnf", args.seeds[0])
    model = trained.get(key) or run("cnf", args.seeds[0], args.budget, data, test)[0]
    model = model.double()  # float64, so that round-off does not hide the solvers' errors
    cnf = model.layers[0]
    x = test[:1000].double()

    def measure(method, tol=None, step=None):
        cnf.method, cnf.trace = method, "exact"
        cnf.rtol = cnf.atol = tol or 1e-3
        cnf.step_size = step
        start = time.perf_counter()
        logq = model.log_prob(x)
        return logq, time.perf_counter() - start, cnf.nfe

    ref, _, ref_nfe = measure("dopri5", tol=1e-9)
    print(f"\nfloat64; reference: dopri5 rtol = atol = 1e-9 ({ref_nfe} NFE), "
          f"NLL {-ref.mean():.5f} on 1000 points")
    print("\n| solver | NFE | seconds | max abs error of log q | error of the mean NLL |")
    print("| --- | --- | --- | --- | --- |")
    for method, tol, step in [("dopri5", 1e-3, None), ("dopri5", 1e-5, None), ("rk4", None, 0.25),
                              ("rk4", None, 0.1), ("rk4", None, 0.05), ("rk4", None, 0.025)]:
        logq, sec, nfe = measure(method, tol, step)
        label = f"dopri5 tol {tol:g}" if method == "dopri5" else f"rk4 h = {step:g} ({round(1 / step)} steps)"
        print(f"| {label} | {nfe} | {sec:.3f} | {float((logq - ref).abs().max()):.2e} "
              f"| {float(-(logq.mean() - ref.mean())):+.2e} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=60.0, help="training seconds per model and seed")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="budget in wall seconds (the package's train()) or in CPU seconds of this "
                   "process (same optimiser and schedule; for a shared, oversubscribed machine)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--noise", type=float, default=0.1, help="two-moons noise (unit 7's default 0.1)")
    p.add_argument("--models", nargs="+", default=["cnf", "planar", "zuko"])
    p.add_argument("--parts", nargs="+", default=["compare", "trace", "solver"])
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"# {platform.machine()}, torch {torch.__version__}, 1 thread; budget {args.budget:g} s "
          f"({args.clock} clock), "
          f"seeds {args.seeds}, noise {args.noise:g}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    data, test = two_moons_split(N_TRAIN, N_TEST, seed=0, noise=args.noise)
    trained = {}
    if "compare" in args.parts:
        part_compare(args, data, test, trained)
    if "trace" in args.parts:
        part_trace(args)
    if "solver" in args.parts:
        part_solver(args, data, test, trained)


if __name__ == "__main__":
    main()
