#!/usr/bin/env bash
# Make a local PostgreSQL available for the test suite and print its admin URL on stdout.
#
# Uses Debian's cluster tools (initdb refuses to run as root): installs postgresql when it is
# missing (scripts/apt-install.sh: apt starts no service on its own), creates a cluster
# if there is none, starts it, and creates the role tokenauth_test (LOGIN CREATEDB, and
# CREATEROLE: a test makes a role that may only read and write rows) with a
# password. Each test then creates its own database with that role. Idempotent: safe to run
# when the cluster is already up or the role already exists.
set -euo pipefail

log() { echo "ensure-postgres: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
    log "need root (or passwordless sudo) to $*"; return 1; fi
}

if ! command -v pg_lsclusters >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  "$(dirname "$0")/apt-install.sh" postgresql
fi

version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
cluster=$(pg_lsclusters --no-header | awk -v v="$version" '$1 == v { print $2; exit }')
if [ -z "$cluster" ]; then
  log "creating cluster $version/main"
  as_root pg_createcluster "$version" main >&2
  cluster=main
fi
port=$(pg_lsclusters --no-header | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { print $3 }')
status=$(pg_lsclusters --no-header | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { print $4 }')
if [ "$status" != "online" ]; then
  log "starting cluster $version/$cluster on port $port"
  as_root pg_ctlcluster "$version" "$cluster" start >&2
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$port" || { log "postgres on port $port did not become ready"; exit 1; }

as_root runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 >&2 <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tokenauth_test') THEN
    CREATE ROLE tokenauth_test LOGIN CREATEDB CREATEROLE PASSWORD 'tokenauth_test';
  ELSE
    ALTER ROLE tokenauth_test LOGIN CREATEDB CREATEROLE PASSWORD 'tokenauth_test';
  END IF;
END
$$;
SQL

echo "postgres://tokenauth_test:tokenauth_test@127.0.0.1:${port}/postgres"
