#!/usr/bin/env python3
"""The capacity model of docs/scaling.md, measured: what each kind of request costs the
database (statements, writes, transactions), how many connections a replica holds, and what
1, 2 and 3 replicas over one PostgreSQL serve on this machine. Loopback only, bounded.

  capacity.py BIN PG_ADMIN_URL [SECONDS]

Needs root (or the postgres OS user) for `log_statement = all` on its own database: the
statements are counted in PostgreSQL's log. Uses wrk for the throughput rows.
"""
import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from scale import request, serve, stop  # noqa: E402

DB = "tokenauth_capacity"
LOG = "/var/log/postgresql/postgresql-15-main.log"
PASSWORD = "capacity-password-1"


def psql_su(sql):
    subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-qAtc", sql], check=True, stdout=subprocess.PIPE)


def fresh(admin):
    psql_su(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    psql_su(f'CREATE DATABASE "{DB}" OWNER tokenauth_test')
    psql_su(f'ALTER DATABASE "{DB}" SET log_statement = \'all\'')
    u = urllib.parse.urlsplit(admin)
    return urllib.parse.urlunsplit(u._replace(path="/" + DB))


def log_size():
    return os.path.getsize(LOG)


def statements_since(offset):
    """The statements our database logged since `offset`, classified."""
    time.sleep(0.3)
    with open(LOG, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    counts = {"statements": 0, "writes": 0, "transactions": 0}
    for m in re.finditer(rf"@{DB} LOG:  (?:statement|execute [^:]*): (.*)", text):
        sql = m.group(1).strip().upper()
        if sql.startswith("BEGIN"):
            counts["transactions"] += 1
            continue
        if sql.startswith(("COMMIT", "ROLLBACK")):
            continue
        counts["statements"] += 1
        if re.match(r"(INSERT|UPDATE|DELETE|WITH .*INSERT)", sql):
            counts["writes"] += 1
    return counts


def per_request(label, n, fn):
    offset = log_size()
    for _ in range(n):
        fn()
    c = statements_since(offset)
    return (label, c["statements"] / n, c["writes"] / n, c["transactions"] / n)


def wrk(port, path, conns, secs, lua):
    script = f"/tmp/capacity-{port}-{abs(hash(lua))}.lua"
    with open(script, "w") as f:
        f.write(lua)
    return subprocess.Popen(
        ["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{secs}s", "-s", script, f"http://127.0.0.1:{port}{path}"],
        stdout=subprocess.PIPE, text=True)


def rps(proc):
    out = proc.communicate()[0]
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    return float(m.group(1)) if m else 0.0


def main():
    binary, admin = sys.argv[1], sys.argv[2]
    secs = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    url = fresh(admin)
    env = dict(os.environ, TOKENAUTH_DATABASE_URL=url, TOKENAUTH_HTTP__SHUTDOWN_DELAY="0s")
    subprocess.run([binary, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    for i in range(8):
        subprocess.run([binary, "user", "add", f"u{i}", "--password-stdin"], env=env, input=PASSWORD + "\n",
                       text=True, check=True, stdout=subprocess.DEVNULL)
    os.environ["TOKENAUTH_HTTP__SHUTDOWN_DELAY"] = "0s"

    rows = []
    proc, port, _ = serve(binary, url)
    uncached, uport, _ = serve(binary, url, {"TOKENAUTH_CACHE__CAPACITY": "0"})
    try:
        creds = json.dumps({"username": "u0", "password": PASSWORD})
        tokens = []

        def login():
            s, b = request(port, "POST", "/auth/login/", {"Content-Type": "application/json"}, creds)
            assert s == 200, b
            tokens.append(json.loads(b)["token"])

        rows.append(per_request("login (knox, correct password)", 20, login))
        wrong = json.dumps({"username": "u1", "password": "wrong"})
        rows.append(per_request("login, wrong password", 5,
                                lambda: request(port, "POST", "/auth/login/", {"Content-Type": "application/json"}, wrong)))
        auth = {"Authorization": "Token " + tokens[0]}
        request(port, "GET", "/verify", auth)
        rows.append(per_request("check (/verify), cached", 200, lambda: request(port, "GET", "/verify", auth)))
        rows.append(per_request("check (/verify), cache off", 50, lambda: request(uport, "GET", "/verify", auth)))
        it = iter(tokens[1:])
        rows.append(per_request("logout (knox)", 10,
                                lambda: request(port, "POST", "/auth/logout/", {"Authorization": "Token " + next(it)})))
    finally:
        stop(proc)
        stop(uncached)
    psql_su(f'ALTER DATABASE "{DB}" RESET log_statement')

    print(f"{'request':<34} {'statements':>10} {'writes':>7} {'transactions':>13}")
    for label, st, wr, tx in rows:
        print(f"{label:<34} {st:>10.2f} {wr:>7.2f} {tx:>13.2f}")
    print("(per request, from PostgreSQL's log; a transaction is a BEGIN; statements exclude BEGIN/COMMIT)")

    # Throughput of 1, 2 and 3 replicas, the load split evenly between them.
    print()
    print(f"{'replicas':>8} {'checks/s (cached)':>18} {'logins/s':>9} {'connections':>12}")
    for n in (1, 2, 3):
        procs = [serve(binary, url) for _ in range(n)]
        try:
            s, b = request(procs[0][1], "POST", "/auth/login/", {"Content-Type": "application/json"},
                           json.dumps({"username": "u2", "password": PASSWORD}))
            token = json.loads(b)["token"]
            verify = f'wrk.method = "GET"; wrk.headers["Authorization"] = "Token {token}"'
            checks = sum(rps(p) for p in [wrk(port, "/verify", max(1, 32 // n), secs, verify) for _, port, _ in procs])
            basic = base64.b64encode(f"u3:{PASSWORD}".encode()).decode()
            login_lua = f'wrk.method = "POST"; wrk.headers["Authorization"] = "Basic {basic}"'
            logins = sum(rps(p) for p in [wrk(port, "/auth/login", max(1, 8 // n), secs, login_lua)
                                          for _, port, _ in procs])
            out = subprocess.run(["psql", admin, "-qAtc",
                                  f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{DB}'"],
                                 capture_output=True, text=True).stdout.strip()
            print(f"{n:>8} {checks:>18.0f} {logins:>9.1f} {out:>12}")
        finally:
            for p, _, _ in procs:
                stop(p)
    print(f"(wrk on the same {os.cpu_count()}-core machine, {secs} s each: 32 connections of checks and 8 of")
    print(" usertoken logins in all, split between the replicas; connections: the database's, after the load)")
    psql_su(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


if __name__ == "__main__":
    main()
