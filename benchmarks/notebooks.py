"""Run every solution notebook top to bottom and report wall time and the kernel's peak memory.

Usage:  .venv/bin/python benchmarks/notebooks.py [--grading] [--save-dir DIR] [UNIT ...]

--grading sets LFTUTOR_GRADING=1 (the autograder's short trainings). Peak memory is the kernel
process's peak resident set size, read from
/proc/<pid>/status (VmHWM) just before the kernel shuts down.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]


def peak_rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(path: pathlib.Path, save_dir: pathlib.Path | None = None) -> tuple[float, float]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        pid = client.km.provisioner.process.pid
        peak = peak_rss_mb(pid)
    seconds = time.perf_counter() - start
    if save_dir is not None:  # the executed notebook, to read its outputs
        save_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save_dir / path.name)
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("units", nargs="*")
    parser.add_argument("--grading", action="store_true")
    parser.add_argument("--save-dir", type=pathlib.Path,
                        help="write the executed notebooks here (outside the repository)")
    args = parser.parse_args()
    if args.grading:
        os.environ["LFTUTOR_GRADING"] = "1"
    else:
        os.environ.pop("LFTUTOR_GRADING", None)
    units = args.units or sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
    print(f"mode: {'grading' if args.grading else 'full'}; {os.cpu_count()} CPUs")
    print("| unit | seconds | kernel peak memory (MB) |")
    print("| --- | --- | --- |")
    for unit in units:
        for nb in sorted((ROOT / "solutions" / unit).glob("*.ipynb")):
            seconds, peak = run(nb, args.save_dir)
            print(f"| {unit}/{nb.name} | {seconds:.1f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
