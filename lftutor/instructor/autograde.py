"""One instructor command from LMS download to grades: :func:`grade_assignment`.

Steps (``python -m lftutor grade ASSIGNMENT --from DOWNLOAD.zip``):

1. **sync**: ``nbgrader generate_assignment`` from ``solutions/`` into a temporary release,
   which puts the assignment, its notebooks and its (hidden) tests into the gradebook and
   gives the release notebooks that the repair step compares with;
2. **collect** the submissions into ``submitted/`` (:mod:`lftutor.instructor.collect`) and add the
   students to the gradebook;
3. **check and repair** each submitted notebook: a file that is not a notebook fails that
   student (with the reason) and nobody else; deleted, edited or re-labelled locked/test cells
   are put back (:mod:`lftutor.instructor.repair`; the original is kept under
   ``grading/<assignment>/originals/``);
4. **autograde** each student with nbgrader (per-cell timeout ``Execute.timeout``: an endless
   loop is interrupted and the rest of the notebook still runs), each kernel in its own
   bubblewrap sandbox (:mod:`lftutor.instructor.sandbox`; before anyone is graded, a sandbox is
   tried, and grading stops if none can be made), ``jobs`` students side by side in worker
   processes that take turns at the gradebook;
5. **feedback** HTML per student without hidden test code (:mod:`lftutor.instructor.feedback`);
6. **export** ``exports/<assignment>_grades.csv`` (one row per student, one column per graded
   cell) and ``grading/<assignment>/summary.json``, and return a :class:`GradeReport`.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lftutor.instructor.collect import DEFAULT_REGEXP, collect
from lftutor.instructor.nbgrader_api import (
    CourseError,
    coursedir_path,
    discover_units,
    find_course_root,
    load_config,
    make_api,
)
from lftutor.instructor.repair import Repair, repair_file

GRADED, FAILED = "graded", "failed"


@dataclass
class StudentResult:
    """The outcome for one student: ``status`` is ``graded`` or ``failed`` (with ``reason``)."""

    student: str
    status: str = GRADED
    reason: str = ""
    score: float | None = None
    max_score: float | None = None
    cells: dict[str, float | None] = field(default_factory=dict)  # grade_id -> score
    repaired: list[str] = field(default_factory=list)  # "grade_id (problem)"
    timed_out: list[str] = field(default_factory=list)  # cells stopped by the timeout
    missing: list[str] = field(default_factory=list)  # notebooks not submitted
    feedback: list[str] = field(default_factory=list)  # feedback HTML files
    seconds: float = 0.0  # autograde wall time
    sandbox: list[str] = field(default_factory=list)  # limits hit, processes killed, ...

    def fail(self, reason: str) -> None:
        self.status, self.reason = FAILED, reason


@dataclass
class GradeReport:
    assignment: str
    course_root: str
    students: list[StudentResult]
    max_scores: dict[str, float]  # grade_id -> points, autograded cells only
    skipped_files: list[str] = field(default_factory=list)
    csv_path: str = ""
    summary_path: str = ""
    sandbox: str = ""  # "bubblewrap X.Y" or "OFF (...)"

    def by_student(self) -> dict[str, StudentResult]:
        return {s.student: s for s in self.students}

    @property
    def failed(self) -> list[StudentResult]:
        return [s for s in self.students if s.status == FAILED]

    def format(self) -> str:
        """The summary printed by ``python -m lftutor grade``."""
        graded = [s for s in self.students if s.status == GRADED]
        total = sum(self.max_scores.values())
        lines = [f"{self.assignment}: {len(graded)} graded, {len(self.failed)} failed "
                 f"(autograded points per student: {total:g})"]
        width = max([len(s.student) for s in self.students] + [7])
        for s in self.students:
            if s.status == FAILED:
                sandbox = f" (sandbox: {', '.join(s.sandbox)})" if s.sandbox else ""
                lines.append(f"  FAILED  {s.student:<{width}}  {s.reason}{sandbox}")
                continue
            line = f"  graded  {s.student:<{width}}  {s.score:g} / {s.max_score:g}"
            notes = []
            if s.repaired:
                notes.append("repaired " + ", ".join(s.repaired))
            if s.timed_out:
                notes.append("timed out in " + ", ".join(s.timed_out))
            if s.missing:
                notes.append("not submitted: " + ", ".join(s.missing))
            if s.sandbox:
                notes.append("sandbox: " + ", ".join(s.sandbox))
            lines.append(line + ("   " + "; ".join(notes) if notes else ""))
        lines.append(f"sandbox: {self.sandbox}")
        for skipped in self.skipped_files:
            lines.append(f"  skipped file {skipped}")
        lines.append(f"grades: {self.csv_path}")
        lines.append(f"feedback: {Path(self.course_root, 'feedback')}/<student>/{self.assignment}/")
        return "\n".join(lines)


def _first_error_line(text: str) -> str:
    """The last ``SomeError: message`` line of a traceback or log (the informative one)."""
    hits = re.findall(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Interrupt)\b.*)$", text, flags=re.M)
    hits = [h for h in hits if not h.startswith(("NbGraderException", "Exception:"))]
    return hits[-1].strip() if hits else ""


def _autograde_failure(result: dict, sandbox_events: list[str] = ()) -> str:
    log = result.get("log", "") + "\n" + result.get("error", "")
    if "UnresponsiveKernelError" in log or "kernel became unresponsive" in log:
        return ("the kernel became unresponsive and could not be interrupted (an endless loop "
                "that allocates memory?); see the log")
    if "DeadKernelError" in log or "Kernel died" in log:
        # the sandbox knows why when one of its limits stopped the kernel
        stops = [e for e in sandbox_events if e.startswith(("kernel stopped", "kernel killed",
                                                             "memory limit"))]
        if stops:
            return f"the kernel died while running the notebook: {'; '.join(stops)}"
        return "the kernel died while running the notebook (out of memory, or os._exit?)"
    detail = _first_error_line(log)
    return f"nbgrader autograde failed: {detail or 'see the log'}"


def _timeouts(autograded: Path) -> list[str]:
    import nbformat

    out = []
    for path in sorted(autograded.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" and output.get("ename") == "CellTimeoutError":
                    gid = cell.metadata.get("nbgrader", {}).get("grade_id")
                    out.append(f"{path.stem} cell {i}" + (f" ({gid})" if gid else ""))
    return out


def _feedback_leaks(html_path: Path, hidden_lines: list[str]) -> list[str]:
    from lftutor.instructor.feedback import BEGIN, find_hidden_code, html_to_text

    page = html_path.read_text(encoding="utf-8")
    text = html_to_text(page)
    found = find_hidden_code(text, hidden_lines)
    if BEGIN in page:
        found.append(BEGIN)
    return found


def _hidden_lines(source_dir: Path) -> list[str]:
    import nbformat

    from lftutor.instructor.feedback import identifying_lines, split_hidden

    lines = []
    for path in sorted(source_dir.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        hidden, visible = [], []
        for cell in nb.cells:
            v, h = split_hidden(cell.source)
            hidden += h
            visible.append(v)
        lines += identifying_lines(hidden, "\n".join(visible))
    return lines


def feedback_config(cfg) -> None:
    """Make ``cfg``'s feedback hide hidden tests (see :mod:`lftutor.instructor.feedback`)."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    from lftutor.instructor.feedback import HideHiddenTests

    cfg.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]


def sandbox_config(cfg, sandbox: bool | dict = True) -> None:
    """Run ``cfg``'s autograde kernels through :class:`~lftutor.instructor.sandbox.SandboxedExecute`
    (whatever the course's config says), on (``True`` or a dict of ``c.Sandbox`` settings) or
    off (``False``)."""
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute

    from lftutor.instructor.sandbox import SandboxedExecute

    current = cfg.Autograde.get("autograde_preprocessors") or Autograde.autograde_preprocessors.default()
    executes = {Execute, SandboxedExecute, "nbgrader.preprocessors.Execute",
                "nbgrader.preprocessors.execute.Execute", "lftutor.instructor.sandbox.SandboxedExecute"}
    cfg.Autograde.autograde_preprocessors = [SandboxedExecute if pp in executes else pp
                                             for pp in current]
    settings = sandbox if isinstance(sandbox, dict) else {}
    cfg.Sandbox.enabled = bool(sandbox)
    for name, value in settings.items():
        setattr(cfg.Sandbox, name, value)


def default_jobs() -> int:
    """Kernels side by side by default: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def grade_assignment(assignment: str, *, source: str | Path | None = None, course_root=None,
                     timeout: int | None = None, students: list[str] | None = None,
                     regexp: str = DEFAULT_REGEXP, jobs: int | None = None,
                     sandbox: bool | dict = True, log=print) -> GradeReport:
    """Collect, repair, autograde, give feedback on and export ``assignment``.

    Args:
        assignment: unit name, a folder of ``solutions/`` (e.g. ``"02_phi4_lattice"``).
        source: LMS download (zip or folder of ``STUDENTID_NOTEBOOK.ipynb``) or a folder laid
            out like ``submitted/``; ``None`` grades what ``submitted/`` already holds.
        course_root: folder with ``nbgrader_config.py`` (default: this repository).
        timeout: seconds per cell (default: ``Execute.timeout`` of the config).
        students: grade only these student ids (default: everyone collected).
        regexp: file-name pattern for LMS downloads (see :mod:`lftutor.instructor.collect`).
        jobs: students graded side by side (default: the cores available), each kernel in its
            own sandbox; gradebook writes are serialized.
        sandbox: run each kernel in a bubblewrap sandbox (:mod:`lftutor.instructor.sandbox`);
            a dict sets its limits (``{"memory_mb": 8000}``); ``False`` grades unboxed.
        log: called with progress lines.

    Returns:
        A :class:`GradeReport`; a student whose submission cannot be graded is ``failed`` with
        a reason, the others are graded. Raises :class:`CourseError` for problems that stop
        everyone (unknown assignment, nothing to collect, no sandbox, nbgrader set-up errors).
    """
    import warnings

    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        # nbgrader 0.9.6 trips SQLAlchemy's autoflush warnings on every new submission
        warnings.simplefilter("ignore", SAWarning)
        return _grade_assignment(assignment, source=source, course_root=course_root,
                                 timeout=timeout, students=students, regexp=regexp,
                                 jobs=jobs or default_jobs(), sandbox=sandbox, log=log)


@dataclass
class _Course:
    """Where things are, for one grading run."""

    root: Path
    assignment: str
    timeout: int | None
    sandbox: bool | dict

    def config(self):
        cfg = load_config(self.root, timeout=self.timeout)
        feedback_config(cfg)
        sandbox_config(cfg, self.sandbox)
        return cfg

    @property
    def work(self) -> Path:
        return self.root / "grading" / self.assignment


def _grade_assignment(assignment, *, source, course_root, timeout, students, regexp, jobs,
                      sandbox, log):
    course = _Course(find_course_root(course_root), assignment, timeout, sandbox)
    cfg = course.config()
    source_dir = coursedir_path(cfg, "source_directory")
    if assignment not in discover_units(source_dir):
        raise CourseError(f"expected an assignment of {source_dir} "
                          f"({', '.join(discover_units(source_dir)) or 'none'}), got {assignment!r}")
    sandbox_note = _check_sandbox(cfg, sandbox)
    course.work.mkdir(parents=True, exist_ok=True)
    api = make_api(cfg)

    with tempfile.TemporaryDirectory(prefix="lftutor-grade-") as tmp:
        release_notebooks = _sync_gradebook(api, assignment, Path(tmp, "release"))
        collected = collect(source, assignment=assignment, course_root=course.root,
                            submitted=coursedir_path(cfg, "submitted_directory"), regexp=regexp)
        ids = collected.students if students is None else [s for s in collected.students
                                                          if s in set(students)]
        log(f"{assignment}: {len(ids)} submission(s) to grade, {min(jobs, max(len(ids), 1))} at "
            f"a time; sandbox: {sandbox_note}")
        results = [StudentResult(s) for s in ids]
        _add_students(api, ids)
        _check_and_repair(course, cfg, results, release_notebooks)
        _autograde_all(course, results, jobs, _hidden_lines(source_dir / assignment), log)

    report = GradeReport(assignment, str(course.root), results,
                         _read_scores(api, assignment, results, release_notebooks),
                         collected.skipped, sandbox=sandbox_note)
    export = course.root / "exports"
    export.mkdir(exist_ok=True)
    report.csv_path = str(export / f"{assignment}_grades.csv")
    _write_csv(report, Path(report.csv_path))
    report.summary_path = str(course.work / "summary.json")
    Path(report.summary_path).write_text(json.dumps(asdict(report), indent=1), encoding="utf-8")
    return report


def _check_sandbox(cfg, sandbox) -> str:
    """What protects the instructor: ``bubblewrap X.Y`` or ``OFF``; stops everything (before
    anyone is graded) when a sandbox is asked for and cannot be made."""
    if not sandbox:
        return "OFF (--no-sandbox: submissions ran as the grading user)"
    from lftutor.instructor.sandbox import Sandbox, SandboxUnavailable, check_sandbox

    try:
        return check_sandbox(Sandbox(config=cfg))
    except SandboxUnavailable as err:
        raise CourseError(f"no sandbox for the submissions' kernels: {err}") from err


def _sync_gradebook(api, assignment: str, release: Path) -> list[Path]:
    """Step 1: ``generate_assignment`` into a temporary release puts the assignment and its
    tests into the gradebook; its notebooks are the reference of the repair step."""
    from nbgrader.utils import temp_attrs

    with temp_attrs(api.coursedir, release_directory=str(release)):
        result = api.generate_assignment(assignment, force=True, create=True)
    if not result["success"]:
        raise CourseError(f"could not put {assignment} into the gradebook "
                          f"(nbgrader generate_assignment):\n{result.get('log', '')}"
                          f"{result.get('error', '')}")
    return sorted((release / assignment).glob("*.ipynb"))


def _add_students(api, ids: list[str]) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        for s in ids:
            gb.update_or_create_student(s)


def _check_and_repair(course: _Course, cfg, results: list[StudentResult],
                      release_notebooks: list[Path]) -> None:
    """Step 3: a file that is not a notebook fails its student; locked cells are put back."""
    submitted = coursedir_path(cfg, "submitted_directory")
    for res in results:
        folder = submitted / res.student / course.assignment
        present = []
        for nb_path in release_notebooks:
            path = folder / nb_path.name
            if not path.exists():
                res.missing.append(nb_path.name)
                continue
            try:
                repairs = repair_file(path, nb_path, course.work / "originals" / res.student)
            except Exception as err:  # noqa: BLE001 - any unreadable file fails only this student
                res.fail(f"{path.relative_to(course.root)} is not a valid notebook "
                         f"({type(err).__name__}: {_one_line(err)}); re-export it from "
                         "Jupyter or ask the student to resubmit")
                break
            res.repaired += [str(r) for r in repairs]
            present.append(nb_path.name)
        if res.status == GRADED and not present:
            found = ", ".join(sorted(p.name for p in folder.glob("*.ipynb"))) or "nothing"
            res.fail(f"no notebook named {', '.join(n.name for n in release_notebooks)} "
                     f"in the submission (found {found})")


class _GradebookLock:
    """An exclusive lock on the gradebook, shared by the processes of a parallel grading run
    (and by two grading runs of one course): nbgrader writes to SQLite from each worker."""

    def __init__(self, path: Path):
        self.path = path

    def acquire(self) -> None:
        import fcntl

        self._fh = open(self.path, "w")  # noqa: SIM115 - closed in release
        fcntl.flock(self._fh, fcntl.LOCK_EX)

    def release(self) -> None:
        import fcntl

        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


@dataclass
class _Outcome:
    """What a worker sends back for one student."""

    student: str
    seconds: float = 0.0
    failure: str = ""
    timed_out: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    sandbox: list[str] = field(default_factory=list)


def _autograde_all(course: _Course, results: list[StudentResult], jobs: int,
                   hidden: list[str], log) -> None:
    """Steps 4-5 for every student still in: ``jobs`` at a time, each in a process of its own
    (nbgrader sets environment variables while it runs a notebook)."""
    todo = [r for r in results if r.status == GRADED]
    by_name = {r.student: r for r in results}
    threads = max(1, default_jobs() // max(1, min(jobs, len(todo) or 1)))
    args = [(course, r.student, hidden, threads) for r in todo]
    if jobs <= 1 or len(todo) <= 1:
        outcomes = map(_autograde_one, args)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)),
                                   mp_context=multiprocessing.get_context("spawn"))
        outcomes = pool.map(_autograde_one, args)
    for out in outcomes:
        res = by_name[out.student]
        res.seconds, res.timed_out, res.sandbox = out.seconds, out.timed_out, out.sandbox
        res.feedback = out.feedback
        if out.failure:
            res.fail(out.failure)
        log(f"  autograded {res.student} in {res.seconds:.1f} s"
            + (f" (sandbox: {'; '.join(res.sandbox)})" if res.sandbox else ""))
    if jobs > 1 and len(todo) > 1:
        pool.shutdown()


def _autograde_one(job) -> _Outcome:
    """Autograde one student and write their feedback (in a worker process, or inline)."""
    import warnings

    from sqlalchemy.exc import SAWarning

    from lftutor.instructor import sandbox as sandbox_module

    course, student, hidden, threads = job
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    lock = _GradebookLock(course.work / ".gradebook.lock")
    sandbox_module.GRADEBOOK_LOCK = lock
    sandbox_module.events(clear=True)
    out = _Outcome(student)
    lock.acquire()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)
            cfg = course.config()
            api = make_api(cfg)
            _run_autograde(course, cfg, api, out, hidden)
    finally:
        lock.release()
        sandbox_module.GRADEBOOK_LOCK = None
        out.sandbox = sandbox_module.events(clear=True)
    return out


def _run_autograde(course: _Course, cfg, api, out: _Outcome, hidden: list[str]) -> None:
    from lftutor.instructor import sandbox as sandbox_module

    assignment, student, root = course.assignment, out.student, course.root
    start = time.perf_counter()
    result = api.autograde(assignment, student, force=True, create=True)
    out.seconds = round(time.perf_counter() - start, 1)
    logs = course.work / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{student}.log").write_text(result.get("log", "") + result.get("error", ""),
                                         encoding="utf-8")
    if not result["success"]:
        out.failure = (_autograde_failure(result, sandbox_module.events()) +
                       f" (log: {(logs / (student + '.log')).relative_to(root)})")
        return
    out.timed_out = _timeouts(coursedir_path(cfg, "autograded_directory") / student / assignment)
    result = api.generate_feedback(assignment, student, force=True)
    if not result["success"]:
        out.failure = ("graded, but feedback generation failed: "
                       f"{_first_error_line(result.get('error', ''))}")
        return
    feedback = coursedir_path(cfg, "feedback_directory") / student / assignment
    for html_path in sorted(feedback.glob("*.html")):
        leaks = _feedback_leaks(html_path, hidden)
        if leaks:
            html_path.unlink()
            out.failure = (f"feedback {html_path.name} would show hidden test code "
                           f"({leaks[0]!r}); it was deleted")
            return
        out.feedback.append(str(html_path.relative_to(root)))


def _read_scores(api, assignment: str, results: list[StudentResult],
                 release_notebooks: list[Path]) -> dict[str, float]:
    """Step 6: points per autograded cell from the gradebook, into each graded result."""
    from nbgrader.api import Gradebook, MissingEntry

    max_scores: dict[str, float] = {}
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        nb_names = [p.stem for p in release_notebooks]
        for nb_name in nb_names:
            for cell in gb.find_notebook(nb_name, assignment).grade_cells:
                if cell.cell_type == "code":
                    max_scores[cell.name] = float(cell.max_score)
        for res in results:
            if res.status != GRADED:
                continue
            for nb_name in nb_names:
                try:
                    sub = gb.find_submission_notebook(nb_name, assignment, res.student)
                except MissingEntry:
                    continue
                for grade in sub.grades:
                    if grade.name in max_scores:
                        res.cells[grade.name] = None if grade.score is None else float(grade.score)
            for name in max_scores:
                res.cells.setdefault(name, 0.0)
            res.score = sum(v or 0.0 for v in res.cells.values())
            res.max_score = sum(max_scores.values())
    return max_scores


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _write_csv(report: GradeReport, path: Path) -> None:
    cells = list(report.max_scores)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student_id", "status", "score", "max_score", *cells, "repaired",
                         "timed_out", "reason", "sandbox"])
        writer.writerow(["(max)", "", sum(report.max_scores.values()),
                         sum(report.max_scores.values()), *report.max_scores.values(), "", "", "",
                         report.sandbox])
        for s in report.students:
            writer.writerow([s.student, s.status, "" if s.score is None else s.score,
                             "" if s.max_score is None else s.max_score,
                             *["" if s.cells.get(c) is None else s.cells[c] for c in cells],
                             "; ".join(s.repaired), "; ".join(s.timed_out), s.reason,
                             "off" if report.sandbox.startswith("OFF") else "; ".join(s.sandbox)])


__all__ = ["GradeReport", "Repair", "StudentResult", "grade_assignment"]
