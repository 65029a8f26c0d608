//! `train-teacher --bench-steps N`: throughput of training steps (or of the frozen forward pass that
//! export-hidden and predict run) on random token ids, printed as one JSON line. Used by
//! scripts/bench-teacher-cpu.sh and scripts/bench-teacher-gpu.sh.

use super::device::memory_in_use_bytes;
use super::grads::loss_and_grads;
use super::llama::Batch;
use super::lora::{DropoutKey, Pass};
use super::model::TeacherModel;
use super::train::{setup, Setup, TrainTeacherArgs};
use crate::nn::adamw::{AdamW, AdamWConfig};
use crate::nn::rng::TensorRng;
use anyhow::Result;
use candle_core::{DType, Tensor};
use std::time::Instant;

/// `--bench-steps`: times training steps (or frozen forwards) on random token ids of
/// `--bench-seq-len` per row; prints one JSON line.
pub fn bench(args: &TrainTeacherArgs, steps: u64) -> Result<serde_json::Value> {
    let Setup { cfg, device, dtype, base } = setup(args)?;
    let t = &cfg.train;
    let m = 131; // the reference's MIMIC-III medication vocabulary size
    let model = TeacherModel::new(&base, &cfg.lora, m, t.seed, dtype, &device, args.bench_seq_len)?;
    let vars = model.trainable();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig::adam(t.lr))?;
    let mut rng = TensorRng::new(t.seed);
    let vocab = base.config.vocab_size.min(model.tokenizer.vocab_size()).max(3);
    let (mut peak, mut timed, mut tokens) = (0u64, 0f64, 0usize);
    for step in 0..=steps {
        let began = Instant::now();
        for micro in 0..t.grad_accum {
            let rows: Vec<Vec<u32>> = (0..t.micro_batch)
                .map(|_| (0..args.bench_seq_len).map(|_| 3 + rng.below(vocab - 3) as u32).collect())
                .collect();
            let batch = Batch::new(&model.llama, &rows, model.tokenizer.pad_id, dtype, &device)?;
            if args.bench_forward_only {
                model.llama.pooled(&batch, Pass::frozen())?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
            } else {
                let labels = Tensor::zeros((t.micro_batch, m), DType::F32, &device)?;
                let key = DropoutKey { seed: t.seed, step, micro: micro as u64 };
                let (_, g) = loss_and_grads(&model, &batch, &labels, Pass::train(Some(key)), 1.0, t.checkpoint_layers)?;
                peak = peak.max(memory_in_use_bytes(&device).unwrap_or(0));
                opt.step(&g)?;
            }
            peak = peak.max(memory_in_use_bytes(&device).unwrap_or(0));
            if step > 0 {
                tokens += batch.real_tokens();
            }
        }
        device.synchronize()?;
        if step > 0 {
            timed += began.elapsed().as_secs_f64();
        }
    }
    Ok(serde_json::json!({
        "mode": if args.bench_forward_only { "forward" } else { "train" },
        "model": cfg.model.base, "dtype": cfg.model.dtype, "device": cfg.model.device,
        "micro_batch": t.micro_batch, "grad_accum": t.grad_accum, "seq_len": args.bench_seq_len,
        "checkpoint_layers": t.checkpoint_layers, "timed_steps": steps,
        "steps_per_s": steps as f64 / timed, "tokens_per_s": tokens as f64 / timed,
        "records_per_s": (steps as usize * t.grad_accum * t.micro_batch) as f64 / timed,
        "memory_in_use_gib": (peak > 0).then(|| peak as f64 / (1u64 << 30) as f64),
    }))
}
