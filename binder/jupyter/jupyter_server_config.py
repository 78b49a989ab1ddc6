"""Jupyter server settings for Binder (found through JUPYTER_CONFIG_PATH, set by binder/start):
JupyterLab opens on course/, the student release, not on the instructor's solutions/."""

from pathlib import Path

c = get_config()  # noqa: F821 - provided by Jupyter

c.ServerApp.root_dir = str(Path(__file__).resolve().parents[2] / "course")
c.ServerApp.default_url = "/lab"
