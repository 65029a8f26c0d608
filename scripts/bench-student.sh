#!/usr/bin/env bash
# Student benchmarks on a MIMIC-III-sized synthetic cohort (release build): seconds per training
# epoch at batch 16 and 64, `leader predict` throughput and peak RSS on 1M records, and p50/p99
# latency of scoring one record.
#
# Usage: scripts/bench-student.sh [DATA_DIR]
#   DATA_DIR: a preprocessed folder (train/valid/test.jsonl + vocab.json). Without it the script runs
#   `leader synth --flavor mimic3 --patients 46520` + `leader preprocess`, and falls back to
#   scripts/student_bench_data.py when those commands are not available.
# Env: BENCH_DIR (work folder, default target/bench-student), THREADS (default 2: RAYON_NUM_THREADS),
#      PREDICT_RECORDS (default 1000000), PROFILE (release, or dev: our crate at opt-level 1,
#      dependencies at 3).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${BENCH_DIR:-target/bench-student}
THREADS=${THREADS:-2}
PREDICT_RECORDS=${PREDICT_RECORDS:-1000000}
export RAYON_NUM_THREADS=$THREADS
mkdir -p "$WORK"
PROFILE=${PROFILE:-release}
OUTDIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
cargo build --profile "$PROFILE" --quiet --bin leader --example student_latency
BIN=target/$OUTDIR/leader

DATA=${1:-}
if [ -z "$DATA" ]; then
  DATA=$WORK/data
  if [ ! -f "$DATA/train.jsonl" ]; then
    if $BIN synth --flavor mimic3 --patients 46520 --out "$WORK/raw" 2>/dev/null \
       && $BIN preprocess --input "$WORK/raw" --out "$DATA" 2>/dev/null; then
      echo "data: leader synth + preprocess"
    else
      echo "data: leader synth/preprocess unavailable; writing scripts/student_bench_data.py's cohort"
      python3 scripts/student_bench_data.py "$DATA" 46520
    fi
  fi
fi
echo "profile: $PROFILE; data: $DATA ($(wc -l < "$DATA/train.jsonl") train records), threads: $THREADS, machine: $(nproc) cores, $(uname -m)"

# Peak RSS (kB) and wall seconds of a command, via GNU time.
measure() { /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" > /dev/null; cat "$WORK/time.txt"; }

for BS in 16 64; do
  RUN=$WORK/run-b$BS
  rm -rf "$RUN"
  read -r WALL RSS < <(measure $BIN --quiet train-student --data "$DATA" --out "$RUN" --epochs 1 --batch-size "$BS")
  python3 - "$RUN/train_log.jsonl" "$BS" "$WALL" "$RSS" <<'PY'
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
print(f"train batch {sys.argv[2]}: epoch {log[0]['seconds']:.1f} s (incl. validation), process {sys.argv[3]} s, peak RSS {int(sys.argv[4]) // 1024} MiB, valid PRAUC {log[0]['valid_prauc']:.4f}")
PY
done

BIG=$WORK/predict-input.jsonl
if [ "$(wc -l < "$BIG" 2>/dev/null || echo 0)" -ne "$PREDICT_RECORDS" ]; then
  python3 - "$DATA/test.jsonl" "$BIG" "$PREDICT_RECORDS" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
n = int(sys.argv[3])
with open(sys.argv[2], "w") as f:
    for i in range(n):
        f.write(lines[i % len(lines)] + "\n")
PY
fi
read -r WALL RSS < <(measure $BIN --quiet predict --model "$WORK/run-b16" --records "$BIG" --out "$WORK/predictions.jsonl")
python3 -c "print(f'predict: {$PREDICT_RECORDS} records in {$WALL} s = {$PREDICT_RECORDS / $WALL:.0f} records/s, peak RSS {$RSS // 1024} MiB')"
target/$OUTDIR/examples/student_latency "$WORK/run-b16" "$DATA/test.jsonl" 2000
