#!/usr/bin/env bash
# Baseline benchmarks on a MIMIC-III-sized synthetic cohort: seconds per training epoch and test-split
# scoring records/s (`leader predict`, loading included) for each `train-baseline` model, with peak RSS.
#
# Usage: scripts/bench-baselines.sh [DATA_DIR]
#   DATA_DIR: a preprocessed folder. Without it: `leader synth --flavor mimic3 --patients 46520 --seed 1`
#   + `leader preprocess` into BENCH_DIR (shared with scripts/bench-student.sh's default).
# Env: LEADER_BIN (a built `leader`; default: build the release profile), BENCH_DIR (default
#      target/bench-student), EPOCHS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${BENCH_DIR:-target/bench-student}
EPOCHS=${EPOCHS:-3}
mkdir -p "$WORK"
if [ -n "${LEADER_BIN:-}" ]; then BIN=$LEADER_BIN; else cargo build --release --quiet --bin leader; BIN=target/release/leader; fi
DATA=${1:-$WORK/data}
if [ ! -f "$DATA/train.jsonl" ]; then
  RAW=$WORK/raw
  [ -d "$RAW" ] || "$BIN" --quiet synth --flavor mimic3 --patients 46520 --seed 1 --out "$RAW"
  "$BIN" --quiet preprocess --source mimic3 --raw "$RAW" --drug-map "$RAW/aux/drug_map.csv" \
    --atc-names "$RAW/aux/atc_names.csv" --ddi-pairs "$RAW/aux/ddi_pairs.csv" --out "$DATA"
fi
echo "data: $DATA ($(wc -l < "$DATA/train.jsonl") train, $(wc -l < "$DATA/test.jsonl") test records); machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for MODEL in lr retain gamenet micron transformer; do
  RUN=$WORK/baseline-$MODEL
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$BIN" --quiet train-baseline --model "$MODEL" --data "$DATA" \
    --out "$RUN" --overwrite --epochs "$EPOCHS"
  read -r WALL RSS < "$WORK/time.txt"
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$BIN" --quiet predict --model "$RUN" --data "$DATA" --split test \
    --out "$WORK/baseline-$MODEL-test.jsonl" --overwrite
  read -r PWALL PRSS < "$WORK/time.txt"
  python3 - "$MODEL" "$EPOCHS" "$WALL" "$RSS" "$PWALL" "$PRSS" "$(wc -l < "$DATA/test.jsonl")" <<'PY'
import sys
model, epochs, wall, rss, pwall, prss, n = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
print(f"{model}: {wall / epochs:.1f} s per epoch ({epochs} epochs incl. validation and loading: {wall:.1f} s, peak RSS {rss // 1024} MiB); "
      f"test scoring {n / pwall:,.0f} records/s ({n} records in {pwall:.2f} s incl. loading, peak RSS {prss // 1024} MiB)")
PY
done
