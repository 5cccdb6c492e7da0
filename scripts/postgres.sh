#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers and prints a URL for it on stdout.
#
# TEST_POSTGRES_URL when set (waited for); otherwise the local server at
# 127.0.0.1:5432, started when installed but stopped (installed with apt when
# absent and running as root); failing that, a throwaway cluster initialised
# under target/pg-test on port 55432. Exits non-zero when none can be had.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test] %s\n' "$*" >&2; }

pg_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -d "$1" -t 2
  else
    (exec 3<>"/dev/tcp/${2:-127.0.0.1}/${3:-5432}") 2>/dev/null
  fi
}

wait_for() {
  for _ in $(seq 1 30); do
    pg_answers "$@" && return 0
    sleep 1
  done
  return 1
}

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && echo "$dir"
}

ensure_postgres() {
  if [ -n "${TEST_POSTGRES_URL:-}" ]; then
    wait_for "$TEST_POSTGRES_URL" || { log "TEST_POSTGRES_URL does not answer"; exit 1; }
    return
  fi
  local url=postgres://postgres@127.0.0.1:5432/postgres
  if ! pg_answers "$url"; then
    if [ -z "$(pg_bin)" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      log "installing PostgreSQL"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
      log "starting the local PostgreSQL cluster"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
    fi
  fi
  if ! wait_for "$url"; then
    local bin; bin=$(pg_bin) || { log "no PostgreSQL available"; exit 1; }
    local data="$PWD/target/pg-test"
    local port=55432
    log "initialising a throwaway cluster in $data (port $port)"
    rm -rf "$data"; mkdir -p "$data"
    local as=()
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$data"; as=(runuser -u postgres --); fi
    "${as[@]}" "$bin/initdb" -D "$data" -U postgres -A trust >/dev/null
    "${as[@]}" "$bin/pg_ctl" -D "$data" -o "-p $port -k $data -c listen_addresses=127.0.0.1" -l "$data/log" -w start >/dev/null
    url="postgres://postgres@127.0.0.1:$port/postgres"
    wait_for "$url" 127.0.0.1 "$port" || { log "the throwaway cluster did not start"; exit 1; }
  fi
  TEST_POSTGRES_URL="$url"
}

ensure_postgres
echo "$TEST_POSTGRES_URL"
