//! Latency of scoring one record at a time with a trained student (used by scripts/bench-student.sh).
//! Usage: cargo run --release --example student_latency -- RUN RECORDS.jsonl [N]

use anyhow::{Context, Result};
use leader::data::record::Record;
use leader::student::batch::{CodeVocab, EncodeStats};
use leader::student::checkpoint::TrainedStudent;
use std::time::Instant;

fn main() -> Result<()> {
    leader::runtime::configure(leader::runtime::KernelThreads::One);
    let args: Vec<String> = std::env::args().collect();
    let run = args.get(1).context("usage: student_latency RUN RECORDS.jsonl [N]")?;
    let records_path = args.get(2).context("usage: student_latency RUN RECORDS.jsonl [N]")?;
    let n: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let student = TrainedStudent::load(run.as_ref())?;
    let codes = CodeVocab::new(&student.vocab);
    let m = student.info.shape.num_medications;
    let records: Vec<Record> = leader::io::JsonLines::open(records_path.as_ref())?
        .take(n)
        .map(|r| r.map(|(_, v)| v))
        .collect::<Result<_>>()?;
    let mut micros = Vec::with_capacity(records.len());
    for record in &records {
        // Timed from the parsed record to the probabilities: encoding, batching and the forward pass.
        let start = Instant::now();
        let mut stats = EncodeStats::default();
        let encoded =
            codes.encode(record, student.info.model.max_visits, student.info.model.max_codes, false, &mut stats)?;
        let probs = leader::student::predict::probabilities(&student.model, &[&encoded], m, 1, 1)?;
        std::hint::black_box(probs);
        micros.push(start.elapsed().as_secs_f64() * 1e6);
    }
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
    println!("single-record latency over {} records: p50 {:.0} us, p99 {:.0} us", micros.len(), at(0.5), at(0.99));
    Ok(())
}
