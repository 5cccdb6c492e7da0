#!/usr/bin/env bash
# The API contract, checked with the ecosystem's own tools against a running
# server (SQLite, a throwaway data folder):
#   1. schemathesis generates requests from /openapi.json and checks every reply
#      against it (tests/contract/schemathesis.toml says which checks);
#   2. openapi-python-client generates a Python client from the same document,
#      and tests/contract/client_test.py drives a customer's life through it;
#   3. tests/contract/webhooks_test.py verifies webhook deliveries with the
#      Standard Webhooks reference library (`standardwebhooks`).
# The tools are pinned and installed into a virtualenv under the target folder.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bin clientele
TARGET=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
BIN="$TARGET/debug/clientele"

VENV="$TARGET/contract-venv"
TOOLS=(schemathesis==4.32.5 openapi-python-client==0.29.1 standardwebhooks==1.3.0)
if ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "${TOOLS[2]}"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${TOOLS[@]}"
fi

WORK=$(mktemp -d)
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CLIENTELE_DATA_DIR="$WORK/data"
export CLIENTELE_DATABASE_URL="sqlite://$WORK/data/clientele.db"
export CLIENTELE_LISTEN="127.0.0.1:$PORT"
# The generators send thousands of requests from one address with one key.
export CLIENTELE_RATE_LIMIT_PER_KEY=0 CLIENTELE_RATE_LIMIT_PER_ADDRESS=0 CLIENTELE_AUTH_FAILURES_PER_MINUTE=0
export CLIENTELE_LOG_FORMAT=json RUST_LOG=warn
# The webhook check's receiver listens on loopback.
export CLIENTELE_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true

MERCHANT=$("$BIN" merchant create --name Contract 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["merchantId"])')
scopes=()
for s in customers:read customers:write payment_methods:write payment_methods:reveal credit:write webhooks:write; do
  scopes+=(--scope "$s")
done
CLIENTELE_CONTRACT_KEY=$("$BIN" api-key create --merchant "$MERCHANT" "${scopes[@]}" 2>/dev/null |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["apiKey"])')
export CLIENTELE_CONTRACT_KEY
export CLIENTELE_CONTRACT_URL="http://127.0.0.1:$PORT"

"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do
  curl -fsS "$CLIENTELE_CONTRACT_URL/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$CLIENTELE_CONTRACT_URL/openapi.json" -o "$WORK/openapi.json"

# Ids for the routes behind one (a customer with a card, a provider link, a credit
# account): the fixtures' own script prints them as schemathesis' parameters.
"$VENV/bin/python" tests/contract/fixtures.py >"$WORK/parameters.env"
set -a
# shellcheck disable=SC1091
. "$WORK/parameters.env"
set +a

echo "[contract] schemathesis against $CLIENTELE_CONTRACT_URL" >&2
(cd tests/contract && "$VENV/bin/st" run "$CLIENTELE_CONTRACT_URL/openapi.json" --no-color)

echo "[contract] a generated Python client" >&2
"$VENV/bin/openapi-python-client" generate --path "$WORK/openapi.json" \
  --output-path "$WORK/clientele_client" --meta none >"$WORK/generate.log" 2>&1 || {
  cat "$WORK/generate.log" >&2
  exit 1
}
# The generator leaves out only the NDJSON streams (import, export), which it
# cannot describe; anything else it skips is a fault in the document.
if grep '^WARNING' "$WORK/generate.log" | grep -v -e 'POST /pay-api/v1/customers/import' -e 'GET /pay-api/v1/customers/export'; then
  cat "$WORK/generate.log" >&2
  echo "[contract] the generator skipped part of the document" >&2
  exit 1
fi
PYTHONPATH="$WORK" "$VENV/bin/python" tests/contract/client_test.py

echo "[contract] webhook signatures" >&2
"$VENV/bin/python" tests/contract/webhooks_test.py

if grep -q '"level":"ERROR"' "$WORK/server.log"; then
  grep '"level":"ERROR"' "$WORK/server.log" >&2
  echo "[contract] the server logged errors" >&2
  exit 1
fi
echo "[contract] passed" >&2
