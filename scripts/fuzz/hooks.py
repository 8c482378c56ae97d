"""schemathesis hooks for scripts/fuzz.sh (loaded through `hooks` in schemathesis.toml).

Two things the configuration file cannot say:

1. Real credentials. Random strings never pass a token check, so without help every logout
   and /verify would only ever see its 401. `Credentials` logs in (as the accounts fuzz.sh
   created) for about half of the schema-valid cases of an operation that takes
   credentials, and puts the fresh token (or, for the usertoken login, the Basic
   credentials) where that dialect carries it; the other cases keep what schemathesis
   generated (missing, malformed or random credentials), so both the 200 and the 401
   schemas get exercised. A fresh login per case, because a logout revokes the token it
   was given.

2. The refusals the wire contract mandates for schema-valid requests (`filter_failure`),
   dropped one response at a time, never a whole check or operation:
   - knox: wrong credentials are a 400 `{"non_field_errors": ["Unable to log in with
     provided credentials."]}` (Django REST framework's behaviour, dialects.md);
   - usertoken: an `expirationTime` in the past is a 400 ValidationError (dialects.md), and
     so is one beyond 9999-12-31 in UTC (9999-12-31T23:00:00-05:00), which RFC 3339 cannot
     print in UTC as every answer prints times (documented with the 400).
   No JSON Schema can say "the password is right" or "a date in the future", so the
   positive-data check cannot know these requests will be refused. The 406 of the dialer's
   IP rule is handled in schemathesis.toml instead: that operation answers 406 for nothing
   else. schemathesis counts the dropped failures in its summary.

The logins made here are real requests too; their number is written to
$FUZZ_WORK/hook-logins at exit, for summary.py.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import threading
from datetime import datetime, timezone

import requests
import schemathesis

BASE_URL = os.environ["FUZZ_BASE_URL"].rstrip("/")
# why from the environment: fuzz.sh owns the accounts (schemathesis.toml repeats the password
# in its `passwords` dictionary, and fuzz.sh checks that they agree).
PASSWORD = os.environ["FUZZ_PASSWORD"]
# why these names: created by fuzz.sh; alice has no role or group, 100@mydomain.com is the
# webitel example user with a role, acme a reseller.
USER = "alice"
WEBITEL_USER = "100@mydomain.com"
RESELLER = "acme"

# why a short timeout: the server answers a login in milliseconds; a hang is for
# schemathesis' own request timeout to report, not for a hook to wait on.
TIMEOUT = 10


def _login_usertoken() -> dict[str, str]:
    r = requests.post(f"{BASE_URL}/auth/login", auth=(USER, PASSWORD), timeout=TIMEOUT)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _login_knox() -> dict[str, str]:
    body = {"username": USER, "password": PASSWORD}
    r = requests.post(f"{BASE_URL}/auth/login/", json=body, timeout=TIMEOUT)
    r.raise_for_status()
    return {"Authorization": f"Token {r.json()['token']}"}


def _login_webitel() -> dict[str, str]:
    body = {"username": WEBITEL_USER, "password": PASSWORD}
    r = requests.post(f"{BASE_URL}/login", json=body, timeout=TIMEOUT)
    r.raise_for_status()
    return {"X-Access-Token": r.json()["token"], "X-Key": r.json()["key"]}


def _login_dialer_user() -> dict[str, str]:
    body = {"login": USER, "password": PASSWORD}
    r = requests.post(f"{BASE_URL}/session.json", json=body, timeout=TIMEOUT)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _login_dialer_reseller() -> dict[str, str]:
    body = {"name": RESELLER, "pass": PASSWORD}
    r = requests.post(f"{BASE_URL}/v1/resellers/login.json", json=body, timeout=TIMEOUT)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _basic_usertoken() -> dict[str, str]:
    # why requests' helper: the header's exact encoding, without a request.
    return {"Authorization": requests.auth._basic_auth_str(USER, PASSWORD)}


# The operations that take credentials, by schemathesis' label, with how to get them.
LOGINS = {
    "POST /auth/login": [_basic_usertoken],
    "POST /auth/bump": [_login_usertoken],
    "POST /auth/logout": [_login_usertoken],
    "POST /auth/logout/": [_login_knox],
    "POST /auth/logoutall/": [_login_knox],
    "POST /logout": [_login_webitel],
    "DELETE /session.json": [_login_dialer_user],
    "GET /v1/resellers/user/logout.json": [_login_dialer_reseller],
}
# /verify (every method, and Envoy's /verify/{original}) takes every dialect's tokens in
# every transport: each case gets one of them.
VERIFY_LOGINS = [_login_usertoken, _login_knox, _login_webitel, _login_dialer_user, _login_dialer_reseller]

_lock = threading.Lock()
_logins = 0


def _count_login() -> None:
    global _logins
    with _lock:
        _logins += 1


@atexit.register
def _write_login_count() -> None:
    with open(os.path.join(os.environ["FUZZ_WORK"], "hook-logins"), "w") as out:
        out.write(f"{_logins}\n")


def _positive(case) -> bool:
    """Whether schemathesis generated the case as schema-valid.

    why only those: a negative case must stand or fall by its invalid part. With a valid token
    added in a place the server reads first, the invalid part (a wrongly typed body field of
    webitel's logout, a query token of /verify) is rightly never read, and the request
    succeeds: the negative-data check would then blame the server for the hook's doing.
    """
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def _pick(case, choices: int) -> int | None:
    """`None` for about half of the cases, else one of `choices`, decided by the case's content.

    why not a counter: Hypothesis runs a failing case again while it shrinks it, and a case
    that got a token the first time and none the second would look flaky; the same content
    always gets the same answer. The content includes the credentials schemathesis generated
    (this runs before they are replaced), which is all that tells apart the cases of an
    operation that takes nothing else, such as a logout.
    """
    content = [case.operation.label, case.path_parameters, case.query, dict(case.headers), case.body]
    text = json.dumps(content, sort_keys=True, default=repr)
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return None if digest % 2 else (digest // 2) % choices


# why refresh_interval=None: no caching, a fresh token per case (a logout revokes its token).
# why retry_on=[]: a 401 is an expected answer here, not a sign that a token went stale.
@schemathesis.auth(refresh_interval=None, retry_on=[])
class Credentials:
    """Valid credentials for about half of the schema-valid cases of an operation that takes them."""

    def get(self, case, context):
        operation = context.operation
        logins = VERIFY_LOGINS if operation.path.startswith("/verify") else LOGINS.get(operation.label)
        if not logins or not _positive(case):
            return None
        choice = _pick(case, len(logins))
        # why about half: the rest keep their generated (refused) credentials.
        if choice is None:
            return None
        login = logins[choice]
        if login is not _basic_usertoken:
            _count_login()
        return login()

    def set(self, case, data, context):
        for name, value in data.items():
            case.headers[name] = value


def _json(response):
    try:
        return json.loads(response.content)
    except ValueError:
        return None


KNOX_WRONG_CREDENTIALS = {"non_field_errors": ["Unable to log in with provided credentials."]}
PAST = "expiration time is in the past"
OUT_OF_RANGE = "expiration time is outside the years 1 to 9999"


def _expiry(value) -> str | None:
    """`past`, `future` or `out_of_range` (outside the years 1 to 9999 once in UTC) for an
    RFC 3339 date-time; `None` for anything else."""
    if not isinstance(value, str):
        return None
    # why: year 0000 is valid RFC 3339 but beyond Python's datetime; it is past all the same.
    if value.startswith("0000-"):
        return "past"
    try:
        t = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        return None
    try:
        t.astimezone(timezone.utc)
    except OverflowError:
        # 9999-12-31T23:00:00-05:00 is in year 10000 in UTC; 0001-01-01T00:00:00+01:00 in year 0.
        return "out_of_range" if t.year == 9999 else "past"
    return "past" if t <= datetime.now(timezone.utc) else "future"


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but the contract-mandated 400s described at the top."""
    if failure.code != "ST202" or response is None or response.status_code != 400:
        return True
    label = case.operation.label
    body = _json(response)
    if label == "POST /auth/login/" and body == KNOX_WRONG_CREDENTIALS:
        return False
    # usertoken: a past expiry is refused, and so is one that falls outside the years 1 to
    # 9999 in UTC (its answer could not print it: every time is echoed as RFC 3339 in UTC;
    # documented in the 400's description). A date before year 1 in UTC is refused as out of
    # range before it is compared with now: it is in the past all the same.
    if label == "POST /auth/login" and isinstance(case.body, dict) and isinstance(body, dict):
        expiry = _expiry(case.body.get("expirationTime"))
        description = body.get("description")
        if body.get("name") == "ValidationError" and (
            (expiry == "past" and description in (PAST, OUT_OF_RANGE))
            or (expiry == "out_of_range" and description == OUT_OF_RANGE)
        ):
            return False
    return True
