//! Writes the inputs of `scripts/bench-eval.sh`: a data folder (vocab.json, ddi.json, test.jsonl)
//! and predictions.jsonl, for N records × M medications, shaped like real model output (a few true
//! drugs per record scored high, the rest low; f32 text as `leader predict` writes it).
//!
//! Usage: cargo run --release --example eval_bench_data -- DIR N M

use leader::data::ddi::DdiPairs;
use leader::data::vocab::{CodeEntry, Vocab};
use leader::eval::predictions::PredictionWriter;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(args.len() == 3, "usage: eval_bench_data DIR N M");
    let dir = PathBuf::from(&args[0]);
    let (n, m): (u64, usize) = (args[1].parse()?, args[2].parse()?);
    std::fs::create_dir_all(&dir)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let codes: Vec<String> = (0..m).map(|i| format!("X{i:03}")).collect();
    let vocab = Vocab {
        medications: codes.iter().map(|c| CodeEntry { code: c.clone(), name: format!("drug {c}") }).collect(),
        diagnoses: vec![],
        procedures: vec![],
        profile: BTreeMap::new(),
    };
    vocab.save(&dir.join("vocab.json"))?;
    // About 5% of all pairs interact.
    let pairs = (0..m)
        .flat_map(|a| (a + 1..m).map(move |b| (a, b)))
        .filter(|_| rng.random_bool(0.05))
        .map(|(a, b)| [codes[a].clone(), codes[b].clone()])
        .collect();
    DdiPairs { pairs }.save(&dir.join("ddi.json"))?;

    let mut records = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("test.jsonl"))?);
    let mut predictions = PredictionWriter::create(&dir.join("predictions.jsonl"))?;
    let normal = |rng: &mut rand_chacha::ChaCha8Rng| {
        let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let mut probs = vec![0f32; m];
    for subject in 0..n {
        let labels: Vec<usize> = (0..rng.random_range(5..25)).map(|_| rng.random_range(0..m)).collect();
        let mut is_label = vec![false; m];
        labels.iter().for_each(|&i| is_label[i] = true);
        let label_codes: Vec<&str> = (0..m).filter(|&i| is_label[i]).map(|i| codes[i].as_str()).collect();
        let visits: Vec<String> = (0..rng.random_range(1..5))
            .map(|v| format!(r#"{{"hadm_id":{v},"admittime":"2100-01-01 00:00:00","diagnoses":[],"procedures":[],"medications":[]}}"#))
            .collect();
        writeln!(
            records,
            r#"{{"subject_id":{subject},"visits":[{}],"profile":{{}},"labels":{},"prompt":""}}"#,
            visits.join(","),
            serde_json::to_string(&label_codes)?
        )?;
        for (p, &label) in probs.iter_mut().zip(&is_label) {
            let logit = if label { 1.0 } else { -3.5 } + 1.5 * normal(&mut rng);
            *p = (1.0 / (1.0 + (-logit).exp())) as f32;
        }
        predictions.write(subject, &probs)?;
    }
    records.flush()?;
    predictions.finish()?;
    Ok(())
}
