#!/usr/bin/env bash
# Install Debian packages that are missing, for the test, lint and bench scripts.
#
#   scripts/apt-install.sh PACKAGE...
#
# Idempotent: packages already installed are skipped. While apt runs, a policy-rc.d that
# exits 101 stops it from starting services on its own (the scripts start what they need),
# and a trap removes it however apt ends. No Recommends (docker-compose would pull in a whole
# Docker engine). `apt-get update` runs only when the package lists cannot serve the install.
set -euo pipefail

missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
    echo "apt-install: need root (or passwordless sudo) to install ${missing[*]}" >&2; return 1; fi
}

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
  trap 'as_root rm -f "$policy"' EXIT
fi

echo "apt-install: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
install() { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
install || { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 && install; }
