"""Argument helpers shared by every command module (no heavy imports here)."""

from __future__ import annotations

import argparse
import sys
import time

import torch


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def add_training_arguments(p: argparse.ArgumentParser, *, default_budget: float) -> None:
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, help="number of training steps")
    budget.add_argument("--time-budget", type=positive_float, metavar="SECONDS",
                        help=f"train for this many seconds of wall time (default {default_budget:g})")
    p.set_defaults(default_budget=float(default_budget))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    p.add_argument("--eval-samples", type=positive_int, default=8192,
                   help="fresh samples for the final ESS (default 8192)")
    p.add_argument("--save", metavar="FILE", help="save the trained weights (torch.save)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="what --time-budget and train_seconds measure: wall time, or this "
                   "process's CPU time (all threads; fair on a shared machine)")
    add_output_arguments(p)


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """``--json`` and ``--quiet``, the last options of every train and mcmc command."""
    p.add_argument("--json", action="store_true", help="print the result as a JSON last line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_sampler_arguments(p: argparse.ArgumentParser, *, weights_help: str, train_budget_help: str) -> None:
    """``--sampler flow|hmc`` and where an mcmc command's flow comes from: ``--weights FILE`` or
    ``--train-budget SECONDS``, one or the other."""
    p.add_argument("--sampler", choices=["flow", "hmc"], default="flow")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--weights", metavar="FILE", help=weights_help)
    source.add_argument("--train-budget", type=positive_float, metavar="SECONDS", help=train_budget_help)


def add_chain_arguments(p: argparse.ArgumentParser, *, samples: int, samples_help: str, chains: int,
                        thermalize_help: str) -> None:
    """An mcmc command's chain length (``--samples``) and HMC settings (``--chains``,
    ``--step-size``, ``--n-leapfrog``, ``--thermalize``); the defaults and help that differ
    between models are arguments."""
    p.add_argument("--samples", type=positive_int, default=samples, help=samples_help)
    p.add_argument("--chains", type=positive_int, default=chains, help="HMC: parallel chains")
    p.add_argument("--step-size", type=positive_float, default=0.1, help="HMC leapfrog step")
    p.add_argument("--n-leapfrog", type=positive_int, default=10, help="HMC leapfrog steps")
    p.add_argument("--thermalize", type=float, default=0.1, help=thermalize_help)


def run_training(args, flow, action, **train_kwargs) -> tuple[dict, int, float]:
    """Train with a progress bar on stderr, evaluate on fresh samples, optionally save."""
    from lftutor.training.live import ProgressBar
    from lftutor.training.loop import evaluate, train

    time_budget = None if args.steps is not None else (args.time_budget or args.default_budget)
    bar = ProgressBar(total=args.steps, file=sys.stderr, disable=args.quiet, mininterval=1.0)
    clock = time.process_time if getattr(args, "clock", "wall") == "cpu" else time.perf_counter
    start = clock()
    history = train(flow, action, steps=args.steps, time_budget=time_budget, callbacks=[bar],
                    clock=clock, **train_kwargs)
    train_seconds = clock() - start
    metrics = evaluate(flow, action, n_samples=args.eval_samples)
    if args.save:
        torch.save(flow.state_dict(), args.save)
    return metrics, len(history), train_seconds


def setup(args) -> tuple[torch.device, torch.dtype]:
    from lftutor.course import seed_all
    from lftutor.device import default_device

    if args.L % 2:
        raise ValueError(f"expected an even --L (checkerboard masks need it), got {args.L}")
    seed_all(args.seed)
    return (torch.device(args.device) if args.device else default_device()), getattr(torch, args.dtype)
