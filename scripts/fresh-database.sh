#!/usr/bin/env bash
# Make an empty PostgreSQL database NAME on the server ADMIN_URL names (dropping one left
# over), and print ADMIN_URL with NAME as its database (user, password and options kept).
#
#   scripts/fresh-database.sh ADMIN_URL NAME
#
# For the benchmarks and the fuzz run; the tests make their own databases (tests/api/helpers.rs).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: scripts/fresh-database.sh ADMIN_URL NAME" >&2; exit 2; }
admin="$1" name="$2"
command -v psql >/dev/null || "$(dirname "$0")/apt-install.sh" postgresql-client
psql "$admin" -q -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" -c "CREATE DATABASE \"$name\""
python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$admin" "$name"
