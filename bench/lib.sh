# Sourced by the bench scripts after they `cd` to the repository root and set PORT and OUT:
# builds the release binary (BIN) and the hello-world ceiling (HELLO, bench/hello.rs), finds
# or starts PostgreSQL (PG_ADMIN), and starts and stops the server around each measured run.
mkdir -p "$OUT"
cargo build --release --locked -q --bin tokenauth --example hello
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET/release/tokenauth
HELLO=$TARGET/release/examples/hello
PG_ADMIN=${TOKENAUTH_BENCH_DATABASE_URL:-$(scripts/ensure-postgres.sh)}

server_pid=""
stop_server() { [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; server_pid=""; }
trap stop_server EXIT

# start_server LOG [ENV...]: serve on 127.0.0.1:$PORT in the background, logging to LOG, with
# the extra environment ENV, and wait until it is ready (or give up after ten seconds). The
# default configuration, access log included (every request writes its line to LOG); only
# the shutdown delay is off, since nothing here balances load.
start_server() {
  local log=$1
  shift
  env TOKENAUTH_HTTP__SHUTDOWN_DELAY=0s "$@" "$BIN" serve --bind "127.0.0.1:$PORT" >>"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do TOKENAUTH_BIND=127.0.0.1:$PORT "$BIN" healthcheck --ready >/dev/null 2>&1 && return; sleep 0.1; done
  echo "server did not start" >&2
  exit 1
}
