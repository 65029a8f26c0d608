#!/usr/bin/env bash
# Times `leader preprocess` on a full-MIMIC-III-sized synthetic cohort and prints wall time and peak RSS.
# Usage: [SHAPE=anchor|synth] [BIN=path/to/leader] scripts/bench-preprocess.sh [PATIENTS] [WORKDIR]
#   (defaults: anchor, 46520 patients, target/bench-preprocess)
# SHAPE=anchor (default) shapes the cohort like full MIMIC-III, the anchor's tables: 86% single-visit
# patients (~58k admissions) and ~69 prescription rows per admission (~4M rows). SHAPE=synth keeps the
# synth defaults (30% single-visit, ~22 rows per admission: ~105k admissions, ~2.2M rows).
# Anchor: the reference pandas pipeline on tables of this size takes ~44 s keeping single-visit patients
# (19 s with its >=2-visit filter) at 2.7 GB peak on the 2-core dev machine. Target: < 9 s, < 1.5 GiB.
set -euo pipefail
cd "$(dirname "$0")/.."
PATIENTS="${1:-46520}"
WORK="${2:-target/bench-preprocess}"
SHAPE="${SHAPE:-anchor}"
case "$SHAPE" in
  anchor) SHAPE_ARGS=(--set visits.single_visit_share=0.86 --set drugs.extra_rows_mean=4.2
                      --set drugs.max_rows_per_drug=20) ;;
  synth) SHAPE_ARGS=() ;;
  *) echo "SHAPE must be anchor or synth, got $SHAPE" >&2; exit 2 ;;
esac
# BIN=path/to/leader measures another build (e.g. an older commit) on the same cohort.
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; BIN=target/release/leader; fi
mkdir -p "$WORK"
RAW="$WORK/raw-$SHAPE-$PATIENTS"
if [ ! -f "$RAW/PRESCRIPTIONS.csv.gz" ]; then
  echo "synthesizing $PATIENTS patients ($SHAPE shape) into $RAW ..."
  "$BIN" --quiet synth --flavor mimic3 --patients "$PATIENTS" "${SHAPE_ARGS[@]}" --out "$RAW"
fi
for f in "$RAW"/*.csv.gz; do
  printf '%-28s %8s MB gz, %9s rows\n' "$(basename "$f")" "$(( $(stat -c %s "$f") / 1000000 ))" "$(( $(zcat "$f" | wc -l) - 1 ))"
done
ARGS=(--quiet preprocess --source mimic3 --raw "$RAW" --drug-map "$RAW/aux/drug_map.csv"
      --atc-names "$RAW/aux/atc_names.csv" --ddi-pairs "$RAW/aux/ddi_pairs.csv" --out "$WORK/out")
run() {
  local label="$1"; shift
  rm -rf "$WORK/out"
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$BIN" "${ARGS[@]}" "$@"
    read -r wall kb < "$WORK/time.txt"
  else
    # No GNU time: bash timing plus a 50 ms RSS sampler over /proc.
    local start end peak=0 rss
    start=$(date +%s.%N)
    "$BIN" "${ARGS[@]}" "$@" & local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ "${rss:-0}" -gt "$peak" ] && peak=$rss
      sleep 0.05
    done
    wait "$pid"
    end=$(date +%s.%N)
    wall=$(echo "$end - $start" | bc); kb=$peak
  fi
  printf '%-28s wall %6.2f s   peak RSS %7.1f MiB\n' "$label" "$wall" "$(echo "$kb / 1024" | bc -l)"
}
echo "cores: $(nproc)"
run "preprocess (min_visits=1)"
run "preprocess (min_visits=2)" --min-visits 2
python3 -c "import json;s=json.load(open('$WORK/out/stats.json'));print('last run: patients',s['patients'],'visits',s['visits'],'single',s['single_visit_patients'])" 2>/dev/null || true
