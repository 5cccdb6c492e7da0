#!/usr/bin/env bash
# /healthz latency while clients run the most expensive searches there are:
# SEED customers imported (default 200,000), the release server pinned to CPU 0,
# wrk on CPU 1: /healthz alone, then /healthz again while 4 connections run
# searches no index narrows well (single letters, common email parts, sorts that
# read every match, punctuation).
#
#   bench/hostile.sh                  # SQLite in a temp folder
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench bench/hostile.sh
#   BENCH_BIN=/path/to/clientele bench/hostile.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
PORT=${PORT:-18081}
SEED=${SEED:-200000}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
[ -z "${BENCH_BIN:-}" ] && cargo build --release --quiet
BIN=${BENCH_BIN:-$PWD/target/release/clientele}
WORK=$(mktemp -d)
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
export CLIENTELE_DATABASE_URL=${BENCH_DATABASE_URL:-sqlite://$WORK/bench.db}
export CLIENTELE_DATA_DIR=$WORK
export CLIENTELE_LISTEN=127.0.0.1:$PORT
export CLIENTELE_RATE_LIMIT_PER_KEY=1000000000 CLIENTELE_RATE_LIMIT_PER_ADDRESS=1000000000
CREATED=$("$BIN" merchant create --name Hostile 2>/dev/null)
export BENCH_KEY; BENCH_KEY=$(sed -E 's/.*"apiKey":"([^"]+)".*/\1/' <<<"$CREATED")
MERCHANT=$(sed -E 's/.*"merchantId":"([^"]+)".*/\1/' <<<"$CREATED")
python3 bench/seed.py "$SEED" > "$WORK/seed.ndjson"
"$BIN" import "$WORK/seed.ndjson" --merchant "$MERCHANT" > /dev/null 2>&1 || true
rm -f "$WORK/seed.ndjson"
taskset -c 0 "$BIN" serve >/dev/null 2>"$WORK/server.log" &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
BASE="http://127.0.0.1:$PORT"
for q in "a" "a%20b%20c%20d%20e%20f%20g%20h%20i%20j" "com" "example" "a&orderBy=firstName" "e&asc=true" "a.b" "e.c" "%25%25%25"; do
  echo "/pay-api/v1/customers?search=$q"
done > "$WORK/worst"

healthz() {
  local out; out=$(taskset -c 1 wrk -t1 -c8 --latency -d"$DURATION" "$BASE/healthz")
  printf '%s | %s | %s' "$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
}
taskset -c 1 wrk -t1 -c8 -d3s "$BASE/healthz" >/dev/null
echo "| /healthz | requests/s | p50 | p99 | searches/s beside it | non-2xx searches |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| alone | $(healthz) | | |"
BENCH_PATHS=$WORK/worst taskset -c 1 wrk -t1 -c4 -d"$((${DURATION%s} + 4))s" -s bench/query.lua "$BASE/" > "$WORK/searches.out" &
SEARCHES=$!
sleep 2
UNDER=$(healthz)
wait $SEARCHES
echo "| beside the worst searches | $UNDER | $(awk '/Requests\/sec/ {printf "%.1f", $2}' "$WORK/searches.out") | $(awk '/Non-2xx/ {print $5}' "$WORK/searches.out") |"
echo
echo "backend: ${CLIENTELE_DATABASE_URL%%:*}; $SEED customers; $(nproc) cores"
