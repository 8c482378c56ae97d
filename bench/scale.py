#!/usr/bin/env python3
"""Measurements of bench/run.sh that wrk cannot make: revocation lag across two replicas,
time from start to ready, and resident memory. Loopback only; every loop is bounded.

  scale.py lag BIN DB_URL USER PASSWORD [N]     logout on A, poll B until 401; prints p50 p99 ms
  scale.py ready BIN DB_URL [RUNS]              start serve on an existing database; prints median ms to /readyz 200
  scale.py rss PID                              prints VmRSS in MiB
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, headers=None, body=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def serve(binary, db_url, extra_env=None):
    port = free_port()
    env = dict(os.environ, TOKENAUTH_DATABASE_URL=db_url, RUST_LOG="warn", **(extra_env or {}))
    proc = subprocess.Popen([binary, "serve", "--bind", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    while True:
        try:
            status, _ = request(port, "GET", "/readyz", timeout=1)
            if status == 200:
                return proc, port, time.monotonic() - started
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() - started > 30:
            proc.kill()
            raise SystemExit(f"serve did not become ready (exit {proc.poll()})")
        time.sleep(0.0005)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def lag(binary, db_url, user, password, n, mode="auto"):
    # why 1 s in "staleness" mode: nothing is heard there, so the lag is the entry's age limit.
    staleness = "1s" if mode == "staleness" else "1h"
    env = {"TOKENAUTH_CACHE__MAX_STALENESS": staleness, "TOKENAUTH_CACHE__INVALIDATION": mode}
    a, port_a, _ = serve(binary, db_url, env)
    b, port_b, _ = serve(binary, db_url, env)
    lags = []
    try:
        creds = json.dumps({"username": user, "password": password})
        for _ in range(n):
            status, body = request(port_a, "POST", "/auth/login/", {"Content-Type": "application/json"}, creds)
            assert status == 200, body
            auth = {"Authorization": "Token " + json.loads(body)["token"]}
            for _ in range(2):  # cached on B
                assert request(port_b, "GET", "/verify", auth)[0] == 200
            status, _ = request(port_a, "POST", "/auth/logout/", auth)
            assert status == 200
            t0 = time.monotonic()
            while request(port_b, "GET", "/verify", auth)[0] != 401:
                if time.monotonic() - t0 > 10:
                    raise SystemExit("B kept accepting a revoked token for 10 s")
            lags.append((time.monotonic() - t0) * 1000)
    finally:
        stop(a)
        stop(b)
    print(f"{statistics.median(lags):.2f} {percentile(lags, 99):.2f}")


def ready(binary, db_url, runs):
    times = []
    for _ in range(runs):
        proc, _, elapsed = serve(binary, db_url)
        times.append(elapsed * 1000)
        stop(proc)
    print(f"{statistics.median(times):.1f}")


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                print(f"{int(line.split()[1]) / 1024:.1f}")
                return
    raise SystemExit("no VmRSS")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "lag":
        lag(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]) if len(sys.argv) > 6 else 200,
            sys.argv[7] if len(sys.argv) > 7 else "auto")
    elif cmd == "ready":
        ready(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 5)
    elif cmd == "rss":
        rss(sys.argv[2])
    else:
        raise SystemExit(__doc__)
