#!/usr/bin/env bash
# Server CPU per request, against the hello-world ceiling (issue 15): the figure that says
# where a request's cost is, steadier than req/s on a small machine where wrk takes its share
# of the cores. For each of hello-world, /healthz and /verify (a cached knox token), on SQLite
# with the default configuration (access log on): req/s, p99, and the server's CPU time
# (user + system, from /proc) per request, as a ratio to hello-world's.
#
#   bench/cpu.sh [SECONDS_PER_RUN] [ROUNDS]      (default 5 s, 3 rounds; medians printed)
#
# Any TOKENAUTH_* setting in the environment reaches the server, e.g.
# TOKENAUTH_HTTP__ACCESS_LOG=false bench/cpu.sh to see what the access log costs;
# TOKENAUTH_BENCH_BIN=path/to/tokenauth measures another build against the same ceiling.
# Traffic goes to 127.0.0.1 only; every run is bounded by its duration.
set -euo pipefail
# why: a failing wrk or python inside $(...) must stop the run, not print a blank figure.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
SECS=${1:-5}
ROUNDS=${2:-3}
PORT=18191
OUT=bench/results
command -v wrk >/dev/null || scripts/apt-install.sh wrk
# why: SQLite only; lib.sh would otherwise find or start PostgreSQL.
export TOKENAUTH_BENCH_DATABASE_URL=${TOKENAUTH_BENCH_DATABASE_URL:-unused}
. bench/lib.sh
# why: to compare with another build (e.g. the commit before a change) in the same session.
BIN=${TOKENAUTH_BENCH_BIN:-$BIN}
PASSWORD=bench-password-123
work=$(mktemp -d)
hello_pid=""
trap 'stop_server; [ -z "$hello_pid" ] || kill "$hello_pid" 2>/dev/null; rm -rf "$work"' EXIT
export TOKENAUTH_DATABASE_URL="sqlite://$work/bench.db"
echo "$PASSWORD" | "$BIN" user add bench --password-stdin >/dev/null

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run PID URL LUA -> "req/s p99 us_per_request"
run() {
  printf '%s\n' "$3" > "$work/run.lua"
  local before after out
  before=$(cpu_ticks "$1")
  out=$(wrk -t2 -c32 -d"${SECS}s" --latency -s "$work/run.lua" "$2")
  after=$(cpu_ticks "$1")
  python3 -c '
import re, sys
before, after, tck = map(int, sys.argv[1:])
text = sys.stdin.read()
if "Non-2xx" in text:
    sys.exit("bench/cpu.sh: some answers were not 2xx: " + text)
n = int(re.search(r"(\d+) requests in", text).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)
print(f"{rps:.0f} {p99} {(after - before) / tck * 1e6 / n:.1f}")' "$before" "$after" "$(getconf CLK_TCK)" <<<"$out"
}

"$HELLO" "127.0.0.1:$((PORT + 1))" >/dev/null &
hello_pid=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$((PORT + 1))/" >/dev/null && break; sleep 0.1; done
start_server "$work/serve.log"
knox=$(curl -s -X POST -H 'Content-Type: application/json' -d "{\"username\":\"bench\",\"password\":\"$PASSWORD\"}" \
  "http://127.0.0.1:$PORT/auth/login/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
get='wrk.method = "GET"'
verify="wrk.method = \"GET\"; wrk.headers[\"Authorization\"] = \"Token $knox\""
: >"$work/figures"
for round in $(seq "$ROUNDS"); do
  # why interleaved: a machine whose speed drifts moves every row alike.
  fig=$(run "$hello_pid" "http://127.0.0.1:$((PORT + 1))/" "$get")
  echo "hello $fig" >>"$work/figures"
  fig=$(run "$server_pid" "http://127.0.0.1:$PORT/healthz" "$get")
  echo "healthz $fig" >>"$work/figures"
  fig=$(run "$server_pid" "http://127.0.0.1:$PORT/verify" "$verify")
  echo "verify $fig" >>"$work/figures"
  echo "round $round of $ROUNDS done" >&2
done
kill -TERM "$hello_pid"; wait "$hello_pid" 2>/dev/null || true
hello_pid=""

echo "tokenauth $(git describe --always --dirty 2>/dev/null), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), ${SECS}s x $ROUNDS rounds (medians), wrk -t2 -c32, SQLite"
python3 - "$work/figures" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p99, us = line.split()
    rows.setdefault(name, []).append((float(rps), p99, float(us)))
# why the p99 of the median round (by req/s): latencies of different runs do not average.
med = {n: (statistics.median(r[0] for r in v), sorted(v)[len(v) // 2][1], statistics.median(r[2] for r in v)) for n, v in rows.items()}
h_rps, _, h_us = med["hello"]
print(f"{'':30} {'req/s':>9} {'vs hello':>9} {'p99':>9} {'server CPU us/req':>18} {'vs hello':>9}")
for name, label in (("hello", "hello-world axum (the ceiling)"), ("healthz", "GET /healthz"), ("verify", "GET /verify knox, cached")):
    rps, p99, us = med[name]
    print(f"{label:30} {rps:9.0f} {rps / h_rps:8.2f}x {p99:>9} {us:18.1f} {us / h_us:8.2f}x")
PY
