#!/usr/bin/env bash
# Starts a local PostgreSQL 15 and a local Redis for the operator's tests, on free loopback
# ports, with all their files under $STATE_DIR, and writes $STATE_DIR/services.env.
# Idempotent: services already running (process alive and answering) are reused.
# Prints the path of services.env as its last stdout line. See hack/README.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
take_lock services

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_OS_USER=postgres
PG_SUPERUSER=postgres
env_file="$STATE_DIR/services.env"
mkdir -p "$STATE_DIR"

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  quietly apt-get update
  quietly apt-get install -y --no-install-recommends "$@"
}

[[ -x "$PG_BIN/postgres" ]] || apt_install postgresql-15
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  apt_install redis-server redis-tools
fi
[[ -x "$PG_BIN/postgres" ]] || die "no $PG_BIN/postgres after installing postgresql-15"
id -u "$PG_OS_USER" >/dev/null 2>&1 ||
  quietly useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_OS_USER"

as_pg() { runuser -u "$PG_OS_USER" -- "$@"; }
gen_secret() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }

# ---------------------------------------------------------------------------------------------
# PostgreSQL. The server refuses to run as root, so it runs as the OS user "postgres", which
# must be able to reach its data directory. When $STATE_DIR sits below a directory it cannot
# traverse (e.g. /root, mode 700), the data lives in /var/tmp/incident-operator-pg-<hash>
# instead and $STATE_DIR/postgres is a symlink to it.
pg_link="$STATE_DIR/postgres"
if [[ -L "$pg_link" ]]; then
  pg_root="$(readlink "$pg_link")"
elif as_pg test -x "$STATE_DIR"; then
  pg_root="$pg_link"
else
  pg_root="/var/tmp/incident-operator-pg-$(printf %s "$STATE_DIR" | sha256sum | cut -c1-12)"
  ln -sfn "$pg_root" "$pg_link"
fi
pgdata="$pg_root/data"
pg_sock="$pg_root/run"
pg_log="$pg_root/postgres.log"
mkdir -p "$pg_root"
chown "$PG_OS_USER:" "$pg_root"
chmod 700 "$pg_root"
as_pg mkdir -p "$pg_sock"

pg_running() {
  [[ -s "$pgdata/postmaster.pid" ]] && as_pg "$PG_BIN/pg_ctl" status -D "$pgdata" >/dev/null 2>&1 || return 1
  local port
  port="$(sed -n 4p "$pgdata/postmaster.pid")"
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"
}

super_pw="$(env_get "$env_file" PG_SUPERPASSWORD)"
app_pw="$(env_get "$env_file" PGPASSWORD)"
if [[ -s "$pgdata/PG_VERSION" && ( -z "$super_pw" || -z "$app_pw" ) ]]; then
  # Initialized but its passwords are lost: start over.
  note "postgres data without credentials in $env_file; re-initializing"
  as_pg "$PG_BIN/pg_ctl" stop -D "$pgdata" -m immediate -w >/dev/null 2>&1 || true
  rm -rf "$pgdata"
fi
if [[ ! -s "$pgdata/PG_VERSION" ]]; then
  super_pw="$(gen_secret)"
  app_pw="$(gen_secret)"
  rm -rf "$pgdata"
  pwfile="$pg_root/.pwfile"
  printf '%s\n' "$super_pw" >"$pwfile"
  chown "$PG_OS_USER:" "$pwfile"
  chmod 600 "$pwfile"
  quietly as_pg "$PG_BIN/initdb" -D "$pgdata" -U "$PG_SUPERUSER" --pwfile="$pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
  rm -f "$pwfile"
  cat >>"$pgdata/postgresql.conf" <<EOF

# --- incident-operator (hack/services-up.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$pg_sock'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
password_encryption = 'scram-sha-256'
# throwaway test instance: durability off for speed
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
fi

if pg_running; then
  pg_port="$(sed -n 4p "$pgdata/postmaster.pid")"
else
  pg_port="$(free_port)"
  as_pg rm -f "$pgdata/postmaster.pid"
  quietly as_pg "$PG_BIN/pg_ctl" start -D "$pgdata" -l "$pg_log" -w -t 60 -o "-p $pg_port" ||
    { tail -n 30 "$pg_log" >&2 || true; die "postgres did not start"; }
  pg_running || die "postgres started but does not answer on 127.0.0.1:$pg_port (see $pg_log)"
fi

# Roles, database and extension; every statement is idempotent. Passwords are hex.
PGPASSWORD="$super_pw" quietly psql -X -v ON_ERROR_STOP=1 -q \
  "host=127.0.0.1 port=$pg_port user=$PG_SUPERUSER dbname=postgres" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'inventory') THEN
    CREATE ROLE inventory LOGIN PASSWORD '$app_pw';
  ELSE
    ALTER ROLE inventory LOGIN PASSWORD '$app_pw';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE retail OWNER inventory'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'retail') \gexec
\c retail
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SQL

# ---------------------------------------------------------------------------------------------
# Redis: no persistence, loopback only, no password, daemonized, files in $STATE_DIR/redis.
redis_dir="$STATE_DIR/redis"
redis_pid="$redis_dir/redis.pid"
mkdir -p "$redis_dir"
redis_port="$(env_get "$env_file" REDIS_PORT)"
redis_ok() { [[ -n "$redis_port" ]] && [[ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" == PONG ]]; }
if ! { pid_alive "$redis_pid" && redis_ok; }; then
  if pid_alive "$redis_pid"; then kill "$(cat "$redis_pid")" 2>/dev/null || true; sleep 0.5; fi
  rm -f "$redis_pid"
  redis_port="$(free_port)"
  quietly redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --protected-mode yes \
    --save '' --appendonly no --dir "$redis_dir" --pidfile "$redis_pid" \
    --logfile "$redis_dir/redis.log"
  for _ in $(seq 100); do redis_ok && break; sleep 0.1; done
  redis_ok || { tail -n 20 "$redis_dir/redis.log" >&2 || true; die "redis did not answer on 127.0.0.1:$redis_port"; }
fi

# ---------------------------------------------------------------------------------------------
tmp="$(mktemp "$STATE_DIR/.services.env.XXXXXX")"
chmod 600 "$tmp"
cat >"$tmp" <<EOF
PGHOST=127.0.0.1
PGPORT=$pg_port
PGUSER=inventory
PGPASSWORD=$app_pw
PGDATABASE=retail
PG_SUPERUSER=$PG_SUPERUSER
PG_SUPERPASSWORD=$super_pw
PG_SOCKET_DIR=$pg_sock
DATABASE_URL=postgresql://inventory:$app_pw@127.0.0.1:$pg_port/retail
REDIS_HOST=127.0.0.1
REDIS_PORT=$redis_port
REDIS_URL=redis://127.0.0.1:$redis_port/0
EOF
mv -f "$tmp" "$env_file"
echo "$env_file"
