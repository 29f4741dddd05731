#!/usr/bin/env bash
# The test command: install what the tests need (dev and otel extras, redis-server), then run the whole
# suite (real redis-server, SQLite, and the local PostgreSQL when it answers; PROPBOT_REQUIRE_POSTGRES=1
# makes the PostgreSQL tests mandatory).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev
exec .venv/bin/python -m pytest "$@"
