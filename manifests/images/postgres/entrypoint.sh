#!/bin/sh
# A small subset of the official postgres image's entrypoint. On an empty $PGDATA: initdb with
# superuser $POSTGRES_USER (default postgres) and password $POSTGRES_PASSWORD (required),
# scram-sha-256 for every connection, pg_stat_statements preloaded; then creates $POSTGRES_DB
# (default: the user's name) with the pg_stat_statements extension. Then runs the server in the
# foreground on $POSTGRES_LISTEN (default 127.0.0.1) port $PGPORT (default 5432); arguments are
# passed on to postgres (e.g. -c fsync=off).
set -eu
: "${PGDATA:?}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
port="${PGPORT:-5432}"
listen="${POSTGRES_LISTEN:-127.0.0.1}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD for the first start}"
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=scram-sha-256 \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  cat >>"$PGDATA/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
password_encryption = 'scram-sha-256'
CONF
  # Set up over the unix socket only; the server is not reachable over TCP meanwhile.
  PGPASSWORD="$POSTGRES_PASSWORD" pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p $port" start >/dev/null
  export PGPASSWORD="$POSTGRES_PASSWORD"
  if [ "$db" != postgres ]; then
    psql -X -q -v ON_ERROR_STOP=1 -p "$port" -U "$user" -d postgres \
      -c "CREATE DATABASE \"$db\" OWNER \"$user\""
  fi
  psql -X -q -v ON_ERROR_STOP=1 -p "$port" -U "$user" -d "$db" \
    -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'
  unset PGPASSWORD
  pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
  echo "postgres-entrypoint: initialized $PGDATA (database $db, superuser $user)"
fi
exec postgres -D "$PGDATA" -p "$port" -c "listen_addresses=$listen" "$@"
