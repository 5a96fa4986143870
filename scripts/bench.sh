#!/usr/bin/env bash
# Build release binaries of rova and rova-bench, then run the benchmark.
# Arguments go to rova-bench unchanged, e.g.
#
#   scripts/bench.sh                                   # N = 1000 and 10000
#   scripts/bench.sh --servers 1000 --markdown docs/benchmarks.md
#   scripts/bench.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p rova -p rova-bench
exec target/release/rova-bench "$@"
