#!/usr/bin/env python3
"""Lanyard's load benchmark (Python 3.11, standard library only).

    bash bench/run.sh                          # builds the release binary, then runs this
    python3 bench/driver.py --binary PATH      # an already built binary
    python3 bench/driver.py --preflight        # checks the options, targets and tools, and stops

Starts Lanyard on SQLite and then on PostgreSQL (a fresh database, dropped afterwards), on
loopback only, seeds 50 configurations, and measures /healthz, GET /api/llm-configurations
(bearer token), GET /llm-configurations (session from a real form login) and GET /api/resolve
with wrk: requests/s, p50 and p99 at 32 connections, median of BENCH_RUNS runs; RSS after the
load; time from start to first answer. After each backend's load the server is killed
(SIGKILL, a crash right after its last answer) and the audit rows are counted in the database:
every resolve answered 200 must have its key_reveals row (and a service token's, its
organisation_reveals row). Then, on SQLite, the list's latency while 100 provider
tests hang on a local server that accepts and never answers (bench/hang_server.py). Then, on
SQLite, 5,000 waiting resolves (`wait=60` with the current tag, from 50 `resolve` tokens, over
raw sockets): the server's RSS against idle, and the list's latency while they wait. Prints the
tables and rewrites the generated section of BENCHMARKS.md (between <!-- bench:start --> and
<!-- bench:end -->), judging each target of bench/targets.toml as PASS or FAIL.

Environment:
  BENCH_DURATION    wrk duration per run (default 10s)
  BENCH_RUNS        runs per endpoint; the median is reported (default 3)
  CARGO_TARGET_DIR  where the binary was built (default ~/.cache/lanyard-target)
  BENCH_PG_HOST / BENCH_PG_PORT / BENCH_PG_USER   PostgreSQL (default 127.0.0.1 / 5432 / postgres)
  BENCH_KEEP_WORK=1 keeps the temporary directory (server logs, every wrk output) for a look
  BENCH_ONLY=waiting  only the waiting-resolve phase (SQLite): prints its rows, leaves
                    BENCHMARKS.md as it is

Its own logic (wrk's output, medians, targets, the generated section) is tested without a
server: python3 -m unittest bench/test_driver.py

Safety: every URL is built on 127.0.0.1; every process this starts is stopped by its PID on
any exit (errors, Ctrl-C, SIGTERM); the PostgreSQL database it creates is dropped.
"""

from __future__ import annotations

import sys

if sys.version_info < (3, 11):
    sys.exit("bench/driver.py needs Python 3.11 or later (tomllib)")

import argparse
import asyncio
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import tomllib
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
TARGETS_FILE = ROOT / "bench" / "targets.toml"
BENCHMARKS_FILE = ROOT / "BENCHMARKS.md"
HANG_SERVER = ROOT / "bench" / "hang_server.py"
LOOPBACK = "127.0.0.1"

WRK_THREADS = 2
WRK_CONNECTIONS = 32
WARMUP = "2s"
CONFIGURATIONS = 50
HANGING_TESTS = 100
# The hanging phase runs with scheduled checks on (monitoring.md), every 5 s, of this many more
# connections that point at the same silent server: the list must keep its p99 while both hang.
HANGING_CHECKS = 20
CHECK_INTERVAL = "5s"
# Lanyard's outbound timeout is 10 s: every wrk window must fall inside the time the tests hang.
HANG_WINDOW_S = 7
# Waiting resolves (runtimes.md): this many at once on one instance, each `wait=WAIT_SECONDS`
# with the current tag; a token may have WAITS_PER_TOKEN waiting, so they come from several.
WAITING_RESOLVES = 5000
WAITS_PER_TOKEN = 100
WAIT_SECONDS = 60
# Connections opened at once while the waits are set up (the listen backlog is 1024).
WAITING_BATCH = 250
EMAIL = "bench@example.com"
SLOW_EMAIL = "slow@example.com"
PASSWORD = "bench-password-0123456789"
PROVIDERS = ["openai", "anthropic", "gemini", "mistral", "groq", "openrouter", "deepseek", "together", "xai"]
BACKENDS = ["sqlite", "postgres"]
# Settings of the caller's shell that would change what is measured; the server never sees them.
UNSET_FOR_SERVER = [
    "LANYARD_PUBLIC_URL", "LANYARD_MASTER_PASSPHRASE", "LANYARD_MASTER_KEY_FILE", "LANYARD_METRICS_TOKEN",
    "LANYARD_TRUSTED_PROXIES", "LANYARD_FALLBACK_PROVIDER", "LANYARD_FALLBACK_MODEL",
    "LANYARD_FALLBACK_API_KEY", "LANYARD_FALLBACK_BASE_URL", "LANYARD_TEST_POSTGRES_URL",
]
GIT_BUILD_INPUTS = ["src", "Cargo.toml", "Cargo.lock", "migrations", "templates", "static", "build.rs"]


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    label: str
    credential: str | None  # which of Credentials' fields authenticates it
    conditional: bool = False  # sent with If-None-Match: the tag of the current answer


ENDPOINTS = [
    Endpoint("healthz", "/healthz", "GET /healthz", None),
    Endpoint("api", "/api/llm-configurations", "GET /api/llm-configurations (token)", "token_rw"),
    Endpoint("page", "/llm-configurations", "GET /llm-configurations (session)", "session_cookie"),
    Endpoint("resolve", "/api/resolve", "GET /api/resolve (token)", "token_resolve"),
    # A team's runtime resolving on a member's behalf (organisations.md): the member's personal
    # default does not count for the organisation, so this falls through to its default.
    Endpoint("service_resolve", f"/api/resolve?user={EMAIL.replace('@', '%40')}",
             "GET /api/resolve?user=… (service token)", "token_service"),
    # A runtime that holds the current answer (runtimes.md): 304, nothing revealed or recorded.
    Endpoint("resolve_304", "/api/resolve", "GET /api/resolve, If-None-Match current (304)", "token_resolve",
             conditional=True),
]
LIST = ENDPOINTS[1]
SERVICE_RESOLVE = ENDPOINTS[4]
# The endpoints whose every 200 hands out a key, and so must leave a key_reveals row.
REVEALING = {"resolve", "service_resolve"}

# The quantities targets.toml may judge, and how each is shown (its value is compared as shown).
QUANTITIES = {
    "list_to_healthz.sqlite": "{:.3f}",
    "list_to_healthz.postgres": "{:.3f}",
    "page_to_healthz.sqlite": "{:.3f}",
    "list_p99_ms.sqlite": "{:.2f} ms",
    "list_p99_ms.postgres": "{:.2f} ms",
    "list_p99_ms.hanging": "{:.2f} ms",
    "list_p99_ms.waiting": "{:.2f} ms",
    "waiting_rss_over_idle_mib": "{:.1f} MiB",
    "waiting_early_answers": "{:.0f}",
    "resolve_to_healthz.sqlite": "{:.3f}",
    "resolve_to_healthz.postgres": "{:.3f}",
    "resolve_p99_ms.sqlite": "{:.2f} ms",
    "resolve_p99_ms.postgres": "{:.2f} ms",
    "resolve_304_to_healthz.sqlite": "{:.3f}",
    "resolve_304_to_healthz.postgres": "{:.3f}",
    "resolve_audit_missing": "{:.0f}",
    "list_errors": "{:.0f}",
    "other_errors": "{:.0f}",
    "rss_mib.sqlite": "{:.1f} MiB",
    "rss_mib.postgres": "{:.1f} MiB",
    "first_answer_ms.sqlite": "{:.0f} ms",
    "first_answer_ms.postgres": "{:.0f} ms",
}
COMPARISONS = {
    ">=": ("≥", lambda measured, threshold: measured >= threshold),
    "<=": ("≤", lambda measured, threshold: measured <= threshold),
    "==": ("=", lambda measured, threshold: measured == threshold),
}


class BenchError(Exception):
    """Stops the run: logged as ERROR, exit status 1, everything cleaned up."""


class Interrupted(SystemExit):
    """Ctrl-C or SIGTERM: exit status 130 after the clean-up, like a shell script's."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


# ---------------------------------------------------------------------------------------------
# Options and targets: both checked before anything is built or started.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    duration: str
    runs: int
    pg_host: str
    pg_port: str
    pg_user: str
    keep_work: bool
    command: str  # how the run is reproduced, as the report states it
    only: str = ""  # "waiting": that phase alone

    @property
    def duration_s(self) -> int:
        number = int(re.match(r"[0-9]+", self.duration).group())
        return number * {"m": 60, "h": 3600}.get(self.duration[-1], 1)


def options_from_environment() -> Options:
    duration = os.environ.get("BENCH_DURATION") or "10s"
    runs = os.environ.get("BENCH_RUNS") or "3"
    if not re.fullmatch(r"[1-9][0-9]*", runs):
        raise BenchError("BENCH_RUNS must be a positive whole number")
    if not re.fullmatch(r"[0-9]+[smh]?", duration):
        raise BenchError("BENCH_DURATION must look like 10s, 30s or 1m")
    only = os.environ.get("BENCH_ONLY") or ""
    if only not in ("", "waiting"):
        raise BenchError("BENCH_ONLY must be empty or `waiting`")
    command = "bash bench/run.sh"
    if os.environ.get("BENCH_DURATION") or os.environ.get("BENCH_RUNS"):
        command = f"BENCH_DURATION={duration} BENCH_RUNS={runs} {command}"
    return Options(
        duration=duration,
        runs=int(runs),
        pg_host=os.environ.get("BENCH_PG_HOST") or "127.0.0.1",
        pg_port=os.environ.get("BENCH_PG_PORT") or "5432",
        pg_user=os.environ.get("BENCH_PG_USER") or "postgres",
        keep_work=os.environ.get("BENCH_KEEP_WORK") == "1",
        command=command,
        only=only,
    )


@dataclass(frozen=True)
class Target:
    label: str
    quantity: str
    compare: str
    threshold: float
    is_target: bool

    def judge(self, measured: dict[str, float]) -> tuple[str, str]:
        """(the measured value as shown, PASS or FAIL)."""
        shown = QUANTITIES[self.quantity].format(measured[self.quantity])
        # Judged on the value as shown: the reader can check the verdict against the table.
        value = float(re.match(r"-?[0-9.]+", shown).group())
        passes = COMPARISONS[self.compare][1](value, self.threshold)
        return shown, "PASS" if passes else "FAIL"


def load_targets(path: Path = TARGETS_FILE) -> list[Target]:
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise BenchError(f"cannot read {path}: {error}") from error
    targets = []
    for number, entry in enumerate(document.get("target", []), start=1):
        where = f"{path.name}, target {number}"
        unknown = set(entry) - {"label", "quantity", "compare", "threshold", "target"}
        if unknown:
            raise BenchError(f"{where}: unknown keys {sorted(unknown)}")
        if entry.get("quantity") not in QUANTITIES:
            raise BenchError(f"{where}: quantity must be one of {sorted(QUANTITIES)}")
        if entry.get("compare") not in COMPARISONS:
            raise BenchError(f"{where}: compare must be one of {sorted(COMPARISONS)}")
        threshold = entry.get("threshold")
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
            raise BenchError(f"{where}: threshold must be a number")
        if not isinstance(entry.get("label"), str):
            raise BenchError(f"{where}: label must be text")
        try:
            label = entry["label"].format(
                op=COMPARISONS[entry["compare"]][0], threshold=threshold, hanging_tests=HANGING_TESTS,
                waiting_resolves=WAITING_RESOLVES,
            )
        except (KeyError, IndexError, ValueError) as error:
            raise BenchError(f"{where}: label {entry['label']!r}: {error}") from error
        targets.append(Target(label, entry["quantity"], entry["compare"], threshold, entry.get("target", True)))
    if not targets:
        raise BenchError(f"{path} lists no [[target]]")
    return targets


# ---------------------------------------------------------------------------------------------
# Processes: every one started here is recorded, and stopped by its PID on any exit.
# ---------------------------------------------------------------------------------------------
class Processes:
    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []

    def start(self, argv: list[str], **popen_arguments) -> subprocess.Popen:
        process = subprocess.Popen([str(part) for part in argv], **popen_arguments)
        self.running.append(process)
        return process

    def wait(self, process: subprocess.Popen) -> int:
        returncode = process.wait()
        self.running.remove(process)
        return returncode

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        # All of them asked at once, so that their shutdowns overlap, then each waited for.
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in list(self.running):
            self.stop(process)


def run_tool(argv: list[str], *, stdin: str | None = None, cwd: Path | None = None,
             env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """A short-lived command (CLI, psql, git); subprocess.run kills it if we are interrupted."""
    return subprocess.run([str(part) for part in argv], input=stdin, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# HTTP on loopback
# ---------------------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    body: bytes
    cookies: dict[str, str]  # from Set-Cookie
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

    def json(self):
        return json.loads(self.body)


def request(port: int, method: str, path: str, *, headers: dict[str, str] | None = None,
            body: bytes | None = None, timeout: float = 30) -> Reply:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        cookies = {}
        for header in response.msg.get_all("Set-Cookie") or []:
            name, _, value = header.split(";", 1)[0].partition("=")
            cookies[name.strip()] = value.strip()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, data, cookies, headers)
    finally:
        connection.close()


def expect_status(want: int, what: str, port: int, method: str, path: str, **arguments) -> Reply:
    try:
        reply = request(port, method, path, **arguments)
    except (OSError, http.client.HTTPException) as error:
        raise BenchError(f"{what}: {error}") from error
    if reply.status != want:
        print(reply.body.decode(errors="replace"), file=sys.stderr)
        raise BenchError(f"{what}: HTTP {reply.status}, expected {want}")
    return reply


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors and non-2xx/3xx responses
    answered_2xx: int = 0  # responses with a 2xx or 3xx status


def wrk_latency_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([a-z]*)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}.get(unit, 1)


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", output, re.M)
    p50 = re.search(r"^\s*50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", output, re.M)
    if not (rps and p50 and p99):
        raise BenchError(f"cannot read wrk's output: {output}")
    errors = 0
    requests = re.search(r"^\s*(\d+) requests in", output, re.M)
    non_2xx_count = 0
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sockets:
        errors += sum(int(count) for count in sockets.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        non_2xx_count = int(non_2xx.group(1))
        errors += non_2xx_count
    answered = int(requests.group(1)) - non_2xx_count if requests else 0
    # Rounded as the report shows them, so that medians and verdicts use the shown values.
    return WrkResult(float(rps.group(1)), round(wrk_latency_ms(p50.group(1)), 2),
                     round(wrk_latency_ms(p99.group(1)), 2), errors, answered)


def latency_distribution(output: str) -> list[str]:
    """wrk's lines from "Latency Distribution" to the totals, for the report's appendix."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if "Latency Distribution" in line), len(lines))
    kept = []
    for line in lines[start:]:
        if line.startswith("Requests"):
            break
        kept.append(line)
    return kept


def median(values: list[float]) -> float:
    """The middle value; of an even count, the lower of the two middle ones."""
    ordered = sorted(values)
    return ordered[(len(ordered) + 1) // 2 - 1]


def rps_text(rps: float) -> str:
    return f"{rps:.0f}"


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------
@dataclass
class Credentials:
    token_rw: str = ""
    token_resolve: str = ""
    token_service: str = ""
    session_cookie: str = ""
    resolve_tag: str = ""

    def wrk_headers(self, endpoint: Endpoint) -> list[str]:
        if endpoint.conditional:
            return ["-H", f"Authorization: Bearer {getattr(self, endpoint.credential)}",
                    "-H", f"If-None-Match: {self.resolve_tag}"]
        if endpoint.credential == "session_cookie":
            return ["-H", f"Cookie: lanyard_session={self.session_cookie}"]
        if endpoint.credential is not None:
            return ["-H", f"Authorization: Bearer {getattr(self, endpoint.credential)}"]
        return []


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    startup_ms: int


@dataclass
class EndpointResult:
    runs: list[WrkResult] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return median([run.rps for run in self.runs])

    @property
    def p50_ms(self) -> float:
        return median([run.p50_ms for run in self.runs])

    @property
    def p99_ms(self) -> float:
        return median([run.p99_ms for run in self.runs])

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)


@dataclass
class AuditCount:
    """Resolves answered 200 (wrk's runs, warm-ups included, and the checks) against the audit
    rows the database holds after the server was killed."""
    answered: int = 0  # every revealing endpoint
    answered_service: int = 0  # the service token's (each also writes an organisation_reveals row)
    wrk_runs: int = 0  # wrk runs of revealing endpoints: each may end with requests in flight
    rows: int = -1  # key_reveals, counted after the kill (-1: not counted)
    organisation_rows: int = -1

    @property
    def missing(self) -> int:
        """Answers without their row: must be 0."""
        return max(0, self.answered - self.rows) + max(0, self.answered_service - self.organisation_rows)

    @property
    def in_flight_bound(self) -> int:
        """Rows may exceed the answers by the requests wrk had in flight when each run stopped
        (committed, but their answers never read)."""
        return self.wrk_runs * WRK_CONNECTIONS


@dataclass
class BackendResult:
    startup_ms: int = 0
    rss_kib: int = 0
    hwm_kib: int = 0
    endpoints: dict[str, EndpointResult] = field(default_factory=dict)
    kept_distributions: dict[str, list[str]] = field(default_factory=dict)
    audit: AuditCount = field(default_factory=lambda: AuditCount())

    def ratio(self, endpoint: str) -> float:
        healthz = self.endpoints["healthz"].rps
        return self.endpoints[endpoint].rps / healthz if healthz > 0 else 0.0


@dataclass
class WaitingResult:
    """The waiting-resolve phase: RSS before and while the waits are open, the list meanwhile."""
    waits: int = 0  # requests that were waiting when measured
    tokens: int = 0
    setup_ms: int = 0
    idle_kib: int = 0
    waiting_kib: int = 0
    early: int = 0  # answered before their wait was over (nothing changed: none should)
    list: EndpointResult = field(default_factory=EndpointResult)

    @property
    def over_idle_mib(self) -> float:
        return (self.waiting_kib - self.idle_kib) / 1024


def tokens_for(waits: int, per_token: int = WAITS_PER_TOKEN) -> int:
    """How many tokens carry `waits` waiting requests, each at most `per_token`."""
    return -(-waits // per_token)


def waiting_request(token: str, tag: str, wait: int = WAIT_SECONDS) -> bytes:
    """A waiting resolve as raw HTTP/1.1."""
    return (f"GET /api/resolve?wait={wait} HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
            f"Authorization: Bearer {token}\r\nIf-None-Match: {tag}\r\n\r\n").encode()


def raise_open_files_limit(wanted: int) -> int:
    """Raises this process's soft limit of open files towards `wanted` (children inherit it);
    returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


async def hold_waits(port: int, tokens: list[str], tag: str, ready: threading.Event, release: threading.Event,
                     outcome: dict[str, int]) -> None:
    """Opens WAITING_RESOLVES waiting resolves (WAITS_PER_TOKEN per token), reports in `outcome`
    how many are open and how long that took, sets `ready`, and holds them until `release`;
    then counts in `outcome["early"]` those that had answered meanwhile."""
    started = now_ms()
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    answers: list[asyncio.Task] = []
    try:
        for first in range(0, WAITING_RESOLVES, WAITING_BATCH):
            batch = range(first, min(first + WAITING_BATCH, WAITING_RESOLVES))
            opened = await asyncio.gather(*(asyncio.open_connection(LOOPBACK, port) for _ in batch))
            for number, (_, writer) in zip(batch, opened):
                writer.write(waiting_request(tokens[number // WAITS_PER_TOKEN], tag))
            await asyncio.gather(*(writer.drain() for _, writer in opened))
            streams += opened
            answers += [asyncio.create_task(reader.readline()) for reader, _ in opened]
        # Each has been resolved once (a 304 read, no write) and waits; give the last ones time.
        await asyncio.sleep(3)
        outcome["setup_ms"] = now_ms() - started
        outcome["open"] = sum(1 for answer in answers if not answer.done())
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait)
        outcome["early"] = sum(1 for answer in answers if answer.done())
    except OSError as error:
        outcome["error"] = 1
        log(f"waiting resolves: {error}")
    finally:
        for answer in answers:
            answer.cancel()
        for _, writer in streams:
            writer.close()


@dataclass
class HangResult:
    port: int = 0
    window: str = ""
    restart_ms: int = 0
    alone: EndpointResult = field(default_factory=EndpointResult)
    hanging: EndpointResult = field(default_factory=EndpointResult)
    fewest_open: int = HANGING_TESTS
    checks: int = 0
    fired: int = 0
    timeouts: int = 0
    batch_ms: list[int] = field(default_factory=list)
    rss_kib: int = 0
    hwm_kib: int = 0
    distribution: list[str] = field(default_factory=list)


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise BenchError(f"no {key} for process {pid}")


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class Bench:
    def __init__(self, options: Options, targets: list[Target], binary: Path) -> None:
        self.options = options
        self.targets = targets
        self.binary = binary
        self.processes = Processes()
        self.work = Path(tempfile.mkdtemp(prefix="lanyard-bench."))
        self.pg_database = ""  # set while a database of ours exists
        self.master_keys = ""
        self.server_env: dict[str, str] = {}
        self.wrk_errors: list[str] = []
        self.results = {backend: BackendResult() for backend in BACKENDS}
        self.hang = HangResult()
        self.waiting = WaitingResult()
        self.counting: AuditCount | None = None  # the backend whose revealing answers are counted

    # --- clean-up ------------------------------------------------------------------------------
    def clean_up(self) -> None:
        self.processes.stop_all()
        if self.pg_database:
            self.drop_database()
        if self.options.keep_work:
            log(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres") -> subprocess.CompletedProcess:
        o = self.options
        return run_tool(["psql", "-h", o.pg_host, "-p", o.pg_port, "-U", o.pg_user, "-d", database, "-qAt",
                         "-c", sql], timeout=60)

    def drop_database(self) -> None:
        try:
            dropped = self.psql(f'DROP DATABASE IF EXISTS "{self.pg_database}" WITH (FORCE)').returncode == 0
        except (OSError, subprocess.SubprocessError):
            dropped = False
        if dropped:
            self.pg_database = ""
        else:
            log(f"could not drop the PostgreSQL database {self.pg_database}: drop it by hand")

    # --- the server and its CLI ----------------------------------------------------------------
    def lanyard(self, *arguments: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
        """The CLI, run from the work directory so that no .env of the checkout is read."""
        done = run_tool([self.binary, *arguments], stdin=stdin, cwd=self.work, env=env or self.server_env)
        if done.returncode != 0:
            raise BenchError(f"lanyard {' '.join(arguments[:2])} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()

    def use_backend(self, database_url: str, **extra: str) -> int:
        """Sets the environment of the CLI and the server of one backend; returns the port."""
        env = {name: value for name, value in os.environ.items() if name not in UNSET_FOR_SERVER}
        port = free_port()
        env.update({
            "DATABASE_URL": database_url,
            "LANYARD_BIND": f"{LOOPBACK}:{port}",
            "LANYARD_MASTER_KEYS": self.master_keys,
            "LANYARD_LOG": "warn",
            "LANYARD_EGRESS_MODE": "allowlist",
            "LANYARD_EGRESS_ALLOW": "",
            "LANYARD_TEST_RATE_PER_MINUTE": "10",
        })
        env.update(extra)
        self.server_env = env
        return port

    def start_server(self, port: int, log_name: str) -> Server:
        """Starts `lanyard serve`; the start-up time runs from the fork to the first 200 from
        /healthz, polled with curl in a tight loop."""
        log_path = self.work / log_name
        started = now_ms()
        with open(log_path, "wb") as server_log:
            process = self.processes.start([self.binary, "serve"], cwd=self.work, env=self.server_env,
                                           stdin=subprocess.DEVNULL, stdout=server_log, stderr=subprocess.STDOUT)
        url = f"http://{LOOPBACK}:{port}/healthz"
        while run_tool(["curl", "-sf", "-o", "/dev/null", "--max-time", "1", url]).returncode != 0:
            if process.poll() is not None:
                print(log_path.read_text(errors="replace"), file=sys.stderr)
                raise BenchError("the server exited during start-up")
            if now_ms() - started >= 60_000:
                raise BenchError("no answer from /healthz within 60 s")
        return Server(process, port, now_ms() - started)

    # --- seeding, login, checks ----------------------------------------------------------------
    def seed_configurations(self, port: int, credentials: Credentials) -> None:
        for i in range(1, CONFIGURATIONS + 1):
            provider = PROVIDERS[(i - 1) % len(PROVIDERS)]
            body = {"name": f"bench-{i:02d} {provider}", "provider": provider, "model": f"model-{i:02d}",
                    "api_key": f"sk-bench-{i:032d}", "is_default": i == 1}
            expect_status(201, f"creating configuration {i}", port, "POST", "/api/llm-configurations",
                          headers={**bearer(credentials.token_rw), "Content-Type": "application/json"},
                          body=json.dumps(body).encode())

    def seed_organisation(self, port: int, credentials: Credentials) -> str:
        """An organisation of the bench user's with one configuration as its default, and a
        service token with `resolve` (created in the session, with the password); returns it."""
        json_headers = {**bearer(credentials.token_rw), "Content-Type": "application/json"}
        organisation = expect_status(201, "creating the organisation", port, "POST", "/api/organisations",
                                     headers=json_headers, body=json.dumps({"name": "bench team"}).encode()).json()
        base = f"/api/organisations/{organisation['id']}"
        configuration = expect_status(
            201, "creating the organisation's configuration", port, "POST", f"{base}/llm-configurations",
            headers=json_headers,
            body=json.dumps({"name": "team default", "provider": "openai", "model": "gpt-4o",
                             "api_key": f"sk-bench-team-{0:028d}"}).encode()).json()
        expect_status(200, "setting the organisation's default", port, "PUT", base, headers=json_headers,
                      body=json.dumps({"policy": {"default_configuration_id": configuration["id"]}}).encode())
        session = {"Cookie": f"lanyard_session={credentials.session_cookie}"}
        settings = expect_status(200, "GET /settings", port, "GET", "/settings", headers=session)
        csrf = re.search(rb'name="csrf_token" value="([^"]*)"', settings.body)
        if not csrf:
            raise BenchError("no csrf_token on /settings")
        created = expect_status(
            201, "creating the service token", port, "POST", f"{base}/tokens",
            headers={**session, "X-CSRF-Token": csrf.group(1).decode(), "Content-Type": "application/json"},
            body=json.dumps({"name": "bench-service", "scopes": ["resolve"],
                             "current_password": PASSWORD}).encode()).json()
        return created["token"]

    def log_in(self, port: int) -> str:
        """Logs in through the form like a browser; returns the lanyard_session cookie.

        Signing in is a double submit: GET /login writes no session but sets a signed
        `lanyard_csrf` cookie whose token the form repeats in `csrf_token`; the POST must carry
        both (and no foreign Origin)."""
        page = expect_status(200, "GET /login", port, "GET", "/login")
        csrf_cookie = page.cookies.get("lanyard_csrf")
        # Releases before the double-submit cookie kept the form's token in a session started by
        # GET /login: accepted too, so that an earlier binary can be measured for comparison.
        cookie = f"lanyard_csrf={csrf_cookie}" if csrf_cookie else None
        if not cookie and (earlier_session := page.cookies.get("lanyard_session")):
            cookie = f"lanyard_session={earlier_session}"
        if not cookie:
            raise BenchError("no lanyard_csrf cookie from the login page")
        token = re.search(rb'name="csrf_token" value="([^"]*)"', page.body)
        if not token or not token.group(1):
            raise BenchError("no csrf_token in the login page")
        form = {"email": EMAIL, "password": PASSWORD, "csrf_token": token.group(1).decode()}
        reply = expect_status(303, "POST /login", port, "POST", "/login",
                              headers={"Content-Type": "application/x-www-form-urlencoded",
                                       "Cookie": cookie},
                              body=urlencode(form).encode())
        session = reply.cookies.get("lanyard_session")
        if not session:
            raise BenchError("no lanyard_session cookie after logging in")
        return session

    def check_endpoints(self, port: int, credentials: Credentials) -> None:
        """Every measured endpoint answers 200 with the full list (before and after the load:
        wrk does not count a 3xx as an error, so an expired session would go unnoticed)."""
        expect_status(200, "/healthz", port, "GET", "/healthz")
        listing = expect_status(200, "GET /api/llm-configurations", port, "GET", LIST.path,
                                headers=bearer(credentials.token_rw))
        # The user's own, and the organisation's one (seed_organisation).
        if (count := len(listing.json())) != CONFIGURATIONS + 1:
            raise BenchError(f"the API lists {count} configurations, expected {CONFIGURATIONS + 1}")
        page = expect_status(200, "GET /llm-configurations", port, "GET", "/llm-configurations",
                             headers={"Cookie": f"lanyard_session={credentials.session_cookie}"})
        if (count := len(set(re.findall(rb"bench-[0-9][0-9] ", page.body)))) != CONFIGURATIONS:
            raise BenchError(f"the page shows {count} configurations, expected {CONFIGURATIONS}")
        resolved = expect_status(200, "GET /api/resolve", port, "GET", "/api/resolve",
                                 headers=bearer(credentials.token_resolve))
        self.count_answers(1, 0)
        credentials.resolve_tag = resolved.headers.get("etag", "")
        if not credentials.resolve_tag:
            raise BenchError("GET /api/resolve answered without an ETag")
        expect_status(304, "GET /api/resolve with the current tag", port, "GET", "/api/resolve",
                      headers={**bearer(credentials.token_resolve), "If-None-Match": credentials.resolve_tag})
        on_behalf = expect_status(200, "GET /api/resolve?user=… (service token)", port, "GET",
                                  SERVICE_RESOLVE.path, headers=bearer(credentials.token_service)).json()
        self.count_answers(1, 1)
        if on_behalf.get("source") != "organisation_default":
            raise BenchError(f"the service token resolved from {on_behalf.get('source')}, "
                             "expected organisation_default")

    # --- measuring -----------------------------------------------------------------------------
    def wrk(self, port: int, duration: str, output_name: str, endpoint: Endpoint,
            credentials: Credentials) -> tuple[WrkResult, str]:
        """Runs wrk once; its output is kept in the work directory under output_name."""
        output_path = self.work / output_name
        argv = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{duration}", "--latency",
                *credentials.wrk_headers(endpoint), f"http://{LOOPBACK}:{port}{endpoint.path}"]
        with open(output_path, "wb") as output:
            process = self.processes.start(argv, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            returncode = self.processes.wait(process)
        text = output_path.read_text(errors="replace")
        if returncode != 0:
            raise BenchError(f"wrk failed: {text}")
        result = parse_wrk(text)
        if endpoint.name in REVEALING and self.counting is not None:
            self.counting.wrk_runs += 1
            self.count_answers(result.answered_2xx, result.answered_2xx if endpoint is SERVICE_RESOLVE else 0)
        if result.errors > 0:
            reported = [line.strip() for line in text.splitlines() if re.search(r"Socket errors|Non-2xx", line)]
            self.wrk_errors.append(f"{Path(output_name).stem}: {';'.join(reported)}")
        return result, text

    def count_answers(self, answered: int, answered_service: int) -> None:
        if self.counting is not None:
            self.counting.answered += answered
            self.counting.answered_service += answered_service

    def count_audit(self, backend: str, server: Server, database_url: str) -> None:
        """Kills the server (SIGKILL: a crash right after its last answer), then counts the audit
        rows in its database."""
        audit = self.results[backend].audit
        self.counting = None
        server.process.kill()
        server.process.wait()
        if backend == "sqlite":
            path = database_url.removeprefix("sqlite://")
            with closing(sqlite3.connect(path)) as connection:
                audit.rows = connection.execute("SELECT count(*) FROM key_reveals").fetchone()[0]
                audit.organisation_rows = connection.execute("SELECT count(*) FROM organisation_reveals").fetchone()[0]
        else:
            counted = self.psql("SELECT (SELECT count(*) FROM key_reveals) || ' ' || "
                                "(SELECT count(*) FROM organisation_reveals)", database=self.pg_database)
            if counted.returncode != 0:
                raise BenchError(f"cannot count the audit rows: {counted.stderr.strip()}")
            audit.rows, audit.organisation_rows = (int(number) for number in counted.stdout.split())
        log(f"{backend}: after SIGKILL, {audit.rows} key_reveals rows for {audit.answered} resolves answered 200 "
            f"({audit.organisation_rows} organisation_reveals rows for {audit.answered_service} by the service "
            f"token); missing: {audit.missing}")
        if audit.rows - audit.answered > audit.in_flight_bound:
            log(f"{backend}: WARNING: {audit.rows - audit.answered} more rows than answers, beyond the "
                f"{audit.in_flight_bound} requests wrk may have had in flight")

    def measure_backend(self, backend: str, port: int, credentials: Credentials) -> None:
        result = self.results[backend]
        for endpoint in ENDPOINTS:
            self.wrk(port, WARMUP, "warmup.txt", endpoint, credentials)
            result.endpoints[endpoint.name] = EndpointResult()
        kept_run = 2 if self.options.runs > 1 else 1  # one run's latency distribution, for the report
        for run in range(1, self.options.runs + 1):
            # Interleaved (every endpoint once per round) so that a noisy moment hits all of them.
            for endpoint in ENDPOINTS:
                measured, text = self.wrk(port, self.options.duration, f"wrk-{backend}-{endpoint.name}-{run}.txt",
                                          endpoint, credentials)
                log(f"{backend} {endpoint.path} run {run}: {measured.rps:.2f} req/s, p50 {measured.p50_ms:.2f} ms, "
                    f"p99 {measured.p99_ms:.2f} ms, errors {measured.errors}")
                result.endpoints[endpoint.name].runs.append(measured)
                if run == kept_run:
                    result.kept_distributions[endpoint.name] = latency_distribution(text)

    def bench_backend(self, backend: str, database_url: str, *, measure: bool = True) -> tuple[Server, Credentials]:
        """Starts on an empty database (the start-up time includes the migrations), creates the
        user and tokens with the CLI, seeds through the API, logs in, checks, measures."""
        log(f"=== {backend} ===")
        port = self.use_backend(database_url)
        server = self.start_server(port, f"server-{backend}.log")
        result = self.results[backend]
        self.counting = result.audit
        result.startup_ms = server.startup_ms
        log(f"{backend}: first answer {server.startup_ms} ms after start (empty database, migrations included)")
        self.lanyard("user", "create", "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
        credentials = Credentials(
            token_rw=self.lanyard("token", "create", "--email", EMAIL, "--name", "bench-rw", "--scopes", "read,write"),
            token_resolve=self.lanyard("token", "create", "--email", EMAIL, "--name", "bench-resolve",
                                       "--scopes", "resolve"),
        )
        self.seed_configurations(port, credentials)
        credentials.session_cookie = self.log_in(port)
        credentials.token_service = self.seed_organisation(port, credentials)
        self.check_endpoints(port, credentials)
        if not measure:
            return server, credentials
        self.measure_backend(backend, port, credentials)
        result.rss_kib = proc_status_kib(server.process.pid, "VmRSS")
        result.hwm_kib = proc_status_kib(server.process.pid, "VmHWM")
        log(f"{backend}: RSS after the load {result.rss_kib} kB (peak {result.hwm_kib} kB)")
        self.check_endpoints(port, credentials)
        self.count_audit(backend, server, database_url)
        return server, credentials

    def bench_hanging_provider(self, sqlite_url: str, credentials: Credentials) -> None:
        """Another user fires 100 tests at a server that never answers; the first user's list is
        measured meanwhile, and without them on the same server just before."""
        log("=== hanging provider (sqlite) ===")
        hang = self.hang
        port_file, count_file = self.work / "hang.port", self.work / "hang.count"
        hang_server = self.processes.start([sys.executable, HANG_SERVER, port_file, count_file],
                                           stdin=subprocess.DEVNULL)
        for _ in range(100):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        else:
            raise BenchError("the hanging server did not start")
        hang.port = int(port_file.read_text())

        def accepted() -> int:
            try:
                return int(count_file.read_text())
            except (OSError, ValueError):
                return 0

        port = self.use_backend(sqlite_url, LANYARD_TEST_RATE_PER_MINUTE="1000",
                                LANYARD_EGRESS_ALLOW=f"{LOOPBACK}/32", LANYARD_CHECK_INTERVAL=CHECK_INTERVAL)
        self.lanyard("user", "create", "--email", SLOW_EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
        slow_token = self.lanyard("token", "create", "--email", SLOW_EMAIL, "--name", "bench-slow",
                                  "--scopes", "read,write")
        server = self.start_server(port, "server-hang.log")
        hang.restart_ms = server.startup_ms
        log(f"sqlite: first answer {server.startup_ms} ms after a restart (migrated database, 2 users, "
            f"{CONFIGURATIONS} configurations)")
        created = expect_status(201, "creating the hanging configuration", port, "POST", "/api/llm-configurations",
                                headers={**bearer(slow_token), "Content-Type": "application/json"},
                                body=json.dumps({"name": "hangs", "provider": "openai_compatible", "model": "m",
                                                 "base_url": f"http://{LOOPBACK}:{hang.port}/v1"}).encode())
        test_path = f"/api/llm-configurations/{created.json()['id']}/test"
        for number in range(HANGING_CHECKS):
            expect_status(201, "creating a connection the scheduler checks", port, "POST", "/api/connections",
                          headers={**bearer(slow_token), "Content-Type": "application/json"},
                          body=json.dumps({"name": f"checked-{number}", "provider": "openai_compatible",
                                           "api_key": f"sk-bench-check-{number:04d}-0123456789",
                                           "base_url": f"http://{LOOPBACK}:{hang.port}/v1"}).encode())
        phase_started = accepted()

        hang.window = f"{min(self.options.duration_s, HANG_WINDOW_S)}s"
        self.wrk(port, WARMUP, "warmup.txt", LIST, credentials)
        kept_run = (self.options.runs + 1) // 2
        for run in range(1, self.options.runs + 1):
            alone, _ = self.wrk(port, hang.window, f"wrk-hang-base-{run}.txt", LIST, credentials)
            hang.alone.runs.append(alone)
            log(f"list without hanging tests, run {run}: {alone.rps:.2f} req/s, p50 {alone.p50_ms:.2f} ms, "
                f"p99 {alone.p99_ms:.2f} ms, errors {alone.errors}")

            before = accepted()  # the hanging server counts every connection it ever accepted
            outcomes: list[tuple[int, bytes]] = []
            started = now_ms()
            testers = [threading.Thread(target=self.fire_test, args=(port, test_path, slow_token, outcomes),
                                        daemon=True) for _ in range(HANGING_TESTS)]
            for tester in testers:
                tester.start()
            # Wait until the hanging server holds every test's connection (at most 5 s).
            for _ in range(100):
                if accepted() - before >= HANGING_TESTS:
                    break
                time.sleep(0.05)
            held = accepted() - before
            hang.fewest_open = min(hang.fewest_open, held)
            log(f"run {run}: {held} of {HANGING_TESTS} tests hang on {LOOPBACK}:{hang.port} after "
                f"{now_ms() - started} ms; measuring for {hang.window}")
            meanwhile, text = self.wrk(port, hang.window, f"wrk-hang-{run}.txt", LIST, credentials)
            hang.hanging.runs.append(meanwhile)
            if run == kept_run:
                hang.distribution = latency_distribution(text)
            waiting = sum(tester.is_alive() for tester in testers)
            log(f"list with {HANGING_TESTS} hanging tests, run {run}: {meanwhile.rps:.2f} req/s, "
                f"p50 {meanwhile.p50_ms:.2f} ms, p99 {meanwhile.p99_ms:.2f} ms, errors {meanwhile.errors} "
                f"(tests still waiting: {waiting})")
            for tester in testers:
                tester.join()
            hang.batch_ms.append(now_ms() - started)
            hang.fired += HANGING_TESTS
            hang.timeouts += sum(1 for status, body in outcomes if status == 200 and timed_out(body))
        # Every connection the silent server accepted that no test opened was a scheduled check.
        hang.checks = accepted() - phase_started - hang.fired
        log(f"scheduled checks that reached the silent server during the phase: {hang.checks}")
        hang.rss_kib = proc_status_kib(server.process.pid, "VmRSS")
        hang.hwm_kib = proc_status_kib(server.process.pid, "VmHWM")
        self.check_endpoints(port, credentials)
        self.processes.stop(server.process)
        self.processes.stop(hang_server)

    @staticmethod
    def fire_test(port: int, path: str, token: str, outcomes: list[tuple[int, bytes]]) -> None:
        """One provider test, given 30 s (three times Lanyard's outbound timeout); status 0 when
        it got no answer."""
        try:
            reply = request(port, "POST", path, headers=bearer(token), timeout=30)
            outcomes.append((reply.status, reply.body))
        except (OSError, http.client.HTTPException):
            outcomes.append((0, b""))

    # --- waiting resolves ----------------------------------------------------------------------
    def bench_waiting(self, server: Server, credentials: Credentials) -> None:
        """WAITING_RESOLVES resolves wait at once (the current tag, `wait=WAIT_SECONDS`, nothing
        changes): the server's RSS before and while they wait, and the list's latency meanwhile."""
        log(f"=== {WAITING_RESOLVES} waiting resolves (sqlite) ===")
        waiting = self.waiting
        waiting.tokens = tokens_for(WAITING_RESOLVES)
        tokens = [self.lanyard("token", "create", "--email", EMAIL, "--name", f"bench-wait-{n:02d}",
                               "--scopes", "resolve") for n in range(waiting.tokens)]
        time.sleep(2)  # whatever the set-up left in flight settles
        waiting.idle_kib = proc_status_kib(server.process.pid, "VmRSS")
        ready, release = threading.Event(), threading.Event()
        outcome: dict[str, int] = {}

        def hold() -> None:
            try:
                asyncio.run(hold_waits(server.port, tokens, credentials.resolve_tag, ready, release, outcome))
            finally:
                ready.set()

        holder = threading.Thread(target=hold, name="waiting-resolves")
        holder.start()
        try:
            # Set-up, the measurement and its margin all fall inside one wait.
            if not ready.wait(timeout=WAIT_SECONDS / 2) or "setup_ms" not in outcome:
                raise BenchError(f"the waiting resolves could not be set up: {outcome}")
            waiting.setup_ms = outcome["setup_ms"]
            waiting.waits = outcome["open"]
            waiting.waiting_kib = proc_status_kib(server.process.pid, "VmRSS")
            log(f"{waiting.waits} resolves waiting after {waiting.setup_ms} ms: RSS {waiting.waiting_kib} kB "
                f"(idle {waiting.idle_kib} kB)")
            window = f"{min(self.options.duration_s, 15)}s"
            measured, _ = self.wrk(server.port, window, "wrk-waiting.txt", LIST, credentials)
            waiting.list.runs.append(measured)
            log(f"list while {waiting.waits} resolves wait: {measured.rps:.2f} req/s, p50 {measured.p50_ms:.2f} ms, "
                f"p99 {measured.p99_ms:.2f} ms, errors {measured.errors}")
        finally:
            release.set()
            holder.join()
        waiting.early = outcome.get("early", 0)
        log(f"{waiting.early} of them answered before the measurement ended")

    def waiting_report(self) -> list[str]:
        waiting = self.waiting
        return [
            f"Waiting resolves (SQLite): {waiting.waits} `GET /api/resolve?wait={WAIT_SECONDS}` with the current "
            f"tag held open at once over raw sockets (from {waiting.tokens} `resolve` tokens: at most "
            f"{WAITS_PER_TOKEN} wait per token), set up in {waiting.setup_ms / 1000:.1f} s; nothing changes, so "
            f"none should answer before its wait ends ({waiting.early} did before the measurement was over). "
            f"RSS {mib(waiting.idle_kib)} MiB idle, just before; {mib(waiting.waiting_kib)} MiB with them "
            f"waiting: {waiting.over_idle_mib:+.1f} MiB.",
            "",
            "| GET /api/llm-configurations (sqlite) | req/s | p50 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|",
            f"| while {waiting.waits} resolves wait | {rps_text(waiting.list.rps)} | {waiting.list.p50_ms:.2f} | "
            f"{waiting.list.p99_ms:.2f} | {waiting.list.errors} |",
        ]

    def waiting_quantities(self) -> dict[str, float]:
        return {
            "list_p99_ms.waiting": self.waiting.list.p99_ms,
            "waiting_rss_over_idle_mib": self.waiting.over_idle_mib,
            "waiting_early_answers": self.waiting.early,
        }

    def run_waiting_only(self) -> None:
        """BENCH_ONLY=waiting: the SQLite set-up without its load, then the waiting phase."""
        self.master_keys = self.lanyard("keygen", env=dict(os.environ))
        server, credentials = self.bench_backend("sqlite", f"sqlite://{self.work}/sqlite/lanyard.db", measure=False)
        self.bench_waiting(server, credentials)
        self.processes.stop(server.process)
        lines = self.waiting_report() + ["", "| target | measured | result |", "|---|---|---|"]
        measured = self.waiting_quantities()
        for target in self.targets:
            if target.quantity in measured:
                shown, verdict = target.judge(measured)
                lines.append(f"| {target.label} | {shown} | {verdict} |")
        print()
        print("\n".join(lines))
        log("BENCH_ONLY=waiting: BENCHMARKS.md left as it is")

    # --- the whole run -------------------------------------------------------------------------
    def run(self) -> str:
        machine = describe_machine(self.options)
        load_before = load_average()
        revision = describe_revision()
        log(f"machine: {machine}; load average before: {load_before}")
        self.master_keys = self.lanyard("keygen", env=dict(os.environ))

        sqlite_url = f"sqlite://{self.work}/sqlite/lanyard.db"
        server, sqlite_credentials = self.bench_backend("sqlite", sqlite_url)
        # That server was killed to count its audit rows: the waits go to a new one on the same
        # database, idle after a short load of the list like an instance that has been serving.
        server = self.start_server(self.use_backend(sqlite_url), "server-waiting.log")
        self.counting = None  # SQLite's audit rows are counted already
        self.check_endpoints(server.port, sqlite_credentials)
        self.wrk(server.port, "2s", "wrk-waiting-warm-up.txt", LIST, sqlite_credentials)
        self.bench_waiting(server, sqlite_credentials)
        self.processes.stop(server.process)

        o = self.options
        self.pg_database = f"lanyard_bench_{os.getpid()}_{int(time.time())}"
        created = run_tool(["createdb", "-h", o.pg_host, "-p", o.pg_port, "-U", o.pg_user, self.pg_database])
        if created.returncode != 0:
            self.pg_database = ""
            raise BenchError(f"cannot create the PostgreSQL database: {created.stderr.strip()}")
        # Without TLS: the server is on loopback (libpq would otherwise negotiate TLS with a server
        # that has it on, as Debian's does, and every round trip would pay for encryption that
        # protects nothing here). Across a network, use sslmode=verify-full and expect that cost.
        server, _ = self.bench_backend(
            "postgres", f"postgres://{o.pg_user}@{o.pg_host}:{o.pg_port}/{self.pg_database}?sslmode=disable")
        self.processes.stop(server.process)
        self.drop_database()

        self.bench_hanging_provider(sqlite_url, sqlite_credentials)
        report = self.report(machine, revision, load_before, load_average())
        print()
        print(report, end="")
        rewrite_generated_section(BENCHMARKS_FILE, report)
        log("BENCHMARKS.md updated")
        passed = sum(1 for target in self.targets if target.judge(self.measured())[1] == "PASS")
        log(f"{passed} of {len(self.targets)} rows of {TARGETS_FILE.name} pass")
        return report

    # --- the report ----------------------------------------------------------------------------
    def measured(self) -> dict[str, float]:
        sqlite, postgres, hang = self.results["sqlite"], self.results["postgres"], self.hang
        list_errors = (sqlite.endpoints["api"].errors + postgres.endpoints["api"].errors
                       + hang.alone.errors + hang.hanging.errors + self.waiting.list.errors)
        other_errors = sum(result.endpoints[name].errors for result in (sqlite, postgres)
                           for name in ("healthz", "page", "resolve", "service_resolve", "resolve_304"))
        return {
            "list_to_healthz.sqlite": sqlite.ratio("api"),
            "list_to_healthz.postgres": postgres.ratio("api"),
            "page_to_healthz.sqlite": sqlite.ratio("page"),
            "list_p99_ms.sqlite": sqlite.endpoints["api"].p99_ms,
            "list_p99_ms.postgres": postgres.endpoints["api"].p99_ms,
            "list_p99_ms.hanging": hang.hanging.p99_ms,
            "resolve_to_healthz.sqlite": sqlite.ratio("resolve"),
            "resolve_to_healthz.postgres": postgres.ratio("resolve"),
            "resolve_p99_ms.sqlite": sqlite.endpoints["resolve"].p99_ms,
            "resolve_p99_ms.postgres": postgres.endpoints["resolve"].p99_ms,
            "resolve_304_to_healthz.sqlite": sqlite.ratio("resolve_304"),
            "resolve_304_to_healthz.postgres": postgres.ratio("resolve_304"),
            "resolve_audit_missing": sqlite.audit.missing + postgres.audit.missing,
            "list_errors": list_errors,
            "other_errors": other_errors,
            "rss_mib.sqlite": sqlite.rss_kib / 1024,
            "rss_mib.postgres": postgres.rss_kib / 1024,
            "first_answer_ms.sqlite": sqlite.startup_ms,
            "first_answer_ms.postgres": postgres.startup_ms,
            **self.waiting_quantities(),
        }

    def report(self, machine: str, revision: str, load_before: str, load_after: str) -> str:
        o, hang = self.options, self.hang
        sqlite, postgres = self.results["sqlite"], self.results["postgres"]
        lines = [
            f"Run on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `{o.command}` (wrk -t{WRK_THREADS} "
            f"-c{WRK_CONNECTIONS} -d{o.duration} --latency, median of {o.runs} runs after a {WARMUP} warm-up; "
            f"{CONFIGURATIONS} configurations), binary built from {revision}.",
            "",
            f"Machine: {machine}. Load average before: {load_before}; after: {load_after}. wrk, Lanyard and "
            "PostgreSQL share the same cores, and the machine runs other work: absolute figures are noisy; "
            "compare ratios to /healthz.",
            "",
            "| endpoint | backend | req/s | ratio to /healthz | p50 ms | p99 ms | errors | req/s of each run |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for backend in BACKENDS:
            result = self.results[backend]
            for endpoint in ENDPOINTS:
                measured = result.endpoints[endpoint.name]
                errors = str(measured.errors) if measured.errors == 0 else f"**{measured.errors} (FAIL)**"
                each_run = " / ".join(rps_text(run.rps) for run in measured.runs)
                lines.append(f"| {endpoint.label} | {backend} | {rps_text(measured.rps)} | "
                             f"{result.ratio(endpoint.name):.3f} | {measured.p50_ms:.2f} | {measured.p99_ms:.2f} | "
                             f"{errors} | {each_run} |")
        lines += [
            "",
            "| | SQLite | PostgreSQL |",
            "|---|---:|---:|",
            f"| RSS (VmRSS) after the load | {mib(sqlite.rss_kib)} MiB | {mib(postgres.rss_kib)} MiB |",
            f"| peak RSS (VmHWM) | {mib(sqlite.hwm_kib)} MiB | {mib(postgres.hwm_kib)} MiB |",
            f"| start to first answer, empty database (migrations included) | {sqlite.startup_ms} ms | "
            f"{postgres.startup_ms} ms |",
            f"| start to first answer, restart on the seeded database | {hang.restart_ms} ms | – |",
            f"| resolves answered 200 (wrk, warm-ups included, and the checks) | {sqlite.audit.answered} | "
            f"{postgres.audit.answered} |",
            f"| key_reveals rows after SIGKILL right after the last answer | {sqlite.audit.rows} | "
            f"{postgres.audit.rows} |",
            f"| of which the service token's: answered / organisation_reveals rows | "
            f"{sqlite.audit.answered_service} / {sqlite.audit.organisation_rows} | "
            f"{postgres.audit.answered_service} / {postgres.audit.organisation_rows} |",
            "",
            f"Rows beyond the answers are requests wrk still had in flight when a run stopped (committed, their "
            f"answers never read; at most {WRK_CONNECTIONS} per run); an answer without its row would be a lost "
            f"audit line.",
            "",
            f"Hanging provider (SQLite, LANYARD_TEST_RATE_PER_MINUTE=1000, LANYARD_EGRESS_ALLOW={LOOPBACK}/32, "
            f"LANYARD_CHECK_INTERVAL={CHECK_INTERVAL}): a second user owns {HANGING_CHECKS + 1} connections that point "
            f"at a silent server, so scheduled checks hang on it all along ({hang.checks} checks reached it during the "
            f"phase), and fires {HANGING_TESTS} concurrent `POST /api/llm-configurations/{{id}}/test` at "
            f"{LOOPBACK}:{hang.port}, which accepts and never answers; the first user's `GET /api/llm-configurations` "
            f"is measured for {hang.window} while they hang (at least {hang.fewest_open} connections held open during "
            f"each measurement), and for as long just before on the same server. {hang.timeouts} of {hang.fired} "
            f"tests answered 200 with `code: timeout`; each batch took "
            f"{', '.join(f'{ms / 1000:.1f} s' for ms in hang.batch_ms)}.",
            "",
            "| GET /api/llm-configurations (sqlite) | req/s | p50 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|",
            f"| alone | {rps_text(hang.alone.rps)} | {hang.alone.p50_ms:.2f} | {hang.alone.p99_ms:.2f} | "
            f"{hang.alone.errors} |",
            f"| while {HANGING_TESTS} tests hang | {rps_text(hang.hanging.rps)} | {hang.hanging.p50_ms:.2f} | "
            f"{hang.hanging.p99_ms:.2f} | {hang.hanging.errors} |",
            "",
            f"RSS after the hanging tests: {mib(hang.rss_kib)} MiB (peak {mib(hang.hwm_kib)} MiB).",
            "",
            *self.waiting_report(),
            "",
            "| target | measured | result |",
            "|---|---|---|",
        ]
        measured = self.measured()
        for target in self.targets:
            shown, verdict = target.judge(measured)
            lines.append(f"| {target.label} | {shown} | {verdict} |")
        if self.wrk_errors:
            lines += ["", "Errors as wrk reports them (socket timeouts are requests slower than wrk's 2 s timeout):",
                      ""]
            lines += [f"- {line}" for line in self.wrk_errors]
        lines += ["", "<details><summary>wrk latency distributions (run 2 of each, or run 1 with BENCH_RUNS=1)"
                      "</summary>", "", "```"]
        for backend in BACKENDS:
            for endpoint in ENDPOINTS:
                lines.append(f"## {backend} {endpoint.path}")
                lines += self.results[backend].kept_distributions.get(endpoint.name, [])
        lines.append(f"## sqlite {LIST.path} while {HANGING_TESTS} tests hang (run {(o.runs + 1) // 2})")
        lines += hang.distribution
        lines += ["```", "", "</details>"]
        return "\n".join(lines) + "\n"


def timed_out(body: bytes) -> bool:
    try:
        return json.loads(body).get("code") == "timeout"
    except (ValueError, AttributeError):
        return False


# ---------------------------------------------------------------------------------------------
# The machine and the revision, as the report states them
# ---------------------------------------------------------------------------------------------
def command_output(argv: list[str], *, any_status: bool = False) -> str:
    """The first line a command prints ("" if it cannot run or fails, unless any_status)."""
    try:
        done = run_tool(argv, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    if done.returncode != 0 and not any_status:
        return ""
    return next(iter((done.stdout + done.stderr).strip().splitlines()), "")


def describe_machine(options: Options) -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    cpu_model = next((line.split(": ", 1)[1] for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    mem_kib = int(re.search(r"^MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text(), re.M).group(1))
    os_release = Path("/etc/os-release").read_text()
    pretty_name = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', os_release, re.M)
    rustc = " ".join(command_output(["rustc", "--version"]).split()[:2])
    # `wrk -v` prints its version with its usage, and exits with status 1.
    wrk = " ".join(command_output(["wrk", "-v"], any_status=True).split()[:2])
    postgres = command_output(["psql", "-h", options.pg_host, "-p", options.pg_port, "-U", options.pg_user,
                               "-d", "postgres", "-qAt", "-c", "show server_version"]) or "?"
    return (f"{len(os.sched_getaffinity(0))} CPUs ({cpu_model}), {mem_kib // 1024 / 1024:.1f} GB RAM, "
            f"{pretty_name.group(1) if pretty_name else '?'}, {rustc}, {wrk}, PostgreSQL {postgres}")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def describe_revision() -> str:
    commit = command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "?"
    changed = command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--",
                              *GIT_BUILD_INPUTS])
    return f"commit {commit}" + (" with uncommitted changes" if changed else "")


# ---------------------------------------------------------------------------------------------
# BENCHMARKS.md: everything outside the markers is kept, what is between them replaced.
# ---------------------------------------------------------------------------------------------
def rewrite_generated_section(path: Path, report: str) -> None:
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    generated = f"{start}\n{report.rstrip()}\n{end}"
    if path.exists() and start in path.read_text() and end in path.read_text():
        head, rest = path.read_text().split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + generated + tail
    else:
        head = path.read_text().rstrip() + "\n\n" if path.exists() else (
            "# Benchmarks\n\nHow to run: `bash bench/run.sh` (see the comment at its top).\n\n## Latest run\n\n")
        text = head + generated + "\n"
    path.write_text(text)


# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
def ensure_tools() -> None:
    if shutil.which("wrk") is None:
        log("installing wrk from Debian's packages")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        for argv in ([*sudo, "apt-get", "update", "-qq"], [*sudo, "apt-get", "install", "-y", "-qq", "wrk"]):
            if subprocess.run(argv, stdout=subprocess.DEVNULL).returncode != 0:
                raise BenchError(f"{' '.join(argv)} failed")
    for tool in ("wrk", "curl", "psql", "createdb"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is required")


def default_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache" / "lanyard-target")
    return target / "release" / "lanyard"


def stop_on_signal(signum, _frame) -> None:
    log(f"{signal.Signals(signum).name}: stopping everything this run started")
    raise Interrupted(130)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, default=None, help="the lanyard binary (default: the release build)")
    parser.add_argument("--preflight", action="store_true",
                        help="check the options, targets.toml and the tools (installing wrk if missing), then stop")
    arguments = parser.parse_args()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_on_signal)

    bench = None
    try:
        options = options_from_environment()
        targets = load_targets()
        ensure_tools()
        if arguments.preflight:
            return 0
        binary = (arguments.binary or default_binary()).resolve()
        if not os.access(binary, os.X_OK):
            raise BenchError(f"no binary at {binary}")
        # The waiting phase holds WAITING_RESOLVES sockets on each side; the server inherits this.
        if (limit := raise_open_files_limit(2 * WAITING_RESOLVES + 1024)) < WAITING_RESOLVES + 256:
            raise BenchError(f"open files are limited to {limit}: raise `ulimit -n` above {2 * WAITING_RESOLVES}")
        bench = Bench(options, targets, binary)
        if options.only == "waiting":
            bench.run_waiting_only()
        else:
            bench.run()
        return 0
    except BenchError as error:
        log(f"ERROR: {error}")
        return 1
    finally:
        if bench is not None:
            # A second Ctrl-C must not cut the clean-up short.
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)
            bench.clean_up()


if __name__ == "__main__":
    sys.exit(main())
