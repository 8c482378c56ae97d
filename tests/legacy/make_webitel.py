"""A Webitel v3 engine's state, as the engine writes it: session tokens as `mongoexport` prints
the `authToken` collection (JSON Lines, extended JSON numbers), JWTs signed HS256 by the engine's
key file (PyJWT; the engine uses jwt-simple: no `kid`, `exp` in milliseconds), and the
directory's SIP HA1 hashes (`md5("user:domain:password")`) as CSV. Prints what clients know.

    python make_webitel.py OUT_DIR
"""
import hashlib
import json
import os
import sys
import time
import uuid

import jwt

out_dir = sys.argv[1]
key = os.urandom(24).hex().encode() + b"\n"  # a key file's bytes, trailing newline included
with open(os.path.join(out_dir, "token.key"), "wb") as f:
    f.write(key)

now_ms = int(time.time() * 1000)
DAY = 24 * 3600 * 1000
ACL = {"cdr": ["*"], "account": ["r", "w"]}
USERS = [  # (user@domain, password, role)
    ("100@mydomain.com", "secret-100", "admin"),
    ("101@mydomain.com", "secret-101", "user"),
    ("102@other.org", "p@ss:word", "user"),
]
with open(os.path.join(out_dir, "directory.csv"), "w") as f:
    f.write("# user@domain,ha1,role\n")
    for name, password, role in USERS:
        realm = name.replace("@", ":", 1)
        ha1 = hashlib.md5(f"{realm}:{password}".encode()).hexdigest()
        f.write(f"{name},{ha1},{role}\n")

def doc(username, role, role_code, expires, signing_key=key, canonical=True):
    acl = ACL if role == "admin" else {"cdr": ["r"]}
    token = jwt.encode({"exp": expires, "acl": acl}, signing_key, algorithm="HS256")
    return {
        "_id": {"$oid": uuid.uuid4().hex[:24]},
        "key": str(uuid.uuid4()),
        "domain": username.split("@")[1],
        "username": username,
        # Canonical mongoexport writes the engine's expires (a JavaScript number, a BSON double)
        # as $numberDouble; relaxed mode as a plain number.
        "expires": {"$numberDouble": str(float(expires))} if canonical else float(expires),
        "token": token,
        "role": role_code,
        "roleName": role,
        "acl": acl,
    }

docs = [
    doc("100@mydomain.com", "admin", 1, now_ms + DAY),
    doc("100@mydomain.com", "admin", 1, now_ms + 2 * DAY, canonical=False),
    doc("101@mydomain.com", "user", 0, now_ms + DAY),
    doc("101@mydomain.com", "user", 0, now_ms - 1000),  # expired
]
with open(os.path.join(out_dir, "authToken.json"), "w") as f:
    for d in docs:
        f.write(json.dumps(d) + "\n")
print(json.dumps({
    "users": [{"name": n, "password": p, "role": r} for n, p, r in USERS],
    "tokens": [{"user": d["username"], "token": d["token"], "key": d["key"], "expired": d["expires"] < now_ms if isinstance(d["expires"], float) else float(d["expires"]["$numberDouble"]) < now_ms} for d in docs],
    "forged": doc("100@mydomain.com", "admin", 1, now_ms + DAY, signing_key=b"not the engine's key at all"),
}))
