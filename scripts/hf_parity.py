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

Without torch (as on our build machines) it falls back to a from-scratch NumPy LLaMA written from
the transformers code (rotate-half RoPE, grouped-query attention, SiLU MLP, RMSNorm), base model only,
f32 weights, no rope_scaling. The transformers comparison itself has not been run in this project.
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    types = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    out = {}
    for key, v in header.items():
        if key != "__metadata__":
            start, end = v["data_offsets"]
            out[key] = np.frombuffer(raw[8 + n + start : 8 + n + end], dtype=types[v["dtype"]]).reshape(v["shape"])
    return out


def numpy_llama(base):
    """Returns ids -> last position's final-normed hidden state, in float64."""
    w = read_safetensors(f"{base}/model.safetensors")
    w = {k[len("model.") :] if k.startswith("model.") else k: v.astype(np.float64) for k, v in w.items()}
    cfg = json.load(open(f"{base}/config.json"))
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    kv, hd, eps = cfg.get("num_key_value_heads", heads), hidden // heads, cfg["rms_norm_eps"]
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (np.arange(0, hd, 2) / hd))

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    def rope(x):
        f = np.outer(np.arange(x.shape[1]), inv)
        cos, sin = np.cos(np.concatenate([f, f], -1)), np.sin(np.concatenate([f, f], -1))
        return x * cos + np.concatenate([-x[..., hd // 2 :], x[..., : hd // 2]], -1) * sin

    def forward(ids):
        t = len(ids)
        x = w["embed_tokens.weight"][ids]
        for i in range(cfg["num_hidden_layers"]):
            p = f"layers.{i}."
            h = rms(x, w[p + "input_layernorm.weight"])
            proj = lambda name, n: (h @ w[p + f"self_attn.{name}.weight"].T).reshape(t, n, hd).transpose(1, 0, 2)
            q, k, v = rope(proj("q_proj", heads)), rope(proj("k_proj", kv)), proj("v_proj", kv)
            k, v = np.repeat(k, heads // kv, 0), np.repeat(v, heads // kv, 0)
            s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + np.triu(np.full((t, t), -1e30), 1)
            a = np.exp(s - s.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            x = x + (a @ v).transpose(1, 0, 2).reshape(t, hidden) @ w[p + "self_attn.o_proj.weight"].T
            h = rms(x, w[p + "post_attention_layernorm.weight"])
            g, u = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
            x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
        return rms(x[-1], w["norm.weight"])

    return forward


def transformers_llama(base, adapter):
    import torch
    from transformers import LlamaModel

    model = LlamaModel.from_pretrained(base, torch_dtype=torch.float32).eval()
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).eval()

    def forward(ids):
        with torch.no_grad():
            return model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].numpy()

    return forward


def main():
    base, cache_path = sys.argv[1], sys.argv[2]
    adapter = sys.argv[3] if len(sys.argv) > 3 else None
    try:
        forward, against = transformers_llama(base, adapter), "transformers"
    except ImportError:
        if adapter:
            sys.exit("the NumPy fallback cannot apply an adapter; install torch, transformers and peft")
        forward, against = numpy_llama(base), "numpy reference"
    cache = read_safetensors(cache_path)
    ids, ours = cache["input_ids"], cache["hidden"].astype(np.float64)
    worst = max(np.abs(forward(row[row >= 0].tolist()) - ours[i]).max() for i, row in enumerate(ids))
    print(f"records {ids.shape[0]}, max |ours - {against}| = {worst:.3e}")
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    main()
