#!/usr/bin/env python3
"""Login timing: unknown user vs known user with a wrong password, in every dialect.

    bench/timing.py BASE_URL ROUNDS

Each round sends one attempt of each kind, in random order, over one keep-alive connection,
so drift (CPU frequency, other load) hits both alike. Prints the medians per dialect and
their difference; exits 1 if any difference is 5% or more. Loopback only.
"""
import base64
import http.client
import json
import random
import statistics
import sys
import time
import urllib.parse

KNOWN_USER, KNOWN_RESELLER = "timing@example.com", "timing-reseller"
UNKNOWN = "nobody@example.com"


def request(dialect, name, password):
    """(method, path, headers, body) of one login attempt in the dialect's shape."""
    js = {"Content-Type": "application/json"}
    if dialect == "usertoken":
        basic = base64.b64encode(f"{name}:{password}".encode()).decode()
        return "POST", "/auth/login", {"Authorization": f"Basic {basic}"}, None
    if dialect == "knox":
        return "POST", "/auth/login/", js, {"username": name, "password": password}
    if dialect == "webitel":
        return "POST", "/login", js, {"username": name, "password": password}
    if dialect == "dialer":
        return "POST", "/session.json", js, {"login": name, "password": password}
    if dialect == "dialer-reseller":
        return "POST", "/v1/resellers/login.json", js, {"name": name, "pass": password}
    raise ValueError(dialect)


def timed(conn, dialect, name):
    method, path, headers, body = request(dialect, name, "wrong-password")
    data = json.dumps(body).encode() if body is not None else None
    started = time.perf_counter()
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    resp.read()
    elapsed = time.perf_counter() - started
    if resp.status not in (400, 401, 404):
        sys.exit(f"{dialect} {name}: unexpected status {resp.status}")
    return elapsed * 1000, resp.status


def main():
    base, rounds = sys.argv[1], int(sys.argv[2])
    url = urllib.parse.urlparse(base)
    assert url.hostname in ("127.0.0.1", "::1", "localhost"), "loopback only"
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    worst = 0.0
    print(f"{'dialect':<16} {'unknown median':>15} {'wrong pw median':>16} {'diff':>7}  statuses (unknown/wrong)")
    for dialect in ["usertoken", "knox", "webitel", "dialer", "dialer-reseller"]:
        known = KNOWN_RESELLER if dialect == "dialer-reseller" else KNOWN_USER
        for _ in range(5):  # warm-up, not counted
            timed(conn, dialect, known)
            timed(conn, dialect, UNKNOWN)
        times = {"unknown": [], "wrong": []}
        statuses = {"unknown": set(), "wrong": set()}
        for _ in range(rounds):
            pair = [("unknown", UNKNOWN), ("wrong", known)]
            random.shuffle(pair)
            for kind, name in pair:
                ms, status = timed(conn, dialect, name)
                times[kind].append(ms)
                statuses[kind].add(status)
        mu, mw = statistics.median(times["unknown"]), statistics.median(times["wrong"])
        diff = abs(mu - mw) / min(mu, mw) * 100
        worst = max(worst, diff)
        print(f"{dialect:<16} {mu:>12.2f} ms {mw:>13.2f} ms {diff:>6.2f}%  "
              f"{','.join(map(str, sorted(statuses['unknown'])))}/{','.join(map(str, sorted(statuses['wrong'])))}")
    print(f"largest difference of the medians: {worst:.2f}% over {rounds} interleaved pairs per dialect")
    sys.exit(0 if worst < 5 else 1)


if __name__ == "__main__":
    main()
