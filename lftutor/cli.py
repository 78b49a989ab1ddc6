"""Command line: ``python -m lftutor train phi4 ...``, and for instructors
``python -m lftutor release [UNIT ...]`` and ``python -m lftutor grade ASSIGNMENT --from ZIP``.

Progress goes to stderr while training; with ``--json`` the last line of stdout is one JSON
object with the result, for scripts and benchmarks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from lftutor.training.recipes import RECIPES

    parser = argparse.ArgumentParser(prog="python -m lftutor",
                                     description="Normalizing flows for lattice field theory.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a flow and report ESS")
    tsub = train.add_subparsers(dest="target", required=True)
    phi4 = tsub.add_parser("phi4", help="scalar phi^4 theory on an L x L periodic lattice")
    phi4.add_argument("--L", type=_positive_int, default=8, help="lattice extent (even)")
    phi4.add_argument("--m2", type=float, default=-4.0, help="bare mass squared")
    phi4.add_argument("--lam", type=float, default=8.0, help="quartic coupling")
    phi4.add_argument("--recipe", choices=sorted(RECIPES), default="fast",
                      help="architecture and optimiser settings (default: fast)")
    phi4.add_argument("--batch-size", type=_positive_int, help="override the recipe's batch size")
    phi4.add_argument("--gradient", choices=["path", "reparam"],
                      help="override the recipe's reverse-KL gradient estimator (path gradients pay "
                      "off in long runs, see benchmarks/README.md)")
    _add_common_training_arguments(phi4, default_budget=120)

    from lftutor.bijections.free_field import GFF_MODELS

    gff = tsub.add_parser("gff", help="Gaussian free field on an L x L periodic lattice (exact KL)")
    gff.add_argument("--L", type=_positive_int, default=8, help="lattice extent (even)")
    gff.add_argument("--m2", type=_positive_float, default=0.25, help="mass squared (> 0)")
    gff.add_argument("--model", choices=sorted(GFF_MODELS), default="linear",
                     help="coupling model (default: linear)")
    gff.add_argument("--n-layers", type=_positive_int, default=4, help="coupling layers (default 4)")
    gff.add_argument("--batch-size", type=_positive_int, default=1024)
    gff.add_argument("--lr", type=_positive_float, default=2e-2, help="Adam learning rate (cosine decay)")
    gff.add_argument("--gradient", choices=["path", "reparam"], default="path",
                     help="reverse-KL gradient estimator (default: path, whose noise vanishes as "
                     "q approaches p; see lftutor.training.loop.path_gradient_loss)")
    gff.add_argument("--threads", type=_positive_int, default=1,
                     help="torch CPU threads while training (default 1: fastest for these sizes)")
    _add_common_training_arguments(gff, default_budget=30)
    _add_mcmc_command(sub)
    _add_instructor_commands(sub)
    return parser


def _add_mcmc_command(sub) -> None:
    from lftutor.training.recipes import RECIPES

    mcmc = sub.add_parser("mcmc", help="exact sampling (flow Metropolis or HMC) and chi_2 with errors")
    msub = mcmc.add_subparsers(dest="target", required=True)
    p = msub.add_parser("phi4", help="scalar phi^4 theory on an L x L periodic lattice")
    p.add_argument("--L", type=_positive_int, default=8, help="lattice extent (even)")
    p.add_argument("--m2", type=float, default=-4.0)
    p.add_argument("--lam", type=float, default=8.0)
    p.add_argument("--sampler", choices=["flow", "hmc"], default="flow")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--weights", metavar="FILE", help="trained flow weights (from train --save)")
    source.add_argument("--train-budget", type=_positive_float, metavar="SECONDS",
                        help="train a flow for this long first (default 120 when no --weights)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="fast",
                   help="architecture of the flow (must match --weights)")
    p.add_argument("--samples", type=_positive_int, default=65536,
                   help="chain length (for HMC: trajectories in total, over all chains)")
    p.add_argument("--chains", type=_positive_int, default=32, help="HMC: parallel chains")
    p.add_argument("--step-size", type=_positive_float, default=0.1, help="HMC leapfrog step")
    p.add_argument("--n-leapfrog", type=_positive_int, default=10, help="HMC leapfrog steps")
    p.add_argument("--thermalize", type=float, default=0.1,
                   help="HMC: fraction of each chain discarded (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as a JSON last line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_common_training_arguments(p: argparse.ArgumentParser, *, default_budget: float) -> None:
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive_int, help="number of training steps")
    budget.add_argument("--time-budget", type=_positive_float, metavar="SECONDS",
                        help=f"train for this many seconds of wall time (default {default_budget:g})")
    p.set_defaults(default_budget=float(default_budget))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    p.add_argument("--eval-samples", type=_positive_int, default=8192,
                   help="fresh samples for the final ESS (default 8192)")
    p.add_argument("--save", metavar="FILE", help="save the trained weights (torch.save)")
    p.add_argument("--json", action="store_true", help="print the result as a JSON last line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_training(args, flow, action, **train_kwargs) -> tuple[dict, int, float]:
    """Train with a progress bar on stderr, evaluate on fresh samples, optionally save."""
    from lftutor.training.live import ProgressBar
    from lftutor.training.loop import evaluate, train

    time_budget = None if args.steps is not None else (args.time_budget or args.default_budget)
    bar = ProgressBar(total=args.steps, file=sys.stderr, disable=args.quiet, mininterval=1.0)
    start = time.perf_counter()
    history = train(flow, action, steps=args.steps, time_budget=time_budget, callbacks=[bar],
                    **train_kwargs)
    train_seconds = time.perf_counter() - start
    metrics = evaluate(flow, action, n_samples=args.eval_samples)
    if args.save:
        torch.save(flow.state_dict(), args.save)
    return metrics, len(history), train_seconds


def _setup(args) -> tuple[torch.device, torch.dtype]:
    from lftutor.course import seed_all
    from lftutor.device import default_device

    if args.L % 2:
        raise ValueError(f"expected an even --L (checkerboard masks need it), got {args.L}")
    seed_all(args.seed)
    return (torch.device(args.device) if args.device else default_device()), getattr(torch, args.dtype)


def _train_gff(args) -> dict:
    from lftutor.bijections.free_field import GFF_MODELS, exact_kl
    from lftutor.lattice.actions import FreeFieldAction
    from lftutor.training.loop import cosine_schedule

    device, dtype = _setup(args)
    action = FreeFieldAction(args.m2, (args.L, args.L))
    flow = GFF_MODELS[args.model]((args.L, args.L), n_layers=args.n_layers, dtype=dtype).to(device)
    metrics, steps, seconds = _run_training(args, flow, action, batch_size=args.batch_size, lr=args.lr,
                                            lr_schedule=cosine_schedule, ess_every=10,
                                            gradient=args.gradient, num_threads=args.threads)
    return {
        "model": f"gff-{args.model}", "L": args.L, "m2": args.m2, "n_layers": args.n_layers,
        "gradient": args.gradient,
        "seed": args.seed, "dtype": args.dtype, "device": str(device), "steps": steps,
        "train_seconds": round(seconds, 3), "ess": metrics["ess"], "acceptance": metrics["acceptance"],
        "kl": exact_kl(metrics["loss"], action.log_z), "loss": metrics["loss"],
        "eval_samples": metrics["n_samples"],
    }


def _mcmc_phi4(args) -> dict:
    from lftutor.course import seed_all
    from lftutor.lattice.actions import ScalarPhi4Action
    from lftutor.lattice.mcmc import flow_metropolis, hmc, phi4_force
    from lftutor.lattice.observables import chi2_from_chain, magnetization
    from lftutor.training.recipes import get_recipe

    if args.L % 2:
        raise ValueError(f"expected an even --L (checkerboard masks need it), got {args.L}")
    if not 0 <= args.thermalize < 1:
        raise ValueError(f"expected --thermalize in [0, 1), got {args.thermalize}")
    seed_all(args.seed)
    action = ScalarPhi4Action(args.m2, args.lam)
    volume = args.L * args.L
    start = time.perf_counter()
    result = {"sampler": args.sampler, "L": args.L, "m2": args.m2, "lam": args.lam, "seed": args.seed}
    if args.sampler == "hmc":
        n_per_chain = max(2, args.samples // args.chains)
        phi0 = torch.zeros(args.chains, args.L, args.L, dtype=torch.float64)
        chain = hmc(action, phi0, n_per_chain, step_size=args.step_size, n_leapfrog=args.n_leapfrog,
                    force=lambda p: phi4_force(p, args.m2, args.lam), observable=magnetization)
        m = chain.configs[int(args.thermalize * n_per_chain):]
        result.update(step_size=args.step_size, n_leapfrog=args.n_leapfrog, chains=args.chains)
    else:
        recipe = get_recipe(args.recipe)
        flow = recipe.build_flow((args.L, args.L))
        if args.weights:
            try:
                flow.load_state_dict(torch.load(args.weights, map_location="cpu"))
            except (RuntimeError, OSError) as err:
                raise ValueError(f"could not load --weights {args.weights} into a '{recipe.name}' flow "
                                 f"for L={args.L}: {str(err).splitlines()[0]}") from None
        else:
            from lftutor.training.live import ProgressBar
            from lftutor.training.loop import train

            bar = ProgressBar(file=sys.stderr, disable=args.quiet, mininterval=1.0)
            train(flow, action, time_budget=args.train_budget or 120.0, callbacks=[bar],
                  **recipe.train_kwargs())
        flow.eval()
        chain = flow_metropolis(flow, action, args.samples, observable=magnetization)
        m = chain.configs
        result.update(recipe=recipe.name, weights=args.weights)
    stats = chi2_from_chain(m.numpy(), volume)
    result.update(chi2=stats["chi2"], chi2_err=stats["chi2_err"], tau_int=stats["tau_int"],
                  acceptance=chain.acceptance, samples=stats["n"],
                  seconds=round(time.perf_counter() - start, 3))
    return result


def _add_instructor_commands(sub) -> None:
    from lftutor.instructor.release import add_arguments as add_release_arguments

    release = sub.add_parser("release", help="instructors: generate course/ from solutions/",
                             description="Run nbgrader generate_assignment for each unit of "
                             "solutions/ into course/, strip outputs, refuse leaks.")
    add_release_arguments(release)
    grade = sub.add_parser(
        "grade", help="instructors: collect, autograde, feedback and export one assignment",
        description="Collect submissions (LMS zip or folder of STUDENTID_NOTEBOOK.ipynb files, "
        "or a folder laid out like submitted/<student>/<assignment>/), repair deleted or edited "
        "test cells, autograde, write feedback without hidden tests, export a grades CSV.")
    grade.add_argument("assignment", metavar="ASSIGNMENT", help="unit, a folder of solutions/")
    grade.add_argument("--from", dest="source", metavar="FOLDER_OR_ZIP",
                       help="LMS download or collected folder (default: what submitted/ holds)")
    grade.add_argument("--course-root", metavar="DIR",
                       help="folder with nbgrader_config.py (default: this repository)")
    grade.add_argument("--timeout", type=_positive_int, metavar="SECONDS",
                       help="per-cell time limit (default: Execute.timeout of nbgrader_config.py)")
    grade.add_argument("--student", action="append", metavar="ID",
                       help="grade only this student (repeatable)")
    grade.add_argument("--regexp", metavar="REGEX",
                       help="file-name pattern of LMS downloads, matched against the full path, "
                       "with groups student_id and file_id")
    grade.add_argument("--json", action="store_true", help="print the report as JSON")


def _train_phi4(args) -> dict:
    from lftutor.lattice.actions import ScalarPhi4Action
    from lftutor.training.recipes import get_recipe

    device, dtype = _setup(args)
    recipe = get_recipe(args.recipe)
    flow = recipe.build_flow((args.L, args.L), dtype=dtype, device=device)
    action = ScalarPhi4Action(args.m2, args.lam)
    kwargs = recipe.train_kwargs()
    if args.batch_size:
        kwargs["batch_size"] = args.batch_size
    if args.gradient:
        kwargs["gradient"] = args.gradient
    metrics, steps, seconds = _run_training(args, flow, action, **kwargs)
    return {
        "model": "phi4", "L": args.L, "m2": args.m2, "lam": args.lam, "recipe": recipe.name,
        "gradient": kwargs["gradient"], "batch_size": kwargs["batch_size"],
        "seed": args.seed, "dtype": args.dtype, "device": str(device),
        "steps": steps, "train_seconds": round(seconds, 3),
        "ess": metrics["ess"], "acceptance": metrics["acceptance"], "loss": metrics["loss"],
        "eval_samples": metrics["n_samples"],
    }


def _grade(args) -> int:
    from dataclasses import asdict

    from lftutor.instructor import grade_assignment
    from lftutor.instructor.collect import DEFAULT_REGEXP

    report = grade_assignment(args.assignment, source=args.source, course_root=args.course_root,
                              timeout=args.timeout, students=args.student,
                              regexp=args.regexp or DEFAULT_REGEXP,
                              log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(asdict(report)) if args.json else report.format())
    return 3 if report.failed else 0


def _instructor(args) -> int:
    from lftutor.instructor.nbgrader_api import CourseError

    try:
        if args.command == "release":
            from lftutor.instructor.release import run

            return run(args)
        return _grade(args)
    except CourseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("release", "grade"):
        return _instructor(args)
    try:
        if args.command == "mcmc":
            result = _mcmc_phi4(args)
        else:
            result = _train_gff(args) if args.target == "gff" else _train_phi4(args)
    except ValueError as err:
        parser.error(str(err))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    return 0
