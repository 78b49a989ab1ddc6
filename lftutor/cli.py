"""Command line: ``python -m lftutor train MODEL ...``, ``python -m lftutor mcmc MODEL ...``,
``python -m lftutor scale MODEL ...``, and for
instructors ``python -m lftutor release [UNIT ...]`` and ``python -m lftutor grade UNIT --from ZIP``.

Each model's commands live in a module of :mod:`lftutor.commands` (found at start-up). Progress
goes to stderr while training; with ``--json`` the last line of stdout is one JSON object with
the result, for scripts and benchmarks. nbgrader is imported only by the instructor commands.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil

import lftutor.commands as _commands


def _command_modules():
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_") and info.name != "instructor":
            yield importlib.import_module(f"lftutor.commands.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    from lftutor.commands.instructor import register_instructor

    parser = argparse.ArgumentParser(prog="python -m lftutor",
                                     description="Normalizing flows for lattice field theory.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a flow and report its figures of merit")
    mcmc = sub.add_parser("mcmc", help="exact sampling (flow Metropolis or HMC) with errors")
    scale = sub.add_parser("scale", help="a study across lattice sizes: HMC and flows side by side")
    tsub = train.add_subparsers(dest="target", required=True)
    msub = mcmc.add_subparsers(dest="target", required=True)
    ssub = scale.add_subparsers(dest="target", required=True)
    for module in _command_modules():
        if hasattr(module, "register"):
            module.register(tsub, msub)
        if hasattr(module, "register_scale"):
            module.register_scale(ssub)
    register_instructor(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "run_instructor"):
        from lftutor.commands.instructor import run

        return run(args)
    try:
        result = args.run(args)
    except ValueError as err:
        parser.error(str(err))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    return 0
