#!/usr/bin/env bash
# Check the deployment files in deploy/ offline, installing the tools when missing. No cluster,
# no running systemd and no Prometheus server are needed, and none is started:
#   - deploy/systemd: `systemd-analyze verify` (syntax, directives, specifiers) and
#     `systemd-analyze security --offline=yes` (exposure score, at most SYSTEMD_MAX_EXPOSURE);
#   - deploy/kubernetes: rendered with `kubectl kustomize`, then validated with --strict
#     against the Kubernetes API schemas of K8S_VERSIONS (kubernetes-validate from PyPI, which
#     ships them), the Secret example too;
#   - deploy/prometheus: `promtool check config` (which checks the rule file as well) and
#     `promtool test rules` (every alert fires on its failure and not on healthy series);
#   - scripts/deploy/check-consistency.py: what no schema sees (stop timeouts against the
#     shutdown delay and grace, the Deployment's contract, selectors and port names, the
#     kustomization's file list, alert rules against the metrics src/metrics/mod.rs registers).
# Any error, and any warning from these tools, fails the run.
#
#   scripts/lint-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
# why two: the oldest minor still commonly run, and the newest the package knows.
K8S_VERSIONS="1.33.0 1.37.0"
# 10 x the score systemd-analyze prints (0.0 best, 10.0 worst): 2.0.
SYSTEMD_MAX_EXPOSURE=20

# why a venv: Debian's own python3 refuses `pip install` outside one (PEP 668). The same
# cache outside the clone as scripts/lint-docker.sh, so CI installs it once.
TOOLS=${TOKENAUTH_TOOLS_DIR:-/var/tmp/tokenauth-tools}
fail() { echo "lint-deploy: FAILED: $*" >&2; exit 1; }
work="$(mktemp -d "${TMPDIR:-/tmp}/tokenauth-lint-deploy.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Run a check; fail on a non-zero exit, or on warnings, which these tools print but do not
# count (systemd-analyze verify exits 0 on an unknown directive; promtool on a missing file;
# kubernetes-validate on a kind it has no schema for). $1 is a regex of lines to fail on.
strict() {
  local bad="$1" out status=0
  shift
  out="$("$@" 2>&1)" || status=$?
  [ -z "$out" ] || printf '%s\n' "$out"
  [ "$status" -eq 0 ] || fail "$* (exit $status)"
  if [ -n "$bad" ] && printf '%s\n' "$out" | grep -Eq "$bad"; then fail "$* printed warnings"; fi
}

echo "== tools"
if ! "$TOOLS/venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qx "$KUBERNETES_VALIDATE_VERSION"; then
  [ -x "$TOOLS/venv/bin/pip" ] || python3 -m venv "$TOOLS/venv" 2>/dev/null ||
    { scripts/apt-install.sh python3-venv && python3 -m venv "$TOOLS/venv"; }
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
fi
# promtool: Debian ships it in `prometheus` (apt-install.sh keeps the server from starting).
command -v promtool >/dev/null || scripts/apt-install.sh prometheus
command -v systemd-analyze >/dev/null || scripts/apt-install.sh systemd
# why the fallback: these machines come with a kubectl (1.32, kustomize v5); where none is,
# Debian's kubernetes-client (kubectl 1.20, kustomize v2) renders this kustomization too.
command -v kubectl >/dev/null || scripts/apt-install.sh kubernetes-client
echo "kubernetes-validate $("$TOOLS/venv/bin/kubernetes-validate" --version)"
promtool --version 2>&1 | head -n 1
systemd-analyze --version | head -n 1
kubectl version --client 2>/dev/null | head -n 2 | tr '\n' ' '
echo

echo "== deploy/systemd (systemd-analyze verify, security --offline)"
# why a copy: `verify` insists that ExecStart's binary exists, and tokenauth is not installed
# here (nor should CI put it in /usr/local/bin). A stub executable in the temporary directory
# stands in; the units are otherwise checked as written. (`--root=DIR` with a stub inside
# does not work: verify then also wants sysinit.target and the rest of a system in DIR.)
printf '#!/bin/sh\nexit 0\n' >"$work/tokenauth"
chmod +x "$work/tokenauth"
units=()
for unit in deploy/systemd/*.service; do
  grep -q '^ExecStart=/usr/local/bin/tokenauth ' "$unit" || fail "$unit: ExecStart is not /usr/local/bin/tokenauth"
  sed "s|/usr/local/bin/tokenauth|$work/tokenauth|g" "$unit" >"$work/$(basename "$unit")"
  units+=("$work/$(basename "$unit")")
done
# --man=no: no man pages to look for. Any output at all is a problem (a typo is only a warning).
strict '.' systemd-analyze verify --man=no "${units[@]}"
for unit in "${units[@]}"; do
  out="$(systemd-analyze security --offline=yes --threshold="$SYSTEMD_MAX_EXPOSURE" "$unit" 2>&1)" ||
    { printf '%s\n' "$out"; fail "$(basename "$unit"): exposure above $SYSTEMD_MAX_EXPOSURE/10 (or not analysable)"; }
  printf '%s\n' "$out" | grep -F 'Overall exposure level' | sed "s|$work/||"
done

echo "== deploy/kubernetes (kubectl kustomize; kubernetes-validate --strict, Kubernetes $K8S_VERSIONS)"
kubectl kustomize deploy/kubernetes >"$work/kubernetes.yaml" || fail "kubectl kustomize deploy/kubernetes"
grep -c '^kind:' "$work/kubernetes.yaml" | sed 's/$/ resources rendered/'
for version in $K8S_VERSIONS; do
  strict '^(WARN|ERROR)' "$TOOLS/venv/bin/kubernetes-validate" --strict --kubernetes-version "$version" \
    "$work/kubernetes.yaml" deploy/kubernetes/secret.example.yaml
done

echo "== deploy/prometheus (promtool check config, check rules, test rules)"
strict 'WARNING|FAILED' promtool check config deploy/prometheus/prometheus.yml
strict 'WARNING|FAILED' promtool check rules deploy/prometheus/tokenauth.rules.yml
# why cd: the test file names the rule file relative to itself, as prometheus.yml does.
(cd deploy/prometheus && strict 'FAILED' promtool test rules tokenauth.rules.test.yml)

echo "== consistency (scripts/deploy/check-consistency.py)"
# why the venv's python: PyYAML came with kubernetes-validate.
PYTHONDONTWRITEBYTECODE=1 "$TOOLS/venv/bin/python" scripts/deploy/check-consistency.py "$work/kubernetes.yaml" ||
  fail "scripts/deploy/check-consistency.py"

echo "deploy/: OK in ${SECONDS} s"
