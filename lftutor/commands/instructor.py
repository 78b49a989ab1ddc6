"""Instructor commands: ``python -m lftutor release`` and ``python -m lftutor grade``.

These are the only commands that need nbgrader (the ``course`` extra). Their parsers are built
without importing it, so ``python -m lftutor train ...`` works after a plain ``pip install
lftutor`` (Colab); nbgrader is imported when an instructor command runs, and its absence is
reported in one line.
"""

from __future__ import annotations

import json
import sys

from lftutor.commands._common import positive_int


def add_release_arguments(parser) -> None:
    """Arguments of ``release``."""
    parser.add_argument("units", nargs="*", metavar="UNIT",
                        help="units to release (folders of solutions/; default: all)")
    parser.add_argument("--course-root", metavar="DIR",
                        help="folder with nbgrader_config.py (default: this repository)")
    parser.add_argument("--check", action="store_true",
                        help="only check that course/ is current and leaks nothing; exit 1 if not")


def register_instructor(sub) -> None:
    """Add ``release`` and ``grade``; nothing here imports nbgrader until a command runs."""

    release = sub.add_parser("release", help="instructors: generate course/ from solutions/",
                             description="Run nbgrader generate_assignment for each unit of "
                             "solutions/ into course/, strip outputs, refuse leaks.")
    add_release_arguments(release)
    release.set_defaults(run_instructor=_release)
    grade = sub.add_parser(
        "grade", help="instructors: collect, autograde, feedback and export one assignment",
        description="Collect submissions (LMS zip or folder of STUDENTID_NOTEBOOK.ipynb files, "
        "or a folder laid out like submitted/<student>/<assignment>/), repair deleted or edited "
        "test cells, autograde, write feedback without hidden tests, export a grades CSV.")
    grade.add_argument("assignment", metavar="ASSIGNMENT", help="unit, a folder of solutions/")
    grade.add_argument("--from", dest="source", metavar="FOLDER_OR_ZIP",
                       help="LMS download or collected folder (default: what submitted/ holds)")
    grade.add_argument("--course-root", metavar="DIR",
                       help="folder with nbgrader_config.py (default: this repository)")
    grade.add_argument("--timeout", type=positive_int, metavar="SECONDS",
                       help="per-cell time limit (default: Execute.timeout of nbgrader_config.py)")
    grade.add_argument("--student", action="append", metavar="ID",
                       help="grade only this student (repeatable)")
    grade.add_argument("--regexp", metavar="REGEX",
                       help="file-name pattern of LMS downloads, matched against the full path, "
                       "with groups student_id and file_id")
    grade.add_argument("--jobs", type=positive_int, metavar="N",
                       help="students graded side by side (default: the available cores)")
    grade.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                       help="run submissions as yourself, without bubblewrap (only if you trust "
                       "every submission; the report says so)")
    grade.add_argument("--memory-mb", type=positive_int, metavar="MB",
                       help="sandbox: memory (address space) per kernel process (default 4000)")
    grade.add_argument("--cpu-seconds", type=positive_int, metavar="S",
                       help="sandbox: CPU seconds per kernel process (default 3600)")
    grade.add_argument("--json", action="store_true", help="print the report as JSON")
    grade.set_defaults(run_instructor=_grade)


def _release(args) -> int:
    from lftutor.instructor.release import check_release_up_to_date, generate_release

    if args.check:
        problems = check_release_up_to_date(args.course_root, args.units or None)
        for problem in problems:
            print(problem, file=sys.stderr)
        print("course/ is up to date" if not problems else f"{len(problems)} problem(s) in course/")
        return 1 if problems else 0
    generate_release(args.units or None, course_root=args.course_root)
    return 0


def _grade(args) -> int:
    from dataclasses import asdict

    from lftutor.instructor import grade_assignment
    from lftutor.instructor.collect import DEFAULT_REGEXP

    limits = {name: value for name in ("memory_mb", "cpu_seconds")
              if (value := getattr(args, name)) is not None}
    report = grade_assignment(args.assignment, source=args.source, course_root=args.course_root,
                              timeout=args.timeout, students=args.student,
                              regexp=args.regexp or DEFAULT_REGEXP, jobs=args.jobs,
                              sandbox=(limits or True) if args.sandbox else False,
                              log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(asdict(report)) if args.json else report.format())
    return 3 if report.failed else 0


def run(args) -> int:
    """Run the instructor command of ``args``; 1 with a message on a course problem."""
    try:
        import nbgrader  # noqa: F401 - fail here, with a message, rather than deep inside

        from lftutor.instructor.nbgrader_api import CourseError
    except ImportError:
        print("error: instructor commands need nbgrader: pip install 'lftutor[course]' "
              "(or run `make env` in the repository)", file=sys.stderr)
        return 1
    try:
        return args.run_instructor(args)
    except CourseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
