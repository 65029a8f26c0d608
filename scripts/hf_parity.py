#!/usr/bin/env python3
"""Numerical parity of our LLaMA with Hugging Face transformers (run where torch is installed).

Given a base model folder (config.json, model.safetensors, tokenizer.json) and a teacher cache written
by `leader export-hidden --save-input-ids`, this replays the stored token ids (each row's real tokens,
EOS included) through `LlamaModel` and compares the last token's `last_hidden_state` with our pooled
vector. Pass in f32: max |diff| < 1e-4. LoRA B starts at zero, so a run trained with learning rate 0
leaves the base function unchanged and the plain base model is the reference:

    leader init-model --shape tiny --data DATA --out base
    leader train-teacher --data DATA --model base --out run --max-steps 1 --lr 0.0
    leader export-hidden --teacher run --data DATA --split test --out test.safetensors --save-input-ids
    python3 scripts/hf_parity.py base test.safetensors

With a trained adapter, pass the run's best/ folder as a third argument: the adapter is applied with
PEFT (our adapter_model.safetensors uses PEFT's key names).

Not run in this project's CI: torch is not installed on the build machines.
"""
import sys

import torch
from safetensors.torch import load_file
from transformers import LlamaModel


def main():
    base, cache_path = sys.argv[1], sys.argv[2]
    adapter = sys.argv[3] if len(sys.argv) > 3 else None
    model = LlamaModel.from_pretrained(base, torch_dtype=torch.float32).eval()
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).eval()
    cache = load_file(cache_path)
    ids, ours = cache["input_ids"], cache["hidden"].float()
    worst = 0.0
    with torch.no_grad():
        for row in range(ids.shape[0]):
            real = ids[row][ids[row] >= 0].unsqueeze(0)
            h = model(input_ids=real).last_hidden_state[0, -1]
            worst = max(worst, (h - ours[row]).abs().max().item())
    print(f"records {ids.shape[0]}, max |ours - transformers| = {worst:.3e}")
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    main()
