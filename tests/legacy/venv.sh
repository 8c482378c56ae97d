#!/usr/bin/env bash
# Make (once) a Python venv outside the clone with the real libraries of a legacy system, and
# print its python's path. The test fixtures are made by these libraries at test time:
#
#   tests/legacy/venv.sh knox42|knox5|tools
#
# knox42: Django 4.2 + django-rest-knox 4.2.0 (Papermerge 2.1's pin); knox5: Django 4.2 +
# django-rest-knox 5.0.2; both with argon2-cffi and bcrypt (Django's own hashers use them)
# and psycopg2 (a Django database on PostgreSQL). tools: PyNaCl (libsodium's argon2id, as
# szurubooru hashes), PyJWT (HS256, as Webitel signs), bcrypt (Rails/Devise-style hashes).
# Idempotent and safe to run concurrently (a lock per venv); versions are pinned.
set -euo pipefail
name=${1:?usage: venv.sh knox42|knox5|tools}
root=${TOKENAUTH_LEGACY_VENVS:-/var/tmp/tokenauth-legacy-venvs}
case "$name" in
  knox42) pkgs=("Django==4.2.30" "djangorestframework==3.15.2" "django-rest-knox==4.2.0" "argon2-cffi==25.1.0" "bcrypt==5.0.0" "psycopg2-binary==2.9.13") ;;
  knox5) pkgs=("Django==4.2.30" "djangorestframework==3.15.2" "django-rest-knox==5.0.2" "argon2-cffi==25.1.0" "bcrypt==5.0.0" "psycopg2-binary==2.9.13") ;;
  tools) pkgs=("PyNaCl==1.6.2" "PyJWT==2.15.1" "bcrypt==5.0.0" "psycopg2-binary==2.9.13") ;;
  *) echo "venv.sh: unknown venv $name" >&2; exit 2 ;;
esac
venv="$root/$name"
mkdir -p "$root"
exec 9>"$root/$name.lock"
flock 9
stamp="$venv/.tokenauth-$(printf '%s\n' "${pkgs[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "${pkgs[@]}" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
