"""``python -m lftutor train u1`` and ``mcmc u1``: 2-D U(1) gauge theory with gauge-equivariant flows."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from lftutor.commands._common import add_training_arguments, positive_float, positive_int, run_training

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


#: layer order of each shipped weights file (the state dict does not record it)
SHIPPED_STRIPE_ORDER = {"u1_L8_beta6.pt": "ascending"}


def shipped_weights(L: int, beta: float) -> Path | None:
    """The pre-trained weights shipped for ``(L, beta)`` (``lftutor/weights/u1_L{L}_beta{beta:g}.pt``)."""
    path = WEIGHTS_DIR / f"u1_L{L}_beta{beta:g}.pt"
    return path if path.exists() else None


def _model_arguments(p) -> None:
    p.add_argument("--L", type=positive_int, default=8, help="lattice extent (a multiple of 4)")
    p.add_argument("--beta", type=float, default=2.0, help="inverse coupling (default 2)")
    p.add_argument("--n-layers", type=positive_int, default=16, help="coupling layers (default 16)")
    p.add_argument("--hidden", type=positive_int, nargs="+", default=[8, 8],
                   help="conditioner hidden channels (default 8 8)")
    p.add_argument("--n-bins", type=positive_int, default=8, help="circular spline bins (default 8)")
    p.add_argument("--stripe-order", choices=["ascending", "descending"], default=None,
                   help="order of the layers' stripes (default: ascending, or the shipped weights' order; "
                        "descending trains better at large beta; weights only work in a flow with the "
                        "order they were trained with)")


def register(train, mcmc) -> None:
    """Add ``u1`` to the ``train`` and ``mcmc`` sub-command groups."""
    p = train.add_parser("u1", help="2-D U(1) gauge theory, gauge-equivariant flow (exact log Z)")
    _model_arguments(p)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=3e-3,
                   help="Adam learning rate (cosine decay; default 3e-3, good at beta = 2; use 1e-3 for "
                        "long runs at beta >= 4.5, where 3e-3 diverged after tens of minutes)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--init", metavar="FILE", help="start from these weights (from an earlier --save)")
    add_training_arguments(p, default_budget=60)
    p.set_defaults(run=train_u1)

    m = mcmc.add_parser("u1", help="average plaquette and chi_top from flow Metropolis or HMC, vs exact")
    _model_arguments(m)
    m.add_argument("--sampler", choices=["flow", "hmc"], default="flow")
    source = m.add_mutually_exclusive_group()
    source.add_argument("--weights", metavar="FILE",
                        help="trained flow weights (default: the shipped ones for this L and beta, if any)")
    source.add_argument("--train-budget", type=positive_float, metavar="SECONDS",
                        help="train a flow for this long first (default 120 s when no weights)")
    m.add_argument("--samples", type=positive_int, default=16384,
                   help="Metropolis steps (flow) or trajectories in all (hmc)")
    m.add_argument("--chains", type=positive_int, default=1, help="HMC: parallel chains")
    m.add_argument("--step-size", type=positive_float, default=0.1, help="HMC leapfrog step")
    m.add_argument("--n-leapfrog", type=positive_int, default=10, help="HMC leapfrog steps")
    m.add_argument("--thermalize", type=float, default=0.1, help="HMC: fraction dropped at the start")
    m.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--json", action="store_true", help="print the result as a JSON last line")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(run=mcmc_u1)


def _check_L(L: int) -> None:
    if L % 4:
        raise ValueError(f"expected --L a multiple of 4 (the layers' stripes repeat every 4 sites), got {L}")


def build_flow(args, dtype=None):
    import torch

    from lftutor.bijections.gauge import make_u1_flow

    return make_u1_flow(args.L, n_layers=args.n_layers, hidden_channels=tuple(args.hidden),
                        n_bins=args.n_bins, stripe_order=args.stripe_order or "ascending",
                        dtype=dtype or torch.float32)


def train_u1(args) -> dict:
    from lftutor.commands._common import setup
    from lftutor.lattice.u1 import U1GaugeAction, exact_log_z
    from lftutor.training.loop import cosine_schedule

    _check_L(args.L)
    device, dtype = setup(args)
    action = U1GaugeAction(args.beta)
    flow = build_flow(args, dtype).to(device)
    if args.init:
        import torch

        flow.load_state_dict(torch.load(args.init, map_location=device))
    metrics, steps, seconds = run_training(args, flow, action, batch_size=args.batch_size, lr=args.lr,
                                           lr_schedule=cosine_schedule, ess_every=10,
                                           num_threads=args.threads)
    log_z = exact_log_z(args.beta, args.L)
    n_links = 2 * args.L**2
    return {
        "model": "u1-gauge-equivariant", "L": args.L, "beta": args.beta, "n_layers": args.n_layers,
        "hidden": list(args.hidden), "n_bins": args.n_bins, "stripe_order": args.stripe_order or "ascending",
        "seed": args.seed, "dtype": args.dtype,
        "device": str(device), "steps": steps, "train_seconds": round(seconds, 3),
        "ess": metrics["ess"], "acceptance": metrics["acceptance"], "loss": metrics["loss"],
        # KL(q || p) = E_q[log q + S] + log Z + 2V log 2pi (densities on the angles)
        "kl": metrics["loss"] + log_z + n_links * math.log(2 * math.pi),
        "logw_std": metrics["logw_std"], "eval_samples": metrics["n_samples"], "saved": args.save,
        "init": args.init,
    }


def mcmc_u1(args) -> dict:
    import numpy as np
    import torch

    from lftutor.course import seed_all
    from lftutor.lattice.mcmc import flow_metropolis
    from lftutor.lattice.u1 import (
        U1GaugeAction,
        chain_summary,
        exact_chi_top,
        exact_plaquette,
        u1_hmc,
        u1_observables,
    )

    _check_L(args.L)
    seed_all(args.seed)
    torch.set_num_threads(args.threads)
    volume = args.L**2
    action = U1GaugeAction(args.beta)
    result = {"sampler": args.sampler, "L": args.L, "beta": args.beta, "seed": args.seed}
    start = time.perf_counter()
    if args.sampler == "hmc":
        n_per_chain = max(20, args.samples // args.chains)
        theta0 = torch.zeros(args.chains, 2, args.L, args.L, dtype=torch.float64)
        chain = u1_hmc(args.beta, theta0, n_per_chain, step_size=args.step_size,
                       n_leapfrog=args.n_leapfrog, observable=u1_observables)
        obs = chain.configs[int(args.thermalize * n_per_chain):].numpy()  # (n, chains, 2)
        per_chain = [chain_summary(obs[:, c, 0], obs[:, c, 1], volume) for c in range(args.chains)]
        stats = {k: float(np.mean([s[k] for s in per_chain]))
                 for k in ("plaquette", "chi_top", "tau_int_plaq", "tau_int_q")}
        for k in ("plaquette_err", "chi_top_err"):
            stats[k] = float(np.sqrt(np.sum([s[k] ** 2 for s in per_chain])) / args.chains)
        stats["n"] = int(sum(s["n"] for s in per_chain))
        if args.chains > 1:  # spread of the independent chains' estimates
            taus = [s["tau_int_q"] for s in per_chain]
            result.update(tau_int_q_chains=taus,
                          tau_int_q_err=float(np.std(taus, ddof=1) / math.sqrt(args.chains)))
        result.update(step_size=args.step_size, n_leapfrog=args.n_leapfrog, chains=args.chains,
                      tau_unit="trajectories")
    else:
        weights = args.weights or (None if args.train_budget else shipped_weights(args.L, args.beta))
        if weights and not args.weights and args.stripe_order is None:
            args.stripe_order = SHIPPED_STRIPE_ORDER.get(Path(weights).name)
        flow = build_flow(args)
        if weights:
            try:
                flow.load_state_dict(torch.load(weights, map_location="cpu"))
            except (RuntimeError, OSError) as err:
                raise ValueError(f"could not load --weights {weights} into a U(1) flow with L={args.L}, "
                                 f"--n-layers {args.n_layers}, --hidden {args.hidden}: "
                                 f"{str(err).splitlines()[0]}") from None
        else:
            from lftutor.training.live import ProgressBar
            from lftutor.training.loop import cosine_schedule, train

            bar = ProgressBar(file=sys.stderr, disable=args.quiet, mininterval=1.0)
            train(flow, action, time_budget=args.train_budget or 120.0, batch_size=64, lr=3e-3,
                  lr_schedule=cosine_schedule, num_threads=args.threads, callbacks=[bar])
        flow.eval()
        chain = flow_metropolis(flow, action, args.samples, batch_size=1024, observable=u1_observables)
        obs = chain.configs.double().numpy()
        stats = chain_summary(obs[:, 0], obs[:, 1], volume)
        result.update(weights=str(weights) if weights else None, train_budget=args.train_budget,
                      stripe_order=args.stripe_order or "ascending",
                      tau_unit="Metropolis steps")
    result.update(
        plaquette=stats["plaquette"], plaquette_err=stats["plaquette_err"],
        plaquette_exact=exact_plaquette(args.beta, args.L),
        chi_top=stats["chi_top"], chi_top_err=stats["chi_top_err"],
        chi_top_exact=exact_chi_top(args.beta, args.L),
        tau_int_q=stats["tau_int_q"], tau_int_plaq=stats["tau_int_plaq"],
        acceptance=chain.acceptance, samples=stats["n"], seconds=round(time.perf_counter() - start, 3))
    return result
