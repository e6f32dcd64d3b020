#!/usr/bin/env bash
# Stops the PostgreSQL and Redis started by hack/services-up.sh and removes their data and
# $STATE_DIR/services.env, so the next services-up starts clean. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
take_lock services

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

# wait_gone PID SECONDS: waits for PID to exit, then SIGKILLs it.
wait_gone() {
  local pid="$1" i
  for ((i = 0; i < $2 * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

redis_dir="$STATE_DIR/redis"
if pid_alive "$redis_dir/redis.pid"; then
  pid="$(cat "$redis_dir/redis.pid")"
  kill "$pid" 2>/dev/null || true
  wait_gone "$pid" 10
fi
rm -rf "$redis_dir"

pg_link="$STATE_DIR/postgres"
if [[ -L "$pg_link" ]]; then pg_root="$(readlink "$pg_link")"; else pg_root="$pg_link"; fi
pgdata="$pg_root/data"
if [[ -s "$pgdata/postmaster.pid" ]]; then
  pid="$(head -n1 "$pgdata/postmaster.pid" | tr -dc 0-9)"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" stop -D "$pgdata" -m fast -w -t 30 >/dev/null 2>&1 || true
    wait_gone "$pid" 10
  fi
fi
rm -rf "$pg_root"
rm -f "$pg_link" "$STATE_DIR/services.env"
