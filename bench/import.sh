#!/usr/bin/env bash
# Moving in, measured on the release binary, on SQLite and on PostgreSQL:
# - import speed: N users (default 100,000) with two tokens each (a knox 4.2 digest and a plain
#   UUID), users/s and tokens/s of `tokenauth import file`;
# - the first login of an imported Django PBKDF2 user (600,000 rounds, then the argon2id rehash)
#   against a native user's login and the same user's second login (medians of 15);
# - a legacy knox token's first check (found by its key, recomputed, rewritten to SHA-256)
#   against its later checks (medians of 50);
# - /verify with an unknown knox-shaped token before and after legacy tokens exist (wrk).
#   bench/import.sh [USERS] [SECONDS]
# Traffic goes to 127.0.0.1 only; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
SECS=${2:-10}
PORT=18383
OUT=bench/results
command -v wrk >/dev/null || scripts/apt-install.sh wrk
. bench/lib.sh
python3 bench/import_data.py "$N" "$OUT/import.jsonl" "$OUT/import-samples.json"

# median of the total times (ms) of COUNT curls given as remaining args, one per line on stdin
median_ms() { python3 -c 'import statistics,sys; v=[float(l)*1000 for l in sys.stdin if l.strip()]; print(f"{statistics.median(v):.1f}")'; }
unknown_rps() {
  printf 'wrk.method = "GET"; wrk.headers["Authorization"] = "Token %s"\n' "$(printf 'f%.0s' $(seq 1 64))" > "$OUT/import-unknown.lua"
  wrk -t2 -c32 -d"${SECS}s" -s "$OUT/import-unknown.lua" "http://127.0.0.1:$PORT/verify" | awk '/Requests\/sec/ {print $2}'
}

rows=()
for backend in sqlite postgres; do
  if [ "$backend" = sqlite ]; then rm -f "$OUT"/import-bench.db*; url="sqlite://$OUT/import-bench.db"
  else url=$(scripts/fresh-database.sh "$PG_ADMIN" tokenauth_import_bench); fi
  export TOKENAUTH_DATABASE_URL=$url
  echo 'native-bench-pw' | "$BIN" user add native --password-stdin >/dev/null
  start_server "$OUT/import-serve.log"
  before=$(unknown_rps)
  stop_server
  t0=$(date +%s.%N)
  "$BIN" import file "$OUT/import.jsonl" --json > "$OUT/import-$backend.json"
  t1=$(date +%s.%N)
  secs=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  start_server "$OUT/import-serve.log"
  after=$(unknown_rps)
  read -r pw users knox <<<"$(python3 -c '
import json,sys; s=json.load(open(sys.argv[1])); print(s["password"], ",".join(s["users"][:15]), ",".join(s["knox"]))' "$OUT/import-samples.json")"
  first=$(for u in ${users//,/ }; do curl -s -o /dev/null -w '%{time_total}\n' -u "$u:$pw" -X POST "http://127.0.0.1:$PORT/auth/login"; done | median_ms)
  second=$(for u in ${users//,/ }; do curl -s -o /dev/null -w '%{time_total}\n' -u "$u:$pw" -X POST "http://127.0.0.1:$PORT/auth/login"; done | median_ms)
  native=$(for _ in $(seq 1 15); do curl -s -o /dev/null -w '%{time_total}\n' -u native:native-bench-pw -X POST "http://127.0.0.1:$PORT/auth/login"; done | median_ms)
  kfirst=$(for k in ${knox//,/ }; do curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Token $k" "http://127.0.0.1:$PORT/verify"; done | median_ms)
  klater=$(for k in ${knox//,/ }; do curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Token $k" "http://127.0.0.1:$PORT/verify"; done | median_ms)
  stop_server
  rows+=("$backend|$secs|$(python3 -c "print(round($N/$secs))")|$(python3 -c "print(round(2*$N/$secs))")|$first|$second|$native|$kfirst|$klater|$before|$after")
done
echo
echo "tokenauth $(git describe --always --dirty 2>/dev/null), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), $N users with 2 tokens each"
printf '%-9s %9s %9s %10s | %12s %12s %12s | %12s %12s | %13s %13s\n' backend 'import s' 'users/s' 'tokens/s' \
  'pbkdf2 1st' 'pbkdf2 2nd' 'native' 'knox 1st' 'knox later' 'unknown rps0' 'unknown rps1'
for row in "${rows[@]}"; do
  IFS='|' read -r b s u t f1 f2 nat k1 k2 r0 r1 <<<"$row"
  printf '%-9s %9s %9s %10s | %10s ms %10s ms %10s ms | %10s ms %10s ms | %13s %13s\n' "$b" "$s" "$u" "$t" "$f1" "$f2" "$nat" "$k1" "$k2" "$r0" "$r1"
done
echo "(logins: medians of 15 over curl, POST /auth/login; pbkdf2 1st: an imported user's first login (PBKDF2 600k, then"
echo " the argon2id rehash), 2nd: its next (argon2id); knox: medians of 50 /verify, first (legacy lookup and rewrite) and"
echo " later (cached); unknown rps0/rps1: /verify with an unknown knox-shaped token before and after the import, wrk -c32)"
