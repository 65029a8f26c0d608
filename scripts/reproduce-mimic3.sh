#!/usr/bin/env bash
# Reproduces the LEADER paper's experiment on real MIMIC-III v1.4 (scripts/reproduce-mimic4.sh runs this
# script for MIMIC-IV): preprocess -> train-teacher (LLaMA + LoRA, GPU) -> export-hidden -> train-student
# (w/o KD) and distill -> predict -> eval -> one comparison table. Hyper-parameters come from
# configs/reproduce-<dataset>-{preprocess,teacher,student}.toml (the reference's values, commented there).
#
# Usage: scripts/reproduce-mimic3.sh MIMIC_DIR AUX_DIR LLAMA OUT
#   MIMIC_DIR  the MIMIC tables (.csv or .csv.gz): MIMIC-III's folder, or for MIMIC-IV the folder holding hosp/
#   AUX_DIR    mapping files (see the README, "Reproducing the paper on real MIMIC"):
#                ndc2RXCUI.txt (or ndc2rxnorm_mapping.txt) + RXCUI2atc4.csv  the reference's NDC -> RXCUI -> ATC,
#                  unless DRUG_MAP is set
#                WHO_ATC-DDD_2021-12-03.csv (or "WHO ATC-DDD 2021-12-03.csv", or atc_names.csv)  ATC names
#                ddi_pairs.csv (or ddi_atc3_pairs_gamenet.csv)  interacting ATC pairs, columns atc3_a,atc3_b
#   LLAMA      the base model: a LLaMA-7B folder in Hugging Face layout, or a hub repo id
#   OUT        the output folder; rerunning resumes: finished stages are skipped, interrupted training resumes
#
# Environment:
#   DRUG_MAP=FILE MAP_KEY=gsn|ndc  a direct key -> ATC CSV (e.g. a GSN map) instead of the NDC -> RXCUI pair
#   ATC_NAMES=FILE DDI_PAIRS=FILE  override the files looked up in AUX_DIR (DDI_PAIRS=none: no ddi.json)
#   REFERENCE_EXACT=1  the reference's choices where we fix its bugs by default: >= 2 admissions, visits in
#                      HADM_ID order, sequential split, the reference prompt with its <DIGNOSIS> typo, the
#                      alignment without the positive in its denominator (and MIMIC-IV: mixed ICD-9/10 codes)
#   STOP_AFTER=STAGE   stop after preprocess, teacher, export or students
#   LEADER=PATH        the binary (default target/release/leader; build with `cargo build --release --features cuda`)
#   DEVICE=cuda DTYPE=bf16  where the teacher runs (export-hidden and predict too)
#   TEACHER_FLAGS, STUDENT_FLAGS  extra flags for train-teacher / train-student and distill, e.g. for a smoke
#                      test: TEACHER_FLAGS="--max-steps 2 --max-tokens 256" STUDENT_FLAGS="--epochs 2"
set -euo pipefail

DATASET="${DATASET:-mimic3}"
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}
[ $# -eq 4 ] || usage
MIMIC_DIR=$1 AUX_DIR=$2 LLAMA=$3 OUT=$4
case "$DATASET" in mimic3 | mimic4) ;; *) echo "DATASET must be mimic3 or mimic4, not $DATASET" >&2; exit 2 ;; esac
[ -d "$MIMIC_DIR" ] || { echo "MIMIC_DIR $MIMIC_DIR is not a folder" >&2; exit 2; }
[ -d "$AUX_DIR" ] || { echo "AUX_DIR $AUX_DIR is not a folder" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LEADER="${LEADER:-$ROOT/target/release/leader}"
[ -x "$LEADER" ] || { echo "$LEADER not found: run 'cargo build --release --features cuda' (or set LEADER=PATH)" >&2; exit 2; }
DEVICE="${DEVICE:-cuda}" DTYPE="${DTYPE:-bf16}"
CONFIGS="$ROOT/configs/reproduce-$DATASET"
EXACT="${REFERENCE_EXACT:-0}"

# The first of the given files that exists in AUX_DIR, or nothing.
first_in_aux() {
    for name in "$@"; do
        if [ -f "$AUX_DIR/$name" ]; then echo "$AUX_DIR/$name"; return; fi
    done
}
say() { printf '\n== %s\n' "$*" >&2; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }
stop_after() { if [ "${STOP_AFTER:-}" = "$1" ]; then say "stopping after $1 (STOP_AFTER)"; exit 0; fi; }

mkdir -p "$OUT"
DATA="$OUT/data"

# 1. preprocess
if [ -f "$DATA/stats.json" ]; then
    say "preprocess: $DATA exists, skipped"
else
    say "preprocess"
    args=(preprocess --source "$DATASET" --raw "$MIMIC_DIR" --out "$DATA" --config "$CONFIGS-preprocess.toml")
    if [ -n "${DRUG_MAP:-}" ]; then
        args+=(--drug-map "$DRUG_MAP" --map-key "${MAP_KEY:-ndc}")
    else
        ndc_rxcui=$(first_in_aux ndc2RXCUI.txt ndc2rxnorm_mapping.txt ndc2rxnorm_mapping.csv)
        rxcui_atc=$(first_in_aux RXCUI2atc4.csv ndc2atc_level4.csv)
        [ -n "$ndc_rxcui" ] && [ -n "$rxcui_atc" ] || {
            echo "AUX_DIR needs ndc2RXCUI.txt and RXCUI2atc4.csv (SafeDrug), or set DRUG_MAP=FILE MAP_KEY=gsn|ndc" >&2
            exit 2
        }
        args+=(--ndc-rxcui "$ndc_rxcui" --rxcui-atc "$rxcui_atc")
    fi
    atc_names="${ATC_NAMES:-$(first_in_aux WHO_ATC-DDD_2021-12-03.csv "WHO ATC-DDD 2021-12-03.csv" atc_names.csv)}"
    if [ -n "$atc_names" ]; then args+=(--atc-names "$atc_names"); else echo "warning: no ATC names file" >&2; fi
    ddi_pairs="${DDI_PAIRS:-$(first_in_aux ddi_pairs.csv ddi_atc3_pairs_gamenet.csv)}"
    if [ -n "$ddi_pairs" ] && [ "$ddi_pairs" != none ]; then
        args+=(--ddi-pairs "$ddi_pairs")
    else
        echo "warning: no DDI pairs: no ddi.json, so no DDI rate" >&2
    fi
    if [ "$EXACT" = 1 ]; then
        args+=(--min-visits 2 --split sequential --set visit_order=hadm_id --set prompt.template=reference
            --set prompt.reference_diagnosis_bug=true --set icd.mimic4_version_prefix=false)
    fi
    run "$LEADER" "${args[@]}"
fi
stop_after preprocess

# 2. the teacher LEADER(T): LoRA r 8, alpha 32 on all seven projections, lr 2e-4 decaying linearly,
# effective batch 32, 3000 (MIMIC-III) / 4000 (MIMIC-IV) steps, 2048 tokens (configs/reproduce-*-teacher.toml).
TEACHER="$OUT/teacher"
say "train-teacher"
if [ -f "$TEACHER/.leader-output.json" ]; then
    # --resume continues with the run's saved config and data; a finished run stops at once.
    run "$LEADER" train-teacher --resume "$TEACHER"
else
    args=(train-teacher --data "$DATA" --model "$LLAMA" --out "$TEACHER" --config "$CONFIGS-teacher.toml"
        --device "$DEVICE" --dtype "$DTYPE")
    read -ra teacher_flags <<<"${TEACHER_FLAGS:-}"
    args+=("${teacher_flags[@]}")
    run "$LEADER" "${args[@]}"
fi
stop_after teacher

# 3. the teacher's hidden states over the training split (the offline KD file).
CACHE="$OUT/teacher-cache.safetensors"
if [ -f "$CACHE" ]; then
    say "export-hidden: $CACHE exists, skipped"
else
    say "export-hidden"
    run "$LEADER" export-hidden --teacher "$TEACHER" --data "$DATA" --split train --out "$CACHE" \
        --device "$DEVICE" --dtype "$DTYPE"
fi
stop_after export

# 4. the students: w/o KD, and distilled with alpha/beta of the paper (configs/reproduce-*-student.toml).
student() { # NAME COMMAND [FLAGS...]
    local name=$1 command=$2
    shift 2
    local extra=("$@")
    read -ra student_flags <<<"${STUDENT_FLAGS:-}"
    extra+=("${student_flags[@]}")
    if [ "$EXACT" = 1 ]; then extra+=(--set loss.exclude_positive=true); fi
    if [ -f "$OUT/$name/.leader-output.json" ]; then
        # --resume keeps the run's saved config and data; a finished run only re-reads its last state.
        run "$LEADER" "$command" --resume "$OUT/$name" "$@"
    else
        run "$LEADER" "$command" --data "$DATA" --out "$OUT/$name" --config "$CONFIGS-student.toml" "${extra[@]}"
    fi
}
say "train-student (w/o KD)"
student student-nokd train-student
say "distill (KD + alignment)"
student student-kd distill --teacher-cache "$CACHE"
# The classic baselines, on the same records, split and vocabulary (configs/baseline-*.toml hold each
# original value; GAMENet and MICRON need the ddi.json of DDI_PAIRS).
BASELINES=(lr retain gamenet micron transformer)
if [ ! -f "$DATA/ddi.json" ]; then
    echo "warning: no ddi.json: GAMENet and MICRON (which train with the DDI graph) are left out" >&2
    BASELINES=(lr retain transformer)
fi
for model in "${BASELINES[@]}"; do
    say "train-baseline: $model"
    if [ -f "$OUT/baseline-$model/.leader-output.json" ]; then
        run "$LEADER" train-baseline --resume "$OUT/baseline-$model"
    else
        run "$LEADER" train-baseline --model "$model" --data "$DATA" --out "$OUT/baseline-$model"
    fi
done
stop_after students

# 5. predictions on the test split and their metrics.
metrics=() labels=()
for name in teacher student-nokd student-kd "${BASELINES[@]/#/baseline-}"; do
    flag=--model
    extra=()
    if [ "$name" = teacher ]; then flag=--teacher extra=(--device "$DEVICE"); fi
    say "predict + eval: $name"
    # Scores are recomputed on every run: --overwrite replaces the earlier ones.
    run "$LEADER" predict "$flag" "$OUT/$name" --data "$DATA" --split test --out "$OUT/predictions/$name.jsonl" \
        --overwrite "${extra[@]}"
    run "$LEADER" eval --data "$DATA" --split test --predictions "$OUT/predictions/$name.jsonl" --out "$OUT/eval/$name" \
        --overwrite
    metrics+=("$OUT/eval/$name/metrics.json")
done
labels=("LEADER(T)" "LEADER(S) w/o KD" "LEADER(S)")
for model in "${BASELINES[@]}"; do
    case $model in
        lr) labels+=("LR") ;; retain) labels+=("RETAIN") ;; gamenet) labels+=("GAMENet") ;;
        micron) labels+=("MICRON") ;; transformer) labels+=("Transformer") ;;
    esac
done
say "eval: frequency baseline"
run "$LEADER" eval --data "$DATA" --split test --baseline frequency --out "$OUT/eval/baseline-frequency" --overwrite
metrics+=("$OUT/eval/baseline-frequency/metrics.json")
labels+=("Frequency baseline")

# 6. one table: overall, single-visit and multi-visit patients.
for group in overall single multi; do
    run "$LEADER" eval --compare "${metrics[@]}" --labels "${labels[@]}" --group "$group" \
        --out "$OUT/results-$group.md" --overwrite
done
say "results: $OUT/results-{overall,single,multi}.md"
cat "$OUT/results-overall.md"
