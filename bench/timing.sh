#!/usr/bin/env bash
# Login timing of an unknown user vs a known user with a wrong password, in every dialect,
# on SQLite and on PostgreSQL, with the release binary at the default argon2 parameters.
#
#   bench/timing.sh [ROUNDS]      (default 300 interleaved pairs per dialect)
#
# The throttle's limits are raised for the run (it would otherwise answer 429 after ten
# failures); the throttle still counts every attempt, as in production.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-300}
PORT=18191
OUT=bench/results
mkdir -p "$OUT"
cargo build --release --locked -q
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/tokenauth
PG_ADMIN=${TOKENAUTH_BENCH_DATABASE_URL:-$(scripts/ensure-postgres.sh)}

server_pid=""
stop_server() { [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; server_pid=""; }
trap stop_server EXIT
export TOKENAUTH_THROTTLE__IP__MAX_FAILURES=100000000 TOKENAUTH_THROTTLE__ACCOUNT__MAX_FAILURES=100000000
status=0
for backend in sqlite postgres; do
  if [ "$backend" = sqlite ]; then
    rm -f "$OUT"/timing.db*
    url="sqlite://$OUT/timing.db"
  else
    url=$(scripts/fresh-database.sh "$PG_ADMIN" tokenauth_timing)
  fi
  export TOKENAUTH_DATABASE_URL=$url
  echo "timing-password" | "$BIN" user add timing@example.com --password-stdin >/dev/null
  echo "timing-password" | "$BIN" reseller add timing-reseller --password-stdin >/dev/null
  RUST_LOG=warn "$BIN" serve --bind "127.0.0.1:$PORT" >>"$OUT/timing-$backend.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do TOKENAUTH_BIND=127.0.0.1:$PORT "$BIN" healthcheck --ready >/dev/null 2>&1 && break; sleep 0.1; done
  echo "== $backend"
  python3 bench/timing.py "http://127.0.0.1:$PORT" "$ROUNDS" || status=1
  stop_server
done
exit $status
