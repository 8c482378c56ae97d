#!/usr/bin/env bash
# Benchmark the release binary on loopback, on SQLite and on PostgreSQL, with wrk.
#
#   bench/run.sh [SECONDS_PER_RUN]      (default 10)
#
# The ceiling first, for each backend: a hello-world axum server (bench/hello.rs, no middleware)
# on the same machine in the same run; every row is a ratio to it. Then /healthz; the
# forward-auth check /verify from the cache
# (a knox token and a webitel JWT) and with the cache off; login at the default argon2
# parameters; /verify again while 16 connections flood logins; /auth/bump (check + write);
# an unknown token's 401. Then (bench/scale.py) RSS idle and under load, the time from start
# to ready on an existing database, and the revocation lag across two replicas over one
# database (logout on A, time until B refuses), for each cache.invalidation mode. Then the in-process
# bench of TokenService::authenticate (cargo bench --bench token_check), and one login's wall
# time against one argon2id verification alone (cargo bench --bench argon2_verify). The server
# runs with the default configuration, access log included. Prints one table.
# Traffic goes to 127.0.0.1 only; every run is bounded by its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
PORT=18181
OUT=bench/results
command -v wrk >/dev/null || scripts/apt-install.sh wrk
. bench/lib.sh
PASSWORD=bench-password-123

# wrk SCRIPT_NAME CONNECTIONS PATH [lua body] -> "req/s p50 p99"
measure() {
  local name=$1 conns=$2 path=$3 lua=${4:-}
  local script="$OUT/$name.lua"
  printf '%s\n' "$lua" > "$script"
  wrk -t"$(( conns < 2 ? conns : 2 ))" -c"$conns" -d"${SECS}s" --latency -s "$script" "http://127.0.0.1:$PORT$path" > "$OUT/$name.txt"
  awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {printf "%s %s %s\n", rps, p50, p99}' "$OUT/$name.txt"
}

# to_ms "1.23ms" | "850.00us" | "1.02s" -> milliseconds
to_ms() { python3 -c "import re,sys; v,u=re.fullmatch(r'([0-9.]+)(us|ms|s)', sys.argv[1]).groups(); print(float(v)*{'us':1e-3,'ms':1,'s':1e3}[u])" "$1"; }

argon2_ms=$(cargo bench --locked -q --bench argon2_verify 2>/dev/null | awk '/argon2id_verify_ms/ {print $2}')
rows=()
extras=()
lags=()
for backend in sqlite postgres; do
  # The ceiling: the hello-world server, alone on the machine, then stopped.
  "$HELLO" "127.0.0.1:$((PORT + 1))" >/dev/null &
  hello_pid=$!
  for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$((PORT + 1))/" >/dev/null && break; sleep 0.1; done
  PORT_SAVED=$PORT; PORT=$((PORT + 1))
  read -r hello_rps hello_p50 hello_p99 < <(measure "$backend-hello" 32 / 'wrk.method = "GET"')
  PORT=$PORT_SAVED
  kill -TERM "$hello_pid"; wait "$hello_pid" 2>/dev/null || true
  rows+=("$backend|hello-world axum (the ceiling)|32|$hello_rps|$hello_p50|$hello_p99|$hello_rps")
  if [ "$backend" = sqlite ]; then
    rm -f "$OUT"/bench.db*
    url="sqlite://$OUT/bench.db"
  else
    url=$(scripts/fresh-database.sh "$PG_ADMIN" tokenauth_bench)
  fi
  export TOKENAUTH_DATABASE_URL=$url
  echo "$PASSWORD" | "$BIN" user add bench --password-stdin >/dev/null
  start_server "$OUT/serve-$backend.log"
  # why 12 s: the dummy password hash made at start (19 MiB of argon2 memory) is given back
  # to the OS by the allocator after its purge delay; idle means settled.
  sleep 12
  rss_idle=$(python3 bench/scale.py rss "$server_pid")

  basic=$(printf 'bench:%s' "$PASSWORD" | base64)
  token=$(curl -s -X POST -u "bench:$PASSWORD" "http://127.0.0.1:$PORT/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  knox=$(curl -s -X POST -H 'Content-Type: application/json' -d "{\"username\":\"bench\",\"password\":\"$PASSWORD\"}" \
    "http://127.0.0.1:$PORT/auth/login/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  jwt=$(curl -s -X POST -H 'Content-Type: application/json' -d "{\"username\":\"bench\",\"password\":\"$PASSWORD\"}" \
    "http://127.0.0.1:$PORT/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  verify_lua="wrk.method = \"GET\"; wrk.headers[\"Authorization\"] = \"Token $knox\""
  login_lua="wrk.method = \"POST\"; wrk.headers[\"Authorization\"] = \"Basic $basic\""

  healthz=$(measure "$backend-healthz" 32 /healthz 'wrk.method = "GET"')
  read -r _ base_p50 base_p99 <<<"$healthz"
  base_rps=$hello_rps
  rows+=("$backend|GET /healthz|32|$(read -r a _ <<<"$healthz"; echo "$a")|$base_p50|$base_p99|$base_rps")
  # /verify from the cache; RSS sampled half-way through the run.
  ( sleep $((SECS / 2)); python3 bench/scale.py rss "$server_pid" > "$OUT/rss-load-$backend.txt" ) &
  sampler=$!
  read -r v_rps v_p50 v_p99 < <(measure "$backend-verify" 32 /verify "$verify_lua")
  wait "$sampler"
  rss_load=$(cat "$OUT/rss-load-$backend.txt")
  rows+=("$backend|GET /verify knox token, cached|32|$v_rps|$v_p50|$v_p99|$base_rps")
  read -r rps p50 p99 < <(measure "$backend-verify-jwt" 32 /verify "wrk.method = \"GET\"; wrk.headers[\"Authorization\"] = \"Bearer $jwt\"")
  rows+=("$backend|GET /verify webitel JWT, cached|32|$rps|$p50|$p99|$base_rps")
  read -r rps p50 p99 < <(measure "$backend-login" 4 /auth/login "$login_lua")
  rows+=("$backend|POST /auth/login (argon2id m=19MiB t=2)|4|$rps|$p50|$p99|$base_rps")
  login_rps=$rps
  # One login at a time: its wall time against one argon2id verification alone.
  read -r _ one_p50 _ < <(measure "$backend-login-one" 1 /auth/login "$login_lua")
  one_login_ms=$(to_ms "$one_p50")
  # Token checks while 16 connections flood logins (the hashing pool saturated, its queue full).
  wrk -t1 -c16 -d"$((SECS + 2))s" -s "$OUT/$backend-login.lua" "http://127.0.0.1:$PORT/auth/login" > "$OUT/$backend-flood.txt" &
  flood=$!
  sleep 1
  read -r f_rps f_p50 f_p99 < <(measure "$backend-verify-flood" 32 /verify "$verify_lua")
  wait "$flood"
  rows+=("$backend|GET /verify cached, during a login flood|32|$f_rps|$f_p50|$f_p99|$base_rps")
  read -r rps p50 p99 < <(measure "$backend-bump" 32 /auth/bump "wrk.method = \"POST\"; wrk.headers[\"Authorization\"] = \"Bearer $token\"")
  rows+=("$backend|POST /auth/bump (check + write)|32|$rps|$p50|$p99|$base_rps")
  read -r rps p50 p99 < <(measure "$backend-unknown" 32 /auth/logout/ "wrk.method = \"POST\"; wrk.headers[\"Authorization\"] = \"Token $(printf '0%.0s' $(seq 1 64))\"")
  rows+=("$backend|POST /auth/logout/ unknown token (401)|32|$rps|$p50|$p99|$base_rps")
  stop_server
  # The same check with the cache off: one indexed read per check.
  start_server "$OUT/serve-$backend.log" TOKENAUTH_CACHE__CAPACITY=0
  read -r rps p50 p99 < <(measure "$backend-verify-uncached" 32 /verify "$verify_lua")
  rows+=("$backend|GET /verify knox token, uncached|32|$rps|$p50|$p99|$base_rps")
  stop_server

  ready_ms=$(python3 bench/scale.py ready "$BIN" "$url" 5)
  read -r lag_p50 lag_p99 < <(python3 bench/scale.py lag "$BIN" "$url" bench "$PASSWORD" 200)
  # The lag of each way of hearing revocations (cache.invalidation); "auto" is the row above.
  modes=(poll staleness)
  [ "$backend" = postgres ] && modes=(notify poll staleness)
  for mode in "${modes[@]}"; do
    n=200; [ "$mode" = staleness ] && n=20
    read -r m50 m99 < <(python3 bench/scale.py lag "$BIN" "$url" bench "$PASSWORD" "$n" "$mode")
    lags+=("$backend|$mode|$n|$m50|$m99")
  done
  flood_ratio=$(python3 -c "print(f'{$(to_ms "$f_p99")/$(to_ms "$v_p99"):.2f}')")
  extras+=("$backend|$rss_idle|$rss_load|$ready_ms|$lag_p50|$lag_p99|$v_p99|$f_p99|$flood_ratio|$one_login_ms|$login_rps")
done

echo
echo "tokenauth $(git describe --always --dirty 2>/dev/null), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), ${SECS}s per run, wrk -t2 on the same machine"
printf '%-9s %-42s %5s %10s %9s %9s %8s\n' backend endpoint conns 'req/s' p50 p99 'vs hello'
for row in "${rows[@]}"; do
  IFS='|' read -r b e c rps p50 p99 base <<<"$row"
  ratio=$(python3 -c "print(f'{float($rps)/float($base):.3f}')")
  printf '%-9s %-42s %5s %10s %9s %9s %8s\n' "$b" "$e" "$c" "$rps" "$p50" "$p99" "$ratio"
done
echo
printf '%-9s %10s %10s %12s %14s %14s %12s %14s %7s\n' backend 'RSS idle' 'RSS load' 'ready (ms)' 'revoke p50 ms' 'revoke p99 ms' 'check p99' 'p99 in flood' 'ratio'
for row in "${extras[@]}"; do
  IFS='|' read -r b ri rl rd l50 l99 vp fp fr _ _ <<<"$row"
  printf '%-9s %8s M %8s M %12s %14s %14s %12s %14s %7s\n' "$b" "$ri" "$rl" "$rd" "$l50" "$l99" "$vp" "$fp" "$fr"
done
printf '%-9s %-10s %7s %14s %14s\n' backend invalidation tokens 'revoke p50 ms' 'revoke p99 ms'
for row in "${lags[@]}"; do
  IFS='|' read -r b m n l50 l99 <<<"$row"
  printf '%-9s %-10s %7s %14s %14s\n' "$b" "$m" "$n" "$l50" "$l99"
done
echo "(cache.invalidation per row; SQLite's \"poll\" watches the file; \"staleness\" with max_staleness 1s, heard by nobody)"
echo "(RSS in MiB, idle 12 s after start; ready: start of an existing database to /readyz 200, median of 5; revoke: logout on A until"
echo " replica B refuses, 200 tokens; check p99 idle vs during a 16-connection login flood, and their ratio)"
echo
workers=$("$BIN" config | awk -F' = ' '/^workers/ {print $2; exit}')
[ "$workers" = 0 ] && workers=$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))
printf '%-9s %16s %16s %8s %12s %16s\n' backend 'one login (ms)' 'argon2id (ms)' ratio 'logins/s' 'pool capacity/s'
for row in "${extras[@]}"; do
  IFS='|' read -r b _ _ _ _ _ _ _ _ ol lr <<<"$row"
  python3 -c "import sys; b,ol,a,lr,w=sys.argv[1:]; print(f'{b:<9} {float(ol):16.2f} {float(a):16.2f} {float(ol)/float(a):8.3f} {float(lr):12.1f} {int(w)*1000/float(a):16.1f}')" "$b" "$ol" "$argon2_ms" "$lr" "$workers"
done
echo "(one login: p50 of POST /auth/login on one connection; argon2id: one verification alone, median of 31;"
echo " logins/s on 4 connections vs the hashing pool's capacity, workers x 1000 / argon2id ms)"
echo
echo "In-process TokenService::authenticate:"
TOKENAUTH_BENCH_DATABASE_URL=$PG_ADMIN cargo bench --locked -q --bench token_check 2>/dev/null
