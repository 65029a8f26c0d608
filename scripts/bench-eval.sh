#!/usr/bin/env bash
# Times `leader eval` on generated data: N records × M medications (default 1,000,000 × 300, about
# 3 GB of predictions JSON). Target: under 10 s and under 2 GiB peak RSS.
#
# Usage: scripts/bench-eval.sh [N] [M]
#   BENCH_DIR=DIR   where to write the data (default: a fresh temporary folder, removed afterwards)
#   LEADER_BIN=PATH time this binary instead of building target/release/leader
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
M=${2:-300}
if [[ -n "${BENCH_DIR:-}" ]]; then
    DIR=$BENCH_DIR
else
    DIR=$(mktemp -d)
    trap 'rm -rf "$DIR"' EXIT
fi
if [[ -z "${LEADER_BIN:-}" ]]; then
    cargo build --release --quiet --bin leader --example eval_bench_data
    LEADER_BIN=target/release/leader
fi
GEN=$(dirname "$LEADER_BIN")/examples/eval_bench_data
if [[ ! -s "$DIR/predictions.jsonl" ]]; then
    echo "generating $N records x $M drugs in $DIR ..."
    "$GEN" "$DIR" "$N" "$M"
fi
echo "predictions: $(du -h "$DIR/predictions.jsonl" | cut -f1), records: $(du -h "$DIR/test.jsonl" | cut -f1)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
/usr/bin/time -v "$LEADER_BIN" --quiet eval --data "$DIR" --predictions "$DIR/predictions.jsonl" \
    --out "$DIR/eval" >"$DIR/eval.stdout" 2>"$DIR/time.txt" || { cat "$DIR/time.txt"; exit 1; }
head -5 "$DIR/eval.stdout"
wall=$(grep 'Elapsed (wall clock)' "$DIR/time.txt" | awk '{print $NF}')
rss_kb=$(grep 'Maximum resident set size' "$DIR/time.txt" | awk '{print $NF}')
cpu=$(grep 'Percent of CPU' "$DIR/time.txt" | awk '{print $NF}')
echo "eval: wall ${wall} (m:ss), CPU ${cpu}, peak RSS $((rss_kb / 1024)) MiB"
