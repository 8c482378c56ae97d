"""Data for bench/import.sh: N users in tokenauth's import format, each with a Django PBKDF2
password (hashlib's pbkdf2_hmac at Django 4.2's 600,000 rounds: one hash, made once, shared:
the import checks a hash's shape, it does not verify it) and two tokens: a django-rest-knox 4.2
digest (sha512 of the token's bytes) and a szurubooru-style plain UUID.

    python3 bench/import_data.py N OUT.jsonl SAMPLES.json
"""
import base64
import hashlib
import json
import os
import sys
import uuid

n, out_path, samples_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
password = "bench-legacy-pw"
salt = "benchsalt1234567"
dk = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 600000)
django = f"pbkdf2_sha256$600000${salt}${base64.b64encode(dk).decode()}"
samples = {"password": password, "users": [], "knox": [], "usertoken": []}
with open(out_path, "w") as out:
    for i in range(n):
        knox = os.urandom(32).hex()
        ut = str(uuid.uuid4())
        line = {
            "name": f"legacy{i}",
            "password": {"scheme": "django", "encoded": django},
            "tokens": [
                {"dialect": "knox", "knox": {"version": "4.2", "hash": "sha512", "key": knox[:8],
                                             "digest": hashlib.sha512(bytes.fromhex(knox)).hexdigest()}},
                {"dialect": "usertoken", "token": ut},
            ],
        }
        out.write(json.dumps(line) + "\n")
        if i % (n // 50 or 1) == 0:
            samples["users"].append(f"legacy{i}")
            samples["knox"].append(knox)
            samples["usertoken"].append(ut)
with open(samples_path, "w") as f:
    json.dump(samples, f)
