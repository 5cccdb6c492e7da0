#!/usr/bin/env bash
# Quick load measurement: release server pinned to CPU 0, wrk pinned to CPU 1,
# 64 connections, a warm-up before each measured run, and /healthz measured in
# the same run as the floor the figures are ratios of.
#
#   bench/run.sh                      # SQLite in a temp folder
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench bench/run.sh
#   DURATION=20s CONNECTIONS=64 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-18080}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet
BIN=$PWD/target/release/clientele
WORK=$(mktemp -d)
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
export CLIENTELE_DATABASE_URL=${BENCH_DATABASE_URL:-sqlite://$WORK/bench.db}
export CLIENTELE_DATA_DIR=$WORK
export CLIENTELE_LISTEN=127.0.0.1:$PORT
BENCH_KEY=$("$BIN" merchant create --name Bench 2>/dev/null | sed -E 's/.*"apiKey":"([^"]+)".*/\1/')
export BENCH_KEY
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
measure create "$BASE/pay-api/v1/customers" bench/create.lua
for page in $(seq 1 10); do
  curl -sf -H "Authorization: Bearer $BENCH_KEY" "$BASE/pay-api/v1/customers?pageSize=100&page=$page" \
    | grep -oE '"id":"[0-9a-f-]{36}","merchantId"' | cut -d'"' -f4
done > "$WORK/ids"
export BENCH_IDS=$WORK/ids
measure get "$BASE/pay-api/v1/customers/x" bench/get.lua
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
echo
echo "customers stored: $(curl -sf -H "Authorization: Bearer $BENCH_KEY" "$BASE/pay-api/v1/customers?pageSize=1" | sed -E 's/.*"total":([0-9]+).*/\1/'); server peak RSS: $((RSS / 1024)) MiB"
echo "backend: ${CLIENTELE_DATABASE_URL%%:*}; $(nproc) cores; wrk $CONNECTIONS connections, ${DURATION} after ${WARMUP} warm-up"
