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
. bench/lib.sh
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
  start_server "$OUT/timing-$backend.log"
  echo "== $backend"
  python3 bench/timing.py "http://127.0.0.1:$PORT" "$ROUNDS" || status=1
  stop_server
done
exit $status
