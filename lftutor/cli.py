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
    from lftutor.recipes import RECIPES

    parser = argparse.ArgumentParser(prog="python -m lftutor",
                                     description="Normalizing flows for lattice field theory.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a flow and report ESS")
    tsub = train.add_subparsers(dest="model", required=True)
    phi4 = tsub.add_parser("phi4", help="scalar phi^4 theory on an L x L periodic lattice")
    phi4.add_argument("--L", type=_positive_int, default=8, help="lattice extent (even)")
    phi4.add_argument("--m2", type=float, default=-4.0, help="bare mass squared")
    phi4.add_argument("--lam", type=float, default=8.0, help="quartic coupling")
    budget = phi4.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive_int, help="number of training steps")
    budget.add_argument("--time-budget", type=_positive_float, metavar="SECONDS",
                        help="train for this many seconds of wall time (default 120)")
    phi4.add_argument("--recipe", choices=sorted(RECIPES), default="fast",
                      help="architecture and optimiser settings (default: fast)")
    phi4.add_argument("--batch-size", type=_positive_int, help="override the recipe's batch size")
    phi4.add_argument("--seed", type=int, default=0)
    phi4.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    phi4.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    phi4.add_argument("--eval-samples", type=_positive_int, default=8192,
                      help="fresh samples for the final ESS (default 8192)")
    phi4.add_argument("--save", metavar="FILE", help="save the trained weights (torch.save)")
    phi4.add_argument("--json", action="store_true", help="print the result as a JSON last line")
    phi4.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_instructor_commands(sub)
    return parser


def _add_instructor_commands(sub) -> None:
    from lftutor.release import add_arguments as add_release_arguments

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
    from lftutor.actions import ScalarPhi4Action
    from lftutor.course import seed_all
    from lftutor.device import default_device
    from lftutor.live import ProgressBar
    from lftutor.recipes import get_recipe
    from lftutor.train import evaluate, train

    if args.L % 2:
        raise ValueError(f"expected an even --L (checkerboard masks need it), got {args.L}")
    seed_all(args.seed)
    device = torch.device(args.device) if args.device else default_device()
    dtype = getattr(torch, args.dtype)
    recipe = get_recipe(args.recipe)
    flow = recipe.build_flow((args.L, args.L), dtype=dtype, device=device)
    action = ScalarPhi4Action(args.m2, args.lam)
    kwargs = recipe.train_kwargs()
    if args.batch_size:
        kwargs["batch_size"] = args.batch_size
    time_budget = args.time_budget if args.steps is None and args.time_budget else None
    if args.steps is None and time_budget is None:
        time_budget = 120.0
    bar = ProgressBar(total=args.steps, file=sys.stderr, disable=args.quiet, mininterval=1.0)
    start = time.perf_counter()
    history = train(flow, action, steps=args.steps, time_budget=time_budget, callbacks=[bar],
                    **kwargs)
    train_seconds = time.perf_counter() - start
    metrics = evaluate(flow, action, n_samples=args.eval_samples)
    if args.save:
        torch.save(flow.state_dict(), args.save)
    return {
        "model": "phi4", "L": args.L, "m2": args.m2, "lam": args.lam, "recipe": recipe.name,
        "seed": args.seed, "dtype": args.dtype, "device": str(device),
        "steps": len(history), "train_seconds": round(train_seconds, 3),
        "ess": metrics["ess"], "acceptance": metrics["acceptance"], "loss": metrics["loss"],
        "train_loss_last": history.loss[-1], "eval_samples": metrics["n_samples"],
    }


def _grade(args) -> int:
    from dataclasses import asdict

    from lftutor.grade import grade_assignment
    from lftutor.grade.collect import DEFAULT_REGEXP

    report = grade_assignment(args.assignment, source=args.source, course_root=args.course_root,
                              timeout=args.timeout, students=args.student,
                              regexp=args.regexp or DEFAULT_REGEXP,
                              log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(asdict(report)) if args.json else report.format())
    return 3 if report.failed else 0


def _instructor(args) -> int:
    from lftutor._nbgrader import CourseError

    try:
        if args.command == "release":
            from lftutor.release import run

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
        result = _train_phi4(args)
    except ValueError as err:
        parser.error(str(err))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    return 0
