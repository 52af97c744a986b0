#!/usr/bin/env python3
"""Does a silent name server stall the database? (issue 11, point 5)

Starts `lanyard serve` on loopback (SQLite in a temporary folder) with
LANYARD_EGRESS_NAMESERVERS pointing at a local UDP "name server" that reads every query and
never answers. Twenty threads keep twenty provider tests in flight, each at a host name listed
in LANYARD_EGRESS_ALLOW (so that the policy lets the lookup happen), for DURATION seconds;
meanwhile one client measures GET /readyz and another user's GET /api/llm-configurations,
one request after the other. Prints p50/p99/max of both, idle and under the stall, and how the
hung tests ended. Every process it starts is stopped by its PID; nothing leaves loopback.

Usage: python3 bench/dns_stall.py [--binary PATH] [--duration SECONDS]
  --binary    the lanyard binary (default: $CARGO_TARGET_DIR/release/lanyard if it exists,
              else .../debug/lanyard; CARGO_TARGET_DIR defaults to ~/.cache/lanyard-target)
  --duration  how long the twenty tests are kept hanging (default 15)
Python 3.11 standard library only.
"""

import argparse
import collections
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HANGING_TESTS = 20
CONFIGURATIONS = 20
IDLE_SAMPLES = 300


class SilentNameServer:
    """A UDP socket on 127.0.0.1 that reads queries and answers none."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.queries = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.stopped.is_set():
            try:
                self.socket.recvfrom(1500)
                self.queries += 1
            except socket.timeout:
                continue

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.socket.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, token: str | None = None, body: dict | None = None,
            timeout: float = 30.0) -> tuple[int, bytes, float]:
    """One request on a fresh connection; (status, body, seconds)."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - started
    finally:
        connection.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name:<44} n={len(ms):>5}  p50={statistics.median(ms):7.2f} ms  "
            f"p99={percentile(ms, 99):7.2f} ms  max={max(ms):7.2f} ms")


def default_binary() -> str:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/lanyard-target"))
    release = os.path.join(target, "release", "lanyard")
    return release if os.path.exists(release) else os.path.join(target, "debug", "lanyard")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=default_binary())
    parser.add_argument("--duration", type=float, default=15.0)
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"no lanyard binary at {binary}; build it or pass --binary", file=sys.stderr)
        return 2

    work = tempfile.mkdtemp(prefix="lanyard-dns-stall.")
    name_server = SilentNameServer()
    server = None
    try:
        hosts = [f"hang-{i}.lanyard.test" for i in range(HANGING_TESTS)]
        port = free_port()
        keys = subprocess.run([binary, "keygen", "--id", "bench"], capture_output=True, text=True,
                              check=True, cwd=work, env={"PATH": os.environ.get("PATH", "")}).stdout.strip()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "DATABASE_URL": f"sqlite://{work}/lanyard.db",
            "LANYARD_BIND": f"127.0.0.1:{port}",
            "LANYARD_MASTER_KEYS": keys,
            "LANYARD_EGRESS_MODE": "allowlist",
            "LANYARD_EGRESS_ALLOW": ",".join(hosts),
            "LANYARD_EGRESS_NAMESERVERS": f"127.0.0.1:{name_server.port}",
            "LANYARD_TEST_RATE_PER_MINUTE": "10000",
            "LANYARD_LOG": "warn",
        }

        def cli(*command: str, stdin: str = "") -> str:
            return subprocess.run([binary, *command], input=stdin, capture_output=True, text=True,
                                  check=True, cwd=work, env=env).stdout.strip()

        tokens = {}
        for who in ("tester", "other"):
            email = f"{who}@example.com"
            cli("user", "create", "--email", email, "--password-stdin", stdin="bench-password-0123456789\n")
            tokens[who] = cli("token", "create", "--email", email, "--name", "bench")

        log = open(os.path.join(work, "server.log"), "w")
        server = subprocess.Popen([binary, "serve"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if request(port, "GET", "/healthz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                print("lanyard did not start; see its log", file=sys.stderr)
                return 1
            time.sleep(0.1)

        for i in range(CONFIGURATIONS):
            status, body, _ = request(port, "POST", "/api/llm-configurations", tokens["other"], {
                "name": f"config {i}", "provider": "openai", "model": "gpt-4o",
                "api_key": f"sk-bench-other-{i:04d}-0123456789abcdef"})
            assert status == 201, body

        def measure(until) -> tuple[list[float], list[float], collections.Counter]:
            ready, listing, statuses = [], [], collections.Counter()
            while not until(len(ready)):
                status, _, seconds = request(port, "GET", "/readyz")
                statuses[f"/readyz {status}"] += 1
                ready.append(seconds)
                status, _, seconds = request(port, "GET", "/api/llm-configurations", tokens["other"])
                statuses[f"list {status}"] += 1
                listing.append(seconds)
            return ready, listing, statuses

        idle_ready, idle_list, idle_statuses = measure(lambda n: n >= IDLE_SAMPLES)

        outcomes = collections.Counter()
        outcome_lock = threading.Lock()
        stop_at = time.monotonic() + args.duration

        def keep_testing(host: str) -> None:
            while time.monotonic() < stop_at:
                status, body, _ = request(port, "POST", "/api/llm-configurations/test", tokens["tester"], {
                    "provider": "openai", "model": "gpt-4o", "api_key": "sk-bench-hang-0123456789abcdef",
                    "base_url": f"https://{host}/v1"})
                code = json.loads(body).get("code") if status == 200 else f"HTTP {status}"
                with outcome_lock:
                    outcomes[code] += 1

        testers = [threading.Thread(target=keep_testing, args=(host,)) for host in hosts]
        for thread in testers:
            thread.start()
        # Let every test reach its lookup before measuring.
        while name_server.queries < HANGING_TESTS and time.monotonic() < stop_at:
            time.sleep(0.01)
        queries_at_start = name_server.queries
        stalled_ready, stalled_list, stalled_statuses = measure(lambda _: time.monotonic() >= stop_at)
        for thread in testers:
            thread.join()

        print(f"binary: {binary}")
        print(f"{HANGING_TESTS} tests kept hanging on a silent name server for {args.duration:.0f} s "
              f"({name_server.queries} queries received, {queries_at_start} when measuring began)")
        print(summary("idle: GET /readyz", idle_ready))
        print(summary("idle: another user's GET /api/llm-configurations", idle_list))
        print(summary("stalled: GET /readyz", stalled_ready))
        print(summary("stalled: another user's GET /api/llm-configurations", stalled_list))
        print(f"statuses idle: {dict(idle_statuses)}; stalled: {dict(stalled_statuses)}")
        print(f"how the hung tests ended: {dict(outcomes)}")
        p99 = max(percentile(stalled_ready, 99), percentile(stalled_list, 99)) * 1000
        print(f"stalled p99 (worse of the two): {p99:.2f} ms; target < 100 ms: {'met' if p99 < 100 else 'MISSED'}")
        return 0
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        name_server.stop()
        if os.environ.get("DNS_STALL_KEEP_WORK") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
