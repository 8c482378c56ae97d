"""A szurubooru database (its `user` and `user_token` tables, as its migrations make them),
filled as szurubooru fills them: password revision 1 with hashlib's SHA-1, revision 2 with
SHA-256 of secret + salt + password, revision 3 with libsodium's argon2id (PyNaCl's
`argon2id.str`, the call szurubooru makes); UserTokens are `str(uuid4())`, stored in plain
text. Prints what clients know (names, passwords, tokens) as JSON.

    python make_szurubooru.py DATABASE_URL SECRET
"""
import datetime
import hashlib
import json
import sqlite3
import sys
import uuid
from urllib.parse import unquote, urlparse

from nacl import pwhash

url, secret = urlparse(sys.argv[1]), sys.argv[2]
now = datetime.datetime.utcnow().replace(microsecond=0)

def rev1(salt, password):
    return hashlib.sha1(b"1A2/$_4xVa" + salt.encode() + password.encode()).hexdigest()

def rev2(salt, password):
    return hashlib.sha256((secret + salt + password).encode()).hexdigest()

def rev3(salt, password):
    return pwhash.argon2id.str((secret + salt + password).encode()).decode()

USERS = [
    ("ann", "ann-old-sha1", "ze4ko11ibo", 1, rev1),
    ("ben", "ben-sha256", "qa9re02miv", 2, rev2),
    ("cat", "cat-argon2", "po3du77fal", 3, rev3),
]
TOKENS = [  # (user, note, enabled, expires in hours (None: never), refused?)
    ("ann", "laptop", True, None, False),
    ("ben", None, True, 24, False),
    ("cat", "ci", True, None, False),
    ("cat", "disabled one", False, None, True),
    ("ben", "expired", True, -1, True),
]

SCHEMA = """
CREATE TABLE "user" (
    id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL UNIQUE, password_hash VARCHAR(128) NOT NULL,
    password_salt VARCHAR(32), password_revision SMALLINT NOT NULL DEFAULT 0, email VARCHAR(64),
    rank VARCHAR(32) NOT NULL, creation_time TIMESTAMP NOT NULL, last_login_time TIMESTAMP,
    avatar_style VARCHAR(32) NOT NULL DEFAULT 'gravatar', version INTEGER NOT NULL DEFAULT 1);
CREATE TABLE user_token (
    id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    token VARCHAR(36) NOT NULL, note VARCHAR(128), enabled BOOLEAN NOT NULL,
    expiration_time TIMESTAMP, creation_time TIMESTAMP NOT NULL, last_edit_time TIMESTAMP,
    last_usage_time TIMESTAMP, version INTEGER NOT NULL DEFAULT 1);
"""

if url.scheme == "sqlite":
    db = sqlite3.connect(unquote(url.path))
    mark = "?"
else:
    import psycopg2

    db = psycopg2.connect(
        dbname=url.path.lstrip("/"), user=unquote(url.username or ""), password=unquote(url.password or ""),
        host=url.hostname, port=url.port or 5432,
    )
    mark = "%s"
cur = db.cursor()
for statement in SCHEMA.split(";"):
    if statement.strip():
        cur.execute(statement)
out = {"users": [], "tokens": []}
for i, (name, password, salt, revision, make) in enumerate(USERS, start=1):
    cur.execute(
        f'INSERT INTO "user" (id, name, password_hash, password_salt, password_revision, rank, creation_time) '
        f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark})",
        (i, name, make(salt, password), salt, revision, "regular", now),
    )
    out["users"].append({"name": name, "password": password, "revision": revision})
ids = {name: i for i, (name, *_rest) in enumerate(USERS, start=1)}
for j, (name, note, enabled, hours, refused) in enumerate(TOKENS, start=1):
    token = str(uuid.uuid4())
    expires = None if hours is None else now + datetime.timedelta(hours=hours)
    cur.execute(
        f"INSERT INTO user_token (id, user_id, token, note, enabled, expiration_time, creation_time, last_usage_time) "
        f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark})",
        (j, ids[name], token, note, enabled, expires, now - datetime.timedelta(days=3), now - datetime.timedelta(days=1)),
    )
    out["tokens"].append({"user": name, "token": token, "note": note, "refused": refused, "expired": hours is not None and hours < 0})
db.commit()
print(json.dumps(out))
