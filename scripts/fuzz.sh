#!/usr/bin/env bash
# Fuzz the HTTP API with schemathesis (issue 7): the OpenAPI document the server itself serves
# (/openapi.json) drives a few thousand generated requests at every endpoint of a throwaway
# server. Any 5xx, any answer the document does not describe (status, content type, headers,
# body), a crash or an unclean shutdown fails the run. .ci/run calls it after the tests.
#
#   scripts/fuzz.sh [sqlite|postgres]
#
# The backend is SQLite by default; `postgres` runs the same against a fresh database on the
# server TOKENAUTH_TEST_DATABASE_URL names (or scripts/ensure-postgres.sh starts). .ci/run
# runs both.
#
# Knobs (environment): FUZZ_MAX_EXAMPLES (cases per operation and phase, default 100),
# FUZZ_SEED (replay a run: its seed is printed), FUZZ_TIME_LIMIT (seconds, default 600),
# FUZZ_MIN_REQUESTS (fail a run that sent fewer, default 3000), FUZZ_KEEP=1 (keep the
# temporary directory: database, server log, reports, schemathesis' cache for `st replay`).
#
# Idempotent: schemathesis is installed once, pinned, into a venv outside the clone; each run
# gets a fresh temporary database and port and removes them afterwards. What schemathesis
# checks, and the few intended exceptions, are in scripts/fuzz/schemathesis.toml and
# scripts/fuzz/hooks.py.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV="${TOKENAUTH_FUZZ_VENV:-/var/tmp/tokenauth-fuzz-venv}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-100}"
# why 3000: the issue asks for "at least a few thousand" requests; summary.py fails a run
# that sent fewer, so a configuration change cannot quietly shrink it.
MIN_REQUESTS="${FUZZ_MIN_REQUESTS:-3000}"
TIME_LIMIT="${FUZZ_TIME_LIMIT:-600}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BACKEND="${1:-sqlite}"
case "$BACKEND" in
  sqlite | postgres) ;;
  *) echo "usage: scripts/fuzz.sh [sqlite|postgres]" >&2; exit 2 ;;
esac
# why here: the TOKENAUTH_* variables are cleared below.
pg_admin="${TOKENAUTH_TEST_DATABASE_URL:-}"

echo "fuzz: schemathesis $SCHEMATHESIS_VERSION in $VENV" >&2
if ! "$VENV/bin/st" --version 2>/dev/null | grep -qx "st, version $SCHEMATHESIS_VERSION"; then
  command -v python3 >/dev/null || scripts/apt-install.sh python3
  # why ensurepip: Debian splits `venv`'s pip bootstrap into python3-venv.
  python3 -c 'import ensurepip' 2>/dev/null || scripts/apt-install.sh python3-venv
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi
command -v curl >/dev/null || scripts/apt-install.sh curl ca-certificates

# why: CI has already built the debug binary for the tests, so this is a no-op there.
cargo build --locked --quiet --bin tokenauth
bin="$CARGO_TARGET_DIR/debug/tokenauth"

work="$(mktemp -d "${TMPDIR:-/tmp}/tokenauth-fuzz.XXXXXX")"
server_pid=""
pg_db=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$pg_db" ]; then
    psql "$pg_admin" -qc "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null || true
  fi
  if [ "${FUZZ_KEEP:-}" = 1 ]; then echo "fuzz: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# why: the run tests the defaults (plus the settings below); a developer's exported
# TOKENAUTH_* settings (a prefix, a disabled dialect) must not change what it covers.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^TOKENAUTH_' || true)
export TOKENAUTH_CONFIG=""
if [ "$BACKEND" = postgres ]; then
  [ -n "$pg_admin" ] || pg_admin="$(scripts/ensure-postgres.sh)"
  # why not the tokenauth_test_ prefix: scripts/test.sh drops every such database when it
  # starts, which would pull this one from under a long run beside a test run. Instead, the
  # databases of earlier runs whose script is gone (an interrupted run) are dropped here.
  for db in $(psql "$pg_admin" -qAt -c \
    "SELECT datname FROM pg_database WHERE datname ~ '^tokenauth_fuzz_[0-9]+$'" 2>/dev/null || true); do
    kill -0 "${db#tokenauth_fuzz_}" 2>/dev/null ||
      psql "$pg_admin" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true
  done
  pg_db="tokenauth_fuzz_$$"
  TOKENAUTH_DATABASE_URL="$(scripts/fresh-database.sh "$pg_admin" "$pg_db")"
  export TOKENAUTH_DATABASE_URL
else
  export TOKENAUTH_DATABASE_URL="sqlite://$work/fuzz.db"
fi
echo "fuzz: backend $BACKEND" >&2
export TOKENAUTH_LOG_FORMAT=json
# why: thousands of refused logins from one address would lock it out after 10 and leave the
# fuzzer seeing only 429s. Throttling stays on, so its counting runs and any 429 must still
# match the schema.
export TOKENAUTH_THROTTLE__IP__MAX_FAILURES=100000000
export TOKENAUTH_THROTTLE__ACCOUNT__MAX_FAILURES=100000000
# why: the run checks wire shapes, not hashing cost (bench/timing.sh measures that); cheap
# argon2 parameters let a few thousand logins finish in seconds on two cores.
export TOKENAUTH_PASSWORDS__MEMORY_KIB=1024
export TOKENAUTH_PASSWORDS__ITERATIONS=1

# The accounts the hooks and the login dictionaries use (scripts/fuzz/schemathesis.toml).
export FUZZ_PASSWORD="fuzz-pass-1"
grep -qF "\"$FUZZ_PASSWORD\"" scripts/fuzz/schemathesis.toml ||
  { echo "fuzz: FUZZ_PASSWORD is not the password in scripts/fuzz/schemathesis.toml" >&2; exit 1; }
admin() { "$bin" "$@" >/dev/null; }
with_password() { echo "$FUZZ_PASSWORD" | admin "$@" --password-stdin; }
admin migrate
with_password user add alice
admin role add root --code 2 --acl '{"cdr": ["*"], "account": ["r", "w"]}'
with_password user add 100@mydomain.com --role root
with_password reseller add acme --balance 1000.00
# bob's group admits only 10.x: his logins from 127.0.0.1 get the IP refusals (dialer: 406).
admin group add office --allowed-regex '^10\.' --reseller acme
admin group add lobby --reseller acme
with_password user add bob@example.com --group office --admin --sms-from ACME
with_password user add carol
admin user disable carol
# fenced may log in from 10.0.0.0/8 only: 401 `Your IP is not allowed` from here.
with_password reseller add fenced --allowed-ip 10.0.0.0/8

: >"$work/server.log"
"$bin" serve --bind 127.0.0.1:0 >>"$work/server.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 100); do
  addr="$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$work/server.log" | head -n 1 | sed 's|.*http://||' || true)"
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "fuzz: the server did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { cat "$work/server.log" >&2; echo "fuzz: the server did not listen within 10 s" >&2; exit 1; }
base="http://$addr"
curl -sf --retry 50 --retry-delay 0 --retry-all-errors --max-time 2 "$base/readyz" >/dev/null
echo "fuzz: server ready at $base (pid $server_pid)" >&2

export FUZZ_BASE_URL="$base" FUZZ_WORK="$work"
# why: nothing written into the clone: no __pycache__ from hooks.py, and Hypothesis' own
# caches (unicode tables, constants) in the run's directory instead of ./.hypothesis.
export PYTHONDONTWRITEBYTECODE=1 HYPOTHESIS_STORAGE_DIRECTORY="$work/hypothesis"
st_status=0
timeout --kill-after=10 "$TIME_LIMIT" "$VENV/bin/st" --config-file scripts/fuzz/schemathesis.toml run \
  "$base/openapi.json" --max-examples "$MAX_EXAMPLES" ${FUZZ_SEED:+--seed "$FUZZ_SEED"} \
  --no-color --report json,ndjson --report-dir "$work/report" || st_status=$?

failed=0
if [ "$st_status" -ne 0 ]; then
  echo "fuzz: schemathesis failed (exit $st_status; 124: over FUZZ_TIME_LIMIT=${TIME_LIMIT}s)" >&2
  failed=1
fi
echo "== fuzz figures"
"$VENV/bin/python" scripts/fuzz/summary.py "$work/report" "$MIN_REQUESTS" || failed=1

# The crash check: still running, still answering, and no panic anywhere in its log (a
# panic in a background task answers no request, so the checks above would not see it).
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "fuzz: the server died during the run" >&2
  failed=1
elif ! curl -sf --max-time 5 "$base/healthz" >/dev/null; then
  echo "fuzz: the server no longer answers /healthz" >&2
  failed=1
fi
if grep -q 'panicked' "$work/server.log"; then
  grep -m 5 'panicked' "$work/server.log" >&2
  echo "fuzz: the server panicked" >&2
  failed=1
fi
# A clean stop: SIGTERM, in-flight requests drained, exit code 0. (bash reaps a finished
# background job at once, so `kill -0` fails as soon as the server has exited.)
kill "$server_pid" 2>/dev/null || true
for _ in $(seq 400); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$server_pid" 2>/dev/null; then
  echo "fuzz: the server was still running 40 s after SIGTERM" >&2
  kill -KILL "$server_pid" 2>/dev/null || true
fi
server_status=0
wait "$server_pid" 2>/dev/null || server_status=$?
server_pid=""
if [ "$server_status" -ne 0 ]; then
  echo "fuzz: the server did not exit cleanly on SIGTERM (status $server_status)" >&2
  failed=1
fi
if [ "$failed" -ne 0 ]; then
  echo "fuzz: server errors, if any:" >&2
  grep -E '"level":"(ERROR|WARN)"' "$work/server.log" | tail -n 20 >&2 || true
  echo "fuzz: FAILED on $BACKEND after ${SECONDS} s (FUZZ_SEED=<the seed above> replays it)" >&2
  exit 1
fi
echo "fuzz: passed on $BACKEND in ${SECONDS} s" >&2
