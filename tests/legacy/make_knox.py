"""A Django project with django-rest-knox, made by the real libraries: users hashed by Django's
own hashers (every kind tokenauth imports), and knox tokens made by knox's own
`AuthToken.objects.create`. Prints what a client knows (names, passwords, tokens) as JSON.

    python make_knox.py DATABASE_URL [--prefix P] [--core-user]

DATABASE_URL: sqlite:///path/db.sqlite3 or postgres://user:pass@host:port/db (an empty
database). --prefix: knox 5's TOKEN_PREFIX. --core-user: also copy the users into a table
core_user (Papermerge's custom user table) and empty auth_user.
"""
import argparse
import datetime
import json
import os
from urllib.parse import unquote, urlparse

import django
from django.conf import settings

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("--prefix", default="")
parser.add_argument("--core-user", action="store_true")
args = parser.parse_args()

url = urlparse(args.url)
if url.scheme == "sqlite":
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(url.path)}
else:
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/"),
        "USER": unquote(url.username or ""),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname,
        "PORT": str(url.port or 5432),
    }
knox_settings = {"TOKEN_TTL": None}
if args.prefix:
    knox_settings["TOKEN_PREFIX"] = args.prefix
settings.configure(
    SECRET_KEY="tokenauth-fixture",
    USE_TZ=True,
    DATABASES={"default": database},
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "rest_framework", "knox"],
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "django.contrib.auth.hashers.BCryptPasswordHasher",
        "django.contrib.auth.hashers.ScryptPasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.SHA1PasswordHasher",
        "django.contrib.auth.hashers.UnsaltedMD5PasswordHasher",
        "django.contrib.auth.hashers.UnsaltedSHA1PasswordHasher",
    ],
    REST_KNOX=knox_settings,
)
django.setup()

from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from knox.models import AuthToken  # noqa: E402

call_command("migrate", verbosity=0)

# (name, password, Django hasher, active); None: an unusable password.
USERS = [
    ("alice", "correct horse battery", "pbkdf2_sha256", True),
    ("bob", "b0b's pässword", "argon2", True),
    ("carol", "carol-pw-3", "bcrypt_sha256", True),
    ("dave", "dave-pw-4", "pbkdf2_sha256", False),
    ("erin", "erin-pw-5", "md5", True),
    ("frank", "frank-pw-6", "scrypt", True),
    ("grace", "grace-pw-7", "bcrypt", True),
    ("heidi", "heidi-pw-8", "pbkdf2_sha1", True),
    ("ivan", "ivan-pw-9", "sha1", True),
    ("judy", "judy-pw-10", "unsalted_md5", True),
    ("mallory", "mallory-pw-11", "unsalted_sha1", True),
    ("oscar", None, None, True),
    ("olga", "olga-pw-12", "argon2-without-v", True),
]
out = {"users": [], "tokens": []}
for name, password, hasher, active in USERS:
    user = User(username=name, is_active=active)
    if password is None:
        user.set_unusable_password()
    elif hasher == "argon2-without-v":
        # An argon2i string from before argon2 wrote `v=` (read as version 0x10): made by
        # argon2-cffi at version 0x10, the `v=16` dropped, and checked by Django's own hasher.
        from argon2.low_level import Type, hash_secret
        from django.contrib.auth.hashers import check_password

        raw = hash_secret(password.encode(), os.urandom(16), time_cost=2, memory_cost=512, parallelism=2,
                          hash_len=16, type=Type.I, version=0x10).decode()
        user.password = "argon2" + raw.replace("$v=16$", "$", 1)
        assert check_password(password, user.password), "Django reads it"
    else:
        user.password = make_password(password, hasher=hasher)
    user.save()
    out["users"].append({"name": name, "password": password, "hasher": hasher, "active": active})

def token(name, **kwargs):
    _, plain = AuthToken.objects.create(User.objects.get(username=name), **kwargs)
    return plain

for name in ["alice", "alice", "bob", "carol", "dave", "oscar", "heidi"]:
    out["tokens"].append({"user": name, "token": token(name, expiry=None), "expired": False})
out["tokens"].append({"user": "erin", "token": token("erin", expiry=datetime.timedelta(hours=10)), "expired": False})
out["tokens"].append({"user": "alice", "token": token("alice", expiry=datetime.timedelta(hours=-1)), "expired": True})

if args.core_user:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE core_user AS SELECT id, username, password, is_active, date_joined FROM auth_user"
        )
        # The knox table keeps pointing at the ids; auth_user no longer has the users.
        cursor.execute("UPDATE auth_user SET username = 'moved-' || username, password = '!'")

print(json.dumps(out))
