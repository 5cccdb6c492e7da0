#!/usr/bin/env bash
# Webhooks under the create benchmark: the create rate without an endpoint and
# with one subscribed to every event, and each delivery's latency from its
# event to the receiver (examples/webhook_receiver.rs), p50 and p99, with
# /healthz measured in the same run. Server pinned to CPU 0; wrk and the
# receiver to CPU 1.
#
#   bench/webhooks.sh                 # SQLite in a temp folder
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench bench/webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-18080}
HOOK_PORT=${HOOK_PORT:-18090}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet --bin clientele --example webhook_receiver
BIN=$PWD/target/release/clientele
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
export CLIENTELE_DATABASE_URL=${BENCH_DATABASE_URL:-sqlite://$WORK/bench.db}
export CLIENTELE_DATA_DIR=$WORK
export CLIENTELE_LISTEN=127.0.0.1:$PORT
export CLIENTELE_RATE_LIMIT_PER_KEY=1000000000 CLIENTELE_RATE_LIMIT_PER_ADDRESS=1000000000
export CLIENTELE_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true
MERCHANT=$("$BIN" merchant create --name Bench 2>/dev/null | sed -E 's/.*"merchantId":"([^"]+)".*/\1/')
BENCH_KEY=$("$BIN" api-key create --merchant "$MERCHANT" --scope customers:read --scope customers:write \
  --scope webhooks:write 2>/dev/null | sed -E 's/.*"apiKey":"([^"]+)".*/\1/')
export BENCH_KEY

taskset -c 1 target/release/examples/webhook_receiver "127.0.0.1:$HOOK_PORT" &
PIDS+=($!)
taskset -c 0 "$BIN" serve >/dev/null 2>"$WORK/server.log" &
PIDS+=($!)
BASE="http://127.0.0.1:$PORT"
HOOKS="http://127.0.0.1:$HOOK_PORT"
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && curl -sf "$HOOKS/stats" >/dev/null && break; sleep 0.1; done

run() { # name url [script] → requests/s
  local args=(-t1 -c"$CONNECTIONS" --latency)
  [ -n "${3:-}" ] && args+=(-s "$3")
  taskset -c 1 wrk "${args[@]}" -d"$WARMUP" "$2" >/dev/null
  [ "$1" = create-with-endpoint ] && curl -sf -X POST "$HOOKS/reset"
  local out; out=$(taskset -c 1 wrk "${args[@]}" -d"$DURATION" "$2")
  printf '| %s | %.0f | %s | %s |\n' "$1" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
}

echo "| route | requests/s | p50 | p99 |"
echo "|---|---:|---:|---:|"
run healthz "$BASE/healthz"
run create "$BASE/pay-api/v1/customers" bench/create.lua
curl -sf -X POST "$BASE/pay-api/v1/webhook-endpoints" -H "Authorization: Bearer $BENCH_KEY" \
  -H 'content-type: application/json' -d "{\"url\": \"$HOOKS/hooks\", \"enabledEvents\": [\"*\"]}" >/dev/null
run create-with-endpoint "$BASE/pay-api/v1/customers" bench/create.lua
run healthz-again "$BASE/healthz"
# Wait for the queue to drain: the count stops growing.
last=-1
for _ in $(seq 1 600); do
  n=$(curl -sf "$HOOKS/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])')
  [ "$n" = "$last" ] && break
  last=$n
  sleep 1
done
echo
echo "deliveries of the measured run (event → receiver): $(curl -sf "$HOOKS/stats")"
