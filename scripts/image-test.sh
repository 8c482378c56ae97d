#!/usr/bin/env bash
# Build the container image from the Dockerfile with podman and test it for real: the image
# the Dockerfile makes is what users run, so CI builds and runs it rather than only linting it.
#
#   scripts/image-test.sh
#
# No image registry is reachable here, so the Dockerfile's base images (build arguments whose
# defaults are the public rust:slim and distroless images) are local stand-ins made by
# scripts/base-images.sh. The image is built as localhost/tokenauth:test, then run against the
# host's PostgreSQL (scripts/ensure-postgres.sh, --network host) and checked; any miss fails
# loudly with a non-zero exit:
#   - the image's config: user 65532:65532, workdir /data, entrypoint/cmd, HEALTHCHECK;
#   - with the default SQLite database, `migrate` writes /data/tokenauth.db as uid 65532 into a
#     fresh volume while the root filesystem is read-only;
#   - the server runs as uid 65532, with a read-only root filesystem, no tmpfs, no volume,
#     all capabilities dropped, and the database URL and JWT secret read from secret files
#     mounted read-only (TOKENAUTH_DATABASE_URL_FILE, TOKENAUTH_JWT_SECRET_FILE);
#     `podman diff` shows that starting and serving wrote nothing;
#   - `user add` through the image's CLI, a knox login (JSON) over HTTP with curl, /verify with the
#     token (and 401 without a valid one), /readyz;
#   - `podman healthcheck run` passes, and fails while the server is frozen (SIGSTOP);
#   - `podman stop -t 30` (SIGTERM): during http.shutdown_delay (5s by default) /readyz
#     answers 503 while tokens still verify; then it returns promptly (well before podman's
#     SIGKILL), exit code 0, and the JSON log lines show the delay, the drain ("shutting down:
#     finishing in-flight requests") and "stopped".
# Prints the build time and the image size. Installs what is missing (podman, runc,
# debootstrap, curl, PostgreSQL). Idempotent: containers are removed on exit (trap) and any
# left by an interrupted run are removed first; the test database is made afresh.
# Runs as root (podman's root storage; debootstrap).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${TOKENAUTH_TEST_IMAGE:-localhost/tokenauth:test}
BUILD_STAGE=${IMAGE%:*}-build:${IMAGE##*:}   # the build stage, tagged to keep the layer cache
NAME=tokenauth-image-test        # prefix of every container this script makes
DB_NAME=tokenauth_image_test
PASSWORD='image-test-pass'
started=$SECONDS

log() { echo "image-test: $*" >&2; }
fail() { echo "image-test: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (podman's root storage, debootstrap)"

scripts/apt-install.sh podman runc debootstrap curl ca-certificates
PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)
# why: as root, podman gives containers nofile/nproc limits of about a million and runc fails
# where the machine's hard limits are lower (as in a CI container); these fit under them.
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
LIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=4096:4096")

secrets=$(mktemp -d /tmp/tokenauth-image-test.XXXXXX)
server_pid=
# This script's containers (by name), removed on exit and before a run.
our_containers() { "${PODMAN[@]}" ps -a -q --filter "name=^$NAME-" 2>/dev/null || true; }
cleanup() {
  if [ -n "$server_pid" ]; then kill -CONT "$server_pid" 2>/dev/null || true; fi
  local ids
  mapfile -t ids < <(our_containers)
  if [ ${#ids[@]} -gt 0 ]; then "${PODMAN[@]}" rm -f -v -t 0 "${ids[@]}" >/dev/null 2>&1 || true; fi
  "${PODMAN[@]}" volume rm -f "$NAME-sqlite" >/dev/null 2>&1 || true
  rm -rf "$secrets"
}
trap cleanup EXIT
# An image whose parent chain reaches one of the base images was built here from this Dockerfile.
ours() {
  local id=$1 bases_ids _
  bases_ids=" $("${PODMAN[@]}" image inspect --format '{{.Id}}' "${bases[@]}" 2>/dev/null | tr '\n' ' ') "
  for _ in $(seq 1 40); do
    id=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$id" 2>/dev/null) || return 1
    [[ "$bases_ids" == *" $id "* ]] && return 0
    id=$("${PODMAN[@]}" image inspect --format '{{.Parent}}' "$id" 2>/dev/null) || return 1
    [ -n "$id" ] || return 1
  done
  return 1
}
cleanup_leftovers() {
  local ids id name from
  mapfile -t ids < <(our_containers)
  if [ ${#ids[@]} -gt 0 ]; then
    log "removing containers left by an earlier run: ${ids[*]}"
    "${PODMAN[@]}" rm -f -v -t 0 "${ids[@]}" >/dev/null
  fi
  # An interrupted `podman build` leaves buildah's working containers ("<image>-working-
  # container") in storage, pinning their layers; remove those made from this Dockerfile's images.
  while read -r id name; do
    from=${name%-working-container}
    [ "$from" != "$name" ] || continue
    case "$from" in tokenauth-build-base | tokenauth-runtime-base) from="localhost/$from:bookworm" ;; esac
    if ours "$from"; then
      log "removing the working container $name left by an interrupted build"
      "${PODMAN[@]}" rm -f "$id" >/dev/null || true
    fi
  done < <("${PODMAN[@]}" ps -a --external --format '{{.ID}} {{.Names}}' 2>/dev/null || true)
}

# --- base images and the build -----------------------------------------------------------------
echo "== base images (scripts/base-images.sh)"
t=$SECONDS
mapfile -t bases < <(scripts/base-images.sh)
[ ${#bases[@]} -eq 2 ] || fail "scripts/base-images.sh did not print two image names"
cleanup_leftovers
base_secs=$((SECONDS - t))

echo "== podman build $IMAGE (FROM ${bases[0]}, ${bases[1]})"
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
t=$SECONDS
"${PODMAN[@]}" build --format docker --network host "${LIMITS[@]}" \
  --build-arg "BUILD_IMAGE=${bases[0]}" --build-arg "RUNTIME_IMAGE=${bases[1]}" \
  --build-arg "TOKENAUTH_BUILD_COMMIT=$commit" \
  -t "$IMAGE" . || fail "podman build failed"
build_secs=$((SECONDS - t))
# Keep the build stage tagged (all cached: a second or two) so its layers, the compiled
# dependencies above all, are not dangling; then drop what earlier runs left dangling (their
# source layers and images), or every CI run would add a few hundred MB to podman's storage.
"${PODMAN[@]}" build --quiet --format docker --network host "${LIMITS[@]}" --target build \
  --build-arg "BUILD_IMAGE=${bases[0]}" --build-arg "RUNTIME_IMAGE=${bases[1]}" \
  --build-arg "TOKENAUTH_BUILD_COMMIT=$commit" \
  -t "$BUILD_STAGE" . >/dev/null || fail "podman build --target build failed"
"${PODMAN[@]}" image prune -f >/dev/null
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
base_size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "${bases[1]}")
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }
log "built in ${build_secs}s; image $(mb "$size") (runtime base $(mb "$base_size"), so tokenauth adds $(mb $((size - base_size))))"

# --- the image's configuration -----------------------------------------------------------------
echo "== image configuration"
cfg() { "${PODMAN[@]}" image inspect --format "$1" "$IMAGE"; }
expect_eq() { [ "$2" = "$3" ] || fail "$1: expected '$3', got '$2'"; log "ok: $1 = $2"; }
expect_eq "user" "$(cfg '{{.Config.User}}')" "65532:65532"
expect_eq "workdir" "$(cfg '{{.Config.WorkingDir}}')" "/data"
expect_eq "entrypoint" "$(cfg '{{json .Config.Entrypoint}}')" '["tokenauth"]'
expect_eq "cmd" "$(cfg '{{json .Config.Cmd}}')" '["serve"]'
expect_eq "healthcheck" "$(cfg '{{json .HealthCheck.Test}}')" '["CMD","tokenauth","healthcheck"]'
# shellcheck disable=SC2016 # a Go template, not a shell expansion
expect_eq "volume /data" "$(cfg '{{range $k, $v := .Config.Volumes}}{{$k}}{{end}}')" "/data"
env_lines=$(cfg '{{range .Config.Env}}{{println .}}{{end}}')
grep -qx 'TOKENAUTH_LOG_FORMAT=json' <<<"$env_lines" || fail "TOKENAUTH_LOG_FORMAT=json not in the image's env"
grep -qx 'TOKENAUTH_BIND=0.0.0.0:8080' <<<"$env_lines" || fail "TOKENAUTH_BIND=0.0.0.0:8080 not in the image's env"
log "ok: env TOKENAUTH_BIND=0.0.0.0:8080, TOKENAUTH_LOG_FORMAT=json"
version=$("${PODMAN[@]}" run --rm "${LIMITS[@]}" --no-healthcheck --network none --read-only --name "$NAME-version" "$IMAGE" --version) \
  || fail "tokenauth --version does not run in the image"
case "$version" in
  *"${commit:0:12}"*) log "ok: $version" ;;
  *) fail "tokenauth --version does not name the commit ${commit:0:12}: $version" ;;
esac

# --- SQLite, the image's default: /data is a volume the non-root user can write --------------
echo "== SQLite default (sqlite://tokenauth.db in /data, a fresh volume, read-only root)"
sqlite_vol="$NAME-sqlite"
"${PODMAN[@]}" volume rm -f "$sqlite_vol" >/dev/null 2>&1 || true
out=$("${PODMAN[@]}" run --rm "${LIMITS[@]}" --no-healthcheck --network none --read-only --cap-drop ALL \
  -v "$sqlite_vol:/data" --name "$NAME-sqlite" "$IMAGE" migrate 2>&1) \
  || fail "tokenauth migrate on the default SQLite database in /data failed: $out"
"${PODMAN[@]}" volume rm -f "$sqlite_vol" >/dev/null
log "ok: $(tail -n1 <<<"$out")"

# --- PostgreSQL and the secret files ------------------------------------------------------------
echo "== PostgreSQL (scripts/ensure-postgres.sh, scripts/fresh-database.sh)"
admin=$(scripts/ensure-postgres.sh)
db_url=$(scripts/fresh-database.sh "$admin" "$DB_NAME")
# The URL goes into a file readable by the container's user only, mounted read-only.
printf '%s\n' "$db_url" >"$secrets/database_url"
python3 -c 'import secrets; print(secrets.token_hex(32))' >"$secrets/jwt_secret"
chown 65532:65532 "$secrets/database_url" "$secrets/jwt_secret"
chmod 0400 "$secrets/database_url" "$secrets/jwt_secret"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base_url="http://127.0.0.1:$port"

# Every container: host network (127.0.0.1 reaches PostgreSQL), read-only root without even
# podman's default /tmp and /run tmpfs, the image's /data volume not mounted (so /data is
# read-only too: with PostgreSQL nothing should be written), no capabilities.
RUN=("${PODMAN[@]}" run "${LIMITS[@]}" --network host
  --read-only --read-only-tmpfs=false --image-volume ignore
  --cap-drop ALL --security-opt no-new-privileges
  -v "$secrets/database_url:/run/secrets/database_url:ro"
  -v "$secrets/jwt_secret:/run/secrets/jwt_secret:ro"
  -e "TOKENAUTH_BIND=127.0.0.1:$port")
RUN+=(-e TOKENAUTH_DATABASE_URL_FILE=/run/secrets/database_url -e TOKENAUTH_JWT_SECRET_FILE=/run/secrets/jwt_secret)

# --- the server ----------------------------------------------------------------------------------
echo "== serve on 127.0.0.1:$port"
server="$NAME-server"
# why the filter: podman schedules the HEALTHCHECK with a systemd timer, and where there is
# no systemd (CI containers) it logs two errors and carries on (podman 4.3 does so even with
# --health-interval disable); this test runs the check itself with `podman healthcheck run`.
"${RUN[@]}" -d --health-interval disable --name "$server" "$IMAGE" \
  2> >(grep -v 'unable to get systemd connection' >&2) >/dev/null || fail "podman run (serve) failed"
dump_logs() { echo "--- podman logs $server" >&2; "${PODMAN[@]}" logs "$server" >&2 || true; }
t=$SECONDS
ready=0
for _ in $(seq 1 120); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base_url/readyz")" = 200 ]; then ready=1; break; fi
  [ "$("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$server")" = true ] || { dump_logs; fail "the server exited"; }
  sleep 0.25
done
[ "$ready" = 1 ] || { dump_logs; fail "GET /readyz did not answer 200 within 30s"; }
log "ok: GET /readyz 200 after $((SECONDS - t))s"

server_pid=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$server")
uid=$(awk '/^Uid:/ { print $2 "," $3 }' "/proc/$server_pid/status")
gid=$(awk '/^Gid:/ { print $2 "," $3 }' "/proc/$server_pid/status")
expect_eq "server process uid (real,effective)" "$uid" "65532,65532"
expect_eq "server process gid (real,effective)" "$gid" "65532,65532"
expect_eq "read-only root filesystem" "$("${PODMAN[@]}" inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$server")" "true"
cap_eff=$(awk '/^CapEff:/ { print $2 }' "/proc/$server_pid/status")
expect_eq "effective capabilities" "$cap_eff" "0000000000000000"
# Writable mounts: none outside the kernel's /proc, /sys and /dev (which every container has).
writable=$(awk '$4 ~ /(^|,)rw(,|$)/ { print $2 }' "/proc/$server_pid/mounts" | grep -vE '^/(proc|sys|dev)(/|$)' || true)
[ -z "$writable" ] || fail "writable mounts in the container: $writable"
log "ok: no writable mount outside /proc, /sys, /dev (not /tmp, not /data, not the secret)"

# --- the CLI, a login, forward auth -----------------------------------------------------------------
echo "== user add through the image's CLI; knox login, /verify"
printf '%s\n' "$PASSWORD" | "${RUN[@]}" --rm -i --no-healthcheck --name "$NAME-cli" "$IMAGE" user add alice --password-stdin \
  || fail "tokenauth user add alice (in the image) failed"
log "ok: user add alice"
body=$(curl -s -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
  -d "{\"username\":\"alice\",\"password\":\"$PASSWORD\"}" "$base_url/auth/login/")
code=${body##*$'\n'}; body=${body%$'\n'*}
expect_eq "POST /auth/login/ (knox, JSON)" "$code" "200"
token=$(printf '%s' "$body" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])') \
  || fail "no token in the login answer: $body"
[ -n "$token" ] || fail "empty token in the login answer: $body"
expect_eq "GET /verify with the token" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Token $token" "$base_url/verify")" "200"
expect_eq "GET /verify with a wrong token" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Token ${token}x" "$base_url/verify")" "401"
expect_eq "GET /readyz" "$(curl -s -o /dev/null -w '%{http_code}' "$base_url/readyz")" "200"

# --- the HEALTHCHECK ----------------------------------------------------------------------------------
echo "== HEALTHCHECK (podman healthcheck run)"
"${PODMAN[@]}" healthcheck run "$server" >&2 || { dump_logs; fail "podman healthcheck run: not healthy while serving"; }
log "ok: healthy while serving"
# A hung server: frozen with SIGSTOP, it still accepts connections (the kernel queues them)
# but answers nothing; the probe's 5s timeout must call that unhealthy.
kill -STOP "$server_pid"
if "${PODMAN[@]}" healthcheck run "$server" >&2; then
  kill -CONT "$server_pid"; fail "podman healthcheck run passed while the server was frozen"
fi
kill -CONT "$server_pid"
log "ok: unhealthy (non-zero) while the server was frozen"
"${PODMAN[@]}" healthcheck run "$server" >&2 || fail "podman healthcheck run: not healthy again after SIGCONT"
log "ok: healthy again after SIGCONT"

# --- nothing written ------------------------------------------------------------------------------------
echo "== podman diff (what the container changed in its filesystem)"
# Only the mount points podman itself makes for /etc/hosts, resolv.conf, the secret etc. may
# appear; anything else was written by the server.
"${PODMAN[@]}" diff "$server" | sed 's/^/  podman diff: /' >&2
changes=$("${PODMAN[@]}" diff "$server" | grep -vE '^[AC] /(run|run/secrets|run/secrets/database_url|run/secrets/jwt_secret|run/.containerenv|etc|etc/hosts|etc/hostname|etc/resolv.conf|dev|proc|sys)$' || true)
[ -z "$changes" ] || fail "the container wrote to its filesystem: $changes"
log "ok: no change to the filesystem but podman's own mount points"

# --- SIGTERM ------------------------------------------------------------------------------------------------
echo "== podman stop -t 30 (SIGTERM: shutdown delay, drain)"
t=$(date +%s%N)
"${PODMAN[@]}" stop -t 30 "$server" 2> >(grep -v 'unable to get systemd connection' >&2) >/dev/null &
stopper=$!
# During the shutdown delay a load balancer sees /readyz fail while requests are still served.
saw_503=0
for _ in $(seq 1 40); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base_url/readyz")" = 503 ]; then saw_503=1; break; fi
  sleep 0.05
done
if [ "$saw_503" = 1 ]; then
  log "ok: after SIGTERM, GET /readyz 503 (the shutdown delay)"
  expect_eq "GET /verify during the shutdown delay" \
    "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Token $token" "$base_url/verify")" "200"
else
  fail "GET /readyz never answered 503 within 2s of SIGTERM (the image's default http.shutdown_delay is 5s)"
fi
wait "$stopper" || fail "podman stop failed"
stop_ms=$((($(date +%s%N) - t) / 1000000))
server_pid=
# why 15s: the 5s delay plus a quick drain, well under the 30s after which podman would SIGKILL.
[ "$stop_ms" -lt 15000 ] || fail "podman stop took ${stop_ms}ms: SIGTERM did not stop the server promptly"
log "ok: podman stop returned in ${stop_ms}ms"
expect_eq "exit code after SIGTERM" "$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$server")" "0"
"${PODMAN[@]}" logs "$server" >"$secrets/server.log" 2>&1
python3 - "$secrets/server.log" "$saw_503" <<'PY' || { dump_logs; fail "the log is not JSON lines with the shutdown messages"; }
import json, sys
messages = []
for n, line in enumerate(open(sys.argv[1]), 1):
    if not line.strip():
        continue
    try:
        entry = json.loads(line)
    except ValueError:
        sys.exit(f"line {n} is not JSON: {line.rstrip()}")
    messages.append(entry.get("fields", {}).get("message", entry.get("message", "")))
wanted = ["shutting down: finishing in-flight requests", "stopped"]
if sys.argv[2] == "1":
    wanted.insert(0, "shutting down: /readyz answers 503; still serving until the delay ends")
for w in wanted:
    if w not in messages:
        sys.exit(f"no log line with message {w!r}; messages: {messages}")
print(f"image-test: ok: {len(messages)} JSON log lines, with the shutdown messages", file=sys.stderr)
PY
grep -F "$db_url" "$secrets/server.log" >/dev/null && fail "the database URL (with its password) is in the log"
log "ok: the database URL is not in the log"

echo "== image-test: all checks passed"
echo "image-test: image $IMAGE: $(mb "$size"); base images ${base_secs}s, build ${build_secs}s, total $((SECONDS - started))s"
