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

# TLS: a test connects with sslmode=verify-full (the README's PostgreSQL over TLS), so the
# cluster serves a certificate of its own for the name localhost (no IP address in it: the
# test also shows that a host name the certificate lacks is refused), signed by a CA made for
# it (ca.crt, what the test trusts), kept in /var/lib/postgresql/tokenauth-tls. Made and
# configured once.
tls=/var/lib/postgresql/tokenauth-tls
cert_file=$(as_root runuser -u postgres -- psql -qAt -p "$port" -c "SHOW ssl_cert_file")
ssl=$(as_root runuser -u postgres -- psql -qAt -p "$port" -c "SHOW ssl")
if [ "$ssl" != "on" ] || [ "$cert_file" != "$tls/server.crt" ] || [ ! -r "$tls/ca.crt" ]; then
  log "serving TLS on cluster $version/$cluster with a certificate for localhost ($tls)"
  as_root install -d -o postgres -g postgres -m 0755 "$tls"
  if [ ! -s "$tls/ca.crt" ] || [ ! -s "$tls/server.crt" ]; then
    as_root runuser -u postgres -- sh -euc '
      cd "$1"
      ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
      openssl req -x509 $ec -days 3650 -subj /CN=tokenauth-test-ca -keyout ca.key -out ca.crt 2>/dev/null
      openssl req $ec -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
      printf "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" > server.ext
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile server.ext -out server.crt 2>/dev/null
      chmod 0600 ca.key server.key
      chmod 0644 ca.crt server.crt
      rm -f server.csr server.ext' sh "$tls"
  fi
  as_root pg_conftool "$version" "$cluster" set ssl on
  as_root pg_conftool "$version" "$cluster" set ssl_cert_file "$tls/server.crt"
  as_root pg_conftool "$version" "$cluster" set ssl_key_file "$tls/server.key"
  as_root pg_ctlcluster "$version" "$cluster" restart >&2
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.5
  done
fi

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
