#!/usr/bin/env bash
# Quick load measurement: release server pinned to CPU 0, wrk pinned to CPU 1,
# 64 connections, a warm-up before each measured run, and /healthz measured in
# the same run as the floor the figures are ratios of.
#
#   bench/run.sh                      # SQLite in a temp folder
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench bench/run.sh
#   DURATION=20s CONNECTIONS=64 bench/run.sh
#   SEED=100000 bench/run.sh          # customers imported first (default 1,000,000)
# With PostgreSQL it also runs bench/pgbench.sh and prints each route's ratio to it.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-18080}
SEED=${SEED:-1000000}
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null
  fi
  command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
fi
# BENCH_BIN: measure an already built binary (an older commit, say) instead of this tree.
if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release --quiet
fi
BIN=${BENCH_BIN:-$PWD/target/release/clientele}
WORK=$(mktemp -d)
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
export CLIENTELE_DATABASE_URL=${BENCH_DATABASE_URL:-sqlite://$WORK/bench.db}
export CLIENTELE_DATA_DIR=$WORK
export CLIENTELE_LISTEN=127.0.0.1:$PORT
# One key from one address at tens of thousands of requests a second: the rate
# limits stay on (their cost is measured) but far above the load.
export CLIENTELE_RATE_LIMIT_PER_KEY=${CLIENTELE_RATE_LIMIT_PER_KEY:-1000000000}
export CLIENTELE_RATE_LIMIT_PER_ADDRESS=${CLIENTELE_RATE_LIMIT_PER_ADDRESS:-1000000000}
CREATED=$("$BIN" merchant create --name Bench 2>/dev/null)
BENCH_KEY=$(sed -E 's/.*"apiKey":"([^"]+)".*/\1/' <<<"$CREATED")
MERCHANT=$(sed -E 's/.*"merchantId":"([^"]+)".*/\1/' <<<"$CREATED")
export BENCH_KEY

# Seed: realistic customers through the bulk import, timed, then exported, timed.
python3 bench/seed.py "$SEED" > "$WORK/seed.ndjson"
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
T0=$(date +%s.%N)
"$BIN" import "$WORK/seed.ndjson" --merchant "$MERCHANT" > "$WORK/import.out" 2>/dev/null
T1=$(date +%s.%N)
"$BIN" export --merchant "$MERCHANT" -o "$WORK/export.ndjson" 2>/dev/null
T2=$(date +%s.%N)
IMPORT_S=$(secs "$T0" "$T1"); EXPORT_S=$(secs "$T1" "$T2")
grep -q "\"created\":$SEED," "$WORK/import.out" || { echo "the import did not create $SEED customers:" >&2; tail -3 "$WORK/import.out" >&2; exit 1; }
# Queries over the seeded data: one-word searches (last names) and exact emails.
shuf -n 2000 --random-source=<(yes) "$WORK/seed.ndjson" > "$WORK/sample"
sed -E 's/.*"lastName":"([^"]+)".*/\/pay-api\/v1\/customers?search=\1/' "$WORK/sample" > "$WORK/searches"
sed -E 's/.*"email":"([^"]+)".*/\/pay-api\/v1\/customers?email=\1/' "$WORK/sample" > "$WORK/emails"
rm -f "$WORK/seed.ndjson" "$WORK/export.ndjson"

taskset -c 0 "$BIN" serve >/dev/null 2>"$WORK/server.log" &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
BASE="http://127.0.0.1:$PORT"

# name url [script]: warm up, measure, print a markdown row.
measure() {
  local name=$1 url=$2 script=${3:-}
  local args=(-t1 -c"$CONNECTIONS" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  taskset -c 1 wrk "${args[@]}" -d"$WARMUP" "$url" >/dev/null
  local out; out=$(taskset -c 1 wrk "${args[@]}" -d"$DURATION" "$url")
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '| %s | %.0f | %s | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "${errors:-0}"
  echo "$rps" > "$WORK/rps-$name"
}

echo "| route | requests/s | p50 | p99 | non-2xx |"
echo "|---|---:|---:|---:|---:|"
measure healthz "$BASE/healthz"
# 5,000 customers to add cards to: a customer holds at most 100 payment methods.
for page in $(seq 1 50); do
  curl -sf -H "Authorization: Bearer $BENCH_KEY" "$BASE/pay-api/v1/customers?pageSize=100&page=$page" \
    | grep -oE '"id":"[0-9a-f-]{36}","merchantId"' | cut -d'"' -f4
done > "$WORK/ids"
export BENCH_IDS=$WORK/ids
measure get "$BASE/pay-api/v1/customers/x" bench/get.lua
BENCH_PATHS=$WORK/searches measure search-one-word "$BASE/" bench/query.lua
BENCH_PATHS=$WORK/emails measure email-filter "$BASE/" bench/query.lua
measure create "$BASE/pay-api/v1/customers" bench/create.lua
measure add-card "$BASE/pay-api/v1/customers/x" bench/add_card.lua
# 200 customers with exactly 3 cards each, for the read path of the vault.
for i in $(seq 1 200); do
  body='{"firstName":"Three","lastName":"Cards","paymentMethodsCards":['
  for k in 1 2 3; do
    pan=$(python3 -c "p='5$(printf '%02d' "$k")$(printf '%012d' "$i")'
print(next(p+str(d) for d in range(10) if sum((int(c)*2-9 if int(c)*2>9 else int(c)*2) if j%2 else int(c) for j,c in enumerate(reversed(p+str(d))))%10==0))")
    body+="{\"pan\":\"$pan\",\"expirationMonth\":12,\"expirationYear\":2035}"
    [ "$k" -lt 3 ] && body+=','
  done
  body+=']}'
  curl -sf -H "Authorization: Bearer $BENCH_KEY" -H 'Content-Type: application/json' -d "$body" "$BASE/pay-api/v1/customers" \
    | cut -d'"' -f4
done > "$WORK/ids3"
BENCH_IDS=$WORK/ids3 measure get-with-3-cards "$BASE/pay-api/v1/customers/x" bench/get.lua
measure healthz-again "$BASE/healthz"
RSS=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
# PostgreSQL: its own point-select and single-insert rates in the same run, and
# the routes as ratios to them (reads to the select, writes to the insert).
if [[ $CLIENTELE_DATABASE_URL == postgres* ]]; then
  bench/pgbench.sh "$CLIENTELE_DATABASE_URL" > "$WORK/pgbench"
  SELECT_TPS=$(awk '$1=="select" {print $2}' "$WORK/pgbench")
  INSERT_TPS=$(awk '$1=="insert" {print $2}' "$WORK/pgbench")
  echo
  echo "pgbench, 64 clients on CPU 1: point select $SELECT_TPS tps, single-row insert $INSERT_TPS tps"
  echo
  echo "| route | ratio to pgbench |"
  echo "|---|---:|"
  for r in get get-with-3-cards search-one-word email-filter; do
    printf '| %s | %.2f × select |\n' "$r" "$(python3 -c "print($(cat "$WORK/rps-$r") / $SELECT_TPS)")"
  done
  for r in create add-card; do
    printf '| %s | %.2f × insert |\n' "$r" "$(python3 -c "print($(cat "$WORK/rps-$r") / $INSERT_TPS)")"
  done
fi
echo
echo "import of $SEED customers: ${IMPORT_S} s; export: ${EXPORT_S} s (command line, before the server started)"
echo "customers stored: $(curl -sf -H "Authorization: Bearer $BENCH_KEY" "$BASE/pay-api/v1/customers?pageSize=1" | sed -E 's/.*"total":([0-9]+).*/\1/'); server peak RSS: $((RSS / 1024)) MiB"
echo "backend: ${CLIENTELE_DATABASE_URL%%:*}; $(nproc) cores; wrk $CONNECTIONS connections, ${DURATION} after ${WARMUP} warm-up"
