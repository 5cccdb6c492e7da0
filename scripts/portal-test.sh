#!/usr/bin/env bash
# The merchant portal in a real browser: Debian's Chromium (installed with apt
# when missing) driven by Playwright (pinned, in a virtualenv under the target
# folder), against a server on a throwaway SQLite database.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bin clientele
TARGET=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
BIN="$TARGET/debug/clientele"

CHROMIUM=${CHROMIUM:-$(command -v chromium || true)}
if [ -z "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
  fi
  CHROMIUM=$(command -v chromium) || { echo "Chromium is needed: apt-get install chromium" >&2; exit 1; }
fi
export CHROMIUM

VENV="$TARGET/portal-venv"
PLAYWRIGHT=playwright==1.65.2
if ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "$PLAYWRIGHT"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PLAYWRIGHT"
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
export CLIENTELE_LOG_FORMAT=json RUST_LOG=warn
json() { python3 -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

CREATED=$("$BIN" merchant create --name Portal 2>/dev/null)
MERCHANT=$(json merchantId <<<"$CREATED")
KEY=$("$BIN" api-key create --merchant "$MERCHANT" --scope customers:read --scope customers:write \
  --scope payment_methods:write 2>/dev/null | json apiKey)
export PORTAL_ADMIN=admin@example.com
PORTAL_ADMIN_PASSWORD=$("$BIN" user create --merchant "$MERCHANT" --email "$PORTAL_ADMIN" --role admin 2>/dev/null | json password)
export PORTAL_ADMIN_PASSWORD
export PORTAL_VIEWER=viewer@example.com
PORTAL_VIEWER_PASSWORD=$("$BIN" user create --merchant "$MERCHANT" --email "$PORTAL_VIEWER" --role viewer 2>/dev/null | json password)
export PORTAL_VIEWER_PASSWORD

"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
export PORTAL_URL="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -fsS "$PORTAL_URL/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

export PORTAL_PAN="4111 1111 1111 1111"
PORTAL_CUSTOMER_ID=$(curl -fsS -X POST "$PORTAL_URL/pay-api/v1/customers" -H "Authorization: Bearer $KEY" \
  -H 'content-type: application/json' -d "{\"firstName\": \"Ada\", \"lastName\": \"Lovelace\",
  \"email\": \"ada@example.com\", \"mobilePhoneNumber\": \"+14165550199\",
  \"billingAddress\": {\"line1\": \"55 University Ave\", \"city\": \"Toronto\", \"state\": \"ON\", \"postalCode\": \"M5J 2H7\", \"country\": \"CA\"},
  \"paymentMethodsCards\": [{\"pan\": \"$PORTAL_PAN\", \"expirationMonth\": 12, \"expirationYear\": 2035}]}" | json id)
export PORTAL_CUSTOMER_ID
PORTAL_CARD_ID=$(curl -fsS "$PORTAL_URL/pay-api/v1/customers/$PORTAL_CUSTOMER_ID" -H "Authorization: Bearer $KEY" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["cards"][0]["id"])')
export PORTAL_CARD_ID
for name in "Grace Hopper" "Alan Turing" "Barbara Liskov"; do
  curl -fsS -X POST "$PORTAL_URL/pay-api/v1/customers" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d "{\"firstName\": \"${name% *}\", \"lastName\": \"${name#* }\"}" >/dev/null
done

"$VENV/bin/python" tests/portal/portal_test.py
if grep -q '"level":"ERROR"' "$WORK/server.log"; then
  grep '"level":"ERROR"' "$WORK/server.log" >&2
  echo "[portal] the server logged errors" >&2
  exit 1
fi
