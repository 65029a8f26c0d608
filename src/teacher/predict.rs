//! `leader predict --teacher RUN`: teacher probabilities (sigmoid of the head's logits) in the
//! evaluation's predictions format.

use super::run::Teacher;
use crate::data::record::read_records;
use crate::data::vocab::Vocab;
use crate::nn::device::parse_device;
use crate::predict::{PredictArgs, PredictionSink};
use anyhow::{ensure, Context, Result};
use candle_core::DType;

/// Scores the records named by `args` into a [`PredictionSink`], returned unfinished. The base runs
/// in f32 (`leader predict` has no dtype flag).
pub fn run(args: &PredictArgs) -> Result<PredictionSink> {
    let run_dir = args.teacher.as_ref().context("predict for the teacher needs --teacher RUN")?;
    let teacher = Teacher::load(run_dir, &parse_device(&args.device)?, DType::F32)?;
    if let Some(data) = &args.data {
        teacher.check_vocab(&Vocab::load(&data.join("vocab.json"))?, data)?;
    }
    let records = read_records(&args.records_path()?)?;
    let batch = args.batch_size.unwrap_or(8);
    ensure!(batch > 0, "--batch-size must be positive");
    let mut sink = PredictionSink::create(args, &teacher.vocab)?;
    let bar = crate::progress::bar(records.len() as u64, "predict");
    for chunk in records.chunks(batch) {
        let prompts: Vec<&str> = chunk.iter().map(|r| r.prompt.as_str()).collect();
        for (record, probs) in chunk.iter().zip(teacher.model.probabilities(&prompts)?) {
            sink.write(record.subject_id, &probs)?;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(sink)
}
