"""The grading sandbox's building blocks (lftutor/instructor/sandbox.py), without nbgrader runs:
what is mounted, which environment variables pass, and the errors when no sandbox can be made.
The sandbox under attack, through real nbgrader, is autograde_tests/test_red_team.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")

import lftutor  # noqa: E402
from lftutor.instructor import sandbox as sb  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_readable_paths_hold_the_environment_and_the_package_but_not_the_course():
    package = Path(lftutor.__file__).resolve().parent
    paths = sb.readable_paths(sys.executable, hidden=[REPO, Path.home().resolve()])
    assert any(package == p or p in package.parents for p in paths)
    assert any(Path(sys.prefix).resolve() == p.resolve() or p in Path(sys.prefix).resolve().parents
               for p in paths)
    for p in paths:
        # never the course root or HOME itself, nor a folder holding them
        assert p != REPO and p not in REPO.parents and p not in Path.home().resolve().parents
        assert p != Path.home().resolve()
        if REPO in p.parents:  # inside the course: only the package and the environment
            assert p == package or Path(sys.prefix) in (p, *p.parents), p


def test_the_kernel_environment_keeps_no_secrets():
    env = sb.sandbox_env({"PATH": "/usr/bin", "AWS_SECRET_ACCESS_KEY": "x", "HOME": "/root",
                          "PYTHONSTARTUP": "/root/evil.py", "LFTUTOR_GRADING": "1",
                          "NBGRADER_EXECUTION": "autograde", "IPYTHONDIR": "/root/.ipython"})
    assert "AWS_SECRET_ACCESS_KEY" not in env and "PYTHONSTARTUP" not in env
    assert env["HOME"] == sb.SANDBOX_HOME and env["IPYTHONDIR"].startswith(sb.SANDBOX_HOME)
    assert env["LFTUTOR_GRADING"] == "1" and env["NBGRADER_EXECUTION"] == "autograde"
    assert env["PYTHONPATH"] == str(Path(lftutor.__file__).resolve().parent.parent)


def test_no_bubblewrap_is_an_error_that_says_what_to_do():
    with pytest.raises(sb.SandboxUnavailable) as err:
        sb.check_sandbox(sb.Sandbox(bwrap="no-such-bwrap-here"))
    text = str(err.value)
    assert "apt-get install bubblewrap" in text and "--no-sandbox" in text


def test_a_bubblewrap_that_fails_is_an_error_that_says_what_to_do(tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(sb.SandboxUnavailable) as err:
        sb.check_sandbox(sb.Sandbox(bwrap=str(fake)))
    assert "No permissions to create new namespace" in str(err.value)
    assert "--no-sandbox" in str(err.value)


def test_grade_stops_before_grading_anyone_without_a_sandbox(tmp_path):
    """`lftutor grade` with a course whose config names a missing bwrap: exit 1, a message
    with the remedy, and no student graded (no autograded/ folder)."""
    from autograde_tests.conftest import make_course

    root = tmp_path / "course"
    make_course(root, ["fixture"])
    with open(root / "nbgrader_config.py", "a") as fh:
        fh.write("\nc.Sandbox.bwrap = 'no-such-bwrap-here'\n")
    import nbformat

    release = nbformat.read(root / "course" / "fixture" / "fixture.ipynb", as_version=4)
    sub = root / "handed" / "jdoe" / "fixture" / "fixture.ipynb"
    sub.parent.mkdir(parents=True)
    nbformat.write(release, sub)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run([sys.executable, "-m", "lftutor", "grade", "fixture", "--from",
                           str(root / "handed"), "--course-root", str(root)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "bubblewrap" in proc.stderr and "--no-sandbox" in proc.stderr
    assert not (root / "autograded").exists()


@pytest.mark.skipif(not sb.shutil.which("bwrap"), reason="needs bubblewrap (.ci/run installs it)")
def test_a_sandboxed_command_sees_no_course_and_cannot_write(tmp_path):
    private, files, cwd = tmp_path / "p", tmp_path / "f", tmp_path / "course" / "work"
    for p in (private, files, cwd):
        p.mkdir(parents=True)
    (tmp_path / "course" / "secret.txt").write_text("hidden tests")
    (files / "data.txt").write_text("student data")
    uid = sb.kernel_uid()
    if uid is not None:
        os.chown(private, uid, uid)
        os.chown(files / "data.txt", uid, uid)
    probe = ("import os, socket; from pathlib import Path\n"
             f"print('secret', Path('{tmp_path}/course/secret.txt').exists())\n"
             "print('data', open('data.txt').read())\n"
             "try:\n    open(os.__file__, 'a')\nexcept OSError as e:\n    print('env', type(e).__name__)\n"
             "print('uid', os.getuid(), 'pid', os.getpid())\n"
             "s = socket.socket(); s.settimeout(1)\n"
             "try:\n    s.connect(('127.0.0.1', 22))\n"
             "except OSError as e:\n    print('net', type(e).__name__)\n")
    cmd = sb.bwrap_command([sys.executable, "-c", probe], cwd=str(cwd), private=private,
                           workdir_files=files, limits=sb.Limits(), hidden=[tmp_path / "course"],
                           uid=uid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         env=sb.sandbox_env(dict(os.environ))).stdout
    assert "secret False" in out and "data student data" in out, out
    assert "env OSError" in out or "env PermissionError" in out, out
    assert "net ConnectionRefusedError" in out, out
    pid = int(out.split("pid ")[1].split()[0])
    assert pid < 10, "the command has a PID namespace of its own"
    if uid is not None:
        assert f"uid {uid}" in out


@pytest.mark.slow
def test_a_flood_is_dropped_and_reported_whether_it_comes_in_many_messages_or_one(tmp_path):
    """Output over the cap is dropped and reported both ways it can arrive: as many small
    messages (counted as they come) and as one message over the client's size limit, which
    ZeroMQ refuses by dropping the connection (what a fast ``print`` loop gives: ipykernel
    sends everything printed within 0.2 s as one message). Grading goes on after either."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    from traitlets.config import Config

    config = Config()
    config.Sandbox.output_mb = 1
    config.Execute.timeout = 60
    cells = {
        "many": ["import sys, time\nfor i in range(30):\n    print('x' * 100_000)\n"
                 "    sys.stdout.flush(); time.sleep(0.01)", "print('after', 6 * 7)"],
        "one": ["print('y' * 10_000_000, flush=True)", "print('after', 6 * 7)"],
    }
    for name, sources in cells.items():
        sb.events(clear=True)
        nb = new_notebook(cells=[new_code_cell(s) for s in sources])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        (tmp_path / name).mkdir()
        ex = sb.SandboxedExecute(config=config)
        nb, _ = ex.preprocess(nb, {"metadata": {"path": str(tmp_path / name)}})
        found = sb.events(clear=True)
        assert any(e.startswith("output over 1 MB dropped") for e in found), (name, found)
        kept = len(nbformat.writes(nb))
        assert kept < 3_000_000, (name, kept)
        if name == "one":  # the single message never reached the grader's memory
            assert any("refused" in e for e in found), found
        assert "grader" in str(nb.cells[0].outputs), (name, "the student is told")
        assert nb.cells[1].execution_count == 2, (name, "the notebook ran to the end")


def test_the_copy_of_a_folder_skips_the_sandbox_folder_inside_it_and_links(tmp_path):
    (tmp_path / "nb.ipynb").write_text("{}")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("x")
    (tmp_path / "link").symlink_to("/etc/passwd")
    dest = tmp_path / "lftutor-kernel-1" / "files"
    dest.mkdir(parents=True)
    sb._copy_submission(tmp_path, dest, uid=None)
    assert sorted(p.name for p in dest.iterdir()) == ["data", "nb.ipynb"]
    assert (dest / "data" / "x.txt").read_text() == "x"


def test_a_dead_kernel_is_explained_by_the_sandbox_limit_that_stopped_it():
    from lftutor.instructor.autograde import _autograde_failure

    dead = {"log": "nbclient.exceptions.DeadKernelError: Kernel died", "error": ""}
    assert "os._exit" in _autograde_failure(dead)
    reason = _autograde_failure(dead, ["output over 5 MB dropped",
                                       "kernel stopped by the CPU time limit (3 s)"])
    assert reason.endswith(": kernel stopped by the CPU time limit (3 s)")
