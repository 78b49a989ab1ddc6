"""``python -m lftutor train toy2d``: flows on 2-D densities (unit 7), with the exact KL."""

from __future__ import annotations

import sys
import time

from lftutor.commands._common import add_training_arguments, positive_float, positive_int


def register(train, mcmc) -> None:
    """Add ``toy2d`` to the ``train`` sub-command group."""
    from lftutor.toy2d.flows import FAMILIES
    from lftutor.toy2d.targets import TARGET_NAMES

    p = train.add_parser(
        "toy2d", help="a flow on a 2-D density: U1-U4 or the mixture by reverse KL (exact KL from "
        "the grid log Z), or two moons by maximum likelihood (held-out NLL)")
    p.add_argument("--target", dest="toy_target", choices=TARGET_NAMES, default="U1",
                   help="potential to fit by reverse KL (default U1)")
    p.add_argument("--data", choices=["two-moons"], default=None,
                   help="train by maximum likelihood on this data set instead of a --target")
    p.add_argument("--flow", choices=FAMILIES, default="planar", help="flow family (default planar)")
    p.add_argument("--layers", type=positive_int, default=32, help="number of layers K (default 32)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="samples per step (default: the family's, lftutor.toy2d.flows.TRAINING_DEFAULTS)")
    p.add_argument("--lr", type=positive_float, default=None, help="Adam learning rate (cosine decay)")
    p.add_argument("--anneal", type=float, default=0.3,
                   help="reverse KL: raise beta in beta*U from 0.05 to 1 over this fraction of the "
                   "budget (default 0.3; 0 turns annealing off)")
    p.add_argument("--sylvester-variant", choices=["orthogonal", "householder", "triangular"],
                   default="orthogonal")
    p.add_argument("--n-data", type=positive_int, default=4096, help="two moons: training points")
    p.add_argument("--n-test", type=positive_int, default=4096, help="two moons: held-out points")
    p.add_argument("--kl-samples", type=positive_int, default=1 << 16,
                   help="samples for the exact-KL estimate (default 65536)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch CPU threads while training (default 1: fastest at these sizes)")
    add_training_arguments(p, default_budget=60)
    p.set_defaults(run=train_toy2d)


def train_toy2d(args) -> dict:
    import torch

    from lftutor.course import seed_all
    from lftutor.toy2d.flows import make_flow, training_defaults
    from lftutor.toy2d.targets import exact_kl, get_target, two_moons
    from lftutor.toy2d.training import fit_data, fit_reverse_kl, mean_nll, warm_up
    from lftutor.training.live import ProgressBar

    warm_up()
    seed_all(args.seed)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device or "cpu")
    flow = make_flow(args.flow, args.layers, dtype=dtype,
                     sylvester_variant=args.sylvester_variant).to(device)
    defaults = training_defaults(args.flow)
    lr = args.lr or defaults["lr"]
    batch_size = args.batch_size or defaults["batch_size"]
    time_budget = None if args.steps is not None else (args.time_budget or args.default_budget)
    bar = ProgressBar(total=args.steps, file=sys.stderr, disable=args.quiet, mininterval=1.0)
    out = {"flow": args.flow, "layers": args.layers, "seed": args.seed, "dtype": args.dtype,
           "batch_size": batch_size, "lr": lr,
           "n_parameters": sum(p.numel() for p in flow.parameters())}
    if args.flow == "sylvester":
        out["sylvester_variant"] = args.sylvester_variant
    start = time.perf_counter()
    if args.data is not None:
        gen = torch.Generator().manual_seed(args.seed)
        data = two_moons(args.n_data + args.n_test, seed=args.seed, dtype=dtype).to(device)
        train_x, test_x = data[: args.n_data], data[args.n_data:]
        history = fit_data(flow, train_x, steps=args.steps, time_budget=time_budget,
                           batch_size=batch_size, lr=lr, callbacks=[bar],
                           num_threads=args.threads, generator=gen)
        seconds = time.perf_counter() - start
        out.update({"data": args.data, "n_data": args.n_data, "n_test": args.n_test,
                    "steps": len(history), "train_seconds": round(seconds, 3),
                    "train_nll": mean_nll(flow, train_x), "test_nll": mean_nll(flow, test_x)})
    else:
        target = get_target(args.toy_target)
        log_z = target.log_z  # computed before the clock starts
        start = time.perf_counter()
        history = fit_reverse_kl(flow, target, steps=args.steps, time_budget=time_budget,
                                 batch_size=batch_size, lr=lr, anneal=args.anneal, callbacks=[bar],
                                 num_threads=args.threads)
        seconds = time.perf_counter() - start
        from lftutor.training.loop import evaluate

        kl = exact_kl(flow, target, n_samples=args.kl_samples)
        metrics = evaluate(flow, target, n_samples=args.eval_samples)
        out.update({"target": args.toy_target, "anneal": args.anneal, "steps": len(history),
                    "train_seconds": round(seconds, 3), "kl": kl["kl"], "kl_stderr": kl["kl_stderr"],
                    "ess": metrics["ess"], "acceptance": metrics["acceptance"], "log_z": log_z,
                    "loss": metrics["loss"], "eval_samples": metrics["n_samples"]})
    if args.save:
        torch.save(flow.state_dict(), args.save)
    return out
