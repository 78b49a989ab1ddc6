"""Unit 9's targets: flow posteriors against the diagonal Gaussian in a 40-D VAE on the digits, and
the amortization gap of one conditional flow over the ring family.

Usage:
    .venv/bin/python benchmarks/vae.py vae [--steps 3000] [--seeds 0 1 2] [--iwae-samples 1000]
        [--save-weights lftutor/weights]     # seed 0's models become the shipped weights
    .venv/bin/python benchmarks/vae.py family [--steps 2000] [--amortized-steps 4000] [--seeds 0 1 2]
    nice .venv/bin/python benchmarks/vae.py budgets [--steps 3000] [--cpu-seconds 30 180] [--seeds 0 1 2]
        [--posteriors gaussian planar iaf]

``vae`` trains each posterior for the same number of steps (same batch size and learning rate)
through the CLI, one process each (``python -m lftutor train vae ... --per-image --json``), and
prints per seed the held-out log p(x) (IWAE, 1000 samples per image) and the improvement of each
flow over the Gaussian: its mean over the 300 test images with the paired standard error (the
same images, so the image-to-image spread cancels), and over seeds the mean improvement with the
standard error from the seed-to-seed spread. ``family`` prints, per seed, the exact KL per theta
of the amortized flow and of flows trained for one theta each, and over the seeds the median,
range, mean and standard error of the mean amortization gap.

``budgets`` asks whether the flows' advantage holds per step or per second: each posterior is
trained once for a fixed number of steps and once for each fixed budget of *CPU* seconds of this
process (``time.process_time``, one thread, so that other jobs on a shared machine do not eat into
it), in this process, with exactly the CLI's model, optimiser, schedule and evaluation; it prints
the steps, CPU seconds, ms per step and held-out log p(x) of every run, and per budget the flows'
paired improvement over the Gaussian.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_vae(posterior: str, seed: int, steps: int, iwae: int, save: str | None) -> dict:
    cmd = [sys.executable, "-m", "lftutor", "train", "vae", "--latent", "40", "--posterior", posterior,
           "--steps", str(steps), "--seed", str(seed), "--iwae-samples", str(iwae), "--per-image",
           "--json", "--quiet"]
    if save:
        cmd += ["--save", save]
    out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    d = [x - y for x, y in zip(a, b, strict=True)]
    n = len(d)
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    return mean, math.sqrt(var / n)


def vae_main(args) -> None:
    posteriors = ["gaussian", "planar", "iaf"]
    rows = {}
    machine = platform.processor() or platform.machine()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine}, "
          f"steps={args.steps}, iwae={args.iwae_samples}", flush=True)
    print("| seed | posterior | steps | train s | test ELBO | test log p(x) | vs Gaussian (paired s.e.) |")
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for seed in args.seeds:
        for post in posteriors:
            save = None
            if args.save_weights and seed == args.seeds[0]:
                save = str(Path(args.save_weights) / f"vae40_{post}.pt")
            r = run_vae(post, seed, args.steps, args.iwae_samples, save)
            rows[seed, post] = r
            diff = ""
            if post != "gaussian":
                m, se = paired(r["per_image_log_likelihood"],
                               rows[seed, "gaussian"]["per_image_log_likelihood"])
                diff = f"{m:+.3f} ({se:.3f}, {m / se:.1f} s.e.)"
            print(f"| {seed} | {post} | {r['steps']} | {r['train_seconds']:.0f} | {r['test_elbo']:.3f} "
                  f"| {r['test_log_likelihood']:.3f} ± {r['test_log_likelihood_stderr']:.3f} | {diff} |",
                  flush=True)
    print()
    for post in posteriors[1:]:
        per_seed = [paired(rows[s, post]["per_image_log_likelihood"],
                           rows[s, "gaussian"]["per_image_log_likelihood"]) for s in args.seeds]
        means = [m for m, _ in per_seed]
        n = len(means)
        mean = sum(means) / n
        se_images = math.sqrt(sum(se ** 2 for _, se in per_seed)) / n
        se_seeds = math.sqrt(sum((m - mean) ** 2 for m in means) / (n - 1) / n) if n > 1 else float("nan")
        se = math.sqrt(se_images ** 2 + (se_seeds if n > 1 else 0.0) ** 2)
        unpaired = math.sqrt(sum(rows[s, post]["test_log_likelihood_stderr"] ** 2
                                 + rows[s, "gaussian"]["test_log_likelihood_stderr"] ** 2
                                 for s in args.seeds)) / n
        print(f"{post} - gaussian over {n} seed(s): {mean:+.3f} nats; paired s.e. (images) {se_images:.3f}, "
              f"s.e. from the seed spread {se_seeds:.3f}, combined {se:.3f} -> {mean / se:.1f} s.e.; "
              f"unpaired s.e. {unpaired:.3f} -> {mean / unpaired:.1f} s.e.", flush=True)


def run_budget(posterior: str, seed: int, *, steps: int | None = None, cpu_seconds: float | None = None,
               iwae: int = 1000) -> dict:
    """One run as ``train vae --latent 40`` does it, with ``steps`` or a budget of CPU seconds."""
    import torch

    from lftutor.amortized.digits import load_digits_split
    from lftutor.amortized.vae import VAE, evaluate, negative_elbo_loss
    from lftutor.course import seed_all
    from lftutor.training.loop import cosine_schedule, train

    torch.set_num_threads(1)
    seed_all(seed)
    split = load_digits_split()
    model = VAE(40, posterior, n_layers=8, hidden=128)
    history = train(model, loss_fn=negative_elbo_loss(split.train_intensity), steps=steps,
                    time_budget=cpu_seconds, batch_size=100, lr=1e-3, lr_schedule=cosine_schedule,
                    num_threads=1, clock=time.process_time)
    result = evaluate(model, split.test, k=iwae, seed=seed)
    result.update(steps=len(history), cpu_seconds=history.seconds[-1])
    return result


def budgets_main(args) -> None:
    budgets = [("steps", args.steps)] * (args.steps > 0) + [("cpu", s) for s in args.cpu_seconds]
    label = {b: (f"{b[1]} steps" if b[0] == "steps" else f"{b[1]:g} CPU s") for b in budgets}
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, 1 thread, "
          f"iwae={args.iwae_samples}, budgets: {', '.join(label[b] for b in budgets)}", flush=True)
    print("| budget | seed | posterior | steps | CPU s | ms/step | test ELBO | test log p(x) | vs Gaussian "
          "(paired s.e.) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    rows = {}
    for b in budgets:
        for seed in args.seeds:
            for post in args.posteriors:
                r = run_budget(post, seed, iwae=args.iwae_samples,
                               **({"steps": b[1]} if b[0] == "steps" else {"cpu_seconds": b[1]}))
                rows[b, seed, post] = r
                diff = ""
                if post != "gaussian" and (b, seed, "gaussian") in rows:
                    m, se = paired(r["per_image_log_likelihood"],
                                   rows[b, seed, "gaussian"]["per_image_log_likelihood"])
                    diff = f"{m:+.3f} ({se:.3f})"
                print(f"| {label[b]} | {seed} | {post} | {r['steps']} | {r['cpu_seconds']:.1f} | "
                      f"{r['cpu_seconds'] / r['steps'] * 1e3:.2f} | {r['test_elbo']:.3f} | "
                      f"{r['test_log_likelihood']:.3f} | {diff} |", flush=True)
    if "gaussian" not in args.posteriors:
        return
    print("\nMean over seeds of each flow's paired improvement over the Gaussian (nats; s.e. combines "
          "the paired s.e. over images and the seed spread):\n")
    print("| budget | " + " | ".join(f"{p} - gaussian" for p in args.posteriors if p != "gaussian") + " |")
    print("| --- |" + " --- |" * (len(args.posteriors) - 1))
    for b in budgets:
        cells = []
        for post in args.posteriors:
            if post == "gaussian":
                continue
            per_seed = [paired(rows[b, s, post]["per_image_log_likelihood"],
                               rows[b, s, "gaussian"]["per_image_log_likelihood"]) for s in args.seeds]
            n = len(per_seed)
            mean = sum(m for m, _ in per_seed) / n
            se2 = sum(se ** 2 for _, se in per_seed) / n ** 2
            if n > 1:
                se2 += sum((m - mean) ** 2 for m, _ in per_seed) / (n - 1) / n
            seeds = ", ".join(f"{m:+.3f}" for m, _ in per_seed)
            cells.append(f"{mean:+.3f} ± {math.sqrt(se2):.3f} ({seeds})")
        print(f"| {label[b]} | " + " | ".join(cells) + " |", flush=True)


def family_main(args) -> None:
    import statistics

    import torch

    from lftutor.amortized.family import amortization_gap

    torch.set_num_threads(1)
    gaps = []
    for seed in args.seeds:
        start = time.perf_counter()
        res = amortization_gap(thetas=tuple(args.thetas), steps=args.steps,
                               amortized_steps=args.amortized_steps, n_layers=args.layers,
                               hidden=args.hidden, seed=seed, n_samples=args.samples)
        d = res.as_dict()
        print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, seed {seed}, {args.layers} odd "
              f"IAF layers (hidden {args.hidden}), separate: {args.steps} steps each, amortized: "
              f"{args.amortized_steps or args.steps} steps, batch 256, {args.samples} samples per KL")
        print("| theta | KL amortized | KL separate | gap |")
        print("| --- | --- | --- | --- |")
        for t, a, sa, s, ss in zip(d["thetas"], d["kl_amortized"], d["stderr_amortized"], d["kl_separate"],
                                   d["stderr_separate"], strict=True):
            print(f"| {t:.2f} | {a:.4f} ± {sa:.4f} | {s:.4f} ± {ss:.4f} | {a - s:+.4f} |")
        se = math.sqrt(sum(x ** 2 for x in d["stderr_amortized"] + d["stderr_separate"])) / len(d["thetas"])
        print(f"mean KL amortized {d['mean_kl_amortized']:.4f}, separate {d['mean_kl_separate']:.4f}, "
              f"mean gap {d['mean_gap']:+.4f} ± {se:.4f} (goal: < 0.05); seconds {d['seconds']}, "
              f"total {time.perf_counter() - start:.0f}", flush=True)
        gaps.append(d["mean_gap"])
    if len(gaps) > 1:
        n = len(gaps)
        mean = sum(gaps) / n
        se = statistics.stdev(gaps) / math.sqrt(n)
        print(f"over {n} seeds: mean gap median {statistics.median(gaps):+.4f}, range "
              f"[{min(gaps):+.4f}, {max(gaps):+.4f}], mean {mean:+.4f} ± {se:.4f} (s.e. from the seed "
              f"spread; goal: < 0.05)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    v = sub.add_parser("vae")
    v.add_argument("--steps", type=int, default=3000)
    v.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    v.add_argument("--iwae-samples", type=int, default=1000)
    v.add_argument("--save-weights", metavar="DIR")
    f = sub.add_parser("family")
    f.add_argument("--steps", type=int, default=2000)
    f.add_argument("--amortized-steps", type=int, default=None)
    f.add_argument("--thetas", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0])
    f.add_argument("--layers", type=int, default=8)
    f.add_argument("--hidden", type=int, default=64)
    f.add_argument("--samples", type=int, default=50000)
    f.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0], dest="seeds")
    b = sub.add_parser("budgets")
    b.add_argument("--steps", type=int, default=3000, help="the equal-steps budget (default 3000; 0: none)")
    b.add_argument("--cpu-seconds", type=float, nargs="*", default=[30.0, 180.0],
                   help="equal budgets of CPU seconds (default 30 180)")
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    b.add_argument("--posteriors", nargs="+", default=["gaussian", "planar", "iaf"],
                   choices=["gaussian", "planar", "iaf"])
    b.add_argument("--iwae-samples", type=int, default=1000)
    args = parser.parse_args()
    {"vae": vae_main, "family": family_main, "budgets": budgets_main}[args.part](args)


if __name__ == "__main__":
    main()
