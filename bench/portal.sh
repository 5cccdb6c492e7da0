#!/usr/bin/env bash
# Portal page timings in the browser: a release server with SEED customers
# (default 100,000) imported, Debian's Chromium through Playwright (the venv
# scripts/portal-test.sh makes), the median of 20 loads of the customer list,
# its page 2,000, a one-word search and a customer's page (5 loads of warm-up
# each), from the request to the load event.
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${SEED:-100000}
cargo build --release --quiet --bin clientele
BIN=$PWD/target/release/clientele
VENV=${CARGO_TARGET_DIR:-$PWD/target}/portal-venv
[ -x "$VENV/bin/python" ] || { echo "run scripts/portal-test.sh once first (it makes $VENV)" >&2; exit 1; }
WORK=$(mktemp -d)
SERVER=""
cleanup() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT
export CLIENTELE_DATABASE_URL=${BENCH_DATABASE_URL:-sqlite://$WORK/bench.db} CLIENTELE_DATA_DIR=$WORK
export CLIENTELE_LISTEN=127.0.0.1:${PORT:-18080} RUST_LOG=warn
json() { python3 -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
MERCHANT=$("$BIN" merchant create --name Bench 2>/dev/null | json merchantId)
python3 bench/seed.py "$SEED" > "$WORK/seed.ndjson"
"$BIN" import "$WORK/seed.ndjson" --merchant "$MERCHANT" >/dev/null 2>&1
export PORTAL_ADMIN=bench@example.com
PORTAL_ADMIN_PASSWORD=$("$BIN" user create --merchant "$MERCHANT" --email "$PORTAL_ADMIN" --role admin 2>/dev/null | json password)
export PORTAL_ADMIN_PASSWORD
taskset -c 0 "$BIN" serve >/dev/null 2>&1 &
SERVER=$!
export PORTAL_URL="http://$CLIENTELE_LISTEN"
for _ in $(seq 100); do curl -fsS "$PORTAL_URL/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
taskset -c 1 "$VENV/bin/python" - <<'PY'
import os, re, json, statistics
from playwright.sync_api import sync_playwright
BASE = os.environ["PORTAL_URL"]
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=["--no-sandbox"])
    page = browser.new_context().new_page()
    page.goto(f"{BASE}/portal/sign-in")
    page.fill("input[name=email]", os.environ["PORTAL_ADMIN"])
    page.fill("input[name=password]", os.environ["PORTAL_ADMIN_PASSWORD"])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile("/portal/customers$"))
    customer = page.locator("tbody a").first.get_attribute("href")
    print("| page | server (request → response end) | load (start → load event) |")
    print("|---|---:|---:|")
    for name, url in [("customer list", "/portal/customers"), ("list, page 2,000", "/portal/customers?page=2000"),
                      ("search, one word", "/portal/customers?search=smith"), ("a customer", customer),
                      ("event feed", "/portal/events")]:
        runs = []
        for _ in range(25):
            page.goto(BASE + url)
            n = json.loads(page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])"))
            runs.append((n["responseEnd"] - n["requestStart"], n["loadEventEnd"] - n["startTime"]))
        runs = runs[5:]
        print(f"| {name} | {statistics.median(r[0] for r in runs):.1f} ms | {statistics.median(r[1] for r in runs):.1f} ms |")
    browser.close()
PY
