#!/usr/bin/env bash
# Lanyard's benchmark: one command, no arguments.
#
#   bash bench/run.sh
#
# Builds the release binary and hands over to bench/driver.py (Python 3.11, standard library
# only), which measures, prints the tables and rewrites the generated section of BENCHMARKS.md;
# the targets it judges are in bench/targets.toml. What is measured, and the options
# (BENCH_DURATION, BENCH_RUNS, BENCH_PG_HOST/PORT/USER, BENCH_KEEP_WORK, BENCH_ONLY=waiting): the
# driver's docstring.
#
#   CARGO_TARGET_DIR  where to build (default $HOME/.cache/lanyard-target)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/lanyard-target}

for tool in python3 cargo; do
    command -v "$tool" >/dev/null || { echo "[bench] ERROR: $tool is required" >&2; exit 1; }
done

# The waiting-resolve phase holds 5,000 sockets on each side (the driver and the server).
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Options, targets and tools first: a typo should not cost a five-minute build.
python3 bench/driver.py --preflight

echo "[bench $(date +%H:%M:%S)] building the release binary (CARGO_TARGET_DIR=$CARGO_TARGET_DIR; about 5 minutes from clean)" >&2
cargo build --release --locked

exec python3 bench/driver.py --binary "$CARGO_TARGET_DIR/release/lanyard"
