"""A class on JupyterHub, end to end on this machine (issue 23, part 1): deploy/jupyterhub's
configuration with an instructor and two students, each a real Unix account.

The instructor releases unit 2 through nbgrader's exchange; one student logs in to the hub in
headless Chromium, opens the Assignments list (Nbgrader menu), fetches the unit and opens its
notebook; the other fetches with ``nbgrader fetch_assignment``; the first hands in the solution
(autograde_tests/students.py ``solved``), the second the untouched release; both submit; the
instructor collects, grades with ``python -m lftutor grade`` (sandbox on, as the instructor, not
root) and releases feedback; each student fetches feedback and finds only their own: 6/6 and
0/6 autograded points. Then, as a student: no listing of the exchange's inbound (submissions) or
feedback folders, no write to the release, no read of the course directory (solutions/, the
gradebook, submitted/) nor of the other student's HOME.

Everything but the browser step runs the commands a user would type, as that user
(:func:`hubclass.as_user`). Accounts, processes and folders the test made are removed at the end
(checked). Needs root, ``useradd``, bubblewrap, Debian's ``node-configurable-http-proxy``,
``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). A screenshot is kept on failure
(its path is in the message); ``LFTUTOR_BROWSER_SHOTS=DIR`` keeps one per stage.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
from hubclass import HUB_DIR, Accounts, Hub, as_user, course_directory, make_scratch, shared_environment
from labserver import REPO
from test_browser import Page, _browser, _start_chromium

from autograde_tests.students import autograded_ids, solved

UNIT, NOTEBOOK = "02_phi4_lattice", "phi4_lattice"
PROXY = "configurable-http-proxy"


def _proxy() -> None:
    """Debian's configurable-http-proxy, installed with apt-get when missing (as root)."""
    if shutil.which(PROXY):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                 "node-configurable-http-proxy"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode:
            pytest.skip(f"{PROXY} is missing and {' '.join(cmd)} failed: {proc.stderr[-500:]}")


def _preconditions() -> None:
    if os.geteuid() != 0:
        pytest.skip("the hub spawns each user's server as that user: needs root")
    for tool in ("useradd", "userdel", "groupadd", "chpasswd", "bwrap"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool}")
    pytest.importorskip("jupyterhub")
    if not shutil.which("apt-get") and not shutil.which(PROXY):
        pytest.skip(f"needs {PROXY} (apt-get install node-configurable-http-proxy)")
    _proxy()


def _scores(html: str) -> dict[str, float]:
    """Points per autograded test cell in a feedback page, from its table of contents
    (nbgrader's feedback template: ``<a href="#GRADE_ID">Test cell</a> (Score: X / Y)``)."""
    found = re.findall(r'href="#([\w-]+)">Test cell</a>\s*\(Score:\s*([\d.]+)\s*/', html)
    return {gid: float(score) for gid, score in found}


def _fetch_and_open_in_browser(hub: Hub, user: str, password: str, home: Path, n_cells: int,
                               shots: Path | None, keep: Path, profile: Path) -> None:
    chromium, driver_path = _browser()
    driver = _start_chromium(chromium, driver_path, profile)
    page = Page(driver, shots)
    try:
        driver.get(f"{hub.url}/hub/login")
        page.wait("the login form", lambda: page.css("#username_input"), timeout=60)
        page.css("#username_input")[0].send_keys(user)
        page.css("#password_input")[0].send_keys(password)
        page.shot("hub-login")
        page.css("#login_submit")[0].click()
        # the hub starts the server as the user, then JupyterLab loads
        page.wait("JupyterLab after login", lambda: f"/user/{user}/lab" in driver.current_url
                  and page.css(".lm-MenuBar-item"), timeout=240)
        page.wait("the Nbgrader menu", lambda: [e for e in page.css(".lm-MenuBar-item")
                                                if e.text.strip() == "Nbgrader"], timeout=60)
        page.shot("lab")
        tabs = " ".join((t.get_attribute("title") or "") + t.text for t in page.css(".lm-TabBar-tab"))
        assert "Create Assignment" not in tabs, tabs

        page.menu("Nbgrader", "Assignment List")
        released = "#released_assignments_list .list_item"
        page.wait(f"{UNIT} in Released assignments", lambda: [
            e for e in page.css(released) if UNIT in e.text and "Fetch" in e.text], timeout=90)
        page.shot("assignments")
        # the student's Nbgrader menu: the assignment list and nothing of the instructor's
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        items = [e for e in page.css(".lm-MenuBar-item") if e.text.strip() == "Nbgrader"]
        items[0].click()
        shown = page.wait("the Nbgrader menu open", lambda: [
            e.text.strip() for e in page.css(".lm-Menu-item") if e.is_displayed() and e.text.strip()])
        ActionChains(driver).send_keys(Keys.ESCAPE).perform()  # close the menu
        assert shown == ["Assignment List"], f"the student's Nbgrader menu shows {shown}"

        row = [e for e in page.css(released) if UNIT in e.text][0]
        row.find_element("css selector", "button").click()
        fetched = "#fetched_assignments_list .list_item"
        page.wait(f"{UNIT} in Downloaded assignments",
                  lambda: [e for e in page.css(fetched) if UNIT in e.text], timeout=90)
        assert (home / UNIT / f"{NOTEBOOK}.ipynb").is_file(), "the fetch left no notebook in HOME"
        page.shot("fetched")

        link = page.wait("the assignment's notebook list", lambda: [
            e for e in page.css(f"{fetched} .assignment-notebooks-link") if e.is_displayed()])
        link[0].click()
        nb_link = page.wait(f"the link to {NOTEBOOK}", lambda: [
            e for e in page.css(f"{fetched} .item_name a")
            if e.is_displayed() and e.text.strip() == NOTEBOOK])
        nb_link[0].click()
        page.wait(f"{NOTEBOOK}.ipynb open with its {n_cells} cells", lambda: len(
            page.css(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")) == n_cells,
            timeout=90)
        title = " ".join(t.text for t in page.css(".lm-DockPanel-tabBar .lm-TabBar-tab"))
        assert f"{NOTEBOOK}.ipynb" in title, title
        page.shot("notebook-open")
    except Exception as err:
        path = page.shot("failure", folder=shots or keep)
        raise AssertionError(f"{err}\nscreenshot: {path}\nhub log (tail):\n{hub.log()[-4000:]}") from err
    finally:
        driver.quit()


def _denied(user: str, env: dict, code: str) -> str:
    """Run ``code`` as ``user``; it must raise PermissionError (printed as DENIED)."""
    wrapped = f"try:\n    {code}\n    print('ALLOWED')\nexcept PermissionError:\n    print('DENIED')\n"
    return as_user(user, [env["PATH"].split(":")[0] + "/python", "-c", wrapped], env=env).stdout.strip()


@pytest.mark.slow
def test_a_class_on_the_hub(tmp_path):
    _preconditions()
    _browser()  # skips, saying why, before anything is made
    shots = Path(os.environ["LFTUTOR_BROWSER_SHOTS"]) if os.environ.get("LFTUTOR_BROWSER_SHOTS") else None
    start, phases = time.monotonic(), {}
    scratch, accounts = make_scratch(), Accounts()
    try:
        instructors, students = accounts.group("ins"), accounts.group("stu")
        passwords = {}
        names = {}
        for role, group in (("t", instructors), ("a", students), ("b", students)):
            password = os.urandom(9).hex()
            names[role] = accounts.user(role, [group], password)
            passwords[names[role]] = password
        teacher, alice, bob = names["t"], names["a"], names["b"]
        homes = {u: Path(os.path.expanduser(f"~{u}")) for u in (teacher, alice, bob)}
        env_bin = shared_environment(scratch, alice)
        exchange = scratch / "exchange"
        exchange.mkdir()
        exchange.chmod(0o777)  # nbgrader's instructions: chmod ugo+rw /srv/nbgrader/exchange
        course = course_directory(scratch, instructors, teacher, [UNIT])
        settings = {"LFTUTOR_COURSE_DIR": str(course), "LFTUTOR_ENV": str(env_bin.parent),
                    "LFTUTOR_EXCHANGE": str(exchange), "LFTUTOR_INSTRUCTORS": instructors,
                    "LFTUTOR_STUDENTS": students}
        base = {"PATH": f"{env_bin}:/usr/bin:/bin", "LFTUTOR_EXCHANGE": str(exchange),
                "LFTUTOR_COURSE_DIR": str(course)}
        as_teacher = {**base, "JUPYTER_CONFIG_PATH": f"{HUB_DIR}/jupyter/instructor:{HUB_DIR}/jupyter/common"}
        as_student = {**base, "JUPYTER_CONFIG_PATH": f"{HUB_DIR}/jupyter/student:{HUB_DIR}/jupyter/common"}
        nbgrader = str(env_bin / "nbgrader")
        phases["accounts"] = time.monotonic() - start

        with Hub(scratch / "hub", settings, passwords) as hub:
            phases["hub up"] = time.monotonic() - start
            as_user(teacher, [nbgrader, "release_assignment", UNIT], env=as_teacher, cwd=str(course))
            release = nbformat.read(REPO / "course" / UNIT / f"{NOTEBOOK}.ipynb", as_version=4)
            _fetch_and_open_in_browser(hub, alice, passwords[alice], homes[alice], len(release.cells),
                                       shots, tmp_path, scratch / "chromium-profile")
            phases["browser: fetched and opened"] = time.monotonic() - start
            as_user(bob, [nbgrader, "fetch_assignment", UNIT], env=as_student)

            # alice answers every exercise, bob hands in what he fetched
            mine = homes[alice] / UNIT / f"{NOTEBOOK}.ipynb"
            fetched = nbformat.read(mine, as_version=4)
            solution = nbformat.read(REPO / "solutions" / UNIT / f"{NOTEBOOK}.ipynb", as_version=4)
            nbformat.write(solved(fetched, solution), str(mine))
            shutil.chown(mine, alice, alice)
            for student in (alice, bob):
                as_user(student, [nbgrader, "submit", UNIT], env=as_student)

            as_user(teacher, [nbgrader, "collect", UNIT], env=as_teacher, cwd=str(course))
            graded = as_user(teacher, [str(env_bin / "python"), "-m", "lftutor", "grade", UNIT,
                                       "--course-root", str(course)], env=as_teacher, cwd=str(course),
                             timeout=600)
            phases["graded"] = time.monotonic() - start
            assert "sandbox: bubblewrap" in graded.stdout, graded.stdout
            assert re.search(rf"graded\s+{alice}\s+6 / 6", graded.stdout), graded.stdout
            assert re.search(rf"graded\s+{bob}\s+0 / 6", graded.stdout), graded.stdout
            as_user(teacher, [nbgrader, "release_feedback", UNIT], env=as_teacher, cwd=str(course))

            ids = autograded_ids(release)
            for student, expected in ((alice, 6.0), (bob, 0.0)):
                as_user(student, [nbgrader, "fetch_feedback", UNIT], env=as_student)
                pages = sorted((homes[student] / UNIT / "feedback").glob("*/*.html"))
                assert [p.name for p in pages] == [f"{NOTEBOOK}.html"], pages  # one page: their own
                html = pages[0].read_text()
                scores = _scores(html)
                assert set(scores) == set(ids), (scores, ids)
                assert sum(scores.values()) == expected, (student, scores)
                other = bob if student == alice else alice
                assert other not in html
            phases["feedback"] = time.monotonic() - start

            # what a student may not do on a shared hub, tried as bob
            inbound, outbound = exchange / "lftutor" / "inbound", exchange / "lftutor" / "outbound"
            submissions = sorted(p.name for p in inbound.iterdir())
            assert len(submissions) == 2 and any(s.startswith(alice + "+") for s in submissions)
            checks = {
                "list the exchange's inbound (submissions)": f"os.listdir({str(inbound)!r})",
                "list the exchange's feedback": f"os.listdir({str(exchange / 'lftutor' / 'feedback')!r})",
                "write into the release": f"open({str(outbound / UNIT / 'extra.py')!r}, 'w')",
                "read solutions/": f"open({str(course / 'solutions' / UNIT / (NOTEBOOK + '.ipynb'))!r})",
                "list the course directory": f"os.listdir({str(course)!r})",
                "read the gradebook": f"open({str(course / 'gradebook.db')!r})",
                "read alice's HOME": f"os.listdir({str(homes[alice])!r})",
                "read alice's notebook": f"open({str(mine)!r})",
            }
            for what, code in checks.items():
                assert _denied(bob, as_student, "import os; " + code) == "DENIED", f"bob could {what}"
            # the instructor's account can (the checks above are not denied for everyone)
            assert _denied(teacher, as_teacher, f"open({str(course / 'gradebook.db')!r})") == "ALLOWED"
            assert _denied(teacher, as_teacher, f"import os; os.listdir({str(inbound)!r})") == "ALLOWED"
        phases["hub stopped"] = time.monotonic() - start
        # servers and their kernels exit on their own once the hub is gone; on a loaded machine
        # that takes a few seconds: wait for them (bounded), then none may be left
        left, deadline = accounts.processes(), time.monotonic() + 60
        while left and time.monotonic() < deadline:
            time.sleep(1)
            left = accounts.processes()
        assert not left, f"processes of the test's users still running after 60 s: {left}"
    finally:
        if os.environ.get("LFTUTOR_HUB_KEEP"):  # debugging: keep accounts and folders (not the hub)
            print(f"kept {scratch} and the accounts {accounts.users}")
        else:
            accounts.remove()
            shutil.rmtree(scratch, ignore_errors=True)
    for name in [] if os.environ.get("LFTUTOR_HUB_KEEP") else accounts.users:
        assert subprocess.run(["id", name], capture_output=True).returncode != 0, f"{name} still exists"
    print("seconds since start: " + ", ".join(f"{k} {v:.0f}" for k, v in phases.items()))
