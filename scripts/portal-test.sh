#!/usr/bin/env bash
# The merchant portal in a real browser: Debian's Chromium (installed with apt
# when missing) driven by Playwright (pinned, in a virtualenv under the target
# folder), against a server on a throwaway SQLite database.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/throwaway.sh
. scripts/throwaway.sh

CHROMIUM=${CHROMIUM:-$(command -v chromium || true)}
if [ -z "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
  fi
  CHROMIUM=$(command -v chromium) || { echo "Chromium is needed: apt-get install chromium" >&2; exit 1; }
fi
export CHROMIUM

venv portal-venv playwright==1.65.2
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

export PORTAL_URL="$BASE_URL"
start_server

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
server_logged_no_errors
