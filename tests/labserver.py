"""A JupyterLab server started the way ``make lab`` starts it, for the tests that look at what a
student gets: from the repository root (so that nbgrader's server extensions load the repository's
``nbgrader_config.py``), ``jupyter lab --ServerApp.root_dir=DIR`` with the venv's ``bin/`` first on
PATH and ``JUPYTER_CONFIG_PATH=binder/jupyter`` (the settings Binder uses too), ``--allow-root``
under root, on a free port with a token. Runtime files, the workspace and user settings go to a
temporary folder, so the user's own ``~/.jupyter`` state plays no part.

The Binder-like variant (tests/test_binder_env.py) starts another environment's ``jupyter`` (its
``bin/`` first on PATH instead of this venv's) behind a command prefix (``binder/start``) and leaves
JUPYTER_CONFIG_PATH to that prefix.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra: dict | None = None, bin_dir: Path = BIN) -> dict:
    """The test process's environment without any grading switch, ``bin_dir`` (default: this
    venv's bin/) first on PATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LFTUTOR_GRADING", "NBGRADER_EXECUTION", "NBGRADER_VALIDATING",
                        "JUPYTER_CONFIG_PATH", "JUPYTER_PATH", "LFTUTOR_TIME_SCALE")}
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


class LabServer:
    """``with LabServer(root_dir, tmp) as lab:`` ... ``lab.url``, ``lab.token``, ``lab.api(...)``.

    ``bin_dir``: the environment whose ``jupyter`` runs, first on PATH (default: this venv's);
    ``prefix``: a command the server is started through (``[".../binder/start"]``: it receives
    ``jupyter lab ...`` as its arguments); ``config_path``: set JUPYTER_CONFIG_PATH=binder/jupyter
    as the Makefile does (False: leave it unset, for a prefix that sets it).
    """

    def __init__(self, root_dir: Path, scratch: Path, *, env: dict | None = None, cwd: Path = REPO,
                 bin_dir: Path = BIN, prefix: list[str] | tuple[str, ...] = (), config_path: bool = True):
        self.root_dir, self.scratch, self.cwd = Path(root_dir), Path(scratch), Path(cwd)
        self.bin_dir, self.prefix, self.config_path = Path(bin_dir), list(prefix), config_path
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.proc = None
        self.log_path = self.scratch / "jupyter-lab.log"

    def __enter__(self) -> LabServer:
        self.scratch.mkdir(parents=True, exist_ok=True)
        settings = {
            "JUPYTER_RUNTIME_DIR": str(self.scratch / "runtime"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.scratch / "workspaces"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.scratch / "user-settings"),
        }
        if self.config_path:
            settings["JUPYTER_CONFIG_PATH"] = str(REPO / "binder" / "jupyter")  # as the Makefile sets it
        env = clean_env({**settings, **self.extra_env}, bin_dir=self.bin_dir)
        cmd = [*self.prefix, str(self.bin_dir / "jupyter"), "lab", f"--ServerApp.root_dir={self.root_dir}",
               "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")  # as the Makefile does
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited {self.proc.returncode}:\n{self.log()}")
            try:
                self.api("GET", "/api/status")
                return self
            except OSError:
                time.sleep(0.3)
        self.__exit__(None, None, None)
        raise RuntimeError(f"jupyter lab did not answer within 90 s:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
        return json.loads(text) if text else None

    def run_in_new_kernel(self, code: str, timeout: float = 60) -> str:
        """Start a kernel through the REST API, run ``code`` over the kernel's websocket and return
        what it printed (stdout and errors); the kernel is shut down afterwards."""
        import websocket  # websocket-client, a dependency of selenium

        kernel = self.api("POST", "/api/kernels", {"name": "python3"})
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.port}/api/kernels/{kernel['id']}/channels?token={self.token}",
            timeout=timeout)
        try:
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                           "msg_type": "execute_request", "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": code, "silent": False, "store_history": False,
                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
            out = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    out.append("\n".join(msg["content"]["traceback"]))
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    return "".join(out)
            raise TimeoutError(f"the kernel did not finish within {timeout} s; printed {''.join(out)!r}")
        finally:
            ws.close()
            self.api("DELETE", f"/api/kernels/{kernel['id']}")
