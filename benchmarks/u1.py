"""Unit 10 benchmarks: U(1) gauge theory on L=8, through the CLI (``python -m lftutor ... u1``).

Parts (run one or more; each prints a JSON line per run and a Markdown table at the end):

* ``physics``: at beta = 2, flow Metropolis and HMC, average plaquette and chi_top vs exact;
* ``freezing``: HMC's tau_int of Q for a ladder of beta (single long chains), and the flow
  chain's tau_int of Q at the same beta with the shipped (or given, or freshly trained) weights,
  with the ratio of the two where both ran;
* ``training``: ESS and acceptance after training budgets of 120, 300 and 600 s at beta = 2.

``--model chain`` selects the 2-D autoregressive flow (``lftutor.bijections.plaquette_chain``)
for the flow runs; ``--flow-train-budget S`` trains a fresh flow per beta for S seconds first.

Usage::

    .venv/bin/python benchmarks/u1.py physics freezing training
    .venv/bin/python benchmarks/u1.py freezing --betas 4 5 6 7 --hmc-trajectories 20000
    .venv/bin/python benchmarks/u1.py freezing --betas 3 4 4.5 5 --hmc-trajectories 400000 --hmc-chains 4 \
        --flow-betas 4.5 5 --weights b45.pt b5.pt --stripe-order descending
    .venv/bin/python benchmarks/u1.py freezing --betas 4.5 5 6 --hmc-trajectories 400000 --hmc-chains 4 \
        --model chain --flow-betas 4.5 5 6 --flow-train-budget 600 --flow-samples 262144
    .venv/bin/python benchmarks/u1.py training --model chain
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable


def run(args: list[str]) -> dict:
    cmd = [PY, "-m", "lftutor", *args, "--json", "--quiet"]
    print("$", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result), flush=True)
    return result


def physics(opts) -> list[str]:
    rows = ["| sampler | samples | plaquette | exact | dev/err | chi_top | exact | dev/err | tau_int Q "
            "| acceptance | seconds |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for sampler, extra in (("flow", ["--samples", str(opts.flow_samples)]),
                           ("hmc", ["--samples", str(opts.hmc_trajectories), "--chains", "4"])):
        model = ["--model", opts.model] if sampler == "flow" else []
        r = run(["mcmc", "u1", *model, "--L", "8", "--beta", "2", "--sampler", sampler, *extra])
        dp = (r["plaquette"] - r["plaquette_exact"]) / r["plaquette_err"]
        dc = (r["chi_top"] - r["chi_top_exact"]) / r["chi_top_err"]
        rows.append(f"| {sampler} | {r['samples']} | {r['plaquette']:.5f} +- {r['plaquette_err']:.5f} | "
                    f"{r['plaquette_exact']:.5f} | {dp:+.2f} | "
                    f"{r['chi_top']:.5f} +- {r['chi_top_err']:.5f} | "
                    f"{r['chi_top_exact']:.5f} | {dc:+.2f} | {r['tau_int_q']:.2f} | {r['acceptance']:.3f} | "
                    f"{r['seconds']:.0f} |")
    return rows


def freezing(opts) -> list[str]:
    weights = opts.weights or []
    if weights and len(weights) != len(opts.flow_betas):
        raise SystemExit(f"expected one --weights file per --flow-betas value, got {len(weights)} for "
                         f"{len(opts.flow_betas)}")
    if weights and opts.flow_train_budget:
        raise SystemExit("expected --weights or --flow-train-budget, not both")
    # the flows first (their trained weights are kept in --save-dir as soon as each is done), then HMC
    model = ["--model", opts.model]
    tmp = Path(opts.save_dir) if opts.save_dir else Path(tempfile.mkdtemp(prefix="u1_bench_"))
    tmp.mkdir(parents=True, exist_ok=True)
    flows = []
    for i, beta in enumerate(opts.flow_betas):
        extra = ["--weights", weights[i]] if weights else []
        extra += ["--stripe-order", opts.stripe_order] if opts.stripe_order else []
        label = opts.model
        if opts.flow_train_budget:
            saved = tmp / f"{opts.model}_b{beta:g}.pt"
            t = run(["train", "u1", *model, "--L", "8", "--beta", f"{beta:g}", "--time-budget",
                     f"{opts.flow_train_budget:g}", "--seed", str(opts.seed), "--eval-samples", "4096",
                     "--save", str(saved), *extra])
            extra = ["--weights", str(saved)] + extra
            label += f", trained {t['train_seconds']:.0f} s / {t['steps']} steps"
        r = run(["mcmc", "u1", *model, "--L", "8", "--beta", f"{beta:g}", "--sampler", "flow",
                 "--samples", str(opts.flow_samples), "--seed", str(opts.seed), *extra])
        flows.append((beta, label, r))
    rows = ["| beta | sampler | steps | tau_int Q | tau_int plaq | acceptance | chi_top (exact) | seconds "
            "| HMC tau / flow tau |", "|---|---|---|---|---|---|---|---|---|"]
    tau_hmc = {}
    for beta in opts.betas:
        r = run(["mcmc", "u1", "--L", "8", "--beta", f"{beta:g}", "--sampler", "hmc",
                 "--samples", str(opts.hmc_trajectories), "--chains", str(opts.hmc_chains)])
        tau_hmc[float(beta)] = r["tau_int_q"]
        rows.append(f"| {beta:g} | hmc ({opts.hmc_chains} chains, traj. length 1) | {r['samples']} | "
                    f"{r['tau_int_q']:.1f} +- {r.get('tau_int_q_err', float('nan')):.1f} | "
                    f"{r['tau_int_plaq']:.1f} | {r['acceptance']:.3f} | "
                    f"{r['chi_top']:.4f} +- {r['chi_top_err']:.4f} ({r['chi_top_exact']:.4f}) "
                    f"| {r['seconds']:.0f} | |")
    for beta, label, r in flows:
        ratio = f"{tau_hmc[float(beta)] / r['tau_int_q']:.0f}" if float(beta) in tau_hmc else ""
        rows.append(f"| {beta:g} | flow ({label}) | {r['samples']} | {r['tau_int_q']:.1f} | "
                    f"{r['tau_int_plaq']:.1f} | {r['acceptance']:.3f} | "
                    f"{r['chi_top']:.4f} +- {r['chi_top_err']:.4f} ({r['chi_top_exact']:.4f}) "
                    f"| {r['seconds']:.0f} | {ratio} |")
    return rows


def training(opts) -> list[str]:
    rows = ["| budget (s) | steps | ESS | acceptance | KL (exact log Z) |", "|---|---|---|---|---|"]
    for b in opts.budgets:
        r = run(["train", "u1", "--model", opts.model, "--L", "8", "--beta", "2", "--time-budget", f"{b:g}",
                 "--eval-samples", "4096"])
        rows.append(f"| {b:g} | {r['steps']} | {r['ess']:.3f} | {r['acceptance']:.3f} | {r['kl']:.3f} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("parts", nargs="+", choices=["physics", "freezing", "training"])
    p.add_argument("--betas", type=float, nargs="*", default=[4.0, 5.0, 6.0, 7.0, 8.0])
    p.add_argument("--flow-betas", type=float, nargs="*", default=[6.0])
    p.add_argument("--weights", nargs="*",
                   help="flow weights for the freezing runs, one per --flow-betas (default: shipped ones)")
    p.add_argument("--stripe-order", choices=["ascending", "descending"],
                   help="layer order the --weights were trained with (default: ascending or the shipped one)")
    p.add_argument("--model", choices=["stripes", "chain"], default="stripes",
                   help="flow model (default stripes)")
    p.add_argument("--flow-train-budget", type=float, metavar="SECONDS",
                   help="freezing: train a fresh flow for this long at each --flow-betas value first")
    p.add_argument("--save-dir", help="keep the weights trained for --flow-train-budget here "
                                      "(default: a temporary folder)")
    p.add_argument("--seed", type=int, default=0, help="seed of the flow chains (and trainings)")
    p.add_argument("--hmc-trajectories", type=int, default=20000, help="HMC trajectories in all chains")
    p.add_argument("--hmc-chains", type=int, default=1, help="independent HMC chains per beta")
    p.add_argument("--flow-samples", type=int, default=65536)
    p.add_argument("--budgets", type=float, nargs="+", default=[120.0, 300.0, 600.0])
    opts = p.parse_args()
    tables = {name: globals()[name](opts) for name in opts.parts}
    for name, rows in tables.items():
        print(f"\n### {name}\n")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
