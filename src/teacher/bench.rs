//! `train-teacher --bench-steps N`: throughput of training steps (or of the frozen forward pass that
//! export-hidden and predict run) on random token ids, printed as one JSON line. Used by
//! scripts/bench-teacher-cpu.sh and scripts/bench-teacher-gpu.sh. And `--check-against-cpu`, the
//! accelerator's numbers against the CPU's (scripts/gpu-acceptance.sh).

use super::grads::loss_and_grads;
use super::llama::Batch;
use super::lora::{DropoutKey, Pass};
use super::model::TeacherModel;
use super::train::{setup, Setup, TrainTeacherArgs};
use crate::nn::adamw::{AdamW, AdamWConfig};
use crate::nn::device::memory_in_use_bytes;
use crate::nn::rng::{fnv1a, TensorRng};
use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::time::Instant;

/// `--bench-steps`: times training steps (or frozen forwards) on random token ids of
/// `--bench-seq-len` per row; prints one JSON line.
pub fn bench(args: &TrainTeacherArgs, steps: u64) -> Result<serde_json::Value> {
    let Setup { cfg, device, dtype, base } = setup(args)?;
    let t = &cfg.train;
    let m = 131; // the reference's MIMIC-III medication vocabulary size
    let model = TeacherModel::new(&base, &cfg.lora, cfg.head.kind, m, t.seed, dtype, &device, args.bench_seq_len)?;
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

/// `--check-against-cpu`: one training micro-batch of random token ids (rows of unequal length, so
/// padding is exercised) through the model on `--device` in `--dtype`, and through the same model on
/// the CPU in f32: the largest relative difference of the pooled vectors, of the loss and of every
/// LoRA and head gradient, as one JSON line. The base must be a model folder (random weights are drawn
/// differently on each device); the adapters get seeded non-zero values (B = 0 would give A no
/// gradient).
pub fn check_against_cpu(args: &TrainTeacherArgs) -> Result<serde_json::Value> {
    let Setup { cfg, device, dtype, base } = setup(args)?;
    ensure!(base.random_seed.is_none(), "--check-against-cpu needs --model DIR (a model folder on both devices)");
    let (t, m) = (&cfg.train, 7);
    let vocab = base.config.vocab_size.min(base.tokenizer.get_vocab_size(true)).max(4) as u64;
    let mut rng = TensorRng::new(t.seed);
    let rows: Vec<Vec<u32>> = (0..t.micro_batch.max(2))
        .map(|r| {
            let len = (args.bench_seq_len >> (r % 2)).max(1);
            (0..len).map(|_| 3 + rng.below(vocab as usize - 3) as u32).collect()
        })
        .collect();
    let labels = rng.uniform((rows.len(), m), 0.0, 1.0, DType::F32, &Device::Cpu)?.ge(0.5)?.to_dtype(DType::F32)?;
    /// One device's pooled vectors, loss and named gradients, on the CPU in f32.
    struct Measured {
        pooled: Tensor,
        loss: f64,
        grads: Vec<(String, Tensor)>,
    }
    let run = |device: &Device, dtype: DType| -> Result<Measured> {
        let model = TeacherModel::new(&base, &cfg.lora, cfg.head.kind, m, t.seed, dtype, device, args.bench_seq_len)?;
        let vars = model.trainable();
        for (name, var) in &vars {
            let mut values = TensorRng::derive(t.seed, &[fnv1a(name.as_bytes())]);
            let values = values.normal(var.shape(), 0.0, 0.05, DType::F32, &Device::Cpu)?;
            var.set(&values.to_dtype(var.dtype())?.to_device(device)?)?;
        }
        let batch = Batch::new(&model.llama, &rows, model.tokenizer.pad_id, dtype, device)?;
        let pooled = model.llama.pooled(&batch, Pass::train(None))?;
        let loss = model.loss(&pooled, &labels.to_device(device)?)?;
        let grads = loss.backward()?;
        let cpu = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?) };
        let grads = vars
            .iter()
            .map(|(name, var)| {
                let g = grads.get(var.as_tensor()).with_context(|| format!("{name} got no gradient"))?;
                Ok((name.clone(), cpu(g)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Measured { pooled: cpu(&pooled)?, loss: loss.to_dtype(DType::F64)?.to_scalar()?, grads })
    };
    let (here, cpu) = (run(&device, dtype)?, run(&Device::Cpu, DType::F32)?);
    let relative = |a: &Tensor, b: &Tensor| -> Result<f64> {
        let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-12) as f64;
        Ok(crate::nn::gradcheck::max_abs_diff(a, b)? / scale)
    };
    let mut worst = (0.0, String::new());
    for ((name, g), (_, g_cpu)) in here.grads.iter().zip(&cpu.grads) {
        let r = relative(g, g_cpu)?;
        if r >= worst.0 {
            worst = (r, name.clone());
        }
    }
    Ok(serde_json::json!({
        "mode": "check-against-cpu", "model": cfg.model.base, "device": cfg.model.device, "dtype": cfg.model.dtype,
        "rows": rows.len(), "seq_len": args.bench_seq_len,
        "pooled_max_rel": relative(&here.pooled, &cpu.pooled)?,
        "loss": here.loss, "loss_cpu": cpu.loss, "loss_rel": (here.loss - cpu.loss).abs() / cpu.loss.abs().max(1e-12),
        "grad_max_rel": worst.0, "grad_worst": worst.1,
    }))
}
