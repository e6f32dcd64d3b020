#!/usr/bin/env bash
# Creates .venv and installs the operator with its development tools, and the demo workloads
# (demo/, package incident_demo: development and tests only, never in the operator's wheel).
# Idempotent and quick when nothing changed (pip's cache lives outside the checkout).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml demo/pyproject.toml | sha256sum | cut -c1-16)
if [[ ! -f "$stamp" ]]; then
  echo "[bootstrap] installing Python dependencies into .venv" >&2
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e '.[dev]' -e ./demo
  rm -f .venv/.installed-*
  touch "$stamp"
fi
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null \
   || [[ ! -x /usr/lib/postgresql/15/bin/postgres ]] || ! command -v prometheus >/dev/null \
   || ! command -v pg_dump >/dev/null \
   || ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null \
   || ! command -v runc >/dev/null || ! command -v gcc >/dev/null || ! command -v openssl >/dev/null \
   || ! command -v curl >/dev/null || ! command -v ss >/dev/null || ! command -v nsenter >/dev/null; then
  echo "[bootstrap] installing PostgreSQL, Redis, Prometheus and the real node's tools from Debian packages" >&2
  apt-get update -qq
  # podman + debootstrap build the images (hack/build-images.sh); runc runs the real node's
  # containers; gcc + libc6-dev compile the static pause binary; openssl issues the kubelet's
  # certificates; curl, iproute2 (ip, ss) and util-linux (nsenter) serve hack/node.sh and the
  # loopback CNI plugin.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    postgresql-15 postgresql-contrib redis-server redis-tools prometheus \
    podman debootstrap runc gcc libc6-dev openssl curl iproute2 util-linux >/dev/null
fi
