#!/usr/bin/env bash
# Teacher throughput on the GPU machine with LLaMA-7B-shaped random bf16 weights made on the device
# (`--model random:7b`, nothing written to disk): training steps at 4x1024 with and without
# --checkpoint-layers, 1x2048 with it, and the frozen forward (export-hidden) at 4x1024; each prints
# one JSON line (tokens_per_s, memory_in_use_gib). Then the PyTorch + PEFT anchor on the same shape.
# Build here first:  ../shared/cuda/build.sh   then, on the GPU machine from the project root:
#   bash scripts/bench-teacher-gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source .device/gpu-env.sh
STEPS=${STEPS:-3}
run() { timeout 240 .device/leader --quiet train-teacher --model random:7b --device cuda --dtype bf16 \
  --grad-accum 1 --bench-steps "$STEPS" "$@" || echo "{\"failed\": \"$*\", \"status\": $?}"; }
run --micro-batch 4 --bench-seq-len 1024
run --micro-batch 4 --bench-seq-len 1024 --checkpoint-layers
run --micro-batch 1 --bench-seq-len 2048 --checkpoint-layers
run --micro-batch 4 --bench-seq-len 1024 --bench-forward-only
# .device/peft_baseline.py is ../shared/bench/peft_baseline.py, copied into .device/ beside the binary.
SHAPE=7b timeout 300 python3 .device/peft_baseline.py
