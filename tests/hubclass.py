"""A class on a JupyterHub on this machine, for tests/test_hub.py: Unix accounts and groups, a
Python environment every account can run, nbgrader's exchange and the course directory laid out
as deploy/jupyterhub/README.md says, and the hub itself started from
deploy/jupyterhub/jupyterhub_config.py (with a test authenticator: real Unix users, passwords
checked by JupyterHub's DummyAuthenticator instead of PAM). Everything it makes is removed on exit:
servers, processes, accounts, groups, folders. Needs root (the hub spawns each user's server as
that user) and ``useradd``.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

from labserver import REPO, free_port

HUB_DIR = REPO / "deploy" / "jupyterhub"
PYVER = f"python{sys.version_info.major}.{sys.version_info.minor}"


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)


class Accounts:
    """Unix groups and users made for one test (names with a random tag), removed on exit."""

    def __init__(self):
        self.tag = secrets.token_hex(2)
        self.users: list[str] = []
        self.groups: list[str] = []

    def group(self, role: str) -> str:
        name = f"lft{self.tag}{role}"
        run(["groupadd", name])
        self.groups.append(name)
        return name

    def user(self, role: str, groups: list[str], password: str) -> str:
        name = f"lft{self.tag}{role}"
        # HOME 0700: a fetched assignment in one student's HOME is no one else's to read
        run(["useradd", "--create-home", "--shell", "/bin/bash", "-K", "HOME_MODE=0700",
             "--groups", ",".join(groups), name])
        self.users.append(name)
        run(["chpasswd"], input=f"{name}:{password}\n")
        return name

    def processes(self) -> list[int]:
        uids = {pwd.getpwnam(u).pw_uid for u in self.users if _exists(u)}
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid in uids:
                        out.append(int(entry.name))
                except OSError:
                    pass
        return out

    def remove(self) -> list[int]:
        """Kill what the users still run (by pid), delete users and groups; returns the pids
        that were still running."""
        left = self.processes()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5 if left else 0)
        for name in self.users:
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        for name in self.groups:
            subprocess.run(["groupdel", name], capture_output=True)
        return left


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def as_user(user: str, cmd: list[str], env: dict, cwd: str | None = None, timeout: float = 300,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run ``cmd`` as Unix user ``user`` (its groups, HOME and cwd), as the hub would."""
    entry = pwd.getpwnam(user)
    full = {"HOME": entry.pw_dir, "USER": user, "LOGNAME": user, "SHELL": "/bin/bash",
            "LANG": "C.UTF-8", **env}
    proc = subprocess.run(cmd, user=entry.pw_uid, group=entry.pw_gid,
                          extra_groups=os.getgrouplist(user, entry.pw_gid), env=full,
                          cwd=cwd or entry.pw_dir, capture_output=True, text=True, timeout=timeout,
                          umask=0o022)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} as {user} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def shared_environment(scratch: Path, probe_user: str) -> Path:
    """The ``bin/`` of a Python environment with this checkout's packages that ``probe_user``
    can run: the test's own venv when its interpreter is readable by everyone. Otherwise (an
    interpreter under /root, as pyenv installs it) a copy of that same interpreter and its
    standard library (its RUNPATH pointed at the copy's lib/), and on it an environment whose
    site-packages adds the venv's (share/ and etc/ are the venv's, for the Jupyter extensions),
    its console scripts rewritten to run it. A system Python of the same minor version is not
    enough: soupsieve, which nbgrader's feedback needs, fails on Debian's 3.11.2 and works on
    3.11.7."""
    venv = Path(sys.prefix)
    try:
        if as_user(probe_user, [sys.executable, "-c", "import lftutor"], env={}, cwd="/",
                   check=False).returncode == 0:
            return venv / "bin"
    except PermissionError:
        pass
    python = _copy_interpreter(scratch / "python")
    env = scratch / "env"
    run([str(python), "-m", "venv", "--without-pip", str(env)])
    site = env / "lib" / PYVER / "site-packages"
    venv_site = venv / "lib" / PYVER / "site-packages"
    (site / "lftutor_checkout_env.pth").write_text(f"import site; site.addsitedir({str(venv_site)!r})\n")
    for name in ("share", "etc"):
        if (venv / name).exists():
            (env / name).symlink_to(venv / name)
    for script in (venv / "bin").iterdir():
        if script.name.startswith("python") or not script.is_file():
            continue
        text = script.read_bytes()
        if text.startswith(b"#!") and b"python" in text.split(b"\n", 1)[0]:
            target = env / "bin" / script.name
            target.write_bytes(b"#!" + str(env / "bin" / "python").encode() + b"\n"
                               + text.split(b"\n", 1)[1])
            target.chmod(0o755)
    as_user(probe_user, [str(env / "bin" / "python"), "-c", "import lftutor, nbgrader, jupyterhub"],
            env={}, cwd="/")
    return env / "bin"


def _copy_interpreter(dest: Path) -> Path:
    """A copy of this interpreter (binary, libpython, standard library without site-packages and
    tests) at ``dest``, readable by everyone; returns its ``bin/pythonX.Y``."""
    base, exe = Path(sys.base_prefix), Path(os.path.realpath(sys.executable))
    (dest / "bin").mkdir(parents=True)
    (dest / "lib").mkdir()
    shutil.copy(exe, dest / "bin" / exe.name)
    for lib in (base / "lib").glob("libpython*.so*"):
        shutil.copy(lib, dest / "lib" / lib.name)
    shutil.copytree(base / "lib" / PYVER, dest / "lib" / PYVER, symlinks=True,
                    ignore=shutil.ignore_patterns("site-packages", "test"))
    (dest / "lib" / PYVER / "site-packages").mkdir()
    # the binary finds libpython through an absolute RUNPATH (the original's lib/): point it at
    # the copy's, "$ORIGIN/../lib", padded with NUL bytes (what chrpath does)
    binary = (dest / "bin" / exe.name).read_bytes()
    old = str(base / "lib").encode() + b"\0"
    new = b"$ORIGIN/../lib\0"
    if binary.count(old) == 1 and len(new) <= len(old):
        binary = binary.replace(old, new.ljust(len(old), b"\0"))
        (dest / "bin" / exe.name).write_bytes(binary)
    run(["chmod", "-R", "a+rX", str(dest)])
    return dest / "bin" / exe.name


class Hub:
    """``with Hub(state, settings, passwords) as hub:`` the hub from deploy/jupyterhub on a free
    port of 127.0.0.1, ``hub.url``; ``hub.api(...)`` with an admin token. Stops every server
    and the hub on exit."""

    def __init__(self, state: Path, settings: dict[str, str], passwords: dict[str, str]):
        self.state, self.settings, self.passwords = state, settings, passwords
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(24)
        self.proc = None
        self.log_path = state / "jupyterhub.log"

    def __enter__(self) -> Hub:
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        config = self.state / "test_jupyterhub_config.py"
        config.write_text(textwrap.dedent(f"""\
            # deploy/jupyterhub's configuration, with a test authenticator and free ports
            c = get_config()
            load_subconfig({str(HUB_DIR / 'jupyterhub_config.py')!r})
            from jupyterhub.auth import Authenticator
            PASSWORDS = {self.passwords!r}
            class TestPasswords(Authenticator):
                # one password per (real Unix) user, instead of PAM
                async def authenticate(self, handler, data):
                    name = data.get("username", "")
                    return name if PASSWORDS.get(name) == data.get("password") else None
            c.JupyterHub.authenticator_class = TestPasswords
            c.Authenticator.allowed_users = set(PASSWORDS)
            c.Authenticator.admin_users = set()
            c.JupyterHub.hub_port = {free_port()}
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
            c.JupyterHub.services = [{{"name": "lftutor-test", "api_token": {self.token!r}}}]
            c.JupyterHub.load_roles = [{{"name": "lftutor-test", "services": ["lftutor-test"],
                                        "scopes": ["admin:users", "admin:servers", "access:servers"]}}]
            """))
        env = {**os.environ, **self.settings, "LFTUTOR_HUB_URL": self.url,
               "LFTUTOR_HUB_STATE": str(self.state)}
        for key in ("JUPYTER_CONFIG_PATH", "LFTUTOR_GRADING", "NBGRADER_EXECUTION"):
            env.pop(key, None)
        env["PATH"] = self.settings["LFTUTOR_ENV"] + "/bin:" + env.get("PATH", "")
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [self.settings["LFTUTOR_ENV"] + "/bin/jupyterhub", "-f", str(config)],
            cwd=self.state, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited {self.proc.returncode}:\n{self.log()[-5000:]}")
            try:
                self.api("GET", "/hub/api/")
                return self
            except (OSError, urllib.error.HTTPError):
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the hub did not answer within 120 s:\n{self.log()[-5000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:  # stop every single-user server through the hub, then the hub and its proxy
                for user in self.api("GET", "/hub/api/users"):
                    if user.get("server"):
                        self.api("DELETE", f"/hub/api/users/{user['name']}/server")
            except Exception:  # noqa: BLE001 - the hub may be broken: kill it below anyway
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        try:  # the proxy runs in the hub's session: nothing of it may outlive the test
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
        return json.loads(text) if text else None


def course_directory(root: Path, instructors: str, owner: str, units: list[str]) -> Path:
    """The course directory as deploy/jupyterhub/setup.sh makes it from a checkout: the config,
    the units' solutions and releases; owned by ``owner``, group ``instructors``, setgid, 2770
    (nobody else may enter: solutions/, the gradebook, submissions)."""
    course = root / "course-dir"
    course.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    for unit in units:
        shutil.copytree(REPO / "solutions" / unit, course / "solutions" / unit)
        shutil.copytree(REPO / "course" / unit, course / "course" / unit)
    run(["chown", "-R", f"{owner}:{instructors}", str(course)])
    run(["chmod", "-R", "u+rwX,g+rwX,o-rwx", str(course)])
    run(["find", str(course), "-type", "d", "-exec", "chmod", "g+s", "{}", "+"])
    return course


def make_scratch() -> Path:
    """A folder under /tmp that the test's users can enter (pytest's tmp_path is root's, 0700)."""
    scratch = Path(tempfile.mkdtemp(prefix="lftutor-hub-"))
    scratch.chmod(0o755)
    return scratch
