"""Build a class of fake students for one unit and grade them all in one run.

One ``python -m lftutor grade`` per unit (real nbgrader, real kernels) grades every case at
once; the tests then read the JSON report, the gradebook's CSV export, the autograded
notebooks and the feedback HTML.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograde_tests import students as st
from autograde_tests.specs import MONKEYPATCH, SPECS, UnitSpec

REPO = Path(__file__).resolve().parents[1]
FIXTURE_SOURCES = Path(__file__).resolve().parent / "fixtures" / "solutions"
#: Per-cell timeout of the test runs: short, so that the endless loop costs little; every cell
#: of a unit must run faster than this in grading mode.
TIMEOUTS = {"fixture": 10}
DEFAULT_TIMEOUT = int(os.environ.get("LFTUTOR_AUTOGRADE_TIMEOUT", "30"))
LOOP = "while True:  # an endless loop: the grader's timeout must stop it\n    pass\n"


def real_units() -> list[str]:
    from lftutor.instructor.nbgrader_api import discover_units

    return discover_units(REPO / "solutions")


def fixture_units() -> list[str]:
    from lftutor.instructor.nbgrader_api import discover_units

    return discover_units(FIXTURE_SOURCES)


def unit_source(unit: str) -> Path:
    real = REPO / "solutions" / unit
    return real if real.is_dir() else FIXTURE_SOURCES / unit


@dataclass
class Case:
    """One fake student: the notebook they hand in and what the grader must make of it."""

    student: str
    notebook: object | None  # None: a corrupted file is written instead
    expect: str  # "full", "zero", "mistake", "failed"
    zero_cells: tuple[str, ...] = ()  # for "mistake": cells that must score 0
    note: str = ""


@dataclass
class GradedUnit:
    unit: str
    root: Path
    notebook_name: str
    release: object
    solution: object
    cases: dict[str, Case]
    report: dict
    originals: dict[str, bytes]  # student -> bytes handed in
    seconds: float
    exit_code: int
    tampered: dict[str, str] = field(default_factory=dict)  # grade_id -> expected problem

    def result(self, student: str) -> dict:
        return {s["student"]: s for s in self.report["students"]}[student]

    def autograded(self, student: str):
        path = self.root / "autograded" / student / self.unit / self.notebook_name
        return nbformat.read(path, as_version=4)

    def feedback_html(self, student: str) -> str:
        return (self.root / "feedback" / student / self.unit /
                self.notebook_name.replace(".ipynb", ".html")).read_text(encoding="utf-8")


def owner(test_id: str, answers: list[str]) -> str | None:
    """The answer a test cell checks by name: ``test_<answer>`` or ``test_<answer>_*``, the
    longest such answer (``test_box_muller_log_det`` checks ``box_muller_log_det``)."""
    named = [a for a in answers if test_id == f"test_{a}" or test_id.startswith(f"test_{a}_")]
    return max(named, key=len) if named else None


def expected_zero_cells(mistake, autograded: list[str], answers: list[str]) -> tuple[str, ...]:
    if mistake.fails:
        return tuple(mistake.fails)
    mine = tuple(g for g in autograded if owner(g, answers) == mistake.answer)
    if not mine:
        raise AssertionError(f"no test cell is named test_{mistake.answer}[_*]: list the cells "
                             f"that check {mistake.answer} in Mistake.fails (autograde_tests/specs.py)")
    return mine


def make_cases(unit: str, release, solution, spec: UnitSpec) -> tuple[list[Case], dict[str, str]]:
    autograded = st.autograded_ids(release)
    answers = st.answer_ids(release)
    assert autograded and answers, f"{unit} has no autograded test cell or no answer cell"
    solved = st.solved(release, solution)
    cases = [Case("solution", solved, "full"), Case("release", release, "zero")]

    # Correct answers, an endless loop in the first answer, and deleted / relabelled / emptied
    # tests: the loop is interrupted, every test runs from the source, all marks are kept.
    # (One student for both keeps the suite inside CI's time: each notebook run costs ~10 s.)
    tampered, problems = st.append_to_answer(solved, answers[0], LOOP), {}
    tampered = st.delete_cell(tampered, autograded[0])
    problems[autograded[0]] = "deleted"
    if len(autograded) > 1:
        tampered = st.relabel_cell(tampered, autograded[1])
        problems[autograded[1]] = "metadata altered"
    if len(autograded) > 2:
        tampered = st.edit_cell(tampered, autograded[2], "pass  # the student emptied the test")
        problems[autograded[2]] = "source edited"
    cases.append(Case("tamperloop", tampered, "full",
                      note=f"tests deleted/relabelled/emptied, endless loop at the end of {answers[0]}"))
    cases.append(Case("corrupt", None, "failed"))

    # A cheater: comparisons monkeypatched and zeros returned (where specs.py says how), the
    # other answers left as released, and every test emptied and relabelled or unlabelled.
    cheat = release
    for c in spec.cheats:
        cheat = st.set_answer(cheat, c.answer, MONKEYPATCH + c.source)
    for i, gid in enumerate(autograded):
        if i % 2:
            cheat = st.strip_metadata(cheat, gid, "pass")
        else:
            cheat = st.relabel_cell(st.edit_cell(cheat, gid, "pass"), gid)
    cases.append(Case("cheat", cheat, "zero",
                      note="patched allclose and zeros; every test replaced by pass"))

    seen: dict[str, int] = {}
    for m in spec.mistakes:
        nb = st.replace_in_answer(solved, m.answer, m.old, m.new)
        # several mistakes of one answer: typical-x, typical-x-2, ...
        seen[m.answer] = seen.get(m.answer, 0) + 1
        suffix = f"-{seen[m.answer]}" if seen[m.answer] > 1 else ""
        cases.append(Case(f"typical-{m.answer.replace('_', '-')}{suffix}", nb, "mistake",
                          expected_zero_cells(m, autograded, answers), note=m.why))
    return cases, problems


def grade_unit(unit: str, root: Path, *, via_zip: bool, env: dict | None = None) -> GradedUnit:
    """Write every case of ``unit`` as a submission, grade them in one run, return the lot."""
    sources = sorted(unit_source(unit).glob("*.ipynb"))
    assert len(sources) == 1, f"the autograde tests expect one notebook per unit, {unit} has {sources}"
    name = sources[0].name
    solution = nbformat.read(sources[0], as_version=4)
    release = nbformat.read(root / "course" / unit / name, as_version=4)
    spec = SPECS.get(unit)
    cases, problems = make_cases(unit, release, solution, spec or UnitSpec(mistakes=()))

    drop = root / "lms" / unit
    if drop.exists():
        shutil.rmtree(drop)
    originals = {}
    for case in cases:
        if via_zip:
            path = drop / f"{case.student}_{name}"
        else:
            path = drop / case.student / unit / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if case.notebook is None:
            text = nbformat.writes(st.solved(release, solution))
            path.write_text(text[: len(text) // 2], encoding="utf-8")  # a truncated upload
        else:
            st.write(case.notebook, path)
        originals[case.student] = path.read_bytes()
    source = drop
    if via_zip:
        source = root / "lms" / f"{unit}_download.zip"
        with zipfile.ZipFile(source, "w") as zf:
            for path in sorted(drop.iterdir()):
                zf.write(path, f"{unit} submissions/{path.name}")

    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    timeout = TIMEOUTS.get(unit, DEFAULT_TIMEOUT)
    cmd = [sys.executable, "-m", "lftutor", "grade", unit, "--from", str(source),
           "--course-root", str(root), "--timeout", str(timeout), "--json",
           # units already grade side by side (conftest.JOBS): one kernel per unit
           "--jobs", "1"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 3) or not proc.stdout.strip():
        raise AssertionError(f"grade {unit} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return GradedUnit(unit, root, name, release, solution, {c.student: c for c in cases}, report,
                      originals, seconds, proc.returncode, problems)
