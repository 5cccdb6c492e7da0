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

# shellcheck source=scripts/throwaway.sh
. scripts/throwaway.sh
venv contract-venv schemathesis==4.32.5 openapi-python-client==0.29.1 standardwebhooks==1.3.0
# The generators send thousands of requests from one address with one key.
export CLIENTELE_RATE_LIMIT_PER_KEY=0 CLIENTELE_RATE_LIMIT_PER_ADDRESS=0 CLIENTELE_AUTH_FAILURES_PER_MINUTE=0
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
export CLIENTELE_CONTRACT_URL="$BASE_URL"
start_server
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

server_logged_no_errors
echo "[contract] passed" >&2
