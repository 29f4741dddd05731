#!/usr/bin/env bash
# Installs everything propbot and its tests need, idempotently: a virtualenv with propbot (editable, with
# the dev and otel extras) and, where it is missing, redis-server (the test suite starts its own on a free port).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Reinstall only when the project's requirements changed since the last install.
stamp=.venv/.propbot-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,otel]"
  touch "$stamp"
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server </dev/null
  else
    echo "redis-server is missing and apt-get is not available: install Redis 6.2+ first" >&2
    exit 1
  fi
fi
