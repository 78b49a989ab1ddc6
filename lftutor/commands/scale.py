r"""``python -m lftutor scale phi4``: HMC and flow-based Metropolis side by side across lattice sizes.

For each ensemble (by default the paper's line of constant physics E1-E5, arXiv:1904.12072):

1. HMC tuned to the same acceptance at every ``L`` (``mcmc phi4 --sampler hmc
   --tune-acceptance``): :math:`m_pL`, :math:`\chi_2`, :math:`\tau_{\rm int}` of :math:`M^2`;
2. a flow trained for ``--train-budget`` seconds (``train phi4``), from scratch or, with
   ``--transfer``, from the previous ensemble's weights (``--init-from``);
3. flow-based Metropolis with those weights (``mcmc phi4 --sampler flow``).

Each step is the same code as the command it names, so a row of the table can be checked by
running that command alone. The cost of an independent sample is
:math:`2\tau_{\rm int}` times the seconds per chain step; for the flow, training is a fixed cost
that pays off after ``break_even`` independent samples (when the flow's chain is cheaper).
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

from lftutor.commands._common import add_output_arguments, positive_float, positive_int


def register_scale(ssub) -> None:
    """Add ``phi4`` to the ``scale`` sub-command group."""
    from lftutor.lattice.ensembles import ENSEMBLES

    p = ssub.add_parser("phi4", help="phi^4 along a line of constant physics (default E1-E5)")
    p.add_argument("--ensembles", nargs="+", choices=sorted(ENSEMBLES),
                   default=["E1", "E2", "E3", "E4", "E5"], help="in order of increasing L")
    p.add_argument("--train-budget", type=positive_float, default=120.0, metavar="SECONDS",
                   help="training per ensemble (default 120)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="cpu",
                   help="what --train-budget measures (default cpu: fair on a shared machine)")
    p.add_argument("--transfer", action="store_true",
                   help="start each flow from the previous ensemble's weights")
    p.add_argument("--hmc-samples", type=positive_int, default=40000,
                   help="HMC trajectories per ensemble, over all chains (default 40000)")
    p.add_argument("--hmc-chains", type=positive_int, default=20)
    p.add_argument("--hmc-acceptance", type=float, default=0.8,
                   help="HMC's target acceptance at every L (default 0.8)")
    p.add_argument("--flow-samples", type=positive_int, default=20000,
                   help="flow-based Metropolis steps per ensemble (default 20000)")
    p.add_argument("--eval-samples", type=positive_int, default=8192,
                   help="fresh samples for each flow's ESS (default 8192)")
    p.add_argument("--recipe", default="fast", help="flow recipe (default fast)")
    p.add_argument("--out", metavar="DIR", help="keep each ensemble's weights here (NAME.pt)")
    p.add_argument("--seed", type=int, default=0)
    add_output_arguments(p)
    p.set_defaults(run=scale_phi4)


def _run(argv: list[str]) -> dict:
    """One lftutor command, in this process, with its result (what ``--json`` would print)."""
    from lftutor.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.run(args)


def scale_phi4(args) -> dict:
    quiet = ["--quiet"] if args.quiet else []
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="lftutor-scale-"))
    out.mkdir(parents=True, exist_ok=True)
    rows, previous = [], None
    for name in args.ensembles:
        common = ["--ensemble", name, "--seed", str(args.seed), *quiet]
        hmc = _run(["mcmc", "phi4", "--sampler", "hmc", "--samples", str(args.hmc_samples),
                    "--chains", str(args.hmc_chains), "--tune-acceptance", str(args.hmc_acceptance),
                    *common])
        weights = out / f"{name}.pt"
        train = ["train", "phi4", "--recipe", args.recipe, "--time-budget", str(args.train_budget),
                 "--clock", args.clock, "--eval-samples", str(args.eval_samples),
                 "--save", str(weights), *common]
        note = None
        try:
            init = ["--init-from", str(previous)] if args.transfer and previous else []
            trained = _run([*train, *init])
        except ValueError as err:  # e.g. the recipe's colouring of sites differs between L
            if not init:
                raise
            note = f"trained from scratch: {err}"
            trained = _run(train)
        flow = _run(["mcmc", "phi4", "--sampler", "flow", "--recipe", args.recipe, "--weights",
                     str(weights), "--samples", str(args.flow_samples), *common])
        rows.append({**_row(name, hmc, trained, flow, args.clock), "init_from": trained["init_from"],
                     "transfer_note": note})
        previous = weights
        if not args.json:
            print(_format_row(rows[-1], header=len(rows) == 1), flush=True)
        else:
            print(f"{name}: done", file=sys.stderr, flush=True)
    return {"model": "phi4", "recipe": args.recipe, "train_budget": args.train_budget,
            "clock": args.clock, "transfer": args.transfer, "weights": str(out),
            # the table above says it all in text mode; every column is in --json
            "rows": rows if args.json else f"{len(rows)} (--json for every column)"}


def _row(name: str, hmc: dict, trained: dict, flow: dict, clock: str) -> dict:
    """One ensemble's line: physics from both chains, their autocorrelation and cost (seconds of
    ``clock``: wall time, or this process's CPU time, which other jobs on the machine do not
    inflate; training is measured by the same clock)."""
    key = "sample_cpu_seconds" if clock == "cpu" else "sample_seconds"

    def cost(chain: dict) -> float:  # seconds per independent sample
        return chain[key] / chain["samples"] * 2 * chain["tau_int"]

    c_hmc, c_flow = cost(hmc), cost(flow)
    # independent samples after which training has paid for itself (inf: never)
    break_even = trained["train_seconds"] / (c_hmc - c_flow) if c_hmc > c_flow else math.inf
    return {
        "ensemble": name, "L": hmc["L"], "m2": hmc["m2"], "lam": hmc["lam"],
        "hmc_m_p_L": hmc["m_p_L"], "hmc_m_p_L_err": _times(hmc["m_p_err"], hmc["L"]),
        "hmc_chi2": hmc["chi2"], "hmc_chi2_err": hmc["chi2_err"],
        "hmc_acceptance": hmc["acceptance"], "hmc_n_leapfrog": hmc["n_leapfrog"],
        "hmc_tau_int": hmc["tau_int"], "hmc_tau_int_abs_m": hmc["tau_int_abs_m"],
        "train_seconds": trained["train_seconds"], "train_steps": trained["steps"],
        "ess": trained["ess"], "kl_per_site": _kl_per_site(trained["ess"], hmc["L"]),
        "flow_acceptance": flow["acceptance"], "flow_tau_int": flow["tau_int"],
        "flow_tau_int_abs_m": flow["tau_int_abs_m"],
        "flow_m_p_L": flow["m_p_L"], "flow_m_p_L_err": _times(flow["m_p_err"], flow["L"]),
        "flow_chi2": flow["chi2"], "flow_chi2_err": flow["chi2_err"],
        "chi2_pull": (flow["chi2"] - hmc["chi2"]) / math.hypot(flow["chi2_err"], hmc["chi2_err"]),
        "hmc_seconds_per_independent": c_hmc, "flow_seconds_per_independent": c_flow,
        "break_even_samples": break_even,
    }


def _times(err: float | None, factor: float) -> float | None:
    return None if err is None else err * factor


def _kl_per_site(ess: float, size: int) -> float | None:
    r"""The KL per site that an ESS would mean if the log-weights were Gaussian:
    :math:`\mathrm{ESS} = e^{-\sigma^2}` and :math:`\mathrm{KL} = \sigma^2/2`, so
    :math:`\mathrm{KL}/V = -\log(\mathrm{ESS})/(2V)` (a rough guide; unit 11 measures it)."""
    return -math.log(ess) / (2 * size * size) if 0 < ess <= 1 else None


#: The printed table: (key of a row, title, format); every row has all of them.
_COLUMNS = [("ensemble", "ens", "{:>6}"), ("L", "L", "{:>3}"), ("hmc_m_p_L", "mpL", "{:>6.3f}"),
            ("hmc_tau_int", "tauHMC", "{:>7.2f}"), ("ess", "ESS", "{:>6.3f}"),
            ("flow_acceptance", "acc", "{:>6.3f}"), ("flow_tau_int", "tauflow", "{:>7.2f}"),
            ("chi2_pull", "pull", "{:>6.2f}"), ("hmc_seconds_per_independent", "s/indHMC", "{:>9.2e}"),
            ("flow_seconds_per_independent", "s/indflow", "{:>9.2e}"),
            ("break_even_samples", "breakeven", "{:>9.3g}")]


def _format_row(row: dict, *, header: bool) -> str:
    """One line of the table (None as '-'), with the titles above it when ``header``."""
    cells = [fmt.format(row[key]) if row[key] is not None else "-" for key, _, fmt in _COLUMNS]
    widths = [max(len(c), len(title)) for c, (_, title, _) in zip(cells, _COLUMNS, strict=True)]
    line = " ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
    if not header:
        return line
    return " ".join(t.rjust(w) for (_, t, _), w in zip(_COLUMNS, widths, strict=True)) + "\n" + line


__all__ = ["register_scale", "scale_phi4"]
