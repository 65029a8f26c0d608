//! Checkpoint folders in the `config.json` dialects transformers 4.x and 5.x write, built here with
//! random weights, loaded through `--model`'s path (`BaseModel`), and compared position by position
//! with a plain f64 LLaMA forward written below from transformers' `modeling_llama.py`, with each
//! dialect's RoPE parameters given to it directly (not read through our config reader).

use candle_core::{DType, Device, Tensor};
use leader::nn::rng::TensorRng;
use leader::teacher::llama::{Batch, Llama};
use leader::teacher::lora::Pass;
use leader::teacher::tokenizer::{builtin_corpus, train_tokenizer};
use leader::teacher::weights::BaseModel;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// RoPE as the reference computes it.
#[derive(Clone, Copy)]
enum Rope {
    Default {
        theta: f64,
    },
    Linear {
        theta: f64,
        factor: f64,
    },
    /// θ, factor, low and high frequency factors, original context.
    Llama3 {
        theta: f64,
        factor: f64,
        low: f64,
        high: f64,
        original: f64,
    },
}

impl Rope {
    fn inv_freq(self, d: usize) -> Vec<f64> {
        let theta = match self {
            Rope::Default { theta } | Rope::Linear { theta, .. } | Rope::Llama3 { theta, .. } => theta,
        };
        (0..d / 2)
            .map(|i| {
                let f = theta.powf(-2.0 * i as f64 / d as f64);
                match self {
                    Rope::Default { .. } => f,
                    Rope::Linear { factor, .. } => f / factor,
                    Rope::Llama3 { factor, low, high, original, .. } => {
                        let wavelength = 2.0 * std::f64::consts::PI / f;
                        if wavelength < original / high {
                            f
                        } else if wavelength > original / low {
                            f / factor
                        } else {
                            let s = (original / wavelength - low) / (high - low);
                            (1.0 - s) * f / factor + s * f
                        }
                    }
                }
            })
            .collect()
    }
}

/// One checkpoint dialect: the `config.json` as that transformers version writes it, how its weights
/// are stored, and what the reference should compute.
struct Dialect {
    name: &'static str,
    config: Value,
    /// Tensor names start with `model.` (LlamaForCausalLM) or not (a bare LlamaModel).
    prefixed: bool,
    shards: usize,
    stored: DType,
    /// `lm_head.weight` is stored (untied) or not (tied to the embeddings).
    lm_head: bool,
    rope: Rope,
}

/// The shape every dialect shares, with `head_dim` explicit where `head_dim` is given.
struct Shape {
    hidden: usize,
    inter: usize,
    layers: usize,
    heads: usize,
    kv: usize,
    head_dim: usize,
    vocab: usize,
    eps: f64,
    attention_bias: bool,
    mlp_bias: bool,
}

impl Shape {
    fn of(config: &Value) -> Self {
        let n = |k: &str| config[k].as_u64().map(|v| v as usize);
        let (hidden, heads) = (n("hidden_size").unwrap(), n("num_attention_heads").unwrap());
        Self {
            hidden,
            inter: n("intermediate_size").unwrap(),
            layers: n("num_hidden_layers").unwrap(),
            heads,
            kv: n("num_key_value_heads").unwrap_or(heads),
            head_dim: n("head_dim").unwrap_or(hidden / heads),
            vocab: n("vocab_size").unwrap(),
            eps: config["rms_norm_eps"].as_f64().unwrap(),
            attention_bias: config["attention_bias"].as_bool().unwrap_or(false),
            mlp_bias: config["mlp_bias"].as_bool().unwrap_or(false),
        }
    }

    /// Every stored tensor's name (without prefix) and shape.
    fn tensors(&self, lm_head: bool) -> Vec<(String, Vec<usize>)> {
        let (h, hd, i) = (self.hidden, self.head_dim, self.inter);
        let mut out = vec![("embed_tokens.weight".to_string(), vec![self.vocab, h]), ("norm.weight".into(), vec![h])];
        for l in 0..self.layers {
            let p = format!("layers.{l}");
            out.push((format!("{p}.input_layernorm.weight"), vec![h]));
            out.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
            for (name, o, inp) in
                [("q", self.heads * hd, h), ("k", self.kv * hd, h), ("v", self.kv * hd, h), ("o", h, self.heads * hd)]
            {
                out.push((format!("{p}.self_attn.{name}_proj.weight"), vec![o, inp]));
                if self.attention_bias {
                    out.push((format!("{p}.self_attn.{name}_proj.bias"), vec![o]));
                }
            }
            for (name, o, inp) in [("gate", i, h), ("up", i, h), ("down", h, i)] {
                out.push((format!("{p}.mlp.{name}_proj.weight"), vec![o, inp]));
                if self.mlp_bias {
                    out.push((format!("{p}.mlp.{name}_proj.bias"), vec![o]));
                }
            }
        }
        if lm_head {
            out.push(("lm_head.weight".into(), vec![self.vocab, h]));
        }
        out
    }
}

/// Writes the dialect's folder; returns the weights as the reference reads them (rounded to the
/// stored dtype, names without prefix).
fn write_checkpoint(dir: &Path, d: &Dialect) -> HashMap<String, Vec<f64>> {
    std::fs::create_dir_all(dir).unwrap();
    let shape = Shape::of(&d.config);
    let mut rng = TensorRng::new(7);
    let mut shards: Vec<HashMap<String, Tensor>> = vec![HashMap::new(); d.shards];
    let mut index = serde_json::Map::new();
    let mut reference = HashMap::new();
    for (k, (name, dims)) in shape.tensors(d.lm_head).into_iter().enumerate() {
        // Norm weights near 1, everything else large enough that every term matters.
        let mean = if name.ends_with("norm.weight") { 1.0 } else { 0.0 };
        let t = rng.normal(dims.as_slice(), mean, 0.3, DType::F32, &Device::Cpu).unwrap().to_dtype(d.stored).unwrap();
        reference.insert(name.clone(), t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap());
        let stored = if d.prefixed && name != "lm_head.weight" { format!("model.{name}") } else { name };
        let file = format!("model-{:05}-of-{:05}.safetensors", k % d.shards + 1, d.shards);
        index.insert(stored.clone(), file.into());
        shards[k % d.shards].insert(stored, t);
    }
    if d.shards == 1 {
        candle_core::safetensors::save(&shards[0], dir.join("model.safetensors")).unwrap();
    } else {
        for (i, shard) in shards.iter().enumerate() {
            let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, d.shards);
            candle_core::safetensors::save(shard, dir.join(file)).unwrap();
        }
        let json = json!({"metadata": {"total_size": 0}, "weight_map": index});
        std::fs::write(dir.join("model.safetensors.index.json"), json.to_string()).unwrap();
    }
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&d.config).unwrap()).unwrap();
    train_tokenizer(builtin_corpus(), 300).unwrap().save(dir.join("tokenizer.json"), false).unwrap();
    reference
}

fn linear(x: &[f64], w: &[f64], b: Option<&Vec<f64>>) -> Vec<f64> {
    let out = w.len() / x.len();
    (0..out)
        .map(|o| {
            w[o * x.len()..(o + 1) * x.len()].iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + b.map_or(0.0, |b| b[o])
        })
        .collect()
}

fn rms_norm(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let r = 1.0 / (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64 + eps).sqrt();
    x.iter().zip(w).map(|(v, w)| v * r * w).collect()
}

/// `modeling_llama.apply_rotary_pos_emb` on one head: `x·cos + rotate_half(x)·sin`.
fn rope(x: &mut [f64], pos: usize, inv_freq: &[f64]) {
    let half = x.len() / 2;
    for i in 0..half {
        let (c, s) = ((pos as f64 * inv_freq[i]).cos(), (pos as f64 * inv_freq[i]).sin());
        let (a, b) = (x[i], x[i + half]);
        x[i] = a * c - b * s;
        x[i + half] = b * c + a * s;
    }
}

/// The decoder's output before the final norm, one vector per position.
fn reference_forward(w: &HashMap<String, Vec<f64>>, s: &Shape, rope_kind: Rope, ids: &[u32]) -> Vec<Vec<f64>> {
    let (h, hd) = (s.hidden, s.head_dim);
    let inv_freq = rope_kind.inv_freq(hd);
    let bias = |name: &str, on: bool| if on { w.get(name) } else { None };
    let mut x: Vec<Vec<f64>> =
        ids.iter().map(|&id| w["embed_tokens.weight"][id as usize * h..(id as usize + 1) * h].to_vec()).collect();
    for l in 0..s.layers {
        let p = |n: &str| format!("layers.{l}.{n}");
        let normed: Vec<Vec<f64>> = x.iter().map(|v| rms_norm(v, &w[&p("input_layernorm.weight")], s.eps)).collect();
        let proj = |n: &str, v: &[f64]| {
            linear(v, &w[&p(&format!("{n}.weight"))], bias(&p(&format!("{n}.bias")), s.attention_bias))
        };
        let (mut q, mut k, v): (Vec<_>, Vec<_>, Vec<_>) = (
            normed.iter().map(|n| proj("self_attn.q_proj", n)).collect(),
            normed.iter().map(|n| proj("self_attn.k_proj", n)).collect(),
            normed.iter().map(|n| proj("self_attn.v_proj", n)).collect(),
        );
        for (pos, (qt, kt)) in q.iter_mut().zip(k.iter_mut()).enumerate() {
            qt.chunks_mut(hd).for_each(|head| rope(head, pos, &inv_freq));
            kt.chunks_mut(hd).for_each(|head| rope(head, pos, &inv_freq));
        }
        for t in 0..ids.len() {
            let mut heads_out = vec![0.0; s.heads * hd];
            for head in 0..s.heads {
                let kv = head / (s.heads / s.kv);
                let qh = &q[t][head * hd..(head + 1) * hd];
                let scores: Vec<f64> = (0..=t)
                    .map(|j| {
                        qh.iter().zip(&k[j][kv * hd..(kv + 1) * hd]).map(|(a, b)| a * b).sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for (j, sc) in scores.iter().enumerate() {
                    let p = (sc - max).exp() / z;
                    for e in 0..hd {
                        heads_out[head * hd + e] += p * v[j][kv * hd + e];
                    }
                }
            }
            let o = proj("self_attn.o_proj", &heads_out);
            x[t].iter_mut().zip(o).for_each(|(a, b)| *a += b);
        }
        for xt in x.iter_mut() {
            let n = rms_norm(xt, &w[&p("post_attention_layernorm.weight")], s.eps);
            let mlp = |m: &str, v: &[f64]| {
                linear(v, &w[&p(&format!("mlp.{m}.weight"))], bias(&p(&format!("mlp.{m}.bias")), s.mlp_bias))
            };
            let (gate, up) = (mlp("gate_proj", &n), mlp("up_proj", &n));
            let act: Vec<f64> = gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            xt.iter_mut().zip(mlp("down_proj", &act)).for_each(|(a, b)| *a += b);
        }
    }
    x
}

fn dialects() -> Vec<Dialect> {
    let base = |extra: Value| {
        let mut c = json!({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
            "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
            "max_position_embeddings": 64, "vocab_size": 40, "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    vec![
        Dialect {
            name: "transformers 4.x, LLaMA-2 style: top-level rope_theta, torch_dtype, untied lm_head",
            config: base(json!({"rope_theta": 50.0, "rope_scaling": null, "torch_dtype": "float32",
                "tie_word_embeddings": false, "transformers_version": "4.46.0"})),
            prefixed: true,
            shards: 1,
            stored: DType::F32,
            lm_head: true,
            rope: Rope::Default { theta: 50.0 },
        },
        Dialect {
            name: "transformers 5.x, SmolLM style: rope_parameters, dtype, GQA, head_dim, tied, bf16, sharded",
            config: base(
                json!({"rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}, "dtype": "bfloat16",
                "num_key_value_heads": 2, "head_dim": 6, "tie_word_embeddings": true, "attention_bias": false,
                "mlp_bias": false, "transformers_version": "5.0.0"}),
            ),
            prefixed: true,
            shards: 3,
            stored: DType::BF16,
            lm_head: false,
            rope: Rope::Default { theta: 100_000.0 },
        },
        Dialect {
            name: "transformers 4.x, LLaMA-3.1 style: rope_scaling llama3, eos list, f16, bare LlamaModel names",
            config: base(json!({"rope_theta": 500.0, "torch_dtype": "float16", "num_key_value_heads": 1,
                "head_dim": 8, "eos_token_id": [2, 3],
                "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 16}})),
            prefixed: false,
            shards: 1,
            stored: DType::F16,
            lm_head: true,
            rope: Rope::Llama3 { theta: 500.0, factor: 8.0, low: 1.0, high: 4.0, original: 16.0 },
        },
        Dialect {
            name: "transformers 4.x legacy rope_scaling {type: linear}, attention and MLP biases",
            config: base(json!({"rope_theta": 10000.0, "rope_scaling": {"type": "linear", "factor": 4.0},
                "attention_bias": true, "mlp_bias": true, "torch_dtype": "float32"})),
            prefixed: true,
            shards: 2,
            stored: DType::F32,
            lm_head: true,
            rope: Rope::Linear { theta: 10_000.0, factor: 4.0 },
        },
        Dialect {
            name: "transformers 5.x, llama3 inside rope_parameters, attention bias",
            config: base(json!({"dtype": "float32", "attention_bias": true, "num_key_value_heads": 2,
                "rope_parameters": {"rope_type": "llama3", "rope_theta": 300.0, "factor": 4.0, "low_freq_factor": 1.0,
                    "high_freq_factor": 2.0, "original_max_position_embeddings": 12}})),
            prefixed: true,
            shards: 1,
            stored: DType::F32,
            lm_head: false,
            rope: Rope::Llama3 { theta: 300.0, factor: 4.0, low: 1.0, high: 2.0, original: 12.0 },
        },
    ]
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Each dialect's folder loads and runs exactly (f64, padded batch of two rows) as the plain
/// reference with the dialect's RoPE; the same reference with θ = 10,000 and no scaling (what a
/// reader that missed the dialect would compute) is far off, so the comparison sees the dialect.
#[test]
fn every_checkpoint_dialect_loads_and_matches_an_independent_forward() {
    let root = tempfile::tempdir().unwrap();
    let rows: Vec<Vec<u32>> = vec![vec![5, 17, 3, 39, 8, 21, 11, 30, 2, 14, 6, 25], vec![9, 4, 33, 12, 7]];
    for (i, d) in dialects().iter().enumerate() {
        let dir = root.path().join(format!("dialect-{i}"));
        let weights = write_checkpoint(&dir, d);
        let base = BaseModel::resolve(dir.to_str().unwrap(), None, 0).unwrap_or_else(|e| panic!("{}: {e:#}", d.name));
        let llama = Llama::new(base.var_builder(DType::F64, &Device::Cpu).unwrap(), None, &base.config).unwrap();
        let batch = Batch::new(&llama, &rows, 0, DType::F64, &Device::Cpu).unwrap();
        let ours: Vec<Vec<Vec<f64>>> = llama.forward(&batch, Pass::frozen()).unwrap().to_vec3().unwrap();
        let shape = Shape::of(&d.config);
        for (row, ids) in rows.iter().enumerate() {
            let expected = reference_forward(&weights, &shape, d.rope, ids);
            let diff = max_diff(&ours[row][..ids.len()], &expected);
            assert!(diff < 1e-9, "{}: row {row} differs from the reference by {diff:e}", d.name);
            let naive = reference_forward(&weights, &shape, Rope::Default { theta: 10_000.0 }, ids);
            let missed = max_diff(&naive, &expected);
            assert!(missed > 1e-3, "{}: the dialect's RoPE changes the output by only {missed:e}", d.name);
        }
    }
}

/// A folder whose config the decoder cannot compute is refused at load, naming the file and the key.
#[test]
fn a_checkpoint_with_an_unsupported_rope_type_is_refused_naming_the_key() {
    let root = tempfile::tempdir().unwrap();
    let mut d = dialects().remove(0);
    d.config["rope_scaling"] = json!({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32});
    write_checkpoint(root.path(), &d);
    let err = BaseModel::resolve(root.path().to_str().unwrap(), None, 0).err().expect("yarn is refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("config.json") && msg.contains(r#"rope_scaling.rope_type "yarn" is not supported"#), "{msg}");
}
