//! The teacher LEADER(T): a LLaMA decoder reading the patient prompt, LoRA adapters and a
//! classification head over the medication vocabulary.
//!
//! [`llama`] is the decoder, [`lora`] the adapted projections, [`model`] decoder + head + loss,
//! [`grads`] one micro-batch's gradients (optionally with activation checkpointing), [`peft`] the
//! checkpoint layout, [`run`] the frozen [`run::Teacher`] other stages load.

pub mod bench;
pub mod cache;
pub mod export;
pub mod grads;
pub mod init_model;
pub mod llama;
pub mod llama_config;
pub mod lm;
pub mod lora;
pub mod model;
pub mod peft;
pub mod predict;
pub mod pretrain;
pub mod run;
pub mod steps;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use run::Teacher;

/// `leader train-teacher`: training, or one of its measuring modes (`--check-against-cpu`,
/// `--bench-steps`), which print one JSON line and write nothing.
pub fn run_train_teacher(args: &train::TrainTeacherArgs) -> anyhow::Result<()> {
    if args.check_against_cpu {
        println!("{}", bench::check_against_cpu(args)?);
        return Ok(());
    }
    if let Some(steps) = args.bench_steps {
        println!("{}", bench::bench(args, steps)?);
        return Ok(());
    }
    let summary = train::train_teacher(args)?;
    let best =
        summary.best_prauc.map_or("none".to_string(), |p| format!("{p:.4} at step {}", summary.best_step.unwrap_or(0)));
    crate::progress::say(format!("train-teacher: {} steps, best valid PRAUC {best}", summary.steps));
    Ok(())
}
