//! Synthetic records and data folders for the student tests.
#![allow(dead_code)]

use leader::data::record::{Record, Visit};
use leader::data::vocab::{CodeEntry, Vocab};
use leader::nn::rng::TensorRng;
use std::collections::BTreeMap;
use std::path::Path;

pub fn entries(prefix: &str, n: usize) -> Vec<CodeEntry> {
    (0..n).map(|i| CodeEntry { code: format!("{prefix}{i}"), name: format!("{prefix} name {i}") }).collect()
}

/// A vocabulary with medications `M0..`, diagnoses `D0..`, procedures `P0..` and one profile field.
pub fn vocab(meds: usize, diags: usize, procs: usize) -> Vocab {
    let profile = BTreeMap::from([("insurance".to_string(), vec!["Private".to_string(), "Medicare".to_string()])]);
    Vocab { medications: entries("M", meds), diagnoses: entries("D", diags), procedures: entries("P", procs), profile }
}

pub fn visit(i: u64, diagnoses: &[String], procedures: &[String], medications: &[String]) -> Visit {
    Visit {
        hadm_id: 100 + i,
        admittime: format!("2100-01-{:02} 00:00:00", 1 + i % 28),
        diagnoses: diagnoses.to_vec(),
        procedures: procedures.to_vec(),
        medications: medications.to_vec(),
    }
}

pub fn record(subject_id: u64, visits: Vec<Visit>, insurance: &str) -> Record {
    let labels = visits.last().unwrap().medications.clone();
    Record {
        subject_id,
        visits,
        profile: BTreeMap::from([("insurance".to_string(), insurance.to_string())]),
        labels,
        prompt: String::new(),
    }
}

fn pick(rng: &mut TensorRng, prefix: &str, n: usize, k: usize) -> Vec<String> {
    (0..k).map(|_| format!("{prefix}{}", rng.below(n))).collect::<std::collections::BTreeSet<_>>().into_iter().collect()
}

/// Random patients: 1-4 visits, a few codes each (some visits without procedures).
pub fn random_records(seed: u64, n: usize, vocab: &Vocab) -> Vec<Record> {
    let mut rng = TensorRng::new(seed);
    let (m, d, p) = (vocab.medications.len(), vocab.diagnoses.len(), vocab.procedures.len());
    (0..n as u64)
        .map(|s| {
            let visits = (0..1 + rng.below(4) as u64)
                .map(|v| {
                    let (nd, np, nm) = (1 + rng.below(5), rng.below(3), 1 + rng.below(4));
                    visit(v, &pick(&mut rng, "D", d, nd), &pick(&mut rng, "P", p, np), &pick(&mut rng, "M", m, nm))
                })
                .collect();
            record(1000 + s, visits, if rng.below(2) == 0 { "Private" } else { "Medicare" })
        })
        .collect()
}

pub fn write_jsonl(path: &Path, records: &[Record]) {
    let text: String = records.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
    std::fs::write(path, text).unwrap();
}

/// Writes a preprocessed data folder.
pub fn write_data_dir(dir: &Path, vocab: &Vocab, train: &[Record], valid: &[Record], test: &[Record]) {
    std::fs::create_dir_all(dir).unwrap();
    vocab.save(&dir.join("vocab.json")).unwrap();
    write_jsonl(&dir.join("train.jsonl"), train);
    write_jsonl(&dir.join("valid.jsonl"), valid);
    write_jsonl(&dir.join("test.jsonl"), test);
}

/// A cohort where the KD target carries what the noisy labels hide. Each patient has a class c in
/// 0..4, shown by one informative diagnosis (`D{4k+c}`, k < 10) among two noise diagnoses (`D40..D59`);
/// the true medications of class c are `M{2c}`, `M{2c+1}`. Training labels keep each true drug with
/// probability 0.6 and add every other drug with probability 0.25; validation labels are the true
/// drugs. The teacher vector is the one-hot class (H = 8, the last 4 entries 0).
pub fn kd_cohort(seed: u64, n: usize, noisy: bool) -> (Vec<Record>, Vec<(u64, [f32; 8])>) {
    let mut rng = TensorRng::new(seed);
    let mut records = Vec::new();
    let mut teacher = Vec::new();
    for s in 0..n as u64 {
        let class = rng.below(4);
        let mut diags = vec![format!("D{}", 4 * rng.below(10) + class)];
        diags.extend(pick(&mut rng, "D", 20, 2).iter().map(|c| format!("D{}", 40 + c[1..].parse::<usize>().unwrap())));
        let mut meds: Vec<String> = Vec::new();
        for drug in 0..8 {
            let truth = drug / 2 == class;
            let keep = if !noisy {
                truth
            } else if truth {
                rng.uniform_f64() < 0.6
            } else {
                rng.uniform_f64() < 0.25
            };
            if keep {
                meds.push(format!("M{drug}"));
            }
        }
        if meds.is_empty() {
            meds.push(format!("M{}", 2 * class));
        }
        let procs = pick(&mut rng, "P", 5, 1);
        let subject = 5000 + seed * 10_000 + s;
        records.push(record(
            subject,
            vec![visit(0, &diags, &procs, &meds)],
            if rng.below(2) == 0 { "Private" } else { "Medicare" },
        ));
        let mut vector = [0f32; 8];
        vector[class] = 1.0;
        teacher.push((subject, vector));
    }
    (records, teacher)
}

/// Writes a teacher cache for `(subject, vector)` rows.
pub fn write_cache(path: &Path, rows: &[(u64, [f32; 8])]) {
    use candle_core::{Device, Tensor};
    let flat: Vec<f32> = rows.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let cache = leader::teacher::cache::TeacherCache {
        subject_ids: rows.iter().map(|(s, _)| *s).collect(),
        hidden: Tensor::from_vec(flat, (rows.len(), 8), &Device::Cpu).unwrap(),
        input_ids: None,
    };
    cache.save(path, candle_core::DType::F32).unwrap();
}
