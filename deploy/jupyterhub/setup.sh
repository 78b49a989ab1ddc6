#!/usr/bin/env bash
# Bring up the lftutor course hub on one Debian/Ubuntu machine (run as root from a checkout of the
# repository; see README.md in this folder). Idempotent: run it again to add accounts.
#   sudo deploy/jupyterhub/setup.sh --instructor alice --students roster.txt
# roster.txt: one login name per line (no underscore, no '+'). New accounts get a random password,
# printed once; change it with passwd.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
COURSE_DIR=${LFTUTOR_COURSE_DIR:-/srv/lftutor}
ENV_DIR=${LFTUTOR_ENV:-/opt/lftutor/venv}
EXCHANGE=${LFTUTOR_EXCHANGE:-/srv/nbgrader/exchange}
INSTRUCTORS=${LFTUTOR_INSTRUCTORS:-lftutor-instructors}
STUDENTS=${LFTUTOR_STUDENTS:-lftutor-students}
STATE=${LFTUTOR_HUB_STATE:-/srv/jupyterhub}
CONFIG=/etc/lftutor-hub
instructors=(); roster=""
while [ $# -gt 0 ]; do
  case "$1" in
    --instructor) instructors+=("$2"); shift 2 ;;
    --students) roster="$2"; shift 2 ;;
    *) echo "usage: $0 --instructor NAME [--instructor NAME2] [--students ROSTER]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

# 1. system packages: the hub's proxy, the grading sandbox, a Python every account can run
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3 python3-venv git bubblewrap \
  node-configurable-http-proxy

# 2. the environment of every server and kernel: readable by all, lftutor as a package (a copy,
#    not the checkout: students must not reach solutions/); CPU build of torch
if [ ! -x "$ENV_DIR/bin/python" ]; then python3 -m venv "$ENV_DIR"; fi
"$ENV_DIR/bin/pip" install -q "torch>=2.1" --extra-index-url https://download.pytorch.org/whl/cpu
"$ENV_DIR/bin/pip" install -q "$repo[course]" "jupyterhub>=5"
chmod -R a+rX "$ENV_DIR"

# 3. groups and accounts (HOME 0700: nobody reads another student's work)
getent group "$INSTRUCTORS" >/dev/null || groupadd "$INSTRUCTORS"
getent group "$STUDENTS" >/dev/null || groupadd "$STUDENTS"
add_user() {  # NAME GROUP
  if ! id "$1" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash -K HOME_MODE=0700 --groups "$2" "$1"
    pw="$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
    echo "$1:$pw" | chpasswd
    echo "account $1 ($2): password $pw"
  else
    usermod -a -G "$2" "$1"; chmod 0700 "$(getent passwd "$1" | cut -d: -f6)"
  fi
}
for name in "${instructors[@]}"; do add_user "$name" "$INSTRUCTORS"; done
if [ -n "$roster" ]; then
  grep -v '^\s*\(#\|$\)' "$roster" | while read -r name; do add_user "$name" "$STUDENTS"; done
fi

# 4. the course directory: a checkout, shared by the instructors' group only (solutions/, the
#    gradebook and the submissions stay out of students' reach)
if [ ! -d "$COURSE_DIR/.git" ]; then git clone -q "$repo" "$COURSE_DIR"; fi
chgrp -R "$INSTRUCTORS" "$COURSE_DIR"
chmod -R u+rwX,g+rwX,o-rwx "$COURSE_DIR"
find "$COURSE_DIR" -type d -exec chmod g+s {} +

# 5. nbgrader's exchange, as nbgrader documents it (world-writable; release_assignment makes the
#    course's inbound/outbound/feedback folders inside with their own modes)
mkdir -p "$EXCHANGE"
chmod ugo+rw "$EXCHANGE"

# 6. the hub's configuration where every account can read it, and its state where only root can
mkdir -p "$CONFIG" "$STATE"
cp -r "$here/jupyterhub_config.py" "$here/jupyter" "$CONFIG/"
chmod -R a+rX "$CONFIG"
chmod 0700 "$STATE"
cat <<MSG
Start the hub (as root; put it behind TLS, or set LFTUTOR_HUB_URL):
  cd $STATE && LFTUTOR_ENV=$ENV_DIR LFTUTOR_COURSE_DIR=$COURSE_DIR LFTUTOR_EXCHANGE=$EXCHANGE \\
    $ENV_DIR/bin/jupyterhub -f $CONFIG/jupyterhub_config.py
MSG
