#!/usr/bin/env bash
# PostgreSQL's own ceiling on this machine, for the PostgreSQL row of the README:
# pgbench with the same 64 connections, each transaction one single-row INSERT
# (a durable commit, like a customer create), 10 s after a 3 s warm-up.
#
#   bench/pgbench.sh postgres://postgres@127.0.0.1:5432/clientele_bench
set -euo pipefail
URL=${1:?usage: bench/pgbench.sh POSTGRES_URL}
CONNECTIONS=${CONNECTIONS:-64}
SCRIPT=$(mktemp)
trap 'rm -f "$SCRIPT"' EXIT
psql -q "$URL" -c "DROP TABLE IF EXISTS pgbench_single_insert" \
  -c "CREATE TABLE pgbench_single_insert (id bigserial PRIMARY KEY, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
echo "INSERT INTO pgbench_single_insert (body) VALUES ('customer ' || random());" > "$SCRIPT"
taskset -c 1 pgbench -n -c "$CONNECTIONS" -j 1 -T 3 -f "$SCRIPT" "$URL" >/dev/null
taskset -c 1 pgbench -n -c "$CONNECTIONS" -j 1 -T 10 -f "$SCRIPT" "$URL" | grep -E "^tps|latency average"
psql -q "$URL" -c "DROP TABLE pgbench_single_insert"
