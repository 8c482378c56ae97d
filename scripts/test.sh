#!/usr/bin/env bash
# The whole test suite, Postgres included.
#
# Uses TOKENAUTH_TEST_DATABASE_URL when it is set (a role that may CREATE DATABASE);
# otherwise starts, or installs and starts, a local PostgreSQL (scripts/ensure-postgres.sh).
# Without a Postgres, the Postgres tests are skipped loudly; with CI=true that is a failure.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${TOKENAUTH_TEST_DATABASE_URL:-}" ]; then
  if url=$(scripts/ensure-postgres.sh); then
    export TOKENAUTH_TEST_DATABASE_URL="$url"
  elif [ "${CI:-}" = "true" ]; then
    echo "test.sh: no PostgreSQL available and CI=true: failing rather than skipping" >&2
    exit 1
  else
    echo "test.sh: WARNING: no PostgreSQL available; the Postgres tests will be SKIPPED" >&2
  fi
fi

if [ -n "${TOKENAUTH_TEST_DATABASE_URL:-}" ]; then
  # Leftovers of interrupted runs (each test makes its own tokenauth_test_* database).
  # Best effort: a failure here is reported, and the tests themselves will say what is wrong.
  if leftovers=$(psql "$TOKENAUTH_TEST_DATABASE_URL" -qAt -c \
    "SELECT datname FROM pg_database WHERE datname LIKE 'tokenauth\_test\_%'" 2>&1); then
    for db in $leftovers; do
      psql "$TOKENAUTH_TEST_DATABASE_URL" -q -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true
    done
  else
    echo "test.sh: warning: could not list leftover test databases: $leftovers" >&2
  fi
  # The row-only roles of the migrate_on_start test (tests/api/cli.rs), their databases gone.
  for role in $(psql "$TOKENAUTH_TEST_DATABASE_URL" -qAt -c \
    "SELECT rolname FROM pg_roles WHERE rolname LIKE 'tokenauth\_rw\_%'" 2>/dev/null); do
    psql "$TOKENAUTH_TEST_DATABASE_URL" -q -c "DROP ROLE IF EXISTS \"$role\"" || true
  done
fi

# PgBouncers of an interrupted run, orphaned (their test process gone; a running suite's
# are its children, and left alone).
pkill -P 1 -f tokenauth-test-pgbouncer 2>/dev/null || true

exec cargo test --locked "$@"
