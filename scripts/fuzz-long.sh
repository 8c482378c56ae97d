#!/usr/bin/env bash
# The long fuzz run (issue 17; not in CI, which runs scripts/fuzz.sh's few thousand requests):
# the same schemathesis run against a throwaway server, at least 100,000 generated requests,
# with zero 5xx and zero answers the OpenAPI document does not describe, or it fails.
#
#   scripts/fuzz-long.sh [sqlite|postgres]      (default sqlite)
#
# Knobs (environment), passed on to scripts/fuzz.sh: FUZZ_MAX_EXAMPLES (cases per operation
# and phase, default 5000 here), FUZZ_MIN_REQUESTS (default 100000), FUZZ_TIME_LIMIT (default
# 4 hours), FUZZ_SEED, FUZZ_KEEP. Bounded: schemathesis stops at its case budget, and the
# run is killed at the time limit.
#
# The stateful phase (login, then use the token, then log out, chained by OpenAPI links)
# runs only as far as the document's links allow: /openapi.json declares none, so
# schemathesis' stateful checks find nothing to chain; the login → use → logout stories are
# the end-to-end tests' (tests/api/e2e.rs), over real HTTP.
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-5000}"
export FUZZ_MIN_REQUESTS="${FUZZ_MIN_REQUESTS:-100000}"
export FUZZ_TIME_LIMIT="${FUZZ_TIME_LIMIT:-14400}"
exec scripts/fuzz.sh "${1:-sqlite}"
