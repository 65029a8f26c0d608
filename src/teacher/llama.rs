//! Our LLaMA decoder (no LM head): token embedding, pre-RMSNorm blocks of grouped-query attention with
//! RoPE and a SwiGLU MLP, final RMSNorm. Unlike candle-transformers' `llama`, it takes right-padded
//! batches with an attention mask and returns every position's hidden state, and every projection can
//! carry a LoRA adapter. One code path serves training and frozen inference: candle's fused kernels,
//! with the backward of each stated for the trainable input only (`nn::ops::frozen`), so no frozen
//! weight, table or mask gets a gradient.

use super::llama_config::LlamaConfig;
use super::lora::{LinearShape, LoraConfig, LoraLinear, Pass, TARGET_MODULES};
use crate::nn::ops::frozen::{frozen_rope, masked_softmax, rms_norm};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

/// One right-padded batch of token ids with what every layer needs: RoPE tables for its length and
/// the additive causal + padding mask, built once per batch.
pub struct Batch {
    /// [B, T] u32, right-padded.
    pub input_ids: Tensor,
    /// Real tokens per row (≥ 1).
    pub lengths: Vec<usize>,
    cos: Tensor,
    sin: Tensor,
    /// [B, 1, T, T] f32: 0 where query i may see key j (j ≤ i and j is a real token), a large negative
    /// elsewhere.
    mask: Tensor,
}

/// The causal + padding mask of rows of `lengths` padded to `t`, made on `device` from the lengths
/// alone (no [B, T, T] host array).
fn attention_mask(lengths: &[usize], t: usize, device: &Device) -> Result<Tensor> {
    let pos = Tensor::arange(0u32, t as u32, device)?;
    let (query, key) = (pos.reshape((1, t, 1))?, pos.reshape((1, 1, t))?);
    let rows = lengths.len();
    let lengths = Tensor::from_vec(lengths.iter().map(|&l| l as u32).collect(), (rows, 1, 1), device)?;
    let visible = key.broadcast_le(&query)?.broadcast_mul(&key.broadcast_lt(&lengths)?)?;
    // 1 → 0, 0 → −1e9.
    visible.to_dtype(DType::F32)?.affine(1e9, -1e9)?.unsqueeze(1)
}

impl Batch {
    /// Pads `rows` with `pad_id` to the longest row.
    pub fn new(model: &Llama, rows: &[Vec<u32>], pad_id: u32, dtype: DType, device: &Device) -> Result<Self> {
        let t = rows.iter().map(Vec::len).max().unwrap_or(0);
        if t == 0 || rows.iter().any(Vec::is_empty) {
            candle_core::bail!("every row of a batch needs at least one token");
        }
        if t > model.cfg.max_position_embeddings {
            candle_core::bail!(
                "sequence of {t} tokens exceeds max_position_embeddings {}",
                model.cfg.max_position_embeddings
            );
        }
        let b = rows.len();
        let ids: Vec<u32> =
            rows.iter().flat_map(|r| r.iter().copied().chain(std::iter::repeat_n(pad_id, t - r.len()))).collect();
        let lengths: Vec<usize> = rows.iter().map(Vec::len).collect();
        let positions = Tensor::arange(0u32, t as u32, device)?.to_dtype(DType::F64)?;
        let inv_freq = Tensor::new(model.cfg.inv_freq(), device)?;
        let freqs = positions.unsqueeze(1)?.matmul(&inv_freq.unsqueeze(0)?)?;
        Ok(Self {
            input_ids: Tensor::from_vec(ids, (b, t), device)?,
            mask: attention_mask(&lengths, t, device)?,
            lengths,
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
        })
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.lengths.len(), self.input_ids.dim(1).expect("2-D ids"))
    }

    /// Tokens in the batch that are not padding.
    pub fn real_tokens(&self) -> usize {
        self.lengths.iter().sum()
    }
}

struct Attention {
    q: LoraLinear,
    k: LoraLinear,
    v: LoraLinear,
    o: LoraLinear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn forward(&self, x: &Tensor, batch: &Batch, pass: Pass) -> Result<Tensor> {
        let (b, t) = batch.dims();
        let x2 = x.reshape((b * t, ()))?;
        let split = |y: Tensor, heads: usize| y.reshape((b, t, heads, self.head_dim))?.transpose(1, 2)?.contiguous();
        let q = frozen_rope(&split(self.q.forward(&x2, pass)?, self.heads)?, &batch.cos, &batch.sin)?;
        let k = frozen_rope(&split(self.k.forward(&x2, pass)?, self.kv_heads)?, &batch.cos, &batch.sin)?;
        let v = split(self.v.forward(&x2, pass)?, self.kv_heads)?;
        let (k, v) = (repeat_kv(k, self.heads / self.kv_heads)?, repeat_kv(v, self.heads / self.kv_heads)?);
        let scores = (q.matmul(&k.t()?)? / (self.head_dim as f64).sqrt())?;
        let out = masked_softmax(&scores, &batch.mask)?.matmul(&v)?;
        let out = out.transpose(1, 2)?.reshape((b * t, self.heads * self.head_dim))?;
        self.o.forward(&out, pass)?.reshape((b, t, ()))
    }
}

/// Grouped-query attention: each key/value head serves `n_rep` query heads.
fn repeat_kv(x: Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x);
    }
    let (b, kv, t, d) = x.dims4()?;
    x.unsqueeze(2)?.expand((b, kv, n_rep, t, d))?.reshape((b, kv * n_rep, t, d))
}

struct Mlp {
    gate: LoraLinear,
    up: LoraLinear,
    down: LoraLinear,
}

impl Mlp {
    fn forward(&self, x: &Tensor, batch: &Batch, pass: Pass) -> Result<Tensor> {
        let (b, t) = batch.dims();
        let x2 = x.reshape((b * t, ()))?;
        let h = (candle_nn::ops::silu(&self.gate.forward(&x2, pass)?)? * self.up.forward(&x2, pass)?)?;
        self.down.forward(&h, pass)?.reshape((b, t, ()))
    }
}

pub struct Layer {
    input_norm: Tensor,
    attn: Attention,
    post_norm: Tensor,
    mlp: Mlp,
    eps: f64,
}

impl Layer {
    pub fn forward(&self, x: &Tensor, batch: &Batch, pass: Pass) -> Result<Tensor> {
        let h = (x + self.attn.forward(&rms_norm(x, &pass.weight(&self.input_norm), self.eps)?, batch, pass)?)?;
        &h + self.mlp.forward(&rms_norm(&h, &pass.weight(&self.post_norm), self.eps)?, batch, pass)?
    }
}

pub struct Llama {
    pub cfg: LlamaConfig,
    embed: Tensor,
    pub layers: Vec<Layer>,
    norm: Tensor,
}

impl Llama {
    /// `base` points at the decoder's weights (`embed_tokens`, `layers.{i}`, `norm`); `lora`, if
    /// given, is where adapters are created or found under the same names (`layers.{i}.self_attn.q_proj.lora_A.weight`).
    pub fn new(base: VarBuilder, lora: Option<(VarBuilder, &LoraConfig)>, cfg: &LlamaConfig) -> Result<Self> {
        let (h, hd, i) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let (b, lo) =
                (base.pp(format!("layers.{l}")), lora.as_ref().map(|(vb, c)| (vb.pp(format!("layers.{l}")), *c)));
            let proj = |group: &str, name: &str, inp: usize, out: usize| {
                let bias = if group == "mlp" { cfg.mlp_bias } else { cfg.attention_bias };
                let targeted = lo.as_ref().filter(|(_, c)| c.target_modules.iter().any(|m| m == name));
                let id =
                    (l * TARGET_MODULES.len() + TARGET_MODULES.iter().position(|m| *m == name).unwrap_or(0)) as u64;
                let shape = LinearShape { in_dim: inp, out_dim: out, bias };
                LoraLinear::new(b.pp(group).pp(name), targeted.map(|(vb, c)| (vb.pp(group).pp(name), *c)), shape, id)
            };
            layers.push(Layer {
                input_norm: b.pp("input_layernorm").get(h, "weight")?,
                attn: Attention {
                    q: proj("self_attn", "q_proj", h, heads * hd)?,
                    k: proj("self_attn", "k_proj", h, kv_heads * hd)?,
                    v: proj("self_attn", "v_proj", h, kv_heads * hd)?,
                    o: proj("self_attn", "o_proj", heads * hd, h)?,
                    heads,
                    kv_heads,
                    head_dim: hd,
                },
                post_norm: b.pp("post_attention_layernorm").get(h, "weight")?,
                mlp: Mlp {
                    gate: proj("mlp", "gate_proj", h, i)?,
                    up: proj("mlp", "up_proj", h, i)?,
                    down: proj("mlp", "down_proj", i, h)?,
                },
                eps: cfg.rms_norm_eps,
            });
        }
        Ok(Self {
            cfg: cfg.clone(),
            embed: base.pp("embed_tokens").get((cfg.vocab_size, h), "weight")?,
            layers,
            norm: base.pp("norm").get(h, "weight")?,
        })
    }

    pub fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    /// Token embeddings [B, T, H] (frozen: no gradient flows into them).
    pub fn embed(&self, batch: &Batch) -> Result<Tensor> {
        let (b, t) = batch.dims();
        self.embed.index_select(&batch.input_ids.flatten_all()?, 0)?.reshape((b, t, ()))
    }

    /// The final-normed hidden state of each row's last real token, [B, H], from the last layer's
    /// output `h` [B, T, H]. The norm works per position, so normalising only the pooled rows is exact.
    pub fn pool(&self, h: &Tensor, batch: &Batch) -> Result<Tensor> {
        let (b, t) = batch.dims();
        let idx: Vec<u32> = batch.lengths.iter().enumerate().map(|(row, len)| (row * t + len - 1) as u32).collect();
        let rows = h.reshape((b * t, ()))?.index_select(&Tensor::new(idx, h.device())?, 0)?;
        self.final_norm(&rows, Pass::frozen())
    }

    /// The final RMSNorm of hidden states [.., H].
    pub fn final_norm(&self, h: &Tensor, pass: Pass) -> Result<Tensor> {
        rms_norm(h, &pass.weight(&self.norm), self.cfg.rms_norm_eps)
    }

    /// The token embedding table [V, H] (the LM head of a tied checkpoint).
    pub fn embedding_table(&self) -> &Tensor {
        &self.embed
    }

    /// The decoder's weights under Hugging Face `LlamaModel` names, LoRA adapters merged in.
    pub fn named_weights(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![("embed_tokens.weight".to_string(), self.embed.detach())];
        for (l, layer) in self.layers.iter().enumerate() {
            let p = format!("layers.{l}");
            out.push((format!("{p}.input_layernorm.weight"), layer.input_norm.detach()));
            out.push((format!("{p}.post_attention_layernorm.weight"), layer.post_norm.detach()));
            let (a, m) = (&layer.attn, &layer.mlp);
            let projections = [
                ("self_attn.q_proj", &a.q),
                ("self_attn.k_proj", &a.k),
                ("self_attn.v_proj", &a.v),
                ("self_attn.o_proj", &a.o),
                ("mlp.gate_proj", &m.gate),
                ("mlp.up_proj", &m.up),
                ("mlp.down_proj", &m.down),
            ];
            for (name, proj) in projections {
                out.push((format!("{p}.{name}.weight"), proj.merged_weight()?));
                if let Some(b) = proj.bias() {
                    out.push((format!("{p}.{name}.bias"), b.detach()));
                }
            }
        }
        out.push(("norm.weight".to_string(), self.norm.detach()));
        Ok(out)
    }

    /// Every layer's output before the final norm, [B, T, H].
    pub fn forward(&self, batch: &Batch, pass: Pass) -> Result<Tensor> {
        let mut h = self.embed(batch)?;
        for layer in &self.layers {
            h = layer.forward(&h, batch, pass)?;
        }
        Ok(h)
    }

    /// The pooled vector [B, H] (see [`Llama::pool`]).
    pub fn pooled(&self, batch: &Batch, pass: Pass) -> Result<Tensor> {
        self.pool(&self.forward(batch, pass)?, batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teacher::lora::{DropoutKey, TARGET_MODULES};
    use crate::teacher::model::{HeadKind, TeacherModel};
    use crate::teacher::weights::BaseModel;

    /// A LoRA step's backward pass holds gradients for the adapters and the head, and none for the
    /// embedding table, the norm weights, the frozen projections, the RoPE tables or the mask.
    #[test]
    fn a_training_step_computes_no_gradient_for_frozen_tensors() {
        let base = BaseModel::resolve("random:tiny", None, 3).unwrap();
        let modules = TARGET_MODULES.map(String::from).to_vec();
        let lora = LoraConfig { r: 4, alpha: 8.0, dropout: 0.1, target_modules: modules };
        let model = TeacherModel::new(&base, &lora, HeadKind::Reference, 5, 11, DType::F32, &Device::Cpu, 64).unwrap();
        let batch = model.batch(&["a b c d e", "f g"]).unwrap();
        let labels = Tensor::new(&[[1f32, 0., 0., 1., 0.], [0., 1., 0., 0., 1.]], &Device::Cpu).unwrap();
        let pass = Pass::train(Some(DropoutKey { seed: 1, step: 0, micro: 0 }));
        let pooled = model.llama.pooled(&batch, pass).unwrap();
        let grads = model.loss(&pooled, &labels).unwrap().backward().unwrap();
        let llama = &model.llama;
        let mut frozen = vec![&llama.embed, &llama.norm, &batch.cos, &batch.sin, &batch.mask];
        for layer in &llama.layers {
            let (a, m) = (&layer.attn, &layer.mlp);
            frozen.extend([&layer.input_norm, &layer.post_norm]);
            frozen.extend([&a.q, &a.k, &a.v, &a.o, &m.gate, &m.up, &m.down].map(|p| p.weight()));
        }
        assert_eq!(frozen.len(), 5 + 2 * 9);
        for (i, t) in frozen.iter().enumerate() {
            assert!(grads.get(t).is_none(), "frozen tensor {i} got a gradient");
        }
        for (name, var) in model.trainable() {
            assert!(grads.get(var.as_tensor()).is_some(), "{name} got no gradient");
        }
    }
}
