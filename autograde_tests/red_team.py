"""The red-team class: attackers handed in beside honest students (used by test_red_team.py).

Every attacker hands in the untouched release of the fixture unit (so an honest grade is 0)
with attack code in the first answer cell, the cell that ``square`` is defined in. What each
one tries, and what the sandbox must make of it, is in :data:`ATTACKS`. The attacks are real:
run without the sandbox, ``persist`` gives every later student full marks (that run is
``test_red_team.py::test_without_the_sandbox_one_submission_changes_other_grades``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: A file that makes every later IPython kernel wrap each cell in ``try: ... except: pass``:
#: no cell raises, so empty answers pass every test. (IPython runs startup files and config at
#: kernel start; Python runs sitecustomize, usercustomize and .pth lines at interpreter start.)
SWALLOW = """\
def _red_team(lines):
    body = "".join(lines).splitlines(True)
    return ["try:\\n", *("    " + line for line in body), "\\n    pass\\nexcept BaseException:\\n    pass\\n"]
try:
    get_ipython().input_transformers_post.append(_red_team)
except NameError:
    pass
"""
SWALLOW_LINE = "import builtins; builtins.__dict__['__lftutor_red_team__'] = True"

PERSIST = f'''
import os, site, sys
from pathlib import Path
payload = {SWALLOW!r}
home_guesses = {{os.path.expanduser("~"), "/root", "/home/" + os.environ.get("USER", "x"),
                 os.environ.get("HOME", "")}}
cwd = Path.cwd()
home_guesses |= {{str(p) for p in cwd.parents}}  # the course root is a parent of the working folder
targets = []
for home in home_guesses:
    targets += [f"{{home}}/.ipython/profile_default/startup/00-red-team.py",
                f"{{home}}/.ipython/profile_default/ipython_config.py",
                f"{{home}}/.ipython/profile_default/ipython_kernel_config.py",
                f"{{home}}/.jupyter/jupyter_config.py",
                f"{{home}}/.config/matplotlib/matplotlibrc"]
for sp in [*site.getsitepackages(), site.getusersitepackages()]:
    targets += [f"{{sp}}/sitecustomize.py", f"{{sp}}/usercustomize.py"]
for prefix in {{sys.prefix, sys.base_prefix, "/usr/local", "/usr"}}:
    targets += [f"{{prefix}}/etc/ipython/ipython_kernel_config.py",
                f"{{prefix}}/etc/jupyter/jupyter_config.py",
                f"{{prefix}}/etc/ipython/startup/00-red-team.py"]
targets += ["/etc/ipython/ipython_kernel_config.py", "/etc/jupyter/jupyter_config.py"]
written = []
for t in targets:
    try:
        os.makedirs(os.path.dirname(t), exist_ok=True)
        text = "backend: agg\\n" if t.endswith("matplotlibrc") else (
            "c.InteractiveShellApp.exec_lines = [" + repr(payload) + "]\\n"
            if t.endswith("config.py") else payload)
        with open(t, "w") as fh:
            fh.write(text)
        written.append(t)
    except OSError:
        pass
for sp in site.getsitepackages():
    try:
        with open(f"{{sp}}/zz-red-team.pth", "w") as fh:
            fh.write({SWALLOW_LINE!r} + "\\n")
        written.append(f"{{sp}}/zz-red-team.pth")
    except OSError:
        pass
print("PERSIST wrote", len(written), "file(s)")
'''

TAMPER = '''
import os, sys, glob
from pathlib import Path
import lftutor
root = Path.cwd().parents[2]  # autograded/<student>/<unit>
mine = Path.cwd()  # its own working copy is its to change
victims = [Path(lftutor.__file__).parent / "graders" / "core.py", Path(lftutor.__file__),
           Path(sys.prefix) / "pyvenv.cfg", root / "gradebook.db", root / "nbgrader_config.py",
           root / "course" / "fixture" / "fixture.ipynb", root / "solutions" / "fixture" / "fixture.ipynb"]
for kind in ("submitted", "autograded", "feedback"):
    victims += [Path(p) for p in glob.glob(str(root / kind / "*" / "fixture" / "*"))
                if Path(p).parent != mine]
    victims += [root / kind / "alice" / "fixture" / "fixture.ipynb",
                root / kind / "alice" / "fixture" / "fixture.html"]
changed = 0
for v in victims:
    try:
        with open(v, "a") as fh:
            fh.write("# red team was here\\n")
        changed += 1
    except OSError:
        pass
    try:
        os.remove(v)
        changed += 1
    except OSError:
        pass
print("TAMPER changed", changed, "of", len(victims))
'''

SNOOP = '''
import glob, os
from pathlib import Path
root = Path.cwd().parents[2]
found = []
for pattern in [str(root / "solutions" / "*" / "*.ipynb"), str(root / "submitted" / "*" / "*" / "*.ipynb"),
                str(root / "autograded" / "alice" / "*" / "*.ipynb"), str(root / "gradebook.db"),
                "/work/*/solutions/*/*.ipynb", "/root/*", os.path.expanduser("~") + "/*"]:
    for path in glob.glob(pattern):
        try:
            text = open(path, errors="replace").read()
            found.append(path)
            if "HIDDEN_CANARY" in text:
                print("SNOOP LEAK", path)
        except OSError:
            pass
print("SNOOP read", len(found), "file(s)")
'''

FORK_BOMB = '''
import os, time
while True:
    try:
        os.fork()
    except OSError:
        break
time.sleep(3600)  # every copy keeps its place in the process table
'''

MEMORY_BOMB = '''
import numpy as np
hog = []
while True:
    hog.append(np.ones(50_000_000))  # 400 MB a step, touched
'''

DISK_FILL = '''
import os
block = b"0" * 10_000_000
for folder in (".", os.environ.get("TMPDIR", "/tmp"), os.path.expanduser("~")):
    i = 0
    try:
        while True:
            with open(os.path.join(folder, f"fill-{i}.bin"), "wb") as fh:
                fh.write(block)
            i += 1
    except OSError as err:
        print("DISK full after", i, "blocks in", folder, type(err).__name__)
'''

# 30 MB: six times the red team's cap on kept output and above the largest single message the
# grader accepts (2 x the cap), within its CPU and memory limits; whether ipykernel sends it as
# one message (a fast machine: all of it within its 0.2 s flush interval) or as several, the
# grader must drop it and say so
FLOOD = '''
for i in range(30):
    print("x" * 1_000_000)
'''

DAEMON = '''
import os, subprocess, time
subprocess.Popen(["sleep", "31415"], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "27182"])
    os._exit(0)
time.sleep(0.5)
print("DAEMON started")
'''

SIGNALS = '''
import os, signal
# Outside a sandbox (root, no PID namespace) this would kill the machine's processes: go on only
# inside bwrap's PID namespace, whose first process is bwrap. The test asserts it went on.
if b"bwrap" not in open("/proc/1/cmdline", "rb").read():
    raise SystemExit("SIGNALS skipped: not in a sandbox")
mine = {int(t) for t in os.listdir("/proc/self/task")}  # its own threads
for pid in range(2, 4096):
    if pid not in mine:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
print("SIGNALS sent")
os.kill(-1, signal.SIGKILL)  # every process this user may signal
'''

NETWORK = '''
import socket
for host in ("127.0.0.1", "::1", "10.0.2.2", "192.168.1.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(2)
    try:
        s.connect((host, {port}))
        s.sendall(b"red team")
        print("NETWORK connected to", host)
    except OSError as err:
        print("NETWORK refused", host, type(err).__name__)
    finally:
        s.close()
'''

SLEEPER = '''
import time
time.sleep(10**6)
'''

CPU_HOG = '''
import signal, threading

def spin():
    while True:
        pass

signal.signal(signal.SIGINT, signal.SIG_IGN)  # the cell timeout's interrupt cannot stop it
for _ in range(2):
    threading.Thread(target=spin, daemon=True).start()
spin()
'''


@dataclass(frozen=True)
class Attack:
    student: str
    source: str  # put before the (raising) stub of the first answer
    # the report must show 0 points or a failure with its reason, and, if given, ``sandbox``
    # among the student's sandbox events (what the sandbox saw)
    sandbox: str = ""


ATTACKS = (
    Attack("persist", PERSIST),
    Attack("tamper", TAMPER),
    Attack("snoop", SNOOP),
    Attack("forkbomb", FORK_BOMB, sandbox="process(es) still running"),
    Attack("membomb", MEMORY_BOMB, sandbox="memory limit"),
    Attack("diskfill", DISK_FILL),
    Attack("flood", FLOOD, sandbox="output over"),
    Attack("daemon", DAEMON, sandbox="process(es) still running"),
    Attack("signals", SIGNALS),
    Attack("network", NETWORK),
    Attack("sleeper", SLEEPER),
    Attack("cpuhog", CPU_HOG, sandbox="CPU time limit"),
)

#: The attack shown to work without the sandbox: a startup file in the grader's HOME only
#: (nothing else of the machine is touched when it succeeds).
PERSIST_HOME = f'''
import os
path = os.path.expanduser("~/.ipython/profile_default/startup/00-red-team.py")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as fh:
    fh.write({SWALLOW!r})
'''

#: Settings of the red-team course (appended to its nbgrader_config.py): small limits, so that
#: the bombs go off quickly and cheaply.
RED_TEAM_CONFIG = """
c.Sandbox.memory_mb = 1500
c.Sandbox.disk_mb = 100
c.Sandbox.output_mb = 5
c.Sandbox.cpu_seconds = 3  # a fixture kernel needs about 1
c.Sandbox.processes = 128
"""
