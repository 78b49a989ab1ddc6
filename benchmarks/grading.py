"""Grading throughput: seconds per student for every unit, and a class of synthetic submissions
end to end at several ``--jobs``, each kernel in its sandbox (``python -m lftutor grade``).

Usage:
    .venv/bin/python benchmarks/grading.py units [UNIT ...]
    .venv/bin/python benchmarks/grading.py class --unit 02_phi4_lattice --students 100 --jobs 1 2

``units`` grades, per unit, a class of two (the solution and the untouched release) with
``--jobs 1`` and reports the median of nbgrader's autograde time per student (kernel start,
every cell in grading mode, saving the grades) and the wall time of the whole command.
``class`` builds ``--students`` submissions of one unit (the solution, the release and each
typical mistake of the unit's autograde spec, in turn) and grades the same class once per
``--jobs`` value, side by side in one run, in fresh copies of one course: wall time, students
per hour, and students per hour per core used (``min(jobs, cores)``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograde_tests import students as st  # noqa: E402
from autograde_tests.conftest import make_course  # noqa: E402
from autograde_tests.harness import real_units, unit_source  # noqa: E402
from autograde_tests.specs import SPECS  # noqa: E402


def cores() -> int:
    return len(os.sched_getaffinity(0))


def submissions(unit: str, root: Path, n: int) -> Path:
    """``n`` submissions of ``unit`` under ``root/handed_in`` laid out like submitted/."""
    import nbformat

    name = next(unit_source(unit).glob("*.ipynb")).name
    solution = nbformat.read(unit_source(unit) / name, as_version=4)
    release = nbformat.read(root / "course" / unit / name, as_version=4)
    solved = st.solved(release, solution)
    kinds = [solved, release]
    spec = SPECS.get(unit)
    for m in (spec.mistakes if spec else ()):
        kinds.append(st.replace_in_answer(solved, m.answer, m.old, m.new))
    drop = root / "handed_in"
    for i in range(n):
        path = drop / f"s{i:03d}" / unit / name
        path.parent.mkdir(parents=True, exist_ok=True)
        st.write(kinds[i % len(kinds)], path)
    return drop


def grade(root: Path, unit: str, drop: Path, jobs: int) -> tuple[dict, float]:
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lftutor", "grade", unit, "--from", str(drop),
                           "--course-root", str(root), "--jobs", str(jobs), "--json"],
                          cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(f"grade {unit} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def cmd_units(args) -> None:
    units = args.units or real_units()
    print(f"{'unit':<26} {'s/student (median)':>18} {'command wall s':>15}  (2 students, --jobs 1)")
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        for unit in units:
            root = Path(tmp, unit)
            make_course(root, [unit])
            report, wall = grade(root, unit, submissions(unit, root, 2), jobs=1)
            secs = [s["seconds"] for s in report["students"]]
            bad = [s["student"] for s in report["students"] if s["status"] != "graded"]
            print(f"{unit:<26} {statistics.median(secs):>18.1f} {wall:>15.1f}"
                  + (f"  FAILED: {bad}" if bad else ""), flush=True)


def cmd_class(args) -> None:
    print(f"{args.unit}: {args.students} submissions; machine: {cores()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at start")
    print(f"{'jobs':>4} {'wall s':>8} {'students/h':>11} {'students/h/core':>16} "
          f"{'median s/student':>17} {'graded':>7}")
    with tempfile.TemporaryDirectory(prefix="bench-class-") as tmp:
        template = Path(tmp, "template")
        make_course(template, [args.unit])
        submissions(args.unit, template, args.students)
        for jobs in args.jobs:
            root = Path(tmp, f"jobs{jobs}")
            shutil.copytree(template, root)
            report, wall = grade(root, args.unit, root / "handed_in", jobs)
            graded = sum(s["status"] == "graded" for s in report["students"])
            per_hour = args.students / wall * 3600
            secs = statistics.median(s["seconds"] for s in report["students"])
            print(f"{jobs:>4} {wall:>8.1f} {per_hour:>11.0f} {per_hour / min(jobs, cores()):>16.0f} "
                  f"{secs:>17.1f} {graded:>7}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("units", help="seconds per student for every unit")
    p.add_argument("units", nargs="*")
    p.set_defaults(run=cmd_units)
    p = sub.add_parser("class", help="a class of synthetic submissions at several --jobs")
    p.add_argument("--unit", default="02_phi4_lattice")
    p.add_argument("--students", type=int, default=100)
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    p.set_defaults(run=cmd_class)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
