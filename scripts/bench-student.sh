#!/usr/bin/env bash
# Student benchmarks on a MIMIC-III-sized synthetic cohort: seconds per training epoch at batch 16 and
# 64, `leader predict` throughput and peak RSS on PREDICT_RECORDS records (the test split replicated),
# and p50/p99 latency of scoring one record (examples/student_latency.rs). Prints its figures.
#
# Usage: scripts/bench-student.sh [DATA_DIR]
#   DATA_DIR: a preprocessed folder (train/valid/test.jsonl + vocab.json). Without it the script runs
#   `leader synth --flavor mimic3 --patients 46520 --seed 1` + `leader preprocess` into BENCH_DIR.
# Env: LEADER_BIN (a built `leader`: skips building; the latency example is then looked up beside it
#      under examples/ and skipped if absent), BENCH_DIR (work folder, default target/bench-student),
#      THREADS (the student's `threads` setting, default 2), PREDICT_RECORDS (default 1000000).
# Without LEADER_BIN it builds the release profile.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${BENCH_DIR:-target/bench-student}
THREADS=${THREADS:-2}
PREDICT_RECORDS=${PREDICT_RECORDS:-1000000}
mkdir -p "$WORK"
if [ -n "${LEADER_BIN:-}" ]; then
  BIN=$LEADER_BIN
  LATENCY=$(dirname "$BIN")/examples/student_latency
else
  cargo build --release --quiet --bin leader --example student_latency
  BIN=target/release/leader
  LATENCY=target/release/examples/student_latency
fi

DATA=${1:-}
if [ -z "$DATA" ]; then
  DATA=$WORK/data
  if [ ! -f "$DATA/train.jsonl" ]; then
    RAW=$WORK/raw
    [ -d "$RAW" ] || $BIN --quiet synth --flavor mimic3 --patients 46520 --seed 1 --out "$RAW"
    $BIN --quiet preprocess --source mimic3 --raw "$RAW" --drug-map "$RAW/aux/drug_map.csv" \
      --atc-names "$RAW/aux/atc_names.csv" --ddi-pairs "$RAW/aux/ddi_pairs.csv" --out "$DATA"
  fi
fi
echo "data: $DATA ($(wc -l < "$DATA/train.jsonl") train, $(wc -l < "$DATA/valid.jsonl") valid records); threads=$THREADS; machine: $(nproc) cores, $(uname -m), load $(cut -d' ' -f1-3 /proc/loadavg)"

# Wall seconds and peak RSS (kB) of a command.
measure() {
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" > /dev/null
    cat "$WORK/time.txt"
  else
    # No GNU time: sample VmHWM from /proc until the command ends.
    local start peak=0 pid
    start=$(date +%s.%N)
    "$@" > /dev/null & pid=$!
    while kill -0 "$pid" 2> /dev/null; do
      peak=$(awk -v p="$peak" '/VmHWM/ { print ($2 > p ? $2 : p) }' "/proc/$pid/status" 2> /dev/null || echo "$peak")
      sleep 0.2
    done
    wait "$pid"
    echo "$(echo "$(date +%s.%N) - $start" | bc) $peak"
  fi
}

for BS in 16 64; do
  RUN=$WORK/run-b$BS
  rm -rf "$RUN"
  read -r WALL RSS < <(measure "$BIN" --quiet train-student --data "$DATA" --out "$RUN" --epochs 1 --batch-size "$BS" --set threads="$THREADS")
  python3 - "$RUN/train_log.jsonl" "$BS" "$WALL" "$RSS" <<'PY'
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
print(f"train batch {sys.argv[2]}: epoch {log[0]['seconds']:.1f} s (training + validation), process {sys.argv[3]} s, peak RSS {int(sys.argv[4]) // 1024} MiB, valid PRAUC {log[0]['valid_prauc']:.4f}")
PY
done

BIG=$WORK/predict-input.jsonl
if [ ! -f "$BIG" ] || [ "$(wc -l < "$BIG")" -ne "$PREDICT_RECORDS" ]; then
  python3 - "$DATA/test.jsonl" "$BIG" "$PREDICT_RECORDS" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
n = int(sys.argv[3])
with open(sys.argv[2], "w") as f:
    for i in range(n):
        f.write(lines[i % len(lines)] + "\n")
PY
fi
rm -f "$WORK/predictions.jsonl"
read -r WALL RSS < <(measure "$BIN" --quiet predict --model "$WORK/run-b16" --records "$BIG" --out "$WORK/predictions.jsonl")
python3 -c "print(f'predict: {$PREDICT_RECORDS} records in {$WALL} s = {$PREDICT_RECORDS / $WALL:.0f} records/s (parsing, encoding, scoring, writing), peak RSS {$RSS // 1024} MiB')"
rm -f "$WORK/predictions.jsonl"
if [ -x "$LATENCY" ]; then
  "$LATENCY" "$WORK/run-b16" "$DATA/test.jsonl" 2000
else
  echo "latency: $LATENCY not built; skipped"
fi
