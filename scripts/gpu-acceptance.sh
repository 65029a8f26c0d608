#!/usr/bin/env bash
# GPU acceptance of the teacher, about 8 minutes on one H100/H200, logs and a final table under $OUT:
#  (a) correctness: a small random LLaMA (GQA 4/2 heads, 2 layers, from a model folder) on the GPU against
#      the CPU in f32: pooled vectors, loss and LoRA/head gradients (f32: relative <= 1e-4; bf16 <= 2e-2);
#  (b) 30 training steps of the tiny teacher on a synthetic cohort on the GPU (the loss must fall), then
#      export-hidden and predict on the GPU;
#  (c) the LLaMA-7B shape (random bf16 weights made on the GPU): training at 4x1024, with
#      --checkpoint-layers, 1x2048, and the frozen forward at 4x1024; then PyTorch + PEFT on the same
#      shapes in the same call, and the ratio of our tokens/s to PEFT's with both peak memories.
# Prepare here (no GPU needed), from the project root:
#   ../shared/cuda/build.sh && cp ../shared/bench/peft_baseline.py .device/
# On the GPU machine, from the project root:   bash scripts/gpu-acceptance.sh   (device tool: carry .device)
# DEVICE=cpu LEADER=target/release/leader bash scripts/gpu-acceptance.sh runs (a) and (b) on the CPU: a
# smoke test of the script itself (the 7B rows and PEFT are skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.device/acceptance}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
if [ "$DEVICE" = cuda ]; then
    # shellcheck disable=SC1091
    source .device/gpu-env.sh
    LEADER=${LEADER:-.device/leader}
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>&1
fi
LEADER=${LEADER:-target/release/leader}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf '\n== %s\n' "$*" | tee -a "$OUT/acceptance.log" >&2; }
leader() { timeout "$1" "$LEADER" --quiet "${@:2}" 2>>"$OUT/acceptance.log"; }

say "(a) the GPU against the CPU, tiny GQA LLaMA"
leader 60 init-model --shape tiny --seed 3 --out "$work/tiny"
for dtype in f32 bf16; do
    leader 120 train-teacher --model "$work/tiny" --device "$DEVICE" --dtype "$dtype" --micro-batch 4 \
        --bench-seq-len 256 --check-against-cpu >>"$OUT/check.jsonl" ||
        echo "{\"mode\": \"check-against-cpu\", \"dtype\": \"$dtype\", \"failed\": true}" >>"$OUT/check.jsonl"
done

say "(b) 30 steps of the tiny teacher on a synthetic cohort, then export-hidden and predict"
raw=$work/raw data=$work/data run=$work/teacher
leader 120 synth --patients 400 --seed 7 --out "$raw" &&
    leader 120 preprocess --source mimic3 --raw "$raw" --drug-map "$raw/aux/drug_map.csv" \
        --atc-names "$raw/aux/atc_names.csv" --ddi-pairs "$raw/aux/ddi_pairs.csv" --out "$data" &&
    leader 60 init-model --shape tiny --data "$data" --out "$work/base" &&
    leader 180 train-teacher --data "$data" --model "$work/base" --out "$run" --device "$DEVICE" --dtype bf16 \
        --max-steps 30 --max-tokens 256 --micro-batch 8 --grad-accum 1 --lr 1e-3 \
        --set train.log_every=5 --set train.eval_every=30 &&
    cp "$run/train_log.jsonl" "$OUT/tiny_train_log.jsonl" &&
    leader 120 export-hidden --teacher "$run" --data "$data" --split train --out "$work/cache.safetensors" \
        --device "$DEVICE" --dtype bf16 &&
    leader 120 predict --teacher "$run" --data "$data" --split test --out "$OUT/tiny_test.pred.jsonl" --device "$DEVICE" &&
    echo ok >"$OUT/pipeline.ok"

if [ "$DEVICE" = cuda ]; then
    say "(c) LLaMA-7B shape, bf16, random weights on the GPU"
    bench() {
        leader 240 train-teacher --model random:7b --device cuda --dtype bf16 --grad-accum 1 --bench-steps 3 "$@" \
            >>"$OUT/bench.jsonl" || echo "{\"failed\": \"$*\"}" >>"$OUT/bench.jsonl"
    }
    bench --micro-batch 4 --bench-seq-len 1024
    bench --micro-batch 4 --bench-seq-len 1024 --checkpoint-layers
    bench --micro-batch 1 --bench-seq-len 2048
    bench --micro-batch 4 --bench-seq-len 1024 --bench-forward-only
    say "(c) PyTorch + PEFT on the same shapes"
    OUT=$OUT SHAPE=7b timeout 300 python3 .device/peft_baseline.py >"$OUT/peft.jsonl" 2>>"$OUT/acceptance.log"
fi

say "table"
python3 - "$OUT" <<'EOF' | tee "$OUT/table.md"
import json, os, sys
out = sys.argv[1]
def lines(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path):
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows
ok = True
print("| check | result | limit | pass |\n|---|---|---|---|")
for c in lines("check.jsonl"):
    limit = 1e-4 if c.get("dtype") == "f32" else 2e-2
    if c.get("failed"):
        print(f"| {c['dtype']} vs CPU f32 | failed to run | {limit} | no |"); ok = False; continue
    for key in ["pooled_max_rel", "loss_rel", "grad_max_rel"]:
        good = c[key] <= limit
        ok &= good
        print(f"| {c['dtype']} {key} | {c[key]:.2e} | {limit} | {'yes' if good else 'no'} |")
log = [e for e in lines("tiny_train_log.jsonl") if e.get("kind") == "train"]
falling = len(log) >= 2 and log[-1]["loss"] < log[0]["loss"]
pipeline = os.path.exists(os.path.join(out, "pipeline.ok"))
ok &= falling and pipeline
first, last = (f"{log[0]['loss']:.4f}", f"{log[-1]['loss']:.4f}") if log else ("-", "-")
print(f"| tiny teacher loss, steps 5 -> 30 | {first} -> {last} | falls | {'yes' if falling else 'no'} |")
print(f"| export-hidden + predict | {'ran' if pipeline else 'failed'} | runs | {'yes' if pipeline else 'no'} |")
ours = lines("bench.jsonl")
peft = lines("peft.jsonl")
if ours:
    print("\n| 7B shape, bf16 | leader tok/s | leader GiB | PEFT tok/s | PEFT GiB | tok/s ratio |\n|---|---|---|---|---|---|")
    for r in ours:
        if "failed" in r:
            print(f"| {r['failed']} | failed | | | | |"); ok = False; continue
        mode = r["mode"]
        B, L, ck = r["micro_batch"], r["seq_len"], r["checkpoint_layers"]
        label = f"{B}x{L}" + (" checkpointed" if ck else "") + (" forward" if mode == "forward" else "")
        match = [p for p in peft if p.get("B") == B and p.get("L") == L and
                 (p.get("mode") == "forward" if mode == "forward" else (p.get("mode") != "forward" and p.get("ckpt") == ck))]
        p = match[0] if match else {}
        ratio = f"{r['tokens_per_s'] / p['tok_s']:.2f}" if p.get("tok_s") else "-"
        mem = r.get("memory_in_use_gib")
        print(f"| {label} | {r['tokens_per_s']:.0f} | {mem:.1f} | {p.get('tok_s', '-')} | {p.get('peak_gib', '-')} | {ratio} |"
              if mem is not None else f"| {label} | {r['tokens_per_s']:.0f} | - | {p.get('tok_s', '-')} | {p.get('peak_gib', '-')} | {ratio} |")
print(f"\ncorrectness and pipeline: {'PASS' if ok else 'FAIL'}")
EOF
