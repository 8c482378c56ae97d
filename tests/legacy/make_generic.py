"""Lines of tokenauth's import format for a system with a hash export: bcrypt hashes made by
Python's bcrypt (the library Rails' has_secure_password and Devise hash with, `$2b$`), one
with a Devise-style pepper appended to the password, and tokens given in plain text or as
their SHA-256. Prints {"file": <lines>, "users": [...], "tokens": [...]}.

    python make_generic.py PEPPER [KEY_FILE]

With KEY_FILE, rails also has a dialer JWT signed HS256 (PyJWT) by a key written there.
"""
import hashlib
import json
import sys
import uuid

import os
import time

import bcrypt
import jwt

pepper = sys.argv[1]
key_file = sys.argv[2] if len(sys.argv) > 2 else None
# Hello Hunter's dialer signs HS256 with a secret of its own; its token's claims are the seed's.
dialer_key = os.urandom(32)
dialer_jwt = jwt.encode({"type": "user", "admin": False, "id": 7, "name": "rails", "sms_from": None,
                         "user_group_id": None, "exp": int(time.time()) + 3600}, dialer_key, algorithm="HS256",
                        headers={"kid": "hh-1"})
if key_file:
    with open(key_file, "wb") as f:
        f.write(dialer_key)
plain_ut = str(uuid.uuid4())
plain_knox = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
digested_ut = str(uuid.uuid4())
lines = [
    {"name": "rails", "password": {"scheme": "bcrypt", "encoded": bcrypt.hashpw(b"rails-pw", bcrypt.gensalt(10)).decode()},
     "tokens": [{"dialect": "usertoken", "token": plain_ut, "static": True, "note": "deploy"},
                {"dialect": "knox", "token": plain_knox}] + ([{"dialect": "dialer", "token": dialer_jwt}] if key_file else [])},
    {"name": "devise", "created": "2021-03-04T05:06:07Z",
     "password": {"scheme": "bcrypt", "encoded": bcrypt.hashpw(("devise-pw" + pepper).encode(), bcrypt.gensalt(11)).decode(), "pepper": "devise"},
     "tokens": [{"dialect": "usertoken", "sha256": hashlib.sha256(digested_ut.encode()).hexdigest(), "expires": "2099-01-01T00:00:00Z"}]},
    {"kind": "reseller", "name": "acme", "password": {"scheme": "bcrypt", "encoded": bcrypt.hashpw(b"acme-pw", bcrypt.gensalt(4)).decode()}},
]
print(json.dumps({
    "file": "\n".join(json.dumps(l) for l in lines) + "\n",
    "users": [{"name": "rails", "password": "rails-pw"}, {"name": "devise", "password": "devise-pw"}],
    "resellers": [{"name": "acme", "password": "acme-pw"}],
    "tokens": [{"user": "rails", "dialect": "usertoken", "token": plain_ut}, {"user": "rails", "dialect": "knox", "token": plain_knox}]
              + ([{"user": "rails", "dialect": "dialer", "token": dialer_jwt}] if key_file else []) + [
               {"user": "devise", "dialect": "usertoken", "token": digested_ut}],
}))
