//! Our LLaMA decoder (no LM head): token embedding, pre-RMSNorm blocks of grouped-query attention with
//! RoPE and a SwiGLU MLP, final RMSNorm. Unlike candle-transformers' `llama`, it takes right-padded
//! batches with an attention mask and returns every position's hidden state, and every projection can
//! carry a LoRA adapter. One code path serves training (differentiable ops) and frozen inference
//! (candle's fused ops, which have no backward pass), chosen by [`Pass::train`].

use super::config::LlamaConfig;
use super::lora::{LoraConfig, LoraLinear, Pass, TARGET_MODULES};
use candle_core::{DType, Device, Result, Tensor, D};
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
    /// [B, 1, T, T]: 0 where query i may see key j (j ≤ i and j is a real token), a large negative elsewhere.
    mask: Tensor,
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
        let mut mask = vec![0f32; b * t * t];
        for (row, r) in rows.iter().enumerate() {
            for i in 0..t {
                for j in 0..t {
                    if j > i || j >= r.len() {
                        mask[(row * t + i) * t + j] = -1e9;
                    }
                }
            }
        }
        let positions = Tensor::arange(0u32, t as u32, device)?.to_dtype(DType::F64)?;
        let inv_freq = Tensor::new(model.cfg.inv_freq(), device)?;
        let freqs = positions.unsqueeze(1)?.matmul(&inv_freq.unsqueeze(0)?)?;
        Ok(Self {
            input_ids: Tensor::from_vec(ids, (b, t), device)?,
            lengths: rows.iter().map(Vec::len).collect(),
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
            mask: Tensor::from_vec(mask, (b, 1, t, t), device)?.to_dtype(dtype)?,
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

fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, pass: Pass) -> Result<Tensor> {
    if pass.train {
        candle_nn::ops::rms_norm_slow(x, weight, eps as f32)
    } else {
        candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps as f32)
    }
}

fn rope(x: &Tensor, batch: &Batch, pass: Pass) -> Result<Tensor> {
    if pass.train {
        candle_nn::rotary_emb::rope_slow(x, &batch.cos, &batch.sin)
    } else {
        candle_nn::rotary_emb::rope(&x.contiguous()?, &batch.cos, &batch.sin)
    }
}

/// Softmax over the last dimension in f32 (as `transformers` does), cast back.
fn softmax(x: &Tensor, pass: Pass) -> Result<Tensor> {
    let dtype = x.dtype();
    let x32 = if dtype == DType::F64 { x.clone() } else { x.to_dtype(DType::F32)? };
    let p =
        if pass.train { candle_nn::ops::softmax(&x32, D::Minus1)? } else { candle_nn::ops::softmax_last_dim(&x32)? };
    p.to_dtype(dtype)
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
        let q = rope(&split(self.q.forward(&x2, pass)?, self.heads)?, batch, pass)?;
        let k = rope(&split(self.k.forward(&x2, pass)?, self.kv_heads)?, batch, pass)?;
        let v = split(self.v.forward(&x2, pass)?, self.kv_heads)?;
        let (k, v) = (repeat_kv(k, self.heads / self.kv_heads)?, repeat_kv(v, self.heads / self.kv_heads)?);
        let scores = (q.matmul(&k.t()?)? / (self.head_dim as f64).sqrt())?.broadcast_add(&batch.mask)?;
        let out = softmax(&scores, pass)?.matmul(&v)?;
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
        let h = (x + self.attn.forward(&rms_norm(x, &self.input_norm, self.eps, pass)?, batch, pass)?)?;
        &h + self.mlp.forward(&rms_norm(&h, &self.post_norm, self.eps, pass)?, batch, pass)?
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
        let (h, hd, i) = (cfg.hidden_size, cfg.head_dim(), cfg.intermediate_size);
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.num_kv_heads());
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let (b, lo) =
                (base.pp(format!("layers.{l}")), lora.as_ref().map(|(vb, c)| (vb.pp(format!("layers.{l}")), *c)));
            let proj = |group: &str, name: &str, inp: usize, out: usize| {
                let targeted = lo.as_ref().filter(|(_, c)| c.target_modules.iter().any(|m| m == name));
                let id =
                    (l * TARGET_MODULES.len() + TARGET_MODULES.iter().position(|m| *m == name).unwrap_or(0)) as u64;
                LoraLinear::new(b.pp(group).pp(name), targeted.map(|(vb, c)| (vb.pp(group).pp(name), *c)), inp, out, id)
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
    pub fn pool(&self, h: &Tensor, batch: &Batch, pass: Pass) -> Result<Tensor> {
        let (b, t) = batch.dims();
        let idx: Vec<u32> = batch.lengths.iter().enumerate().map(|(row, len)| (row * t + len - 1) as u32).collect();
        let rows = h.reshape((b * t, ()))?.index_select(&Tensor::new(idx, h.device())?, 0)?;
        rms_norm(&rows, &self.norm, self.cfg.rms_norm_eps, pass)
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
        self.pool(&self.forward(batch, pass)?, batch, pass)
    }
}
