"""Run every solution notebook top to bottom and report wall time and the kernel's peak memory.

Usage:  .venv/bin/python benchmarks/notebooks.py [--grading] [--per-cell] [--save-dir DIR] [UNIT ...]

--grading sets LFTUTOR_GRADING=1 (the autograder's short trainings). Peak memory is the kernel
process's peak resident set size, read from
/proc/<pid>/status (VmHWM) just before the kernel shuts down; --per-cell also prints, after
every code cell, its seconds and the kernel's peak and current resident memory, to find the cell
that sets the peak.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """``VmHWM`` (peak resident) or ``VmRSS`` (current) of process ``pid``, in MB."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(path: pathlib.Path, save_dir: pathlib.Path | None = None,
        per_cell: bool = False) -> tuple[float, float]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    with client.setup_kernel():
        pid = client.km.provisioner.process.pid
        for index, cell in enumerate(nb.cells):
            cell_start = time.perf_counter()
            client.execute_cell(cell, index)
            if per_cell and cell.cell_type == "code":
                name = cell.metadata.get("nbgrader", {}).get("grade_id") or cell.source[:30]
                print(f"    cell {index:2d} {name!r:34s} {time.perf_counter() - cell_start:6.1f} s  "
                      f"peak {memory_mb(pid):5.0f} MB  now {memory_mb(pid, 'VmRSS'):5.0f} MB",
                      flush=True)
        peak = memory_mb(pid)
    seconds = time.perf_counter() - start
    if save_dir is not None:  # the executed notebook, to read its outputs
        save_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save_dir / path.name)
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("units", nargs="*")
    parser.add_argument("--grading", action="store_true")
    parser.add_argument("--per-cell", action="store_true",
                        help="print seconds and memory after every code cell")
    parser.add_argument("--save-dir", type=pathlib.Path,
                        help="write the executed notebooks here (outside the repository)")
    args = parser.parse_args()
    if args.grading:
        os.environ["LFTUTOR_GRADING"] = "1"
    else:
        os.environ.pop("LFTUTOR_GRADING", None)
    known = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
    units = [next((k for k in known if k == u or k.startswith(f"{u}_")), u) for u in args.units] or known
    unknown = [u for u in units if u not in known]
    if unknown:
        raise SystemExit(f"expected units from {known} (or their numbers, e.g. 09), got {unknown}")
    print(f"mode: {'grading' if args.grading else 'full'}; {os.cpu_count()} CPUs")
    print("| unit | seconds | kernel peak memory (MB) |")
    print("| --- | --- | --- |")
    for unit in units:
        for nb in sorted((ROOT / "solutions" / unit).glob("*.ipynb")):
            seconds, peak = run(nb, args.save_dir, args.per_cell)
            print(f"| {unit}/{nb.name} | {seconds:.1f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
