#!/usr/bin/env bash
# Runs the whole test suite, on SQLite and on PostgreSQL.
#
# PostgreSQL: TEST_POSTGRES_URL when set, else whatever scripts/postgres.sh finds
# or starts. The PostgreSQL half is never skipped: if no server can be had, this
# script fails.
set -euo pipefail
cd "$(dirname "$0")/.."

TEST_POSTGRES_URL=$(scripts/postgres.sh)
export TEST_POSTGRES_URL
echo "[test] PostgreSQL: $TEST_POSTGRES_URL" >&2

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
  cargo test --doc --quiet # nextest does not run doctests
else
  cargo test "$@"
fi
