#!/usr/bin/env bash
# Make the two local base images the Dockerfile can build from when no image registry is
# reachable (as here), and print their names on stdout, builder first:
#
#   localhost/tokenauth-build-base:bookworm    stands in for rust:1.95-slim-bookworm
#   localhost/tokenauth-runtime-base:bookworm  stands in for gcr.io/distroless/cc-debian12:nonroot
#
#   scripts/base-images.sh        (then: podman build --build-arg BUILD_IMAGE=... --build-arg RUNTIME_IMAGE=...)
#
# The builder is a `debootstrap --variant=minbase bookworm` rootfs with gcc and libc6-dev (what
# rust:slim adds), plus this machine's own Rust toolchain (no toolchain can be downloaded here),
# copied into the official image's layout: RUSTUP_HOME=/usr/local/rustup,
# CARGO_HOME=/usr/local/cargo, rustup's proxies in /usr/local/cargo/bin on PATH. The runtime
# base is distroless-like, made from the builder's Debian packages, no package manager and no
# shell: the glibc loader and libraries (libc6), libgcc_s (libgcc-s1), tzdata, netbase, the CA
# bundle, os-release, /etc/passwd and /etc/group with root, nobody and nonroot (65532), /tmp
# (1777) and /home/nonroot; its default user is 65532, like distroless's :nonroot tag.
#
# Idempotent: an image already in podman's storage is skipped; the builder is remade when its
# label says another rustc than this machine's. Installs podman and debootstrap when missing.
# Runs as root (debootstrap and podman's root storage). DEBIAN_MIRROR overrides the mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_BASE=${TOKENAUTH_BUILD_BASE:-localhost/tokenauth-build-base:bookworm}
RUNTIME_BASE=${TOKENAUTH_RUNTIME_BASE:-localhost/tokenauth-runtime-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
WORK=${TOKENAUTH_ROOTFS_DIR:-/var/tmp/tokenauth-rootfs}
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { echo "base-images: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root (debootstrap, podman's root storage)"; exit 1; }

{ command -v podman >/dev/null && command -v debootstrap >/dev/null; } \
  || scripts/apt-install.sh podman runc debootstrap
PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)
# why: as root, podman gives containers nofile and nproc limits of about a million, and runc
# fails ("error setting rlimit ... operation not permitted") where the machine's hard limits
# are lower, as in a CI container; these fit under them (nproc counts only the non-root uid).
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
LIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=4096:4096")

# The host's toolchain: its sysroot (rustup's toolchain directory) and version.
sysroot=$(rustc --print sysroot)
rust_version=$(rustc --version | awk '{ print $2 }')
rustup_bin=$(command -v rustup || true)
[ -n "$rustup_bin" ] || rustup_bin="${CARGO_HOME:-$HOME/.cargo}/bin/rustup"
[ -x "$rustup_bin" ] || { log "no rustup binary found (looked at $rustup_bin)"; exit 1; }
[ -x "$sysroot/bin/cargo" ] || { log "no cargo in the toolchain $sysroot"; exit 1; }
toolchain="${rust_version}-x86_64-unknown-linux-gnu"

label_of() { "${PODMAN[@]}" image inspect --format "{{ index .Labels \"$2\" }}" "$1" 2>/dev/null || true; }

need_build=1
if "${PODMAN[@]}" image exists "$BUILD_BASE" && [ "$(label_of "$BUILD_BASE" rust.version)" = "$rust_version" ]; then
  need_build=0
fi
need_runtime=1
"${PODMAN[@]}" image exists "$RUNTIME_BASE" && need_runtime=0

if [ "$need_build" = 0 ] && [ "$need_runtime" = 0 ]; then
  log "$BUILD_BASE (rust $rust_version) and $RUNTIME_BASE exist; nothing to do"
  printf '%s\n%s\n' "$BUILD_BASE" "$RUNTIME_BASE"
  exit 0
fi

# why a fresh rootfs each time: a half-made one from an interrupted run is not to be trusted.
# (TOKENAUTH_KEEP_ROOTFS=1 keeps a finished debootstrap for the next run, for debugging.)
rootfs="$WORK/build"
if [ "${TOKENAUTH_KEEP_ROOTFS:-0}" = 1 ] && [ -f "$WORK/debootstrap.done" ]; then
  rm -rf "$WORK/runtime"
  log "reusing the debootstrap in $rootfs"
else
  rm -rf "$WORK"
  mkdir -p "$WORK"
  log "debootstrap $SUITE (minbase + gcc, libc6-dev, ca-certificates, tzdata, netbase) from $MIRROR"
  start=$SECONDS
  debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates,tzdata,netbase \
    "$SUITE" "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }
  log "debootstrap took $((SECONDS - start))s"
  touch "$WORK/debootstrap.done"
fi
[ "${TOKENAUTH_KEEP_ROOTFS:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT

# --- the runtime base, from the packages debootstrap just installed -------------------------
if [ "$need_runtime" = 1 ]; then
  rt="$WORK/runtime"
  mkdir -p "$rt"/usr/{bin,sbin,lib,lib64} "$rt"/etc/ssl/certs "$rt"/home/nonroot "$rt"/root "$rt"/tmp
  # merged /usr, as in Debian 12 and distroless: /lib64/ld-linux-x86-64.so.2 must resolve.
  for d in bin sbin lib lib64; do ln -s "usr/$d" "$rt/$d"; done
  # Every non-directory a package owns, at its canonical (merged-/usr) path; no docs.
  for pkg in libc6 libgcc-s1 tzdata netbase; do
    list="$rootfs/var/lib/dpkg/info/$pkg:amd64.list"
    [ -f "$list" ] || list="$rootfs/var/lib/dpkg/info/$pkg.list"
    [ -f "$list" ] || { log "package $pkg is not in the builder rootfs"; exit 1; }
    while IFS= read -r path; do
      [ -d "$rootfs$path" ] && [ ! -L "$rootfs$path" ] && continue
      [ -e "$rootfs$path" ] || [ -L "$rootfs$path" ] || continue
      case "$path" in
        /usr/share/doc/* | /usr/share/lintian/* | /usr/share/man/* | /usr/share/locale/* | */gconv/*) continue ;;
      esac
      dir=$(cd "$rootfs${path%/*}" && pwd -P)
      rel="${dir#"$rootfs"}/${path##*/}"
      mkdir -p "$rt${rel%/*}"
      cp -a "$rootfs$rel" "$rt$rel"
    done <"$list"
  done
  cp -L "$rootfs/etc/ssl/certs/ca-certificates.crt" "$rt/etc/ssl/certs/ca-certificates.crt"
  cp -L "$rootfs/etc/os-release" "$rt/usr/lib/os-release"
  ln -s ../usr/lib/os-release "$rt/etc/os-release"
  cat >"$rt/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$rt/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rt/etc/nsswitch.conf"
  chmod 1777 "$rt/tmp"
  chmod 700 "$rt/root" "$rt/home/nonroot"
  chown 65532:65532 "$rt/home/nonroot"
  # The loader must be there, or nothing dynamically linked starts.
  [ -e "$rt/lib64/ld-linux-x86-64.so.2" ] || { log "runtime rootfs has no /lib64/ld-linux-x86-64.so.2"; exit 1; }
  "${PODMAN[@]}" image rm -f "$RUNTIME_BASE" >/dev/null 2>&1 || true
  tar --numeric-owner -C "$rt" -c . | "${PODMAN[@]}" import --quiet \
    --change "ENV=PATH=$SYS_PATH" \
    --change "ENV=SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
    --change "USER=65532:65532" \
    --change "WORKDIR=/home/nonroot" \
    --change "LABEL=made-by=tokenauth/scripts/base-images.sh" \
    - "$RUNTIME_BASE" >/dev/null
  log "imported $RUNTIME_BASE ($(du -sh "$rt" | cut -f1) unpacked)"
fi

# --- the builder: the rootfs plus this machine's Rust toolchain ------------------------------
if [ "$need_build" = 1 ]; then
  tc="$rootfs/usr/local/rustup/toolchains/$toolchain"
  mkdir -p "$tc" "$rootfs/usr/local/cargo/bin"
  # Everything but the docs (800 MB of HTML).
  tar -C "$sysroot" --exclude=./share/doc -c . | tar -C "$tc" -x
  cp "$rustup_bin" "$rootfs/usr/local/cargo/bin/rustup"
  for tool in cargo cargo-clippy cargo-fmt clippy-driver rustc rustdoc rustfmt rust-gdb rust-gdbgui rust-lldb; do
    ln -sf rustup "$rootfs/usr/local/cargo/bin/$tool"
  done
  cat >"$rootfs/usr/local/rustup/settings.toml" <<EOF
version = "12"
default_toolchain = "$toolchain"
profile = "minimal"
auto_self_update = "disable"

[overrides]
EOF
  # why: cargo fetches crates through this machine's network, which may re-sign TLS with a
  # local CA (a CI egress proxy, as here); the builder trusts what the host trusts. (Only the
  # local builder: the runtime base keeps Debian's own bundle.)
  if [ -d /usr/local/share/ca-certificates ]; then
    cp -a /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/"
  fi
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/*
  "${PODMAN[@]}" image rm -f "$BUILD_BASE" >/dev/null 2>&1 || true
  tar --numeric-owner -C "$rootfs" -c . | "${PODMAN[@]}" import --quiet \
    --change "ENV=RUSTUP_HOME=/usr/local/rustup" \
    --change "ENV=CARGO_HOME=/usr/local/cargo" \
    --change "ENV=PATH=/usr/local/cargo/bin:$SYS_PATH" \
    --change "ENV=RUST_VERSION=$rust_version" \
    --change "LABEL=rust.version=$rust_version" \
    --change "LABEL=made-by=tokenauth/scripts/base-images.sh" \
    - "$BUILD_BASE" >/dev/null
  # The image must run the toolchain the way the Dockerfile will (rustup's proxies, no network).
  "${PODMAN[@]}" run --rm --network none "${LIMITS[@]}" "$BUILD_BASE" \
    sh -c 'cargo --version && rustc --version && cc --version | head -n1' >&2 \
    || { "${PODMAN[@]}" image rm -f "$BUILD_BASE" >/dev/null 2>&1; log "$BUILD_BASE cannot run cargo"; exit 1; }
  log "imported $BUILD_BASE (rust $rust_version)"
fi

"${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -F -e "$BUILD_BASE " -e "$RUNTIME_BASE " >&2 || true
printf '%s\n%s\n' "$BUILD_BASE" "$RUNTIME_BASE"
