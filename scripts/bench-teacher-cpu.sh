#!/usr/bin/env bash
# Teacher throughput of the tiny LLaMA (hidden 64, 2 layers) on this machine's CPU: training steps/s
# and tokens/s (with and without activation checkpointing), and the frozen forward pass that
# export-hidden and predict run (records/s). Builds the release binary first.
#   scripts/bench-teacher-cpu.sh            (SEQ=128 BATCH=8 STEPS=20 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
SEQ=${SEQ:-128} BATCH=${BATCH:-8} STEPS=${STEPS:-20} PROFILE=${PROFILE:-release}
# PROFILE=dev measures target/debug instead (dependencies at opt-level 3, this crate at 1).
if [ "$PROFILE" = dev ]; then cargo build --quiet --bin leader; BIN=target/debug/leader
else cargo build --release --quiet --bin leader; BIN=target/release/leader; fi
echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average: $(cut -d" " -f1-3 /proc/loadavg) (other jobs on the machine distort these figures; try RAYON_NUM_THREADS=1 on a busy machine)"
run() { "$BIN" --quiet train-teacher --model random:tiny --grad-accum 1 --micro-batch "$BATCH" \
  --bench-seq-len "$SEQ" --bench-steps "$STEPS" "$@"; }
run
run --checkpoint-layers
run --bench-forward-only
