"""The red team: attackers graded beside honest students, real nbgrader, sandbox on.

One class of the fixture unit (honest students and the attackers of
:mod:`autograde_tests.red_team`) is graded once, two students at a time. Then:

* every attacker scores 0 or fails, with the reason (and what the sandbox saw) in the report;
* every honest student scores what they score in a class without attackers;
* the instructor's files (course/, solutions/, the config, the lftutor package, the Python
  environment, the grader's HOME) are the same before and after, byte for byte;
* nothing an attacker started is still running, and nothing reached a local port.

The same class of honest students graded with ``--jobs 1`` and ``--jobs 2`` gives the same CSV,
summary and feedback; and without the sandbox, the first attack does change another student's
grade (so the attacks are real).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

import lftutor
from autograde_tests import red_team as rt
from autograde_tests import students as st
from autograde_tests.conftest import make_course
from autograde_tests.harness import REPO

pytestmark = pytest.mark.slow
UNIT = "fixture"
#: Honest students, named to be graded after the attackers (ids are graded in sorted order).
HONEST = ("xavier", "yasmin", "zoe")  # the solution, the untouched release, one mistake
LEFTOVERS = ("sleep 31415", "sleep 27182")  # what the daemon attacker leaves running


def honest_class(release, solution) -> dict:
    return {"xavier": st.solved(release, solution), "yasmin": release,
            "zoe": st.replace_in_answer(st.solved(release, solution), "magnetization",
                                        "np.mean(phi)", "np.sum(phi)")}


def build(root: Path, notebooks: dict, extra_config: str = "") -> Path:
    """A course at ``root`` with the fixture unit and ``notebooks`` handed in; returns the
    folder of submissions laid out like submitted/."""
    make_course(root, [UNIT])
    if extra_config:
        with open(root / "nbgrader_config.py", "a") as fh:
            fh.write(extra_config)
    drop = root / "handed_in"
    for student, nb in notebooks.items():
        path = drop / student / UNIT / f"{UNIT}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        st.write(nb, path)
    return drop


def grade(root: Path, drop: Path, home: Path, *args: str) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IPYTHONDIR", "JUPYTER_CONFIG_DIR")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "lftutor", "grade", UNIT, "--from", str(drop), "--course-root",
           str(root), "--timeout", "10", "--json", *args]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode in (0, 3) and proc.stdout.strip(), (
        f"grade exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def fingerprint(*folders: Path) -> dict[str, str]:
    """path -> sha256 of every file (size and mtime for files over 1 MB: the environment holds
    GBs) and the target of every symlink, under ``folders``."""
    out = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in [*filenames, *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d)))]:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    out[path] = "-> " + os.readlink(path)
                    continue
                stat = os.stat(path)
                if stat.st_size > 1_000_000:
                    out[path] = f"{stat.st_size} {stat.st_mtime_ns}"
                else:
                    out[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            out[dirpath] = "dir " + ",".join(sorted(dirnames + filenames))
    return out


def outputs(root: Path, student: str) -> str:
    nb = nbformat.read(root / "autograded" / student / UNIT / f"{UNIT}.ipynb", as_version=4)
    return "\n".join(str(o.get("text", "")) + str(o.get("evalue", ""))
                     for c in nb.cells for o in c.get("outputs", []))


class Listener:
    """A TCP server on a free local port that records whoever connects."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def _leftover_processes() -> list[str]:
    proc = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True)
    return [line for line in proc.stdout.splitlines() if line.strip().startswith(LEFTOVERS)]


@pytest.fixture(scope="module")
def fixture_notebooks():
    solution = nbformat.read(REPO / "autograde_tests/fixtures/solutions/fixture/fixture.ipynb",
                             as_version=4)
    from lftutor.instructor.release import generate_release  # noqa: F401 - needs nbgrader

    return solution


@pytest.fixture(scope="module")
def red_team_run(tmp_path_factory):
    """Grade the red-team class once; the fingerprints and the honest class's run with it."""
    base = tmp_path_factory.mktemp("red_team")
    listener = Listener()
    home = base / "grader_home"
    (home / ".ipython" / "profile_default" / "startup").mkdir(parents=True)
    (home / "notes.txt").write_text("the instructor's own file\n")
    attacked = base / "attacked"
    make_course(attacked, [UNIT])  # for the release, which build() makes again
    release = nbformat.read(attacked / "course" / UNIT / f"{UNIT}.ipynb", as_version=4)
    solution = nbformat.read(attacked / "solutions" / UNIT / f"{UNIT}.ipynb", as_version=4)
    shutil.rmtree(attacked)
    attack_id = st.answer_ids(release)[0]
    notebooks = dict(honest_class(release, solution))
    for attack in rt.ATTACKS:
        code = attack.source.replace("{port}", str(listener.port))
        notebooks[attack.student] = st.set_answer(
            release, attack_id, code + "\n" + st.cell_by_id(release, attack_id).source)
    drop = build(attacked, notebooks, rt.RED_TEAM_CONFIG)
    package = Path(lftutor.__file__).resolve().parent
    watched = [attacked / "course", attacked / "solutions", attacked / "nbgrader_config.py",
               package, Path(sys.prefix), home]
    before = fingerprint(*watched)
    report, log = grade(attacked, drop, home, "--jobs", "2")
    after = fingerprint(*watched)
    leftovers = _leftover_processes()
    listener.close()

    clean = base / "honest"
    clean_drop = build(clean, honest_class(release, solution), rt.RED_TEAM_CONFIG)
    honest_report, _ = grade(clean, clean_drop, home, "--jobs", "1")
    yield {"report": report, "log": log, "root": attacked, "before": before, "after": after,
           "leftovers": leftovers, "connections": listener.connections,
           "honest": honest_report, "release": release, "solution": solution, "base": base,
           "home": home}
    subprocess.run(["pkill", "-f", "sleep (31415|27182)"], check=False)


def by_student(report) -> dict:
    return {s["student"]: s for s in report["students"]}


def test_the_report_says_the_sandbox_was_on(red_team_run):
    report = red_team_run["report"]
    assert report["sandbox"].startswith("bubblewrap"), report["sandbox"]
    rows = list(csv.reader(open(report["csv_path"])))
    assert rows[0][-1] == "sandbox" and rows[1][-1].startswith("bubblewrap")


def test_honest_students_score_as_in_a_class_without_attackers(red_team_run):
    attacked, clean = by_student(red_team_run["report"]), by_student(red_team_run["honest"])
    for student in HONEST:
        assert attacked[student]["status"] == "graded", attacked[student]["reason"]
        assert attacked[student]["cells"] == clean[student]["cells"], student
    # and those scores are the right ones: the solution full, the release 0, the mistake loses
    # exactly its exercise
    full = red_team_run["report"]["max_scores"]
    assert clean["xavier"]["cells"] == full
    assert set(clean["yasmin"]["cells"].values()) == {0.0}
    assert clean["zoe"]["cells"]["test_magnetization"] == 0.0
    assert clean["zoe"]["score"] == sum(full.values()) - full["test_magnetization"]


@pytest.mark.parametrize("attack", rt.ATTACKS, ids=lambda a: a.student)
def test_every_attacker_earns_nothing_and_is_told_why(red_team_run, attack):
    result = by_student(red_team_run["report"])[attack.student]
    if result["status"] == "failed":
        assert result["reason"], attack.student
        # a kernel stopped by one of the sandbox's limits: the reason names the limit
        stops = [e for e in result["sandbox"] if e.startswith("kernel stopped")]
        assert all(e in result["reason"] for e in stops), (result["reason"], stops)
    else:
        assert result["score"] == 0.0, (attack.student, result["cells"])
    if attack.sandbox:
        assert any(attack.sandbox in event for event in result["sandbox"]), (
            attack.student, result["sandbox"], result["reason"])


def test_the_instructors_files_are_byte_identical(red_team_run):
    before, after = red_team_run["before"], red_team_run["after"]
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert changed == [], f"changed by grading the red team: {changed[:20]}"


def test_the_gradebook_of_other_students_is_untouched(red_team_run):
    root = red_team_run["root"]
    for student in HONEST:
        for kind, name in (("submitted", "fixture.ipynb"), ("autograded", "fixture.ipynb"),
                           ("feedback", "fixture.html")):
            text = (root / kind / student / UNIT / name).read_text()
            assert "red team was here" not in text, (kind, student)


def test_what_the_attackers_saw(red_team_run):
    root = red_team_run["root"]
    assert "TAMPER changed 0 of" in outputs(root, "tamper")
    snoop = outputs(root, "snoop")
    assert "SNOOP read 0 file(s)" in snoop and "SNOOP LEAK" not in snoop
    assert "SIGNALS sent" in outputs(root, "signals")  # it ran inside the sandbox, and did no harm
    assert "NETWORK connected" not in outputs(root, "network")
    assert red_team_run["connections"] == 0
    assert "DISK full" in outputs(root, "diskfill")
    assert len(outputs(root, "flood")) < 10_000_000


def test_nothing_an_attacker_started_outlives_the_grading(red_team_run):
    assert red_team_run["leftovers"] == []


def test_the_grader_survived_and_graded_everyone(red_team_run):
    report = red_team_run["report"]
    assert {s["student"] for s in report["students"]} == {*HONEST, *(a.student for a in rt.ATTACKS)}
    assert (red_team_run["root"] / "exports" / f"{UNIT}_grades.csv").is_file()


def _comparable(report: dict) -> dict:
    out = json.loads(json.dumps(report))
    for s in out["students"]:
        s.pop("seconds")
    for key in ("course_root", "csv_path", "summary_path"):
        out.pop(key)
    return out


def test_parallel_grading_gives_the_same_grades_and_feedback(red_team_run):
    base = red_team_run["base"]
    roots = {}
    for jobs in ("1", "2"):
        root = base / f"jobs{jobs}"
        drop = build(root, honest_class(red_team_run["release"], red_team_run["solution"]))
        report, _ = grade(root, drop, red_team_run["home"], "--jobs", jobs)
        roots[jobs] = (root, report)
    (r1, rep1), (r2, rep2) = roots["1"], roots["2"]
    assert _comparable(rep1) == _comparable(rep2)
    assert (r1 / "exports" / "fixture_grades.csv").read_text() == \
        (r2 / "exports" / "fixture_grades.csv").read_text()
    for student in HONEST:
        pages = [(r / "feedback" / student / UNIT / "fixture.html").read_text() for r in (r1, r2)]
        assert pages[0] == pages[1], student


def test_without_the_sandbox_one_submission_changes_other_grades(red_team_run):
    """The issue's measurement, as a test: with --no-sandbox, a startup file left in the
    grader's HOME gives an empty notebook graded later full marks. So the attacks are real,
    and the report says the sandbox was off."""
    base = red_team_run["base"]
    release = red_team_run["release"]
    attack_id = st.answer_ids(release)[0]
    home = base / "unboxed_home"
    home.mkdir()
    attacker = st.set_answer(release, attack_id, rt.PERSIST_HOME + "\n"
                             + st.cell_by_id(release, attack_id).source)
    root = base / "unboxed"
    drop = build(root, {"aaa-attacker": attacker, "yasmin": release})
    report, _ = grade(root, drop, home, "--jobs", "1", "--no-sandbox")
    assert report["sandbox"].startswith("OFF")
    assert (home / ".ipython/profile_default/startup/00-red-team.py").is_file()
    assert by_student(report)["yasmin"]["score"] == sum(report["max_scores"].values())
    rows = {r[0]: r for r in csv.reader(open(report["csv_path"]))}
    assert rows["(max)"][-1].startswith("OFF") and rows["yasmin"][-1] == "off"
    summary = json.loads(Path(report["summary_path"]).read_text())
    assert summary["sandbox"].startswith("OFF")
