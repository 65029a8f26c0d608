#!/usr/bin/env bash
# Teacher throughput on this machine's CPU: training steps/s and tokens/s (with and without activation
# checkpointing), the frozen forward pass that export-hidden and predict run, each as one JSON line,
# and `pretrain` tokens/s on synth's knowledge corpus, with the peak RSS of the whole process; every
# figure with candle's kernels single-threaded (leader's default, see src/runtime.rs) and with
# THREADS (default: all cores) threads. Builds the release binary first.
#   scripts/bench-teacher-cpu.sh                 the tiny LLaMA (hidden 64, 2 layers); SEQ=128 BATCH=8 STEPS=20
#   SHAPE=1b LAYERS=2 scripts/bench-teacher-cpu.sh
#                                                the first LAYERS layers of the 1b (TinyLlama) shape, f32, from a
#                                                model folder made once under target/bench-teacher (SEQ=128
#                                                BATCH=2 STEPS=3 by default): LoRA steps where the frozen
#                                                weights dominate
#   BIN=path/to/leader ...                       measure another build (e.g. an older commit) on the same folder
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPE=${SHAPE:-tiny} PROFILE=${PROFILE:-release}
if [ "$SHAPE" = tiny ]; then SEQ=${SEQ:-128} BATCH=${BATCH:-8} STEPS=${STEPS:-20}; else SEQ=${SEQ:-128} BATCH=${BATCH:-2} STEPS=${STEPS:-3}; fi
# PROFILE=dev measures target/debug instead (dependencies at opt-level 3, this crate at 1).
if [ -n "${BIN:-}" ]; then :
elif [ "$PROFILE" = dev ]; then cargo build --quiet --bin leader; BIN=target/debug/leader
else cargo build --release --quiet --bin leader; BIN=target/release/leader; fi
echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average: $(cut -d" " -f1-3 /proc/loadavg) (other jobs on the machine distort these figures; try RAYON_NUM_THREADS=1 on a busy machine)"
if [ "$SHAPE" = tiny ]; then
    MODEL=random:tiny DTYPE=f32
else
    LAYERS=${LAYERS:-2}
    MODEL=target/bench-teacher/$SHAPE-$LAYERS-layers DTYPE=f32
    if [ ! -f "$MODEL/config.json" ]; then
        # init-model writes every layer; the config then keeps the first LAYERS (the others are not read).
        rm -rf "$MODEL"
        "$BIN" --quiet init-model --shape "$SHAPE" --out "$MODEL"
        python3 - "$MODEL/config.json" "$LAYERS" <<'EOF'
import json, sys
path, layers = sys.argv[1], int(sys.argv[2])
cfg = json.load(open(path))
cfg["num_hidden_layers"] = layers
json.dump(cfg, open(path, "w"), indent=2)
EOF
    fi
fi
THREADS=${THREADS:-$(nproc)}
# measure N COMMAND...: COMMAND with candle's kernels on N threads, then its peak RSS.
measure() {
    local threads=$1 rss
    shift
    rss=$(mktemp)
    RAYON_NUM_THREADS=$threads CANDLE_NUM_THREADS=$threads /usr/bin/time -f "%M" -o "$rss" "$@"
    echo "  peak RSS $(( $(cat "$rss") / 1024 )) MiB, $threads kernel thread(s)"
    rm -f "$rss"
}
for threads in 1 "$THREADS"; do
    for mode in "" --checkpoint-layers --bench-forward-only; do
        measure "$threads" "$BIN" --quiet train-teacher --model "$MODEL" --dtype "$DTYPE" --grad-accum 1 \
            --micro-batch "$BATCH" --bench-seq-len "$SEQ" --bench-steps "$STEPS" $mode
    done
done
# pretrain: full fine-tuning of the tiny shape, LoRA for the large ones, on synth's knowledge corpus.
CORPUS=target/bench-teacher/synth
[ -d "$CORPUS/knowledge" ] || "$BIN" --quiet synth --patients 20 --out "$CORPUS" --overwrite
TRAINED=full; [ "$SHAPE" = tiny ] || TRAINED=lora
for threads in 1 "$THREADS"; do
    echo "pretrain ($TRAINED, rows of $SEQ tokens, $BATCH per step, $STEPS steps):"
    measure "$threads" "$BIN" pretrain --model "$MODEL" --corpus "$CORPUS/knowledge" --trained "$TRAINED" \
        --seq-len "$SEQ" --micro-batch "$BATCH" --max-steps "$STEPS" --set train.eval_every=100000 \
        --out target/bench-teacher/pretrain-run --overwrite 2>&1 | grep -E "tokens/s|peak RSS"
done
