"""Jupyter settings for Binder and ``make lab`` (found through JUPYTER_CONFIG_PATH, set by
binder/start and the Makefile): JupyterLab opens on course/, the student release, not on the
instructor's solutions/. labconfig/page_config.json switches off the announcements plugin, whose
"get notified about Jupyter news?" pop-up covered the notebook in every fresh session."""

from pathlib import Path

c = get_config()  # noqa: F821 - provided by Jupyter

c.ServerApp.root_dir = str(Path(__file__).resolve().parents[2] / "course")
c.ServerApp.default_url = "/lab"
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"  # no "new version" notices either
