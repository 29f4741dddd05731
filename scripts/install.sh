#!/usr/bin/env bash
# Installs propbot into .venv, idempotently.
#   bash scripts/install.sh        what `propbot serve` needs to run: the runtime dependencies, nothing else
#   bash scripts/install.sh --dev  also the dev and otel extras (pytest, ruff, mypy, OpenTelemetry) and, where
#                                  it is missing, redis-server (the test suite starts its own on a free port)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
case "${1:-}" in
  "") ;;
  --dev) extras="[dev,otel]" ;;
  *) echo "usage: bash scripts/install.sh [--dev]" >&2; exit 2 ;;
esac

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# The stamp holds what was installed; reinstall when the requirements changed since, or when the dev
# extras are wanted now and were not installed then (a dev install also satisfies a plain one).
stamp=.venv/.propbot-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || { [ -n "$extras" ] && [ "$(cat "$stamp")" != "$extras" ]; }; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extras"
  echo "$extras" >"$stamp"
fi

if [ -n "$extras" ] && ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server </dev/null
  else
    echo "redis-server is missing and apt-get is not available: install Redis 6.2+ first" >&2
    exit 1
  fi
fi
