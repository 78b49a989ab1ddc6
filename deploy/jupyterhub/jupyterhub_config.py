"""JupyterHub for one lftutor class on one machine (deploy/jupyterhub/README.md).

* One Unix account per person; PAM checks passwords. Members of the instructors' group
  (``lftutor-instructors``) get nbgrader's instructor tools and the course directory, members
  of the students' group (``lftutor-students``) get JupyterLab in their HOME with nbgrader's
  Assignments list (fetch, validate, submit, fetch feedback). Nobody else may log in.
* Every single-user server runs as its user (LocalProcessSpawner: the hub runs as root) from the
  course's Python environment, which every account can read and which holds ``lftutor`` as an
  installed package (not an editable checkout: students must not see ``solutions/``).
* The proxy is ``configurable-http-proxy`` (Debian: ``apt-get install
  node-configurable-http-proxy``; npm: ``npm install -g configurable-http-proxy``).
* Assignments and submissions go through nbgrader's exchange (``/srv/nbgrader/exchange``,
  mode 0777 as nbgrader documents; the course folder inside it is made by ``release_assignment``).

The Jupyter settings each user's server reads are in ``jupyter/`` beside this file (found
through JUPYTER_CONFIG_PATH, set per user below): ``common`` (course id, exchange), ``student``
(no instructor tools), ``instructor`` (the course's own ``nbgrader_config.py``, with its grading
sandbox). Every path can be changed with an environment variable of the hub, see SETTINGS.
"""

import grp
import os
import pwd
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

#: Settings (environment variable of the hub -> default).
SETTINGS = {
    "LFTUTOR_COURSE_DIR": "/srv/lftutor",  # git checkout of this repository: the course directory
    "LFTUTOR_ENV": "/opt/lftutor/venv",  # Python environment of every user's server and kernel
    "LFTUTOR_EXCHANGE": "/srv/nbgrader/exchange",  # nbgrader's exchange
    "LFTUTOR_INSTRUCTORS": "lftutor-instructors",  # Unix group of instructors (and TAs)
    "LFTUTOR_STUDENTS": "lftutor-students",  # Unix group of students
    "LFTUTOR_HUB_STATE": "/srv/jupyterhub",  # the hub's database and cookie secret (root only)
    "LFTUTOR_HUB_URL": "http://:8000",  # where the hub listens (put TLS in front of it)
}
S = {name: os.environ.get(name, default) for name, default in SETTINGS.items()}

c = get_config()  # noqa: F821 - provided by JupyterHub

c.JupyterHub.bind_url = S["LFTUTOR_HUB_URL"]
c.JupyterHub.db_url = "sqlite:///" + os.path.join(S["LFTUTOR_HUB_STATE"], "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(S["LFTUTOR_HUB_STATE"], "jupyterhub_cookie_secret")

# Debian's configurable-http-proxy finds its node modules only through NODE_PATH.
if os.path.isdir("/usr/share/nodejs"):
    os.environ.setdefault("NODE_PATH", "/usr/share/nodejs")

# --- who may log in --------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {S["LFTUTOR_INSTRUCTORS"], S["LFTUTOR_STUDENTS"]}
c.PAMAuthenticator.admin_groups = {S["LFTUTOR_INSTRUCTORS"]}
c.PAMAuthenticator.create_system_users = False  # accounts are made by setup.sh (useradd)

# --- each user's server ------------------------------------------------------------------------
ENV_BIN = os.path.join(S["LFTUTOR_ENV"], "bin")
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [os.path.join(ENV_BIN, "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = {
    # nbgrader shells out to alembic: the environment's bin/ first
    "PATH": ENV_BIN + ":/usr/local/bin:/usr/bin:/bin",
    "LFTUTOR_EXCHANGE": S["LFTUTOR_EXCHANGE"],
    "LFTUTOR_COURSE_DIR": S["LFTUTOR_COURSE_DIR"],
}


def is_instructor(name: str) -> bool:
    """Whether Unix user ``name`` is in the instructors' group (as a member or its primary group)."""
    try:
        group = grp.getgrnam(S["LFTUTOR_INSTRUCTORS"])
    except KeyError:
        return False
    if name in group.gr_mem:
        return True
    try:
        return pwd.getpwnam(name).pw_gid == group.gr_gid
    except KeyError:
        return False


def role_settings(spawner) -> None:
    """Instructors: nbgrader's instructor tools, the server opened on the course directory.
    Students: their HOME, the Assignments list, no instructor tools."""
    config = os.path.join(HERE, "jupyter")
    env = dict(spawner.environment)
    if is_instructor(spawner.user.name):
        env["JUPYTER_CONFIG_PATH"] = f"{config}/instructor:{config}/common"
        spawner.notebook_dir = S["LFTUTOR_COURSE_DIR"]
    else:
        env["JUPYTER_CONFIG_PATH"] = f"{config}/student:{config}/common"
        spawner.notebook_dir = "~"
    spawner.environment = env
    spawner.log.info("lftutor: %s starts as %s", spawner.user.name,
                     "instructor" if is_instructor(spawner.user.name) else "student")


c.Spawner.pre_spawn_hook = role_settings

if not os.path.exists(c.Spawner.cmd[0]):  # a clear message instead of a failed spawn later
    print(f"jupyterhub_config.py: no {c.Spawner.cmd[0]}: set LFTUTOR_ENV to the course's "
          "Python environment (deploy/jupyterhub/README.md)", file=sys.stderr)
