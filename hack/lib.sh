# Shared helpers for the hack/ scripts. Source it; it defines no side effects beyond variables.
# shellcheck shell=bash

STATE_DIR="${INCIDENT_OPERATOR_STATE:-$HOME/.cache/incident-operator/run}"
CLUSTER_NAME="${CLUSTER_NAME:-incident-operator}"

die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
note() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# pid_alive PIDFILE: true when the file names a live process.
pid_alive() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(head -n1 "$1" | tr -dc 0-9)"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# env_get FILE KEY: value of KEY=... in a shell env file (empty when missing).
env_get() {
  [[ -f "$1" ]] || return 0
  sed -n "s/^$2=//p" "$1" | tail -n1 | sed "s/^'\\(.*\\)'\$/\\1/"
}

# without_lock CMD...: runs CMD without the lock fd of take_lock, so daemons it starts do not
# hold the lock after this script exits.
without_lock() {
  if [[ -n "${lock_fd:-}" ]]; then "$@" {lock_fd}>&-; else "$@"; fi
}

# quietly CMD...: runs CMD (via without_lock), shows its output only when it fails.
quietly() {
  local out rc=0
  out="$(mktemp)"
  without_lock "$@" >"$out" 2>&1 || rc=$?
  if (( rc != 0 )); then
    printf '%s: command failed (exit %d): %s\n' "$(basename "$0")" "$rc" "$*" >&2
    cat "$out" >&2
  fi
  rm -f "$out"
  return "$rc"
}

# take_lock NAME: serializes concurrent runs (e.g. parallel test workers) on $STATE_DIR/.NAME.lock
# for the rest of the calling script.
take_lock() {
  mkdir -p "$STATE_DIR"
  exec {lock_fd}>"$STATE_DIR/.$1.lock"
  flock -w "${LOCK_TIMEOUT:-600}" "$lock_fd" || die "could not lock $STATE_DIR/.$1.lock"
}
