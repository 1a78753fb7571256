#!/usr/bin/env bash
# Creates .venv and installs the project with its development extras; re-runs only when
# pyproject.toml changed. Then node_modules for the web pages' checks (npm ci, re-run only when
# package-lock.json changed). Sourced by scripts/demo and scripts/test.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "videobooth: Python 3.11 or newer is needed as '$PYTHON'" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "videobooth: installing python3-venv" >&2
      apt-get install -y -q python3-venv >/dev/null
      "$PYTHON" -m venv .venv
    else
      echo "videobooth: '$PYTHON -m venv' failed; install python3-venv (sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi
stamp=.venv/.videobooth-installed
# The checkout's path too: the editable install points at one checkout (a venv shared with
# another checkout, or a moved one, is installed again for this one).
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $PWD"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "videobooth: installing dependencies into .venv (first run takes a minute)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi

# The web pages' lint and unit tests (ESLint, node --test) need Node.js 18.18 or newer and npm;
# their packages (package-lock.json, development only: nothing from npm is served) go into
# node_modules with `npm ci`, again whenever package-lock.json is newer than the installation
# (npm's own node_modules/.package-lock.json). NODE_READY says whether they can run.
NODE_READY=no
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "videobooth: Node.js and npm are missing: the web pages' lint and unit tests need them" \
    "(sudo apt-get install nodejs npm)" >&2
elif ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
    process.exit(a > 18 || (a === 18 && b >= 18) ? 0 : 1)'; then
  echo "videobooth: Node.js $(node --version) is too old for ESLint 9: 18.18 or newer is needed" \
    "(Debian 12's nodejs package has 18.19 and later)" >&2
else
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "videobooth: installing the web pages' lint and test tools into node_modules (npm ci)" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2
  fi
  NODE_READY=yes
fi
