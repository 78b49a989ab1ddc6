"""Unit 4 as a student runs it: JupyterLab started as ``make lab`` starts it, the notebook opened in
headless Chromium, Run All from the menu, saved, reopened (issue 10).

It asserts what the student sees: no Nbgrader menu and no "Create Assignment" sidebar (nbgrader's
instructor tools), the setup cell says ``grading mode: False``, no cell shows an error, the live
plot's image changes while training and one image remains, the progress bar is text with elapsed
against the budget, and after saving and reloading the page the bar is still text (no "Error
displaying widget"). The training budget is cut to a few seconds with
``LFTUTOR_TIME_SCALE`` (not grading mode: every other cell runs at full size).

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); the test installs
them with apt-get when it runs as root and they are missing, and skips, saying why, only when
that is impossible. On failure a screenshot is saved (its path is in the message);
``LFTUTOR_BROWSER_SHOTS=DIR`` saves one per stage as well.

The checks are functions of a server factory (:func:`check_unit_4`, :func:`check_run_all`), so that
tests/test_binder_env.py runs them against a server started as Binder starts it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from labserver import REPO, LabServer

TIME_SCALE = 0.05  # unit 4 trains for 120 s * 0.05 = 6 s
BUDGET = f"/{120 * TIME_SCALE:g} s"
RUN_TIMEOUT = 240  # seconds for Run All (about 60-90 s on a busy 2-core machine)

CELLS_JS = """
return [...document.querySelectorAll('.jp-Notebook .jp-Cell.jp-CodeCell')].map(c => ({
  prompt: (c.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
  imgs: [...c.querySelectorAll('.jp-OutputArea-output img')].map(i => i.src),
  text: [...c.querySelectorAll('.jp-OutputArea-output')].map(o => o.textContent).join('\\n'),
}));
"""

#: The main menu's labels and the side bars' tab titles (captions included).
INSTRUCTOR_TOOLS_JS = """
return [[...document.querySelectorAll('.lm-MenuBar-itemLabel')].map(e => e.textContent),
        [...document.querySelectorAll('.lm-TabBar-tab')].map(t =>
            (t.getAttribute('title') || '') + ' ' + t.textContent)];
"""


def _which(*names) -> str | None:
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
        if found:
            return found
    return None


def _browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installed from Debian's packages when missing."""
    chromium, driver = _which("chromium", "chromium-browser"), _which("chromedriver")
    if chromium and driver:
        return chromium, driver
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium and chromedriver are not installed and cannot be installed here "
                    "(needs root and apt-get: apt-get install chromium chromium-driver)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium",
                 "chromium-driver"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode:
            pytest.skip(f"could not install chromium: {' '.join(cmd)} exited {proc.returncode}: "
                        f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    chromium, driver = _which("chromium", "chromium-browser"), _which("chromedriver")
    if not (chromium and driver):
        pytest.skip("apt-get installed chromium, yet chromium or chromedriver is still missing")
    return chromium, driver


def _start_chromium(chromium: str, driver: str, profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


class Page:
    """The JupyterLab page: waits, menu commands, the notebook's code cells, screenshots."""

    def __init__(self, driver, shots: Path | None):
        self.driver, self.shots, self.n = driver, shots, 0

    def shot(self, name: str, folder: Path | None = None) -> Path | None:
        folder = folder or self.shots
        if folder is None:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        self.n += 1
        path = folder / f"{self.n:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def wait(self, what: str, condition, timeout: float = 60, every: float = 0.25):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def css(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def menu(self, menu: str, *labels: str) -> None:
        """Click ``menu`` in the menu bar, then its item labelled one of ``labels`` (as a student does)."""
        items = [e for e in self.css(".lm-MenuBar-item") if e.text.strip() == menu]
        assert items, f"no '{menu}' menu in the menu bar"
        items[0].click()

        def label(item) -> str:
            found = item.find_elements("css selector", ".lm-Menu-itemLabel")
            return found[0].text.strip() if found else ""

        def entry():
            return [e for e in self.css(".lm-Menu-item") if e.is_displayed() and label(e) in labels]

        try:
            found = self.wait(f"the menu item {labels}", entry, timeout=10)
        except AssertionError:
            shown = [label(e) for e in self.css(".lm-Menu-item") if e.is_displayed()]
            raise AssertionError(f"no item {labels} in the {menu} menu, which shows {shown}") from None
        found[0].click()

    def cells(self) -> list[dict]:
        return self.driver.execute_script(CELLS_JS)

    def dialogs(self) -> str:
        return " | ".join(d.text for d in self.css(".jp-Dialog"))


def _digest(src: str) -> str:
    return hashlib.sha1(src.encode()).hexdigest()[:12]


#: ``start_lab(root_dir, scratch, env=...)``: a context manager giving a running server, as LabServer.
LabFactory = Callable[..., LabServer]


@pytest.mark.slow
def test_unit_4_in_jupyterlab_through_a_real_browser(tmp_path):
    check_unit_4(tmp_path, LabServer)


@pytest.mark.slow
def test_unit_11_runs_top_to_bottom_in_jupyterlab_through_a_real_browser(tmp_path):
    """Unit 11 (the newest, with HMC chains, shipped tables and transfer) as a student meets it:
    Run All in full mode, no error shown or saved. Its one training budget is cut by
    ``LFTUTOR_TIME_SCALE``; its chains run at full length (about 3 minutes with nbconvert)."""
    phases = check_run_all(tmp_path, LabServer, "11_scaling", time_scale=0.1, timeout=480)
    source = nbformat.read(next((REPO / "solutions" / "11_scaling").glob("*.ipynb")), as_version=4)
    code = [c.source for c in source.cells if c.cell_type == "code"]
    figures = [i for i, text in enumerate(code) if "plt.subplots(" in text]
    assert len(figures) >= 4, figures  # volume, effective mass, tau_int, transfer
    blank = [i for i in figures if phases["images"][i] != 1]
    shown = [phases["images"][i] for i in blank]
    assert not blank, f"code cells {blank} make a figure but show {shown} images"
    # the shipped E1-E5 table is shown, every ensemble in it
    assert all(f"E{i}" in phases["text"] for i in range(1, 6)), phases["text"][-2000:]


def _open(page: Page, lab: LabServer, relpath: str, n_code: int) -> None:
    """Open the notebook at ``relpath`` (under the server's root) and wait for its kernel."""
    page.driver.get(f"{lab.url}/lab/tree/{relpath}?token={lab.token}")
    page.wait("the notebook to open", lambda: len(page.cells()) == n_code)
    page.wait("the kernel to start", lambda: any("Idle" in e.text for e in page.css(
        ".jp-StatusBar-TextItem, .jp-Toolbar-kernelStatus, .jp-Notebook-ExecutionIndicator"))
        or page.css('.jp-Notebook-ExecutionIndicator[data-status="idle"]'), timeout=90)
    assert not page.dialogs(), f"a dialog is open: {page.dialogs()}"


def check_run_all(tmp_path: Path, start_lab: LabFactory, unit: str, *, time_scale: float,
                  timeout: float = 300) -> dict:
    """A solved copy of ``unit``'s notebook in a server from ``start_lab``, opened in the browser:
    Run All with ``LFTUTOR_TIME_SCALE=time_scale``; every code cell ran (a numbered prompt), the
    setup cell says ``grading mode: False``, and the saved notebook holds no error output. Stops at
    the first traceback shown (Run All stops there). Returns seconds since start per phase, and
    ``images`` (the number shown by each code cell) and ``text`` (every output's text). With
    ``LFTUTOR_BROWSER_SHOTS`` every figure is saved as the student sees it."""
    chromium, driver_path = _browser()
    source = next((REPO / "solutions" / unit).glob("*.ipynb"))
    work = tmp_path / "course"
    (work / unit).mkdir(parents=True)
    notebook = work / unit / source.name
    shutil.copy(source, notebook)
    shots = Path(os.environ["LFTUTOR_BROWSER_SHOTS"]) if os.environ.get("LFTUTOR_BROWSER_SHOTS") else None
    n_code = sum(c.cell_type == "code" for c in nbformat.read(notebook, as_version=4).cells)
    start, phases = time.monotonic(), {}
    with start_lab(work, tmp_path / "lab", env={"LFTUTOR_TIME_SCALE": str(time_scale)}) as lab:
        phases["lab started"] = time.monotonic() - start
        driver = _start_chromium(chromium, driver_path, tmp_path / "chromium-profile")
        page = Page(driver, shots)
        try:
            _open(page, lab, f"{unit}/{source.name}", n_code)
            phases["notebook open"] = time.monotonic() - start
            page.menu("Run", "Run All Cells")
            deadline = time.monotonic() + timeout
            while True:
                cells = page.cells()
                if all(re.fullmatch(r"\[\d+\]:", c["prompt"].strip()) for c in cells):
                    break
                failed = [(i, c["text"][-1500:]) for i, c in enumerate(cells)
                          if "Traceback (most recent call last)" in c["text"]]
                assert not failed, f"cell {failed[0][0]} failed:\n{failed[0][1]}"
                assert time.monotonic() < deadline, (
                    f"Run All did not finish within {timeout:.0f} s; prompts "
                    f"{[c['prompt'] for c in cells]}; dialogs: {page.dialogs()}")
                time.sleep(0.5)
            phases["run all done"] = time.monotonic() - start
            page.shot("finished")
            if shots:  # every figure as the student sees it, for a person to look at
                elements = page.css(".jp-Notebook .jp-Cell.jp-CodeCell")
                for i, cell in enumerate(cells):
                    if cell["imgs"]:
                        # the figure is at the cell's bottom; let the page settle after scrolling
                        driver.execute_script("arguments[0].scrollIntoView({block: 'end'})",
                                              elements[i])
                        time.sleep(0.5)
                        page.shot(f"cell-{i}")
            phases["images"] = [len(c["imgs"]) for c in cells]  # per code cell
            phases["text"] = "\n".join(c["text"] for c in cells)
            assert "grading mode: False" in cells[0]["text"], cells[0]["text"]
            mtime = notebook.stat().st_mtime
            page.menu("File", "Save Notebook", "Save")
            page.wait("the notebook to be saved", lambda: notebook.stat().st_mtime != mtime, timeout=30)
            saved = nbformat.read(notebook, as_version=4)
            code = [c for c in saved.cells if c.cell_type == "code"]
            assert all(c.execution_count for c in code), "a code cell did not run"
            errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(code)
                      for o in c.outputs if o["output_type"] == "error"]
            assert not errors, f"error outputs: {errors}"
        except Exception as err:
            path = page.shot("failure", folder=shots or tmp_path)
            raise AssertionError(f"{err}\nscreenshot: {path}\n"
                                 f"JupyterLab log (tail):\n{lab.log()[-3000:]}") from err
        finally:
            driver.quit()
    phases["done"] = time.monotonic() - start
    print(f"{unit}: seconds since start: " + ", ".join(
        f"{k} {v:.0f}" for k, v in phases.items() if isinstance(v, float)))
    return phases


def check_unit_4(tmp_path: Path, start_lab: LabFactory) -> None:
    """The student's session in unit 4 (module docstring) in a server from ``start_lab``."""
    chromium, driver_path = _browser()
    work = tmp_path / "course"
    (work / "04_training").mkdir(parents=True)
    notebook = work / "04_training" / "training.ipynb"
    shutil.copy(REPO / "solutions" / "04_training" / "training.ipynb", notebook)  # a solved copy
    shots = Path(os.environ["LFTUTOR_BROWSER_SHOTS"]) if os.environ.get("LFTUTOR_BROWSER_SHOTS") else None
    n_code = sum(c.cell_type == "code" for c in nbformat.read(notebook, as_version=4).cells)
    start = time.monotonic()
    phases = {}

    with start_lab(work, tmp_path / "lab", env={"LFTUTOR_TIME_SCALE": str(TIME_SCALE)}) as lab:
        phases["lab started"] = time.monotonic() - start
        driver = _start_chromium(chromium, driver_path, tmp_path / "chromium-profile")
        page = Page(driver, shots)
        try:
            driver.get(f"{lab.url}/lab/tree/04_training/training.ipynb?token={lab.token}")
            page.wait("the notebook to open", lambda: len(page.cells()) == n_code)
            page.wait("the kernel to start", lambda: any("Idle" in e.text for e in page.css(
                ".jp-StatusBar-TextItem, .jp-Toolbar-kernelStatus, .jp-Notebook-ExecutionIndicator"))
                or page.css('.jp-Notebook-ExecutionIndicator[data-status="idle"]'), timeout=90)
            assert not page.dialogs(), f"a dialog is open: {page.dialogs()}"
            toasts = " | ".join(t.text for t in page.css(".Toastify__toast"))
            assert "news" not in toasts.lower(), f"a notification covers the notebook: {toasts}"
            page.shot("opened")
            # no instructor tools for the student (issue 25, item 20): no Nbgrader menu, no
            # "Create Assignment" sidebar (binder/jupyter/labconfig/page_config.json)
            menus, tabs = driver.execute_script(INSTRUCTOR_TOOLS_JS)
            assert "File" in menus and "Nbgrader" not in menus, menus
            assert not [t for t in tabs if "Create Assignment" in t], tabs
            phases["notebook open"] = time.monotonic() - start

            page.menu("Run", "Run All Cells")
            seen, training_index, deadline = {}, None, time.monotonic() + RUN_TIMEOUT
            while True:
                cells = page.cells()
                for i, cell in enumerate(cells):
                    if "LivePlot" in cell["text"] or ("%|" in cell["text"] and cell["imgs"]):
                        training_index = i
                if training_index is not None:
                    for src in cells[training_index]["imgs"]:
                        seen.setdefault(_digest(src), len(seen))
                done = all(re.fullmatch(r"\[\d+\]:", c["prompt"].strip()) for c in cells)
                if done:
                    break
                assert time.monotonic() < deadline, (
                    f"Run All did not finish within {RUN_TIMEOUT} s; prompts "
                    f"{[c['prompt'] for c in cells]}; dialogs: {page.dialogs()}")
                if len(seen) == 2 and "training" not in phases:
                    phases["training"] = time.monotonic() - start
                    page.shot("training")
                time.sleep(0.2)
            phases["run all done"] = time.monotonic() - start
            driver.execute_script("arguments[0].scrollIntoView()",
                                  page.css(".jp-Notebook .jp-Cell.jp-CodeCell")[training_index or 0])
            page.shot("finished")

            texts = [c["text"] for c in cells]
            assert "grading mode: False" in texts[0], texts[0]
            assert training_index is not None, "no cell showed the progress bar and the live plot"
            training = cells[training_index]
            assert len(seen) >= 2, f"the live plot's image never changed while training ({len(seen)} seen)"
            assert len(training["imgs"]) == 1, f"{len(training['imgs'])} images in the training cell"
            bar = [line for line in training["text"].splitlines() if "%|" in line]
            assert bar and bar[-1].lstrip().startswith("training 100%|"), training["text"]
            assert BUDGET in bar[-1], training["text"]
            assert "ESS 0." in bar[-1] and "steps/s" in bar[-1]
            steps = re.search(r"(\d+) steps in (\d+) s", training["text"])
            assert steps and int(steps.group(1)) >= 3 and int(steps.group(2)) >= 6, training["text"]

            # save (File > Save), then check the file as nbformat reads it
            mtime = notebook.stat().st_mtime
            page.menu("File", "Save Notebook", "Save")
            page.wait("the notebook to be saved", lambda: notebook.stat().st_mtime != mtime, timeout=30)
            saved = nbformat.read(notebook, as_version=4)
            errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(saved.cells)
                      if c.cell_type == "code" for o in c.outputs if o["output_type"] == "error"]
            assert not errors, f"error outputs: {errors}"
            code = [c for c in saved.cells if c.cell_type == "code"]
            outputs = code[training_index].outputs
            assert sum("image/png" in o.get("data", {}) for o in outputs) == 1
            assert not [o for c in code for o in c.outputs
                        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
            assert any("100%|" in o.get("data", {}).get("text/plain", "") for o in outputs)

            # reopen another day: shut the kernel down (a widget's model lived there), reload the
            # page; the bar is still text and nothing says "Error displaying widget"
            for kernel in lab.api("GET", "/api/kernels"):
                lab.api("DELETE", f"/api/kernels/{kernel['id']}")
            driver.refresh()
            page.wait("the notebook to reopen", lambda: len(page.cells()) == n_code
                      and "%|" in page.cells()[training_index]["text"])
            page.shot("reopened")
            body = driver.find_element("tag name", "body").text
            assert "Error displaying widget" not in body and "model not found" not in body
            reopened = page.cells()[training_index]
            assert "training 100%|" in reopened["text"] and len(reopened["imgs"]) == 1
        except Exception as err:
            path = page.shot("failure", folder=shots or tmp_path)
            raise AssertionError(f"{err}\nscreenshot: {path}\n"
                                 f"JupyterLab log (tail):\n{lab.log()[-3000:]}") from err
        finally:
            driver.quit()
    phases["done"] = time.monotonic() - start
    print("seconds since start: " + ", ".join(f"{k} {v:.0f}" for k, v in phases.items()))
