# Sourced by the scripts that check a running server (contract.sh,
# portal-test.sh): the debug binary, a pinned virtualenv under the target
# folder, and a server on a throwaway SQLite folder and a free port, stopped and
# removed on exit.
#
#   venv NAME PACKAGE==VERSION...   → $VENV, with exactly those installed
#   start_server                    → $SERVER (its pid), $BASE_URL; log in $WORK/server.log
#   server_logged_no_errors         → fails if the server logged an ERROR

cargo build --quiet --bin clientele
TARGET=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
BIN="$TARGET/debug/clientele"

venv() {
  VENV="$TARGET/$1"
  shift
  local missing=0 tool
  for tool in "$@"; do
    "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "$tool" || missing=1
  done
  if [ "$missing" = 1 ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$@"
  fi
}

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
BASE_URL="http://127.0.0.1:$PORT"

start_server() {
  "$BIN" serve >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do
    curl -fsS "$BASE_URL/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server did not become ready:" >&2
  cat "$WORK/server.log" >&2
  return 1
}

server_logged_no_errors() {
  if grep -q '"level":"ERROR"' "$WORK/server.log"; then
    grep '"level":"ERROR"' "$WORK/server.log" >&2
    echo "the server logged errors" >&2
    return 1
  fi
}
