"""Every submission's kernel in its own bubblewrap sandbox.

A submitted notebook is code from a stranger. nbgrader starts each student's kernel as the
grading user, with that user's HOME and files: whatever one submission leaves behind (an IPython
startup file, a ``sitecustomize``, a ``.pth`` file, a matplotlibrc) runs in every later kernel and
can change every other student's grade. Here each kernel runs in a sandbox made by
`bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``), the tool Flatpak uses:

* **nothing writable that anyone else reads**: the new root is an empty tmpfs; only the system
  folders (``/usr``, ``/etc``, ...), the Python environment and the ``lftutor`` package are
  mounted, read-only. The course folder (``solutions/`` with its hidden tests, the gradebook,
  other students' submissions, feedback, originals) and the grading user's HOME are not there.
* **a private HOME, TMPDIR, IPYTHONDIR and Jupyter/matplotlib folders** in a size-limited tmpfs
  that is thrown away with the kernel; the notebook's working folder is a second size-limited
  tmpfs holding copies of the student's files (nbgrader takes the outputs from the kernel's
  messages, so nothing written there is needed afterwards, and nothing is copied back);
* **no network** (its own network namespace: only its own loopback), its own PID namespace (the
  grader's processes are invisible, so they cannot be signalled), and every process the notebook
  started is killed when the kernel ends (``--die-with-parent``; the PID namespace dies with its
  first process, double forks and ``setsid`` included);
* **limits** (``setrlimit``, set inside the sandbox just before the kernel starts): address
  space (memory), processes and threads, CPU seconds, size of one file, open files; output the
  grader keeps per notebook (:class:`SandboxedExecute`);
* run as root (a container, CI), the kernel drops to an unprivileged user id of its own, so that
  it holds no capability and the process limit applies (root is exempt from it).

The kernel talks to nbgrader over ZeroMQ on Unix sockets (``transport = ipc``) in a private
folder, the only folder shared with the grader. The hook is the kernel manager:
``nbgrader_config.py`` puts :class:`SandboxedExecute` in place of nbgrader's ``Execute``, so
``nbgrader autograde`` and the formgrader's autograde button are sandboxed as well as
``python -m lftutor grade``. ``c.Sandbox.enabled = False`` (``lftutor grade --no-sandbox``)
switches it off.

Not covered (see the README): timing side channels, the CPU time and memory bandwidth one
kernel takes from the others, kernel vulnerabilities of the host.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError
from nbgrader.preprocessors import Execute
from traitlets import Bool, Int, Type, Unicode
from traitlets.config import LoggingConfigurable

__all__ = ["Limits", "Sandbox", "SandboxUnavailable", "SandboxedExecute", "SandboxedKernelManager",
           "check_sandbox", "events", "gradebook_unlocked"]

#: How to install bubblewrap, for error messages.
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; Fedora: "
                "sudo dnf install bubblewrap; Arch: sudo pacman -S bubblewrap)")

#: Environment variables a sandboxed kernel keeps; everything else of the grader's environment
#: (tokens, passwords, PYTHONPATH, PYTHONSTARTUP, ...) stays outside.
KEEP_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "NBGRADER_EXECUTION", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "MPLBACKEND",
            "PYDEVD_DISABLE_FILE_VALIDATION")
KEEP_ENV_PREFIXES = ("LC_", "LFTUTOR_", "OPENBLAS_", "JPY_")
#: System folders mounted read-only (when present); a symlink (merged /usr) stays a symlink.
SYSTEM_PATHS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Inside the sandbox: the private HOME and temporary folder (one tmpfs).
SANDBOX_TMP = "/tmp"
SANDBOX_HOME = "/tmp/home"
#: Unprivileged user ids for kernels of a grader running as root: base + the grader's PID, so
#: that two graders side by side never share an id (nor a process limit).
ROOT_UID_BASE = 1_900_000_000


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made here (no bubblewrap, or namespaces switched off)."""


@dataclass(frozen=True)
class Limits:
    """What one kernel may use. Sizes in MB (10**6 bytes)."""

    memory_mb: int = 4000  # address space of each process (RLIMIT_AS)
    processes: int = 256  # processes and threads of the sandbox's user (RLIMIT_NPROC)
    cpu_seconds: int = 3600  # CPU time of each process (RLIMIT_CPU)
    file_mb: int = 200  # size of one file (RLIMIT_FSIZE)
    disk_mb: int = 500  # each of the two tmpfs: HOME + /tmp, and the working folder
    open_files: int = 1024  # RLIMIT_NOFILE
    output_mb: int = 20  # outputs the grader keeps per notebook; the rest is dropped


class Sandbox(LoggingConfigurable):
    """The sandbox's settings, from nbgrader's config (``c.Sandbox.memory_mb = 8000``)."""

    enabled = Bool(True, help="Run every kernel in a bubblewrap sandbox").tag(config=True)
    bwrap = Unicode("bwrap", help="The bubblewrap executable").tag(config=True)
    memory_mb = Int(Limits.memory_mb, help="Address-space limit per process, MB").tag(config=True)
    processes = Int(Limits.processes, help="Processes and threads per kernel").tag(config=True)
    cpu_seconds = Int(Limits.cpu_seconds, help="CPU seconds per process").tag(config=True)
    file_mb = Int(Limits.file_mb, help="Largest file a kernel may write, MB").tag(config=True)
    disk_mb = Int(Limits.disk_mb, help="Size of the kernel's HOME/tmp and of its working folder, "
                  "MB each").tag(config=True)
    open_files = Int(Limits.open_files, help="Open files per process").tag(config=True)
    output_mb = Int(Limits.output_mb, help="Outputs kept per notebook, MB").tag(config=True)

    def limits(self) -> Limits:
        return Limits(**{name: getattr(self, name) for name in asdict(Limits())})


# --- what happened in the sandboxes of this process (read by lftutor.instructor.autograde) -----

_EVENTS: list[str] = []


def events(clear: bool = False) -> list[str]:
    """What the sandboxes of this process did since the last ``events(clear=True)``: limits
    hit, processes killed at the end, output dropped."""
    out = list(_EVENTS)
    if clear:
        _EVENTS.clear()
    return out


def _event(text: str) -> None:
    if text not in _EVENTS:
        _EVENTS.append(text)


# --- the gradebook lock of parallel grading -------------------------------------------------

#: Set by a grading worker: a lock held while this process may write to the gradebook, let go
#: while a kernel runs (see :func:`lftutor.instructor.autograde.grade_assignment`).
GRADEBOOK_LOCK = None


@contextlib.contextmanager
def gradebook_unlocked():
    """Let other graders write to the gradebook while this one only runs a notebook."""
    lock = GRADEBOOK_LOCK
    if lock is None:
        yield
        return
    lock.release()
    try:
        yield
    finally:
        lock.acquire()


# --- building the bwrap command ------------------------------------------------------------

@functools.cache
def _interpreter_paths(python: str) -> tuple[str, ...]:
    """The folders ``python`` imports from (prefixes and ``sys.path``), as it sees them in
    isolated mode (no PYTHONPATH, no user site, no current folder): what the kernel needs."""
    code = ("import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, "
            "sys.base_exec_prefix, *sys.path]))")
    try:
        out = subprocess.run([python, "-I", "-c", code], cwd="/", capture_output=True, text=True,
                             timeout=120, check=True).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise SandboxUnavailable(f"could not ask the kernel's Python {python} where it imports "
                                 f"from: {err}") from err
    return tuple(json.loads(out.strip().splitlines()[-1]))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def readable_paths(python: str, *, hidden: list[Path]) -> list[Path]:
    """Folders to mount read-only for a kernel run by ``python``: its environment and the
    ``lftutor`` package, never a folder of ``hidden`` (the course, HOME) or one holding them,
    except the environment and the package themselves when they live inside one."""
    import lftutor

    package = Path(lftutor.__file__).resolve().parent
    interp = Path(python)
    prefixes = [Path(p) for p in _interpreter_paths(python)[:4]]
    allowed = [package, *(p.resolve() for p in prefixes), interp.parent.parent]
    paths = []
    for raw in (*_interpreter_paths(python), str(package), str(interp.parent.parent)):
        for path in {Path(raw), Path(raw).resolve()}:
            if not raw or not path.is_absolute() or not path.exists() or path == Path("/"):
                continue
            holds_hidden = any(_inside(h, path) for h in hidden)
            in_hidden = any(_inside(path, h) for h in hidden)
            if holds_hidden or (in_hidden and not any(_inside(path, a) for a in allowed)):
                continue
            paths.append(path)
    # a folder inside another one already mounted needs no mount of its own
    paths = sorted(set(paths), key=lambda p: len(p.parts))
    return [p for i, p in enumerate(paths) if not any(_inside(p, q) for q in paths[:i])]


def _limits_exec(limits: Limits, uid: int | None) -> list[str]:
    """``python -I -S -c ...``: set the limits, drop root (if root), restore Ctrl-C, exec."""
    mb = 1_000_000
    code = "\n".join([
        "import os, resource, signal, sys",
        "a = [int(x) for x in sys.argv[1:7]]",
        "for res, v in zip((resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_CPU, "
        "resource.RLIMIT_FSIZE, resource.RLIMIT_NOFILE), a[:5]):",
        # CPU: SIGXCPU at the soft limit (reported as such), SIGKILL 5 s later if ignored
        "    resource.setrlimit(res, (v, v + 5 if res == resource.RLIMIT_CPU else v))",
        "if a[5] >= 0:",  # root outside: an unprivileged id of its own, no capabilities
        "    os.setgroups([]); os.setgid(a[5]); os.setuid(a[5])",
        # the grader's wrapper ignores SIGINT (so that an interrupt cannot kill bwrap itself):
        # the kernel must get it back to turn Ctrl-C into KeyboardInterrupt
        "signal.signal(signal.SIGINT, signal.SIG_DFL)",
        # ipykernel would watch this PID and, finding its parent is PID 1 (bwrap, in the new PID
        # namespace), think the grader gone; --die-with-parent does that job here
        "os.environ.pop('JPY_PARENT_PID', None)",
        "os.execv(sys.argv[8], sys.argv[8:])",
    ])
    values = [limits.memory_mb * mb, limits.processes, limits.cpu_seconds, limits.file_mb * mb,
              limits.open_files, -1 if uid is None else uid]
    return [sys.executable, "-I", "-S", "-c", code, *map(str, values), "--"]


#: Run first, outside: ignore SIGINT, then become bwrap. jupyter_client interrupts a kernel by
#: signalling its process group; bwrap would die of the SIGINT and take the kernel with it.
_IGNORE_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                  "os.execvp(sys.argv[1], sys.argv[1:])")


def bwrap_command(kernel_cmd: list[str], *, cwd: str, private: Path, workdir_files: Path,
                  limits: Limits, hidden: list[Path], bwrap: str = "bwrap",
                  uid: int | None = None) -> list[str]:
    """The full command that starts ``kernel_cmd`` in a sandbox.

    Args:
        kernel_cmd: the kernel's argv (its connection file lies in ``private``).
        cwd: the kernel's working folder (nbgrader's ``autograded/<student>/<assignment>``);
            inside, a size-limited tmpfs with the files of ``workdir_files`` bound into it.
        private: folder shared with the grader, read-write (connection file, ZeroMQ sockets).
        workdir_files: copies of the submission's files (not the originals).
        limits: resource limits.
        hidden: folders never mounted (the course root, the grader's HOME).
        uid: run the kernel as this unprivileged user id (when the grader is root).
    """
    disk = str(limits.disk_mb * 1_000_000)
    args = [sys.executable, "-I", "-S", "-c", _IGNORE_SIGINT, bwrap, "--die-with-parent"]
    if uid is None:
        args += ["--unshare-all"]  # as a normal user: a user namespace too, no capabilities
    else:
        # as root, no user namespace: the kernel's unprivileged id must exist on the host for
        # the process limit to apply; the limits snippet switches to it
        # (bwrap run by root drops every capability but these two, gone with the id switch)
        args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                 "--unshare-cgroup-try", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", disk, "--tmpfs", SANDBOX_TMP,
             "--perms", "0777", "--dir", SANDBOX_HOME,
             "--perms", "1777", "--size", "64000000", "--tmpfs", "/dev/shm"]
    made: set[Path] = set()

    def parents(path: Path) -> list[str]:
        # folders bwrap makes on the way to a mount point: readable by the kernel's user
        out = []
        for parent in reversed(path.parents[:-1]):
            if parent not in made and parent != Path(SANDBOX_TMP):
                made.add(parent)
                out += ["--perms", "0755", "--dir", str(parent)]
        return out

    for path in readable_paths(kernel_cmd[0], hidden=hidden):
        args += [*parents(path), "--ro-bind", str(path), str(path)]
    args += [*parents(Path(cwd)), "--perms", "0777", "--size", disk, "--tmpfs", cwd]
    for entry in sorted(workdir_files.iterdir()):
        args += ["--bind", str(entry), os.path.join(cwd, entry.name)]
    args += [*parents(private), "--bind", str(private), str(private), "--chdir", cwd,
             "--hostname", "sandbox"]
    return args + ["--", *_limits_exec(limits, uid), *kernel_cmd]


def sandbox_env(env: dict[str, str], *, threads: int | None = None) -> dict[str, str]:
    """The kernel's environment: the allow-listed part of ``env`` and private folders."""
    out = {k: v for k, v in env.items()
           if k in KEEP_ENV or k.startswith(KEEP_ENV_PREFIXES)}
    home = SANDBOX_HOME
    out.update(HOME=home, TMPDIR=SANDBOX_TMP, USER="student", LOGNAME="student",
               IPYTHONDIR=f"{home}/.ipython", MPLCONFIGDIR=f"{home}/.config/matplotlib",
               JUPYTER_CONFIG_DIR=f"{home}/.jupyter", JUPYTER_DATA_DIR=f"{home}/.local/share/jupyter",
               JUPYTER_RUNTIME_DIR=f"{home}/.local/share/jupyter/runtime",
               XDG_CACHE_HOME=f"{home}/.cache", XDG_CONFIG_HOME=f"{home}/.config",
               XDG_DATA_HOME=f"{home}/.local/share", PYTHONNOUSERSITE="1")
    import lftutor

    # the kernel imports the grader's lftutor (the only thing mounted from its parent folder)
    out["PYTHONPATH"] = str(Path(lftutor.__file__).resolve().parent.parent)
    if threads is not None and "OMP_NUM_THREADS" not in env:
        out["OMP_NUM_THREADS"] = str(threads)
    return out


def _course_hidden(config) -> list[Path]:
    """Folders a kernel never sees: the course root (from nbgrader's config) and HOME."""
    hidden = [Path.home().resolve()]
    # .get, not attribute access: a Config makes up an empty value for a key never set
    root = config.get("CourseDirectory", {}).get("root")
    if isinstance(root, (str, os.PathLike)) and str(root):
        hidden.append(Path(root).resolve())
    return hidden


def kernel_uid() -> int | None:
    """The kernel's user id when the grader is root, else None (the grader's own, in a user
    namespace)."""
    return ROOT_UID_BASE + os.getpid() if os.geteuid() == 0 else None


def check_sandbox(sandbox: Sandbox | None = None) -> str:
    """Make one sandbox the way kernels get theirs and run Python in it.

    Returns:
        bubblewrap's version, e.g. ``"bubblewrap 0.8.0"``.

    Raises:
        SandboxUnavailable: with what went wrong and how to fix it.
    """
    sandbox = sandbox or Sandbox()
    exe = shutil.which(sandbox.bwrap)
    if exe is None:
        raise SandboxUnavailable(f"bubblewrap ({sandbox.bwrap!r}) is not installed: {INSTALL_HINT}, "
                                 "or grade without a sandbox (--no-sandbox) if you trust every "
                                 "submission")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="lftutor-sandbox-check-") as tmp:
        private, files, cwd = Path(tmp, "private"), Path(tmp, "files"), Path(tmp, "work")
        for p in (private, files, cwd):
            p.mkdir()
        uid = kernel_uid()
        if uid is not None:
            os.chown(private, uid, uid)
        probe = [sys.executable, "-c", "import lftutor, os; print('sandbox ok', os.getuid())"]
        cmd = bwrap_command(probe, cwd=str(cwd), private=private, workdir_files=files,
                            limits=sandbox.limits(), hidden=[Path.home().resolve()], bwrap=exe,
                            uid=uid)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              env=sandbox_env(dict(os.environ)))
    if proc.returncode != 0 or "sandbox ok" not in proc.stdout:
        raise SandboxUnavailable(
            f"{version or 'bubblewrap'} could not make a sandbox here (exit {proc.returncode}: "
            f"{(proc.stderr or proc.stdout).strip()[-500:]}). User namespaces may be switched off "
            "(sysctl kernel.unprivileged_userns_clone=1, or run as root); or grade without a "
            "sandbox (--no-sandbox) if you trust every submission")
    return version


# --- the kernel manager and the execute preprocessor -------------------------------------------

class _LimitedClient(AsyncKernelClient):
    """A kernel client that refuses single messages larger than the output limit: one
    ``print`` of a GB string must not land in the grader's memory."""

    max_message_bytes = 0

    def _create_connected_socket(self, channel, identity=None):
        import zmq

        sock = super()._create_connected_socket(channel, identity)
        if self.max_message_bytes:
            # a connection takes the socket's options when it is made: connect again after
            # setting the limit, or it never applies
            url = self._make_url(channel)
            sock.disconnect(url)
            sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
            sock.connect(url)
            # ZeroMQ refuses an oversized message by dropping the connection, silently, and
            # never reconnects (a protocol error): a socket monitor is the only place where
            # that shows, and :meth:`reconnect_refused` makes the connection again
            address = f"inproc://lftutor-monitor-{id(sock)}"
            sock.monitor(address, zmq.EVENT_DISCONNECTED)
            watcher = zmq.Context(shadow=self.context.underlying).socket(zmq.PAIR)
            watcher.connect(address)
            self.__dict__.setdefault("_watched", []).append((sock, url, watcher))
        return sock

    def stop_channels(self):
        # before the channels: destroying the context waits for every socket, these too
        for _, _, watcher in self.__dict__.pop("_watched", []):
            watcher.close(linger=0)
        super().stop_channels()

    def reconnect_refused(self) -> int:
        """Connect again every channel that lost its connection since the last call; returns
        how many did (never blocks)."""
        import zmq

        count = 0
        for sock, url, watcher in self.__dict__.get("_watched", []):
            lost = False
            while watcher.poll(0):
                watcher.recv_multipart(zmq.NOBLOCK)
                lost = True
            if lost and not sock.closed:
                count += 1
                with contextlib.suppress(zmq.ZMQError):
                    sock.disconnect(url)
                sock.connect(url)
        return count


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel through :func:`bwrap_command` (when ``c.Sandbox.enabled``)."""

    client_class = Unicode("lftutor.instructor.sandbox._LimitedClient")
    # AsyncKernelManager declares its own client_factory with a fixed default, which wins over
    # the client_class above: without this, the plain client (no size limit) would be used
    client_factory = Type(_LimitedClient, klass=AsyncKernelClient)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sandbox = Sandbox(config=self.config)
        self._private: Path | None = None
        self._uid: int | None = None
        self._proc = None  # the Popen of bwrap
        self._exit_noted = False

    def client(self, **kwargs):
        kc = super().client(**kwargs)
        kc.max_message_bytes = 2 * self.sandbox.output_mb * 1_000_000 + 1_000_000
        return kc

    async def _async_pre_start_kernel(self, **kw):
        if self.sandbox.enabled:
            self._uid = kernel_uid()
            self._private = Path(tempfile.mkdtemp(prefix="lftutor-kernel-"))
            self.transport = "ipc"
            self.ip = str(self._private / "zmq")
            self.connection_file = str(self._private / "connection.json")
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        if self.sandbox.enabled and self._uid is not None:
            os.chown(self._private, self._uid, self._uid)
            os.chown(self.connection_file, self._uid, self._uid)
        return kernel_cmd, kw

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        if not self.sandbox.enabled:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        exe = shutil.which(self.sandbox.bwrap)
        if exe is None:
            raise SandboxUnavailable(f"bubblewrap is not installed: {INSTALL_HINT}")
        cwd = os.path.abspath(kw.get("cwd") or os.getcwd())
        files = self._private / "files"
        files.mkdir()
        _copy_submission(Path(cwd), files, uid=self._uid)
        cmd = bwrap_command(kernel_cmd, cwd=cwd, private=self._private, workdir_files=files,
                            limits=self.sandbox.limits(), hidden=_course_hidden(self.config),
                            bwrap=exe, uid=self._uid)
        kw["env"] = sandbox_env(kw.get("env") or dict(os.environ))
        kw["cwd"] = str(self._private)
        log = open(self._private / "kernel.log", "wb")  # noqa: SIM115 - kept by the process
        kw["stdout"] = kw["stderr"] = log
        try:
            await super()._async_launch_kernel(cmd, **kw)
        finally:
            log.close()
        self._proc = self.provisioner.process

    def _sandbox_processes(self) -> list[int]:
        """PIDs (host view) of the sandbox's processes other than bwrap and the kernel."""
        if self._proc is None or self._proc.poll() is not None:
            return []
        children: dict[int, list[tuple[int, int]]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    fields = Path("/proc", entry, "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                # fields[1]: parent PID; fields[19]: start time (ticks since boot)
                children.setdefault(int(fields[1]), []).append((int(fields[19]), int(entry)))
        # bwrap outside -> bwrap as PID 1 inside -> the kernel (its oldest child); orphans of
        # double forks land on PID 1, beside the kernel
        inner = [pid for _, pid in children.get(self._proc.pid, [])]
        below = sorted(c for pid in inner for c in children.get(pid, []))
        todo = [pid for _, pid in below[1:]]
        todo += [pid for _, pid in children.get(below[0][1], [])] if below else []
        found = []
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += [c for _, c in children.get(pid, [])]
        return found

    async def _async_shutdown_kernel(self, now=False, restart=False):
        if self.sandbox.enabled:
            extra = self._sandbox_processes()
            if extra:
                _event(f"{len(extra)} process(es) still running when the notebook ended were "
                       "killed")
        await super()._async_shutdown_kernel(now=now, restart=restart)

    # AsyncKernelManager binds its public name to the base class's coroutine: rebind it
    shutdown_kernel = _async_shutdown_kernel

    def _note_exit(self) -> None:
        code = None if self._proc is None else self._proc.poll()
        if code is None or self._exit_noted:
            return
        self._exit_noted = True
        # bwrap passes on the kernel's status; a kernel killed by signal N gives 128 + N
        sig = code - 128 if code > 128 else (-code if code < 0 else 0)
        if sig == signal.SIGXCPU:
            _event(f"kernel stopped by the CPU time limit ({self.sandbox.cpu_seconds} s)")
        elif sig == signal.SIGXFSZ:
            _event(f"kernel stopped by the file size limit ({self.sandbox.file_mb} MB)")
        elif sig == signal.SIGKILL and not self.shutting_down:
            _event("kernel killed (SIGKILL: out of memory?)")

    async def _async_cleanup_resources(self, restart=False):
        if self.sandbox.enabled:
            self._note_exit()
        await super()._async_cleanup_resources(restart=restart)
        if self._private is not None and not restart:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    cleanup_resources = _async_cleanup_resources


def _copy_submission(src: Path, dest: Path, *, uid: int | None) -> None:
    """Copy the regular files and folders of ``src`` (never symlinks) for the sandbox."""
    if not src.is_dir():
        return
    for entry in src.iterdir():
        target = dest / entry.name
        if entry.is_symlink() or _inside(dest, entry):  # never the sandbox's own folder
            continue
        if entry.is_dir():
            shutil.copytree(entry, target, symlinks=True,
                            ignore=lambda d, names: [n for n in names if os.path.islink(os.path.join(d, n))])
        elif entry.is_file():
            shutil.copy(entry, target)
    if uid is not None:
        for path in [dest, *dest.rglob("*")]:
            os.chown(path, uid, uid)


class SandboxedExecute(Execute):
    """nbgrader's ``Execute`` with the kernel in a sandbox and a cap on kept output.

    Use it in ``nbgrader_config.py`` in place of ``Execute`` in
    ``c.Autograde.autograde_preprocessors``; its settings are ``c.Sandbox.*``.
    """

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = SandboxedKernelManager
        super().__init__(*args, **kwargs)
        self.sandbox = Sandbox(config=self.config)
        self._output_bytes = 0
        self._truncated = False

    def preprocess(self, nb, resources=None, km=None):
        self._output_bytes, self._truncated = 0, False
        with gradebook_unlocked():
            return super().preprocess(nb, resources, km=km)

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        try:
            result = await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        except CellTimeoutError:
            # a refused message can take the cell's closing status message with it: nbclient
            # then times out waiting for IOPub; that cell is done, and the kernel still alive
            if not await self._note_refused_messages(cell):
                raise
            return cell
        await self._note_refused_messages(cell)
        return result

    # nbclient binds its synchronous wrapper to its own coroutine: bind it again to this one
    execute_cell = run_sync(async_execute_cell)

    async def _note_refused_messages(self, cell) -> bool:
        """A message over the client's size limit (one flush of a fast ``print`` loop can be
        hundreds of MB) never reaches :meth:`output`: ZeroMQ drops the connection instead, and
        reconnects. A dropped connection to a kernel that is still alive means exactly that;
        the event is recorded and the student told, in the cell's output."""
        watch = getattr(self.kc, "reconnect_refused", None)
        if watch is None or not watch() or self.km is None:
            return False
        if not await ensure_async(self.km.is_alive()):
            return False  # a dead kernel drops its connections too; that is reported elsewhere
        refused = 2 * self.sandbox.output_mb
        if not self._truncated:
            self._truncated = True
            _event(f"output over {self.sandbox.output_mb} MB dropped (a single message of more "
                   f"than {refused} MB was refused)")
        from nbformat.v4 import new_output

        cell.setdefault("outputs", []).append(new_output("stream", name="stderr", text=(
            f"[the grader refused this cell's output: one message over {refused} MB]\n")))
        return True

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        if msg.get("msg_type") == "error" and (content.get("ename") == "MemoryError" or "allocate"
                                                in str(content.get("evalue", ""))):
            _event(f"memory limit hit ({self.sandbox.memory_mb} MB per process)")
        limit = self.sandbox.output_mb * 1_000_000
        self._output_bytes += len(json.dumps(msg.get("content", {}), default=str))
        if self._output_bytes > limit:
            if not self._truncated:
                self._truncated = True
                _event(f"output over {self.sandbox.output_mb} MB dropped")
                from nbformat.v4 import new_output

                outs.append(new_output("stream", name="stderr", text=(
                    f"[the grader dropped the rest of this notebook's output: over "
                    f"{self.sandbox.output_mb} MB]\n")))
            return None
        return super().output(outs, msg, display_id, cell_index)
