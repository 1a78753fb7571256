#!/usr/bin/env bash
# Creates .venv and installs the project with its development extras; re-runs only when
# pyproject.toml changed. Sourced by scripts/demo and scripts/test.
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
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "videobooth: installing dependencies into .venv (first run takes a minute)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
