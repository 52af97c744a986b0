#!/usr/bin/env python3
"""Can strangers grow Lanyard's memory? (issue 11, points 3 and 4; Python 3.11, stdlib only)

    python3 bench/metrics_growth.py [--binary PATH] [--requests 10000] [--views 2000]

Starts the `lanyard` binary (release if built, else debug; or --binary) on a fresh SQLite
database in a temporary folder, listening on loopback only, and:

1. sends --requests requests with random methods (made-up ones and the standard ones) to random
   paths, and prints the size of /metrics and the server's RSS (VmRSS) before and after;
2. sends --views anonymous GETs to /login, /register and the setup link, and prints how many
   rows the sessions table has before and after.

The server is stopped by its PID at the end, whatever happens. Nothing but 127.0.0.1 is
contacted. Exit status 1 if a limit of the issue is broken (/metrics at 64 KiB or more, RSS
grown by 5 MB or more, any session row written).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import signal
import socket
import sqlite3
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STANDARD_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]
SETUP_MARK = "Create the first (admin) account at: "
METRICS_LIMIT = 64 * 1024
RSS_LIMIT_KIB = 5 * 1024


def default_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("release", "debug"):
        candidate = target / profile / "lanyard"
        if candidate.exists():
            return candidate
    sys.exit(f"no lanyard binary under {target}: build one, or pass --binary")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Client:
    """One keep-alive connection, opened again whenever the server closes it."""

    def __init__(self, port: int):
        self.port = port
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str) -> tuple[int, bytes]:
        for attempt in range(3):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.connection.request(method, path)
                response = self.connection.getresponse()
                body = response.read()
                if response.will_close:
                    self.close()
                return response.status, body
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def random_token(rng: random.Random, low: int, high: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def random_method(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(STANDARD_METHODS)
    return random_token(rng, 3, 16, string.ascii_uppercase)


def random_path(rng: random.Random) -> str:
    alphabet = string.ascii_lowercase + string.digits + "-_."
    segments = [random_token(rng, 1, 24, alphabet) for _ in range(rng.randint(1, 4))]
    prefix = rng.choice(["", "/api", "/llm-configurations", "/static", "/admin/users"])
    return prefix + "/" + "/".join(segments)


def metrics_size(client: Client) -> int:
    status, body = client.request("GET", "/metrics")
    assert status == 200, f"/metrics answered {status}"
    return len(body)


def session_rows(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, default=None)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--views", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    binary = args.binary or default_binary()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="lanyard-metrics-growth-") as work:
        work_dir = Path(work)
        keys = subprocess.run(
            [binary, "keygen"], cwd=work_dir, env={}, capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        port = free_port()
        database = work_dir / "lanyard.db"
        log_path = work_dir / "server.log"
        env = {
            "DATABASE_URL": f"sqlite://{database}",
            "LANYARD_MASTER_KEYS": keys,
            "LANYARD_BIND": f"127.0.0.1:{port}",
            "LANYARD_EGRESS_MODE": "allowlist",
            "LANYARD_LOG": "warn",
        }
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [binary, "serve"], cwd=work_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        try:
            return measure(args, rng, server, port, database, log_path, binary)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def measure(args, rng, server, port, database, log_path, binary) -> int:
    client = Client(port)
    started = time.monotonic()
    while True:
        if server.poll() is not None:
            sys.exit(f"lanyard exited ({server.returncode}):\n{log_path.read_text()}")
        try:
            if client.request("GET", "/healthz")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() - started > 60:
            sys.exit("lanyard did not answer /healthz within 60 s")
        time.sleep(0.1)
    setup_link = next(
        (line.split(SETUP_MARK, 1)[1].split()[0] for line in log_path.read_text().splitlines() if SETUP_MARK in line),
        None,
    )
    if setup_link is None:
        sys.exit("no setup link in the log")
    setup_path = setup_link[setup_link.index("/register") :]

    # Warm up the paths every deployment serves, so that "before" is a server that has run.
    for _ in range(200):
        for path in ("/healthz", "/login", "/api/llm-configurations", "/no-such-page"):
            client.request("GET", path)
    metrics_before, rss_before = metrics_size(client), rss_kib(server.pid)

    print(f"binary: {binary}")
    print(f"sending {args.requests} requests with random methods and paths ...", flush=True)
    began = time.monotonic()
    statuses: dict[int, int] = {}
    for _ in range(args.requests):
        status, _ = client.request(random_method(rng), random_path(rng))
        statuses[status] = statuses.get(status, 0) + 1
    took = time.monotonic() - began
    metrics_after, rss_after = metrics_size(client), rss_kib(server.pid)
    print(f"  done in {took:.1f} s; statuses: {dict(sorted(statuses.items()))}")
    print(f"  /metrics size: {metrics_before} B before, {metrics_after} B after (limit {METRICS_LIMIT} B)")
    print(f"  RSS: {rss_before} KiB before, {rss_after} KiB after, grown {rss_after - rss_before} KiB "
          f"(limit {RSS_LIMIT_KIB} KiB)")

    print(f"sending {args.views} anonymous GETs to /login, /register and the setup link ...", flush=True)
    rows_before = session_rows(database)
    pages = ["/login", "/register", setup_path]
    for view in range(args.views):
        # A fresh connection and no cookies: a stranger each time.
        stranger = Client(port)
        status, _ = stranger.request("GET", pages[view % len(pages)])
        stranger.close()
        assert status in (200, 403), f"GET {pages[view % len(pages)]} answered {status}"
    rows_after = session_rows(database)
    print(f"  session rows: {rows_before} before, {rows_after} after")
    client.close()

    broken = []
    if metrics_after >= METRICS_LIMIT:
        broken.append("/metrics reached 64 KiB")
    if rss_after - rss_before >= RSS_LIMIT_KIB:
        broken.append("RSS grew by 5 MB or more")
    if rows_after != rows_before:
        broken.append("anonymous page views wrote session rows")
    print("result: " + ("; ".join(broken) if broken else "within the limits"))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
