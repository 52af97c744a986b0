#!/usr/bin/env bash
# Lanyard's benchmark: one command, no arguments.
#
#   bash bench/run.sh
#
# Builds the release binary, starts Lanyard on SQLite and then on PostgreSQL (loopback only),
# seeds 50 configurations, and measures /healthz, GET /api/llm-configurations (bearer token),
# GET /llm-configurations (session) and GET /api/resolve with wrk: requests/s, p50 and p99 at
# 32 connections, median of BENCH_RUNS runs; RSS after the load; time from start to first
# answer. Then, on SQLite, the list endpoint's latency while 100 provider tests hang on a local
# server that accepts and never answers. Prints a table and rewrites the generated section of
# BENCHMARKS.md (between <!-- bench:start --> and <!-- bench:end -->).
#
# Optional environment:
#   BENCH_DURATION    wrk duration per run (default 10s)
#   BENCH_RUNS        runs per endpoint; the median is reported (default 3)
#   CARGO_TARGET_DIR  where to build (default $HOME/.cache/lanyard-target)
#   BENCH_PG_HOST / BENCH_PG_PORT / BENCH_PG_USER   PostgreSQL (default 127.0.0.1 / 5432 / postgres)
#   BENCH_KEEP_WORK=1 keeps the temporary directory (server logs, every wrk output) for a look
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-10s}
RUNS=${BENCH_RUNS:-3}
THREADS=2
CONNS=32
WARMUP=2s
CONFIGS=50
HANG_TESTS=100
TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/lanyard-target}
PG_HOST=${BENCH_PG_HOST:-127.0.0.1}
PG_PORT=${BENCH_PG_PORT:-5432}
PG_USER=${BENCH_PG_USER:-postgres}
EMAIL=bench@example.com
SLOW_EMAIL=slow@example.com
PASSWORD='bench-password-0123456789'
COMMAND="bash bench/run.sh"
[[ -n ${BENCH_DURATION:-} || -n ${BENCH_RUNS:-} ]] &&
    COMMAND="BENCH_DURATION=$DURATION BENCH_RUNS=$RUNS bash bench/run.sh"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive whole number"
[[ $DURATION =~ ^[0-9]+[smh]?$ ]] || die "BENCH_DURATION must look like 10s, 30s or 1m"

# ---------------------------------------------------------------------------------------------
# Processes: every one we start is recorded, and stopped by its PID on exit.
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/lanyard-bench.XXXXXX)
PIDS=()
PG_DB=""

alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

forget_pid() {
    local keep=() pid
    for pid in "${PIDS[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}

stop_pid() {
    local pid=$1 _
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            alive "$pid" || break
            sleep 0.05
        done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

cleanup() {
    local rc=$? pid
    trap - EXIT
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ -n $PG_DB ]]; then
        psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -qAt \
            -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 ||
            log "could not drop the PostgreSQL database $PG_DB: drop it by hand"
    fi
    if [[ ${BENCH_KEEP_WORK:-} == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Tools and build
# ---------------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    log "installing wrk from Debian's packages"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
for tool in wrk curl python3 psql cargo awk; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

log "building the release binary (CARGO_TARGET_DIR=$TARGET_DIR; about 5 minutes from clean)"
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --locked
BIN=$TARGET_DIR/release/lanyard
[[ -x $BIN ]] || die "no binary at $BIN"

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The CLI and the server run from $WORK so that no .env of the checkout is read.
lanyard() { (cd "$WORK" && "$BIN" "$@"); }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Starts the server with the exported environment; sets SERVER_PID and STARTUP_MS (from the
# fork to the first 200 from /healthz, polled with curl in a tight loop).
start_server() {
    local logfile=$1 t0
    t0=$(now_ms)
    (cd "$WORK" && exec "$BIN" serve) >"$logfile" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    until curl -sf -o /dev/null --max-time 1 "$BASE/healthz"; do
        if ! alive "$SERVER_PID"; then
            cat "$logfile" >&2
            die "the server exited during start-up"
        fi
        (($(now_ms) - t0 < 60000)) || die "no answer from /healthz within 60 s"
    done
    STARTUP_MS=$(($(now_ms) - t0))
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# Environment shared by the CLI and the server of one backend.
use_backend() {
    local database_url=$1
    unset LANYARD_PUBLIC_URL LANYARD_MASTER_PASSPHRASE LANYARD_MASTER_KEY_FILE LANYARD_METRICS_TOKEN \
        LANYARD_TRUSTED_PROXIES LANYARD_FALLBACK_PROVIDER LANYARD_FALLBACK_MODEL LANYARD_FALLBACK_API_KEY \
        LANYARD_FALLBACK_BASE_URL LANYARD_TEST_POSTGRES_URL
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    export DATABASE_URL=$database_url
    export LANYARD_BIND=127.0.0.1:$PORT
    export LANYARD_MASTER_KEYS=$MASTER_KEYS
    export LANYARD_LOG=warn
    export LANYARD_EGRESS_MODE=allowlist
    export LANYARD_EGRESS_ALLOW=""
    export LANYARD_TEST_RATE_PER_MINUTE=10
}

# curl that prints the status code and keeps the body in $WORK/body.
http() { curl -s -o "$WORK/body" -w '%{http_code}' "$@"; }

expect_status() {
    local want=$1 what=$2 got
    shift 2
    got=$(http "$@") || die "$what: curl failed"
    [[ $got == "$want" ]] || {
        cat "$WORK/body" >&2
        echo >&2
        die "$what: HTTP $got, expected $want"
    }
}

PROVIDERS=(openai anthropic gemini mistral groq openrouter deepseek together xai)

seed_configurations() {
    local i provider default body
    for ((i = 1; i <= CONFIGS; i++)); do
        provider=${PROVIDERS[$(((i - 1) % ${#PROVIDERS[@]}))]}
        default=false
        ((i == 1)) && default=true
        body=$(printf '{"name":"bench-%02d %s","provider":"%s","model":"model-%02d","api_key":"sk-bench-%032d","is_default":%s}' \
            "$i" "$provider" "$provider" "$i" "$i" "$default")
        expect_status 201 "creating configuration $i" -H "Authorization: Bearer $TOKEN_RW" \
            -H 'Content-Type: application/json' -d "$body" "$BASE/api/llm-configurations"
    done
}

# Logs in through the form like a browser; sets SESSION_COOKIE.
log_in() {
    local jar=$WORK/cookies csrf
    rm -f "$jar"
    expect_status 200 "GET /login" -c "$jar" -b "$jar" "$BASE/login"
    csrf=$(grep -o -m1 'name="csrf_token" value="[^"]*"' "$WORK/body" | sed 's/.*value="//; s/"$//')
    [[ -n $csrf ]] || die "no csrf_token in the login page"
    expect_status 303 "POST /login" -c "$jar" -b "$jar" --data-urlencode "email=$EMAIL" \
        --data-urlencode "password=$PASSWORD" --data-urlencode "csrf_token=$csrf" "$BASE/login"
    SESSION_COOKIE=$(awk '$6 == "lanyard_session" {value = $7} END {print value}' "$jar")
    [[ -n $SESSION_COOKIE ]] || die "no lanyard_session cookie after logging in"
}

# Checks that every measured endpoint answers 200 with the full list (before and after load:
# wrk does not count a 3xx as an error, so an expired session would go unnoticed).
check_endpoints() {
    local count
    expect_status 200 "/healthz" "$BASE/healthz"
    expect_status 200 "GET /api/llm-configurations" -H "Authorization: Bearer $TOKEN_RW" "$BASE/api/llm-configurations"
    count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/body")
    [[ $count == "$CONFIGS" ]] || die "the API lists $count configurations, expected $CONFIGS"
    expect_status 200 "GET /llm-configurations" -H "Cookie: lanyard_session=$SESSION_COOKIE" "$BASE/llm-configurations"
    count=$(grep -o 'bench-[0-9][0-9] ' "$WORK/body" | sort -u | wc -l)
    [[ $count == "$CONFIGS" ]] || die "the page shows $count configurations, expected $CONFIGS"
    expect_status 200 "GET /api/resolve" -H "Authorization: Bearer $TOKEN_RESOLVE" "$BASE/api/resolve"
}

# Converts wrk's latency (us, ms, s, m) to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.2f", n }'
}

# Runs wrk and prints "req/s p50_ms p99_ms errors"; the raw output is kept in $2.
wrk_run() {
    local duration=$1 out=$2 path=$3
    shift 3
    wrk -t"$THREADS" -c"$CONNS" -d"$duration" --latency "$@" "$BASE$path" >"$out" 2>&1 ||
        die "wrk failed: $(cat "$out")"
    local rps p50 p99 errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    errors=$(awk '/Socket errors:/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10}
                  /Non-2xx or 3xx responses:/ {n += $5}
                  END {print n + 0}' "$out")
    [[ -n $rps && -n $p50 && -n $p99 ]] || die "cannot read wrk's output: $(cat "$out")"
    if ((errors > 0)); then
        printf '%s: %s\n' "$(basename "$out" .txt)" \
            "$(grep -E 'Socket errors|Non-2xx' "$out" | sed 's/^ *//' | paste -sd ';' -)" >>"$WORK/errors.txt"
    fi
    echo "$rps $p50 $p99 $errors"
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

ENDPOINTS=(healthz api page resolve)
declare -A PATH_OF=([healthz]=/healthz [api]=/api/llm-configurations [page]=/llm-configurations [resolve]=/api/resolve)
declare -A LABEL_OF=([healthz]='GET /healthz' [api]='GET /api/llm-configurations (token)'
    [page]='GET /llm-configurations (session)' [resolve]='GET /api/resolve (token)')
declare -A RESULT  # "$backend.$endpoint.{rps,p50,p99,errors,runs}"

headers_for() {
    case $1 in
    healthz) ;;
    api) printf '%s\n' -H "Authorization: Bearer $TOKEN_RW" ;;
    page) printf '%s\n' -H "Cookie: lanyard_session=$SESSION_COOKIE" ;;
    resolve) printf '%s\n' -H "Authorization: Bearer $TOKEN_RESOLVE" ;;
    esac
}

measure_backend() {
    local backend=$1 endpoint run line errors
    local -A rps p50 p99
    local -a headers
    for endpoint in "${ENDPOINTS[@]}"; do
        mapfile -t headers < <(headers_for "$endpoint")
        wrk_run "$WARMUP" "$WORK/warmup.txt" "${PATH_OF[$endpoint]}" "${headers[@]}" >/dev/null
    done
    for ((run = 1; run <= RUNS; run++)); do
        # Interleaved (every endpoint once per round) so that a noisy moment hits all of them.
        for endpoint in "${ENDPOINTS[@]}"; do
            mapfile -t headers < <(headers_for "$endpoint")
            line=$(wrk_run "$DURATION" "$WORK/wrk-$backend-$endpoint-$run.txt" "${PATH_OF[$endpoint]}" "${headers[@]}")
            read -r r a b e <<<"$line"
            log "$backend ${PATH_OF[$endpoint]} run $run: $r req/s, p50 $a ms, p99 $b ms, errors $e"
            rps[$endpoint]+="$r "
            p50[$endpoint]+="$a "
            p99[$endpoint]+="$b "
            RESULT[$backend.$endpoint.errors]=$((${RESULT[$backend.$endpoint.errors]:-0} + e))
        done
    done
    for endpoint in "${ENDPOINTS[@]}"; do
        # shellcheck disable=SC2086
        {
            RESULT[$backend.$endpoint.rps]=$(median ${rps[$endpoint]})
            RESULT[$backend.$endpoint.p50]=$(median ${p50[$endpoint]})
            RESULT[$backend.$endpoint.p99]=$(median ${p99[$endpoint]})
        }
        RESULT[$backend.$endpoint.runs]=$(printf '%s\n' ${rps[$endpoint]} | awk '{printf "%s%.0f", (NR > 1 ? " / " : ""), $1}')
        # One run's latency distribution (run 2), kept for the report.
        cp "$WORK/wrk-$backend-$endpoint-$((RUNS > 1 ? 2 : 1)).txt" "$WORK/keep-$backend-$endpoint.txt"
    done
}

# ---------------------------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MACHINE="$(nproc) CPUs ($CPU_MODEL), $(free -m | awk '/^Mem:/ {printf "%.1f GB", $2 / 1024}') RAM, \
$(. /etc/os-release && echo "$PRETTY_NAME"), $(rustc --version | awk '{print $1, $2}'), $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}' || true), \
PostgreSQL $(psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -qAt -c 'show server_version' 2>/dev/null || echo '?')"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
REVISION="commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
[[ -z $(git status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock migrations templates static build.rs 2>/dev/null) ]] ||
    REVISION+=" with uncommitted changes"
log "machine: $MACHINE; load average before: $LOAD_BEFORE"

MASTER_KEYS=$(lanyard keygen)
declare -A STARTUP RSS HWM

# ---------------------------------------------------------------------------------------------
# One backend: start on an empty database (the start-up time includes the migrations), create
# the user and tokens with the CLI, seed through the API, log in, check, measure.
# ---------------------------------------------------------------------------------------------
bench_backend() {
    local backend=$1 database_url=$2
    log "=== $backend ==="
    use_backend "$database_url"
    start_server "$WORK/server-$backend.log"
    STARTUP[$backend]=$STARTUP_MS
    log "$backend: first answer ${STARTUP_MS} ms after start (empty database, migrations included)"
    printf '%s\n' "$PASSWORD" | lanyard user create --email "$EMAIL" --password-stdin
    TOKEN_RW=$(lanyard token create --email "$EMAIL" --name bench-rw --scopes read,write)
    TOKEN_RESOLVE=$(lanyard token create --email "$EMAIL" --name bench-resolve --scopes resolve)
    seed_configurations
    log_in
    check_endpoints
    measure_backend "$backend"
    RSS[$backend]=$(rss_kb "$SERVER_PID")
    HWM[$backend]=$(hwm_kb "$SERVER_PID")
    log "$backend: RSS after the load ${RSS[$backend]} kB (peak ${HWM[$backend]} kB)"
    check_endpoints
}

SQLITE_URL="sqlite://$WORK/sqlite/lanyard.db"
bench_backend sqlite "$SQLITE_URL"
SQLITE_PID=$SERVER_PID
SQLITE_TOKEN_RW=$TOKEN_RW
SQLITE_TOKEN_RESOLVE=$TOKEN_RESOLVE
SQLITE_SESSION=$SESSION_COOKIE
stop_pid "$SQLITE_PID"

PG_DB="lanyard_bench_$$_$(date +%s)"
createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB" || die "cannot create the PostgreSQL database"
# Without TLS: the server is on loopback (libpq would otherwise negotiate TLS with a server that
# has it on, as Debian's does, and every round trip would pay for encryption that protects
# nothing here). Across a network, use sslmode=verify-full and expect that cost on top.
bench_backend postgres "postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB?sslmode=disable"
stop_pid "$SERVER_PID"
psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -qAt \
    -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null && PG_DB=""

# ---------------------------------------------------------------------------------------------
# Hanging provider (SQLite): another user fires 100 tests at a server that never answers; the
# first user's list is measured meanwhile, and without them on the same server just before.
# ---------------------------------------------------------------------------------------------
log "=== hanging provider (sqlite) ==="
python3 "$ROOT/bench/hang_server.py" "$WORK/hang.port" "$WORK/hang.count" &
HANG_PID=$!
PIDS+=("$HANG_PID")
for _ in $(seq 100); do [[ -s $WORK/hang.port ]] && break; sleep 0.05; done
[[ -s $WORK/hang.port ]] || die "the hanging server did not start"
HANG_PORT=$(cat "$WORK/hang.port")

use_backend "$SQLITE_URL"
export LANYARD_TEST_RATE_PER_MINUTE=1000
export LANYARD_EGRESS_ALLOW=127.0.0.1/32
printf '%s\n' "$PASSWORD" | lanyard user create --email "$SLOW_EMAIL" --password-stdin
TOKEN_SLOW=$(lanyard token create --email "$SLOW_EMAIL" --name bench-slow --scopes read,write)
TOKEN_RW=$SQLITE_TOKEN_RW
TOKEN_RESOLVE=$SQLITE_TOKEN_RESOLVE
SESSION_COOKIE=$SQLITE_SESSION
start_server "$WORK/server-hang.log"
STARTUP[sqlite_restart]=$STARTUP_MS
log "sqlite: first answer ${STARTUP_MS} ms after a restart (migrated database, 2 users, $CONFIGS configurations)"
expect_status 201 "creating the hanging configuration" -H "Authorization: Bearer $TOKEN_SLOW" \
    -H 'Content-Type: application/json' "$BASE/api/llm-configurations" \
    -d "{\"name\":\"hangs\",\"provider\":\"openai_compatible\",\"model\":\"m\",\"base_url\":\"http://127.0.0.1:$HANG_PORT/v1\"}"
HANG_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/body")

# The whole wrk window must fall inside the 10 s during which the tests hang.
HANG_WINDOW=7
DURATION_S=$(awk -v d="$DURATION" 'BEGIN {n = d + 0; if (d ~ /m$/) n *= 60; if (d ~ /h$/) n *= 3600; print int(n)}')
HANG_DURATION=$((DURATION_S < HANG_WINDOW ? DURATION_S : HANG_WINDOW))s
declare -a base_rps=() base_p50=() base_p99=() hang_rps=() hang_p50=() hang_p99=()
BASE_ERRORS=0 HANG_ERRORS=0 HANG_OPEN_MIN=$HANG_TESTS HANG_TIMEOUTS=0 HANG_FIRED=0 HANG_SECONDS=""
mapfile -t API_HEADERS < <(headers_for api)
wrk_run "$WARMUP" "$WORK/warmup.txt" /api/llm-configurations "${API_HEADERS[@]}" >/dev/null
for ((run = 1; run <= RUNS; run++)); do
    line=$(wrk_run "$HANG_DURATION" "$WORK/wrk-hang-base-$run.txt" /api/llm-configurations "${API_HEADERS[@]}")
    read -r r a b e <<<"$line"
    base_rps+=("$r") base_p50+=("$a") base_p99+=("$b")
    BASE_ERRORS=$((BASE_ERRORS + e))
    log "list without hanging tests, run $run: $r req/s, p50 $a ms, p99 $b ms, errors $e"

    # The hanging server counts every connection it ever accepted.
    before=$(cat "$WORK/hang.count" 2>/dev/null || echo 0)
    fired=()
    t0=$(now_ms)
    for ((i = 1; i <= HANG_TESTS; i++)); do
        curl -s -o "$WORK/hang-$run-$i.json" -w '%{http_code} %{time_total}\n' --max-time 30 -X POST \
            -H "Authorization: Bearer $TOKEN_SLOW" "$BASE/api/llm-configurations/$HANG_ID/test" \
            >"$WORK/hang-$run-$i.status" 2>/dev/null &
        fired+=("$!")
        PIDS+=("$!")
    done
    # Wait until the hanging server holds every test's connection (at most 5 s).
    for _ in $(seq 100); do
        (($(cat "$WORK/hang.count" 2>/dev/null || echo 0) - before >= HANG_TESTS)) && break
        sleep 0.05
    done
    open=$(($(cat "$WORK/hang.count" 2>/dev/null || echo 0) - before))
    ((open < HANG_OPEN_MIN)) && HANG_OPEN_MIN=$open
    log "run $run: $open of $HANG_TESTS tests hang on 127.0.0.1:$HANG_PORT after $(($(now_ms) - t0)) ms; measuring for $HANG_DURATION"
    line=$(wrk_run "$HANG_DURATION" "$WORK/wrk-hang-$run.txt" /api/llm-configurations "${API_HEADERS[@]}")
    read -r r a b e <<<"$line"
    hang_rps+=("$r") hang_p50+=("$a") hang_p99+=("$b")
    HANG_ERRORS=$((HANG_ERRORS + e))
    still=$(pgrep -c -P $$ curl || true)
    log "list with $HANG_TESTS hanging tests, run $run: $r req/s, p50 $a ms, p99 $b ms, errors $e (curl still waiting: ${still:-0})"
    for pid in "${fired[@]}"; do
        wait "$pid" 2>/dev/null || true
        forget_pid "$pid"
    done
    HANG_SECONDS+="$(($(now_ms) - t0)) "
    for ((i = 1; i <= HANG_TESTS; i++)); do
        HANG_FIRED=$((HANG_FIRED + 1))
        if grep -q '^200 ' "$WORK/hang-$run-$i.status" && grep -q '"code":"timeout"' "$WORK/hang-$run-$i.json"; then
            HANG_TIMEOUTS=$((HANG_TIMEOUTS + 1))
        fi
    done
done
RSS[hang]=$(rss_kb "$SERVER_PID")
HWM[hang]=$(hwm_kb "$SERVER_PID")
check_endpoints
stop_pid "$SERVER_PID"
stop_pid "$HANG_PID"
BASE_MED="$(median "${base_rps[@]}") $(median "${base_p50[@]}") $(median "${base_p99[@]}")"
HANG_MED="$(median "${hang_rps[@]}") $(median "${hang_p50[@]}") $(median "${hang_p99[@]}")"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a >= b)}'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }
verdict() { if "$@"; then echo PASS; else echo FAIL; fi; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }  # kB (KiB) to MiB
fmt_rps() { awk -v r="$1" 'BEGIN {printf "%.0f", r}'; }

REPORT=$WORK/report.md
{
    echo "Run on $(date -u '+%Y-%m-%d %H:%M UTC') with \`$COMMAND\` (wrk -t$THREADS -c$CONNS -d$DURATION --latency," \
        "median of $RUNS runs after a ${WARMUP} warm-up; $CONFIGS configurations), binary built from $REVISION."
    echo
    echo "Machine: $MACHINE. Load average before: $LOAD_BEFORE; after: $LOAD_AFTER." \
        "wrk, Lanyard and PostgreSQL share the same cores, and the machine runs other work: absolute figures are noisy;" \
        "compare ratios to /healthz."
    echo
    echo "| endpoint | backend | req/s | ratio to /healthz | p50 ms | p99 ms | errors | req/s of each run |"
    echo "|---|---|---:|---:|---:|---:|---:|---|"
    for backend in sqlite postgres; do
        for endpoint in "${ENDPOINTS[@]}"; do
            errors=${RESULT[$backend.$endpoint.errors]}
            shown_errors=$errors
            ((errors > 0)) && shown_errors="**$errors (FAIL)**"
            echo "| ${LABEL_OF[$endpoint]} | $backend | $(fmt_rps "${RESULT[$backend.$endpoint.rps]}") |" \
                "$(ratio "${RESULT[$backend.$endpoint.rps]}" "${RESULT[$backend.healthz.rps]}") |" \
                "${RESULT[$backend.$endpoint.p50]} | ${RESULT[$backend.$endpoint.p99]} | $shown_errors |" \
                "${RESULT[$backend.$endpoint.runs]} |"
        done
    done
    echo
    echo "| | SQLite | PostgreSQL |"
    echo "|---|---:|---:|"
    echo "| RSS (VmRSS) after the load | $(mb "${RSS[sqlite]}") MiB | $(mb "${RSS[postgres]}") MiB |"
    echo "| peak RSS (VmHWM) | $(mb "${HWM[sqlite]}") MiB | $(mb "${HWM[postgres]}") MiB |"
    echo "| start to first answer, empty database (migrations included) | ${STARTUP[sqlite]} ms | ${STARTUP[postgres]} ms |"
    echo "| start to first answer, restart on the seeded database | ${STARTUP[sqlite_restart]} ms | – |"
    echo
    read -r br bp50 bp99 <<<"$BASE_MED"
    read -r hr hp50 hp99 <<<"$HANG_MED"
    echo "Hanging provider (SQLite, LANYARD_TEST_RATE_PER_MINUTE=1000, LANYARD_EGRESS_ALLOW=127.0.0.1/32):" \
        "a second user fires $HANG_TESTS concurrent \`POST /api/llm-configurations/{id}/test\` at 127.0.0.1:$HANG_PORT," \
        "which accepts and never answers; the first user's \`GET /api/llm-configurations\` is measured for $HANG_DURATION" \
        "while they hang (at least $HANG_OPEN_MIN connections held open during each measurement), and for as long just before" \
        "on the same server. $HANG_TIMEOUTS of $HANG_FIRED tests answered 200 with \`code: timeout\`;" \
        "each batch took $(echo "$HANG_SECONDS" | awk '{for (i = 1; i <= NF; i++) printf "%s%.1f s", (i > 1 ? ", " : ""), $i / 1000}')."
    echo
    echo "| GET /api/llm-configurations (sqlite) | req/s | p50 ms | p99 ms | errors |"
    echo "|---|---:|---:|---:|---:|"
    echo "| alone | $(fmt_rps "$br") | $bp50 | $bp99 | $BASE_ERRORS |"
    echo "| while $HANG_TESTS tests hang | $(fmt_rps "$hr") | $hp50 | $hp99 | $HANG_ERRORS |"
    echo
    echo "RSS after the hanging tests: $(mb "${RSS[hang]}") MiB (peak $(mb "${HWM[hang]}") MiB)."
    echo
    echo "| target | measured | result |"
    echo "|---|---|---|"
    r=$(ratio "${RESULT[sqlite.api.rps]}" "${RESULT[sqlite.healthz.rps]}")
    echo "| API list ≥ 0.15 × /healthz on SQLite | $r | $(verdict ge "$r" 0.15) |"
    r=$(ratio "${RESULT[postgres.api.rps]}" "${RESULT[postgres.healthz.rps]}")
    echo "| API list ≥ 0.08 × /healthz on PostgreSQL | $r | $(verdict ge "$r" 0.08) |"
    p=${RESULT[sqlite.api.p99]}
    echo "| API list p99 ≤ 25 ms on SQLite | $p ms | $(verdict le "$p" 25) |"
    p=${RESULT[postgres.api.p99]}
    echo "| API list p99 ≤ 25 ms on PostgreSQL | $p ms | $(verdict le "$p" 25) |"
    list_errors=$((${RESULT[sqlite.api.errors]} + ${RESULT[postgres.api.errors]} + BASE_ERRORS + HANG_ERRORS))
    echo "| API list: no error responses (both backends, and while tests hang) | $list_errors | $(verdict test "$list_errors" -eq 0) |"
    r=$(ratio "${RESULT[sqlite.page.rps]}" "${RESULT[sqlite.healthz.rps]}")
    echo "| management page ≥ 0.10 × /healthz on SQLite | $r | $(verdict ge "$r" 0.10) |"
    echo "| RSS ≤ 40 MB (read as MiB) after the load, SQLite | $(mb "${RSS[sqlite]}") MiB | $(verdict le "$(mb "${RSS[sqlite]}")" 40) |"
    echo "| RSS ≤ 40 MB (read as MiB) after the load, PostgreSQL | $(mb "${RSS[postgres]}") MiB | $(verdict le "$(mb "${RSS[postgres]}")" 40) |"
    echo "| first answer ≤ 500 ms after start, SQLite | ${STARTUP[sqlite]} ms | $(verdict le "${STARTUP[sqlite]}" 500) |"
    echo "| first answer ≤ 500 ms after start, PostgreSQL | ${STARTUP[postgres]} ms | $(verdict le "${STARTUP[postgres]}" 500) |"
    echo "| list p99 ≤ 25 ms while $HANG_TESTS tests hang (SQLite) | $hp99 ms | $(verdict le "$hp99" 25) |"
    other_errors=0
    for key in "${!RESULT[@]}"; do
        [[ $key == *.errors && $key != *.api.errors ]] && other_errors=$((other_errors + ${RESULT[$key]}))
    done
    echo "| (not a target) errors on the other endpoints | $other_errors | $(verdict test "$other_errors" -eq 0) |"
    if [[ -s $WORK/errors.txt ]]; then
        echo
        echo "Errors as wrk reports them (socket timeouts are requests slower than wrk's 2 s timeout):"
        echo
        sed 's/^/- /' "$WORK/errors.txt"
    fi
    echo
    echo "<details><summary>wrk latency distributions (run 2 of each, or run 1 with BENCH_RUNS=1)</summary>"
    echo
    echo '```'
    for backend in sqlite postgres; do
        for endpoint in "${ENDPOINTS[@]}"; do
            echo "## $backend ${PATH_OF[$endpoint]}"
            sed -n '/Latency Distribution/,/^Requests/p' "$WORK/keep-$backend-$endpoint.txt" | grep -v '^Requests'
        done
    done
    echo "## sqlite /api/llm-configurations while $HANG_TESTS tests hang (run $(((RUNS + 1) / 2)))"
    sed -n '/Latency Distribution/,/^Requests/p' "$WORK/wrk-hang-$(((RUNS + 1) / 2)).txt" | grep -v '^Requests'
    echo '```'
    echo
    echo "</details>"
} >"$REPORT"

echo
cat "$REPORT"

# ---------------------------------------------------------------------------------------------
# BENCHMARKS.md: keep everything outside the markers, replace what is between them.
# ---------------------------------------------------------------------------------------------
python3 - "$ROOT/BENCHMARKS.md" "$REPORT" <<'PY'
import pathlib, sys
path, report = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).read_text()
start, end = "<!-- bench:start -->", "<!-- bench:end -->"
generated = f"{start}\n{report.rstrip()}\n{end}"
if path.exists() and start in path.read_text() and end in path.read_text():
    text = path.read_text()
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    text = head + generated + tail
else:
    head = path.read_text().rstrip() + "\n\n" if path.exists() else (
        "# Benchmarks\n\nHow to run: `bash bench/run.sh` (see the comment at its top).\n\n## Latest run\n\n")
    text = head + generated + "\n"
path.write_text(text)
PY
log "BENCHMARKS.md updated"
