"""``python -m lftutor train cnf``: a continuous normalizing flow fitted to two moons (maximum likelihood)."""

from __future__ import annotations

import sys
import time

from lftutor.commands._common import add_training_arguments, positive_float, positive_int


def register(train, mcmc) -> None:
    """Add ``cnf`` to the ``train`` sub-command group."""
    p = train.add_parser("cnf", help="continuous normalizing flow on 2-D toy data (maximum likelihood)")
    p.add_argument("--data", choices=["two-moons"], default="two-moons",
                   help="training data (standardized with the training set's mean and std)")
    p.add_argument("--noise", type=positive_float, default=0.1,
                   help="standard deviation of the two-moons noise (default 0.1, unit 7's)")
    p.add_argument("--field", choices=["mlp", "planar"], default="mlp",
                   help="vector field: an MLP of (z, t), or planar units gated in time (default mlp)")
    p.add_argument("--width", type=positive_int, default=64,
                   help="hidden width (mlp: two layers; planar: number of units) (default 64)")
    p.add_argument("--trace", choices=["exact", "hutchinson"], default="exact",
                   help="trace of the Jacobian while training (evaluation always uses the exact one)")
    p.add_argument("--probe", choices=["gaussian", "rademacher"], default="rademacher",
                   help="Hutchinson probes (default rademacher: lower variance)")
    p.add_argument("--method", default="dopri5",
                   help="torchdiffeq solver while training (default dopri5, adaptive; e.g. rk4, fixed step)")
    p.add_argument("--step-size", type=positive_float, default=None,
                   help="step of fixed-step methods such as rk4 (default 0.1)")
    p.add_argument("--tol", type=positive_float, default=1e-3,
                   help="rtol = atol of the adaptive solver while training (default 1e-3)")
    p.add_argument("--adjoint", action="store_true", help="adjoint method (less memory, slower)")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--lr", type=positive_float, default=1e-2, help="Adam learning rate (cosine decay)")
    p.add_argument("--n-train", type=positive_int, default=20000, help="training points")
    p.add_argument("--n-test", type=positive_int, default=5000, help="held-out points")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    add_training_arguments(p, default_budget=60)
    p.set_defaults(run=train_cnf)


def two_moons_split(n_train: int, n_test: int, *, seed: int, noise: float = 0.1):
    """Standardized two moons: training and held-out points (both scaled with the training stats).

    Returns:
        ``(train (n_train, 2), test (n_test, 2))`` float32 tensors.
    """
    from lftutor.toy2d.targets import two_moons  # unit 7's seeded generator

    train = two_moons(n_train, seed=seed, noise=noise)
    test = two_moons(n_test, seed=seed + 10_000, noise=noise)
    mean, std = train.mean(0), train.std(0)
    return (train - mean) / std, (test - mean) / std


def train_cnf(args) -> dict:
    import torch

    from lftutor.bijections.continuous import make_cnf
    from lftutor.course import seed_all
    from lftutor.training.live import ProgressBar
    from lftutor.training.loop import cosine_schedule, train

    seed_all(args.seed)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device or "cpu")
    data, test = (t.to(device, dtype) for t in two_moons_split(args.n_train, args.n_test, seed=args.seed,
                                                                           noise=args.noise))
    field_kwargs = {"n_units": args.width} if args.field == "planar" else {"hidden": (args.width,) * 2}
    flow = make_cnf(2, field=args.field, field_kwargs=field_kwargs, dtype=dtype, trace=args.trace,
                    probe=args.probe, method=args.method, rtol=args.tol, atol=args.tol,
                    step_size=args.step_size, adjoint=args.adjoint).to(device)
    cnf = flow.layers[0]
    time_budget = None if args.steps is not None else (args.time_budget or args.default_budget)
    bar = ProgressBar(total=args.steps, file=sys.stderr, disable=args.quiet, mininterval=1.0)
    nfe: list[int] = []
    start = time.perf_counter()
    history = train(flow, data=data, steps=args.steps, time_budget=time_budget, batch_size=args.batch_size,
                    lr=args.lr, lr_schedule=cosine_schedule, num_threads=args.threads,
                    callbacks=[bar, lambda h: nfe.append(cnf.nfe)],
                    generator=torch.Generator(device=device).manual_seed(args.seed))
    train_seconds = time.perf_counter() - start
    # held-out NLL: exact trace, dopri5 at a tighter tolerance than training, whatever was trained with
    cnf.trace, cnf.method, cnf.rtol, cnf.atol = "exact", "dopri5", 1e-5, 1e-5
    eval_start = time.perf_counter()
    with torch.no_grad():
        test_nll = float(-flow.log_prob(test).mean())
    eval_nfe = cnf.nfe
    if args.save:
        torch.save(flow.state_dict(), args.save)
    return {
        "model": f"cnf-{args.field}", "data": args.data, "noise": args.noise, "trace": args.trace,
        "probe": args.probe,
        "method": args.method, "tol": args.tol, "step_size": args.step_size, "adjoint": args.adjoint,
        "width": args.width,
        "seed": args.seed, "dtype": args.dtype, "device": str(device), "steps": len(history),
        "train_seconds": round(train_seconds, 3),
        "seconds_per_step": round(train_seconds / max(len(history), 1), 5),
        "test_nll": round(test_nll, 5), "train_loss_last": round(float(history.loss[-1]), 5),
        "nfe": eval_nfe, "nfe_train_last": nfe[-1] if nfe else 0,
        "nfe_train_mean": round(sum(nfe) / max(len(nfe), 1), 1),
        "eval_seconds": round(time.perf_counter() - eval_start, 3), "n_test": args.n_test,
    }
