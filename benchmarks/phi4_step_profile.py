"""Per-step cost of the fast phi^4 recipe: operations, host syncs and time, before against after.

A training step of the fast recipe (``--recipe``, default ``fast-ab``; L=8, m^2=-4, lambda=8,
batch 128) is bound by the number of operations it dispatches, not by arithmetic: on a GPU each
operation is at least one kernel launch, and each ``.item()``/``.tolist()`` makes the host wait
for the device. This script counts both with ``torch.profiler`` on the CPU and times the steps,
for two versions of the package side by side in one run:

* ``before``: the package as of a git revision (``--baseline``, extracted with ``git archive``);
* ``after``: the working tree.

Each version runs in its own subprocess (so each imports its own ``lftutor``); the rounds
alternate ``before, after, before, after, ...`` so that the load of a shared machine hits both
alike. Per step it reports the median wall time and the median CPU time of the process (which
counts only this process's own work, so it is much less sensitive to other users of the machine
than the wall time), and, from one profiled stretch of steps:

* ``ops``: every ``aten::`` operator call (dispatcher calls, nested ones included);
* ``kernels``: leaf operators that compute on a tensor of at least one dimension (views,
  allocations and metadata excluded): the operations a GPU would launch a kernel for;
* ``scalar``: leaf operators on 0-dimensional tensors only (mostly CPU-side number conversions
  in the backward pass; on a GPU a few of them are kernels too);
* ``syncs``: ``aten::_local_scalar_dense`` calls (``.item()``, ``.tolist()``, ``bool(t)``), which
  on a GPU wait for the device (the optimiser's ``.item()`` on its CPU step counter does not).

Usage (from the repository root)::

    .venv/bin/python benchmarks/phi4_step_profile.py --baseline 258d190
    .venv/bin/python benchmarks/phi4_step_profile.py --baseline 258d190 --gradients reparam path \\
        --rounds 4 --steps 60

The GPU figures wait for a GPU: with ``--device cuda`` the same script times the steps there
(it synchronises before reading the clock).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Operators that compute nothing: views, allocations, metadata, dtype bookkeeping.
NOT_KERNELS = {
    "aten::view", "aten::as_strided", "aten::empty", "aten::empty_strided", "aten::empty_like",
    "aten::reshape", "aten::_reshape_alias", "aten::expand", "aten::slice", "aten::select",
    "aten::unsqueeze", "aten::squeeze", "aten::t", "aten::transpose", "aten::permute",
    "aten::detach", "aten::alias", "aten::resolve_conj", "aten::resolve_neg", "aten::result_type",
    "aten::unflatten", "aten::flatten", "aten::split", "aten::narrow", "aten::chunk",
    "aten::unbind", "aten::lift_fresh", "aten::_unsafe_view", "aten::detach_",
    "aten::is_nonzero", "aten::numpy_T", "aten::contiguous", "aten::split_with_sizes",
    "aten::set_", "aten::_local_scalar_dense", "aten::item",
}


def _worker(args) -> None:
    """Run in a subprocess: build the flow, profile and time ``--steps`` steps, print JSON."""
    import torch

    from lftutor.lattice.actions import ScalarPhi4Action
    from lftutor.training.loop import train
    from lftutor.training.recipes import RECIPES

    # the named recipe; a baseline package that predates it falls back to its own "fast"
    FAST = RECIPES.get(args.recipe, RECIPES["fast"])

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    flow = FAST.build_flow((args.L, args.L), device=device)
    action = ScalarPhi4Action(args.m2, args.lam)
    kwargs = {**FAST.train_kwargs(), "gradient": args.gradient, "batch_size": args.batch_size}
    extra = json.loads(args.train_extra)
    if extra:  # options the baseline's train() may not know (e.g. compile=True)
        kwargs.update(extra)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run(steps, callbacks=()):
        return train(flow, action, steps=steps, callbacks=callbacks, **kwargs)

    run(args.warmup)  # warm up (allocator, first-call dispatch, compilation if any)
    counts = {}
    if args.profile_steps:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities, record_shapes=True) as prof:
            run(args.profile_steps)
        n = args.profile_steps
        ops = kernels = scalar = syncs = 0
        for e in prof.events():
            if not e.name.startswith("aten::"):
                continue
            ops += 1
            if e.name == "aten::_local_scalar_dense":
                syncs += 1
            if any(c.name.startswith("aten::") for c in e.cpu_children) or e.name in NOT_KERNELS:
                continue
            shapes = [s for s in (e.input_shapes or []) if isinstance(s, list)]
            if any(len(s) > 0 for s in shapes):
                kernels += 1
            else:
                scalar += 1
        counts = {"ops": ops / n, "kernels": kernels / n, "scalar": scalar / n, "syncs": syncs / n}
        if device.type == "cuda":
            counts["cuda_kernels"] = sum(1 for e in prof.events()
                                         if getattr(e, "device_type", None) is not None
                                         and str(e.device_type).endswith("CUDA")) / n
    wall, cpu = [], []
    marks = []

    def mark(history):
        sync()
        marks.append((time.perf_counter(), time.process_time()))

    sync()
    marks.append((time.perf_counter(), time.process_time()))
    threads = []
    run(args.steps, callbacks=[mark, lambda h: threads.append(torch.get_num_threads())])
    for (w0, c0), (w1, c1) in zip(marks[:-1], marks[1:], strict=True):
        wall.append(w1 - w0)
        cpu.append(c1 - c0)
    print(json.dumps({"wall": wall, "cpu": cpu, "counts": counts,
                      "torch": torch.__version__, "threads": threads[0],
                      "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                                 else "cpu")}))


def _extract(revision: str, into: Path) -> Path:
    """``git archive`` the package at ``revision`` into ``into``; returns the import root."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "lftutor"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default=None,
                   help="git revision of the 'before' package (default: no baseline, 'after' only)")
    p.add_argument("--gradients", nargs="+", default=["reparam", "path"], choices=["reparam", "path"])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per version")
    p.add_argument("--steps", type=int, default=40, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--profile-steps", type=int, default=5, help="profiled steps (first round only)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--recipe", default="fast-ab",
                   help="recipe name (default fast-ab, the recipe the table in benchmarks/README.md "
                        "measured; a baseline package without it uses its 'fast')")
    p.add_argument("--L", type=int, default=8)
    p.add_argument("--m2", type=float, default=-4.0)
    p.add_argument("--lam", type=float, default=8.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--after-extra", default="{}",
                   help="JSON of extra train() keywords for 'after' only (e.g. '{\"compile\": true}')")
    p.add_argument("--json", metavar="FILE", help="also write the raw results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--gradient", default="reparam", help=argparse.SUPPRESS)
    p.add_argument("--train-extra", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        versions = {"after": (ROOT, args.after_extra)}
        if args.baseline:
            versions = {"before": (_extract(args.baseline, Path(tmp)), "{}"), **versions}
        results: dict = {}
        for gradient in args.gradients:
            for r in range(args.rounds):
                for name, (root, extra) in versions.items():
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker",
                           "--gradient", gradient, "--steps", str(args.steps),
                           "--warmup", str(args.warmup),
                           "--profile-steps", str(args.profile_steps if r == 0 else 0),
                           "--batch-size", str(args.batch_size), "--recipe", args.recipe,
                           "--L", str(args.L),
                           "--m2", str(args.m2), "--lam", str(args.lam), "--device", args.device,
                           "--seed", str(args.seed), "--train-extra", extra]
                    env = {**os.environ, "PYTHONPATH": str(root)}
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env,
                                         cwd=tmp)
                    res = json.loads(out.stdout.strip().splitlines()[-1])
                    slot = results.setdefault((gradient, name), {"wall": [], "cpu": [], "counts": {}})
                    slot["wall"] += res["wall"]
                    slot["cpu"] += res["cpu"]
                    slot["counts"] = slot["counts"] or res["counts"]
                    slot["meta"] = {k: res[k] for k in ("torch", "threads", "device")}
                    print(f"# {gradient} round {r + 1} {name}: median wall "
                          f"{1e3 * statistics.median(res['wall']):.1f} ms, load "
                          f"{os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    meta = next(iter(results.values()))["meta"]
    print(f"# {meta['device']}, torch {meta['torch']}, {meta['threads']} thread(s) while training, "
          f"{args.recipe} recipe, L={args.L}, m2={args.m2}, lam={args.lam}, batch {args.batch_size}; "
          f"{args.rounds} alternating rounds x {args.steps} steps per version; "
          f"load average at the end {os.getloadavg()[0]:.2f}")
    header = (f"{'gradient':>8} {'version':>7} {'ops':>7} {'kernels':>7} {'scalar':>6} {'syncs':>5} "
              f"{'wall ms':>8} {'cpu ms':>7} {'steps/s':>7}")
    print(header)
    for (gradient, name), res in results.items():
        c = res["counts"]
        wall, cpu = statistics.median(res["wall"]), statistics.median(res["cpu"])
        print(f"{gradient:>8} {name:>7} {c.get('ops', 0):7.0f} {c.get('kernels', 0):7.0f} "
              f"{c.get('scalar', 0):6.0f} {c.get('syncs', 0):5.0f} {1e3 * wall:8.1f} {1e3 * cpu:7.1f} "
              f"{1 / wall:7.1f}")
    if args.baseline:
        print("# after / before (medians)")
        for gradient in args.gradients:
            b, a = results[(gradient, "before")], results[(gradient, "after")]
            ratios = {k: a["counts"][k] / b["counts"][k] for k in ("ops", "kernels")
                      if b["counts"].get(k)}
            print(f"{gradient:>8}  ops {ratios.get('ops', float('nan')):.2f}  kernels "
                  f"{ratios.get('kernels', float('nan')):.2f}  wall "
                  f"{statistics.median(a['wall']) / statistics.median(b['wall']):.2f}  cpu "
                  f"{statistics.median(a['cpu']) / statistics.median(b['cpu']):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{g}/{n}": v for (g, n), v in results.items()}))


if __name__ == "__main__":
    main()
