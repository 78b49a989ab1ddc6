"""The README's plain-nbgrader commands work on this course as written: release, zip_collect of
an LMS download, autograde, generate_feedback and export, each one `nbgrader` command run from
the course root (nbgrader_config.py supplies the rest)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile

import nbformat

from autograde_tests import students as st
from autograde_tests.conftest import make_course
from autograde_tests.harness import REPO

SNOOP = """\
import os
print(f"HOME={os.environ['HOME']} SOLUTIONS={os.path.exists('@ROOT@/solutions')} "
      f"GRADEBOOK={os.path.exists('@ROOT@/gradebook.db')} CANARY={os.path.exists('@CANARY@')}")
"""


def _nbgrader(root, *args, home=None) -> str:
    env = dict(os.environ)
    if home is not None:  # the grader's HOME, with a file no kernel may see
        env["HOME"] = str(home)
    # nbgrader shells out to alembic: the environment's bin/ on PATH, as `make` arranges
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} exited {proc.returncode}:\n{log}"
    return log


def test_readme_plain_nbgrader_workflow(tmp_path, restore_environ):
    root = tmp_path / "course_root"
    home = tmp_path / "grader_home"
    home.mkdir()
    (home / "canary.txt").write_text("the instructor's file")
    make_course(root, ["fixture"])
    _nbgrader(root, "generate_assignment", "fixture", "--force")  # also enters it in the gradebook

    release = nbformat.read(root / "course" / "fixture" / "fixture.ipynb", as_version=4)
    solution = nbformat.read(root / "solutions" / "fixture" / "fixture.ipynb", as_version=4)
    # an LMS download: STUDENTID_NOTEBOOK.ipynb in a folder of a zip, one with a copy suffix
    archive = root / "downloaded" / "fixture" / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "submissions.zip", "w") as zf:
        zf.writestr("fixture submissions/jdoe42_fixture.ipynb",
                    nbformat.writes(st.solved(release, solution)))
        zf.writestr("fixture submissions/asmith_fixture (1).ipynb", nbformat.writes(release))
        # a student who looks around: plain `nbgrader autograde` with the course's config must
        # run the kernel in the sandbox too
        gid = st.answer_ids(release)[0]
        snoop = SNOOP.replace("@ROOT@", str(root)).replace("@CANARY@", str(home / "canary.txt"))
        looker = st.set_answer(release, gid, snoop + st.cell_by_id(release, gid).source)
        zf.writestr("fixture submissions/looker_fixture.ipynb", nbformat.writes(looker))

    _nbgrader(root, "zip_collect", "fixture", "--force")
    for student in ("jdoe42", "asmith", "looker"):
        assert (root / "submitted" / student / "fixture" / "fixture.ipynb").is_file()
    _nbgrader(root, "autograde", "fixture", "--force", home=home)
    _nbgrader(root, "generate_feedback", "fixture", "--force")
    _nbgrader(root, "export", "--to", str(root / "grades.csv"))

    rows = {r["student_id"]: r for r in csv.DictReader((root / "grades.csv").open())}
    assert set(rows) == {"jdoe42", "asmith", "looker"}
    max_score = float(rows["jdoe42"]["max_score"])
    assert max_score > 0
    # the fixture has a written answer graded by hand: the solution gets every autograded point
    autograded = sum(st.nbgrader(st.cell_by_id(solution, gid))["points"]
                     for gid in st.autograded_ids(solution))
    assert float(rows["jdoe42"]["raw_score"]) == autograded
    assert float(rows["asmith"]["raw_score"]) == 0
    feedback = (root / "feedback" / "jdoe42" / "fixture" / "fixture.html").read_text()
    assert "HIDDEN_CANARY" not in feedback
    looked = nbformat.read(root / "autograded" / "looker" / "fixture" / "fixture.ipynb", as_version=4)
    seen = "".join(o.get("text", "") for c in looked.cells for o in c.get("outputs", []))
    assert "HOME=/tmp/home SOLUTIONS=False GRADEBOOK=False CANARY=False" in seen, seen
