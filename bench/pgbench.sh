#!/usr/bin/env bash
# PostgreSQL's own ceiling on this machine: pgbench with the same 64 connections
# as wrk, pinned like it (CPU 1), 10 s after a 3 s warm-up each, on two tables of
# its own:
#   select  a point select by primary key on 200,000 rows of ~600 bytes (a customer row's size)
#   insert  one single-row INSERT per transaction (a durable commit, like a create)
# Prints `select <tps>` and `insert <tps>`; bench/run.sh prints routes as ratios to them.
#
#   bench/pgbench.sh postgres://postgres@127.0.0.1:5432/clientele_bench
set -euo pipefail
URL=${1:?usage: bench/pgbench.sh POSTGRES_URL}
CONNECTIONS=${CONNECTIONS:-64}
export PGOPTIONS="-c client_min_messages=warning"
ROWS=${ROWS:-200000}
SCRIPT=$(mktemp)
trap 'rm -f "$SCRIPT"; psql -q "$URL" -c "DROP TABLE IF EXISTS pgbench_point, pgbench_single_insert" 2>/dev/null' EXIT
psql -q "$URL" -c "DROP TABLE IF EXISTS pgbench_point, pgbench_single_insert" \
  -c "CREATE TABLE pgbench_point (id bigint PRIMARY KEY, body text NOT NULL)" \
  -c "INSERT INTO pgbench_point SELECT i, repeat(md5(i::text), 19) FROM generate_series(1, $ROWS) AS i" \
  -c "ANALYZE pgbench_point" \
  -c "CREATE TABLE pgbench_single_insert (id bigserial PRIMARY KEY, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
run() { # name, script text
  echo "$2" > "$SCRIPT"
  taskset -c 1 pgbench -n -c "$CONNECTIONS" -j 1 -T 3 -f "$SCRIPT" "$URL" >/dev/null
  local tps
  tps=$(taskset -c 1 pgbench -n -c "$CONNECTIONS" -j 1 -T 10 -f "$SCRIPT" "$URL" | awk '/^tps/ {print $3}')
  printf '%s %.0f\n' "$1" "$tps"
}
run select "\\set id random(1, $ROWS)
SELECT * FROM pgbench_point WHERE id = :id;"
run insert "INSERT INTO pgbench_single_insert (body) VALUES ('customer ' || random());"
