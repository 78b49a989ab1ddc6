"""``python -m lftutor train u1`` and ``mcmc u1``: 2-D U(1) gauge theory with gauge-equivariant flows."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from lftutor.commands._common import (
    add_chain_arguments,
    add_output_arguments,
    add_sampler_arguments,
    add_training_arguments,
    positive_float,
    positive_int,
    run_training,
)

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


#: the two models: ``stripes``, the stacked couplings of arXiv:2003.06413
#: (:func:`lftutor.bijections.gauge.make_u1_flow`), and ``chain``, the 2-D autoregressive layer
#: (:func:`lftutor.bijections.plaquette_chain.make_u1_chain_flow`)
MODELS = ("stripes", "chain")

#: per model: default conditioner widths, batch size and learning rate
MODEL_DEFAULTS = {"stripes": {"hidden": [8, 8], "n_bins": 8, "batch_size": 64, "lr": 3e-3},
                  "chain": {"hidden": [64, 64], "n_bins": 16, "batch_size": 256, "lr": 1e-3}}

#: model (and the stripes' layer order) of each shipped weights file: the state dict records neither
SHIPPED_WEIGHTS = {"u1_L8_beta6.pt": {"model": "stripes", "stripe_order": "ascending"},
                   "u1chain_L8_beta6.pt": {"model": "chain"}}


def weights_name(model: str, L: int, beta: float) -> str:
    """File name of shipped weights: ``u1_L8_beta6.pt`` (stripes), ``u1chain_L8_beta6.pt`` (chain)."""
    return f"u1{'' if model == 'stripes' else model}_L{L}_beta{beta:g}.pt"


def shipped_weights(L: int, beta: float, model: str = "stripes") -> Path | None:
    """The pre-trained weights shipped for ``(model, L, beta)`` in ``lftutor/weights/``, if any."""
    path = WEIGHTS_DIR / weights_name(model, L, beta)
    return path if path.exists() else None


def _model_arguments(p) -> None:
    p.add_argument("--L", type=positive_int, default=8,
                   help="lattice extent (a multiple of 4 for --model stripes; default 8)")
    p.add_argument("--beta", type=float, default=2.0, help="inverse coupling (default 2)")
    p.add_argument("--model", choices=MODELS, default="stripes",
                   help="stripes: 16 stacked gauge-equivariant couplings (arXiv:2003.06413, the tutorial's; "
                        "default); chain: one autoregressive layer that sets the plaquettes one after "
                        "another, with the charge-conjugation mirror built in (2-D only; far better at large "
                        "beta, see benchmarks/README.md)")
    p.add_argument("--n-layers", type=positive_int, default=16, help="stripes: coupling layers (default 16)")
    p.add_argument("--hidden", type=positive_int, nargs="+", default=None,
                   help="conditioner hidden widths (default 8 8 for stripes, 64 64 for chain)")
    p.add_argument("--n-bins", type=positive_int, default=None,
                   help="circular spline bins (default 8 for stripes, 16 for chain)")
    p.add_argument("--stripe-order", choices=["ascending", "descending"], default=None,
                   help="stripes: order of the layers' stripes (default: ascending, or the shipped weights' "
                        "order; descending trains better at large beta; weights only work in a flow with "
                        "the order they were trained with)")


def register(train, mcmc) -> None:
    """Add ``u1`` to the ``train`` and ``mcmc`` sub-command groups."""
    p = train.add_parser("u1", help="2-D U(1) gauge theory, gauge-equivariant flow (exact log Z)")
    _model_arguments(p)
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="samples per step (default 64 for stripes, 256 for chain)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="Adam learning rate (cosine decay; default 3e-3 for stripes, good at beta = 2: use "
                        "1e-3 for long runs at beta >= 4.5, where 3e-3 diverged after tens of minutes; "
                        "default 1e-3 for chain)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--init", metavar="FILE", help="start from these weights (from an earlier --save)")
    add_training_arguments(p, default_budget=60)
    p.set_defaults(run=train_u1)

    m = mcmc.add_parser("u1", help="average plaquette and chi_top from flow Metropolis or HMC, vs exact")
    _model_arguments(m)
    add_sampler_arguments(
        m, weights_help="trained flow weights (default: the shipped ones for this L and beta, if any)",
        train_budget_help="train a flow for this long first (default 120 s when no weights)")
    add_chain_arguments(
        m, samples=16384, samples_help="Metropolis steps (flow) or trajectories in all (hmc)",
        chains=1, thermalize_help="HMC: fraction dropped at the start")
    m.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    m.add_argument("--seed", type=int, default=0)
    add_output_arguments(m)
    m.set_defaults(run=mcmc_u1)


def _resolve(args) -> None:
    """Check --L for the model and fill in the model's defaults."""
    if args.model == "stripes" and args.L % 4:
        raise ValueError(f"expected --L a multiple of 4 (the layers' stripes repeat every 4 sites), got "
                         f"{args.L}; --model chain takes any --L >= 2")
    if args.model == "chain" and args.L < 2:
        raise ValueError(f"expected --L >= 2, got {args.L}")
    for key, value in MODEL_DEFAULTS[args.model].items():
        if getattr(args, key, "absent") is None:
            setattr(args, key, value)


def build_flow(args, dtype=None):
    import torch

    dtype = dtype or torch.float32
    if args.model == "chain":
        from lftutor.bijections.plaquette_chain import make_u1_chain_flow

        return make_u1_chain_flow(args.L, hidden=tuple(args.hidden), n_bins=args.n_bins, dtype=dtype)
    from lftutor.bijections.gauge import make_u1_flow

    return make_u1_flow(args.L, n_layers=args.n_layers, hidden_channels=tuple(args.hidden),
                        n_bins=args.n_bins, stripe_order=args.stripe_order or "ascending", dtype=dtype)


def _describe(args) -> str:
    if args.model == "chain":
        return f"--model chain --L {args.L} --hidden {' '.join(map(str, args.hidden))} --n-bins {args.n_bins}"
    return (f"--model stripes --L {args.L} --n-layers {args.n_layers} --hidden "
            f"{' '.join(map(str, args.hidden))} --n-bins {args.n_bins} --stripe-order "
            f"{args.stripe_order or 'ascending'}")


def load_weights(flow, path, args, map_location="cpu") -> None:
    """Load a state dict from ``path``; a mismatch is a ValueError naming the model options."""
    import torch

    try:
        flow.load_state_dict(torch.load(path, map_location=map_location))
    except (RuntimeError, OSError) as err:
        raise ValueError(f"could not load weights {path} into a U(1) flow with {_describe(args)}: "
                         f"{' '.join(line.strip() for line in str(err).splitlines()[:2])} (weights only load "
                         f"into the model, sizes and layer "
                         f"order they were trained with)") from None


def train_u1(args) -> dict:
    from lftutor.commands._common import setup
    from lftutor.lattice.u1 import U1GaugeAction, exact_log_z
    from lftutor.training.loop import cosine_schedule

    _resolve(args)
    device, dtype = setup(args)
    action = U1GaugeAction(args.beta)
    flow = build_flow(args, dtype).to(device)
    if args.init:
        load_weights(flow, args.init, args, map_location=device)
    metrics, steps, seconds = run_training(args, flow, action, batch_size=args.batch_size, lr=args.lr,
                                           lr_schedule=cosine_schedule, ess_every=10,
                                           num_threads=args.threads)
    log_z = exact_log_z(args.beta, args.L)
    n_links = 2 * args.L**2
    return {
        "model": args.model, "L": args.L, "beta": args.beta,
        "n_layers": args.n_layers if args.model == "stripes" else 1, "hidden": list(args.hidden),
        "n_bins": args.n_bins,
        "stripe_order": (args.stripe_order or "ascending") if args.model == "stripes" else None,
        "batch_size": args.batch_size, "lr": args.lr,
        "seed": args.seed, "dtype": args.dtype,
        "device": str(device), "steps": steps, "train_seconds": round(seconds, 3),
        "ess": metrics["ess"], "acceptance": metrics["acceptance"], "loss": metrics["loss"],
        # KL(q || p) = E_q[log q + S] + log Z + 2V log 2pi (densities on the angles)
        "kl": metrics["loss"] + log_z + n_links * math.log(2 * math.pi),
        "logw_std": metrics["logw_std"], "eval_samples": metrics["n_samples"], "saved": args.save,
        "init": args.init,
    }


def mcmc_u1(args) -> dict:
    """Sample with flow Metropolis or HMC; the average plaquette and chi_top with their errors,
    beside the exact values."""
    import torch

    from lftutor.course import seed_all
    from lftutor.lattice.u1 import U1GaugeAction, exact_chi_top, exact_plaquette

    _resolve(args)
    seed_all(args.seed)
    torch.set_num_threads(args.threads)
    action = U1GaugeAction(args.beta)
    result = {"sampler": args.sampler, "L": args.L, "beta": args.beta, "seed": args.seed}
    start = time.perf_counter()
    if args.sampler == "hmc":
        chain, stats, entries = _sample_hmc(args)
    else:
        chain, stats, entries = _sample_flow(args, action)
    result.update(entries)
    result.update(
        plaquette=stats["plaquette"], plaquette_err=stats["plaquette_err"],
        plaquette_exact=exact_plaquette(args.beta, args.L),
        chi_top=stats["chi_top"], chi_top_err=stats["chi_top_err"],
        chi_top_exact=exact_chi_top(args.beta, args.L),
        tau_int_q=stats["tau_int_q"], tau_int_plaq=stats["tau_int_plaq"],
        acceptance=chain.acceptance, samples=stats["n"], seconds=round(time.perf_counter() - start, 3))
    return result


def _sample_hmc(args) -> tuple[object, dict, dict]:
    """Run ``--chains`` HMC chains from the cold start and drop ``--thermalize`` of each.

    Returns the chain, the statistics of :func:`~lftutor.lattice.u1.chain_summary` combined over
    the chains, and the result's HMC entries.
    """
    import numpy as np
    import torch

    from lftutor.lattice.u1 import chain_summary, u1_hmc, u1_observables

    n_per_chain = max(20, args.samples // args.chains)
    theta0 = torch.zeros(args.chains, 2, args.L, args.L, dtype=torch.float64)
    chain = u1_hmc(args.beta, theta0, n_per_chain, step_size=args.step_size,
                   n_leapfrog=args.n_leapfrog, observable=u1_observables)
    obs = chain.configs[int(args.thermalize * n_per_chain):].numpy()  # (n, chains, 2)
    per_chain = [chain_summary(obs[:, c, 0], obs[:, c, 1], args.L**2) for c in range(args.chains)]
    entries = {}
    if args.chains > 1:  # spread of the independent chains' estimates
        taus = [s["tau_int_q"] for s in per_chain]
        entries.update(tau_int_q_chains=taus,
                       tau_int_q_err=float(np.std(taus, ddof=1) / math.sqrt(args.chains)))
    entries.update(step_size=args.step_size, n_leapfrog=args.n_leapfrog, chains=args.chains,
                   tau_unit="trajectories")
    return chain, _combine_chains(per_chain), entries


def _combine_chains(per_chain: list[dict]) -> dict:
    """One estimate from independent chains' summaries: the mean of each estimate and of tau_int,
    the error of that mean (the chains' errors in quadrature over their number), the samples in all."""
    import numpy as np

    stats = {k: float(np.mean([s[k] for s in per_chain]))
             for k in ("plaquette", "chi_top", "tau_int_plaq", "tau_int_q")}
    for k in ("plaquette_err", "chi_top_err"):
        stats[k] = float(np.sqrt(np.sum([s[k] ** 2 for s in per_chain])) / len(per_chain))
    stats["n"] = int(sum(s["n"] for s in per_chain))
    return stats


def _sample_flow(args, action) -> tuple[object, dict, dict]:
    """Run flow Metropolis for ``--samples`` steps; returns the chain, its
    :func:`~lftutor.lattice.u1.chain_summary` and the result's flow entries."""
    from lftutor.lattice.mcmc import flow_metropolis
    from lftutor.lattice.u1 import chain_summary, u1_observables

    flow, weights = _flow_to_sample(args, action)
    flow.eval()
    chain = flow_metropolis(flow, action, args.samples, batch_size=1024, observable=u1_observables)
    obs = chain.configs.double().numpy()
    stats = chain_summary(obs[:, 0], obs[:, 1], args.L**2)
    entries = dict(weights=str(weights) if weights else None, train_budget=args.train_budget,
                   model=args.model,
                   stripe_order=(args.stripe_order or "ascending") if args.model == "stripes" else None,
                   tau_unit="Metropolis steps")
    return chain, stats, entries


def _flow_to_sample(args, action) -> tuple[object, Path | str | None]:
    """The flow and the weights it was loaded from (None when trained here): ``--weights``, else the
    shipped weights for this model, L and beta unless ``--train-budget``, else a flow trained for
    ``--train-budget`` seconds (default 120)."""
    weights = args.weights or (None if args.train_budget else
                               shipped_weights(args.L, args.beta, args.model))
    if weights and not args.weights and args.stripe_order is None:
        args.stripe_order = SHIPPED_WEIGHTS.get(Path(weights).name, {}).get("stripe_order")
    flow = build_flow(args)
    if weights:
        load_weights(flow, weights, args)
    else:
        from lftutor.training.live import ProgressBar
        from lftutor.training.loop import cosine_schedule, train

        defaults = MODEL_DEFAULTS[args.model]
        bar = ProgressBar(file=sys.stderr, disable=args.quiet, mininterval=1.0)
        train(flow, action, time_budget=args.train_budget or 120.0, batch_size=defaults["batch_size"],
              lr=defaults["lr"], lr_schedule=cosine_schedule, num_threads=args.threads, callbacks=[bar])
    return flow, weights
