//! Builders for small evaluation fixtures shared by the eval tests.
#![allow(dead_code)]

use leader::data::ddi::DdiPairs;
use leader::data::record::{Record, Visit};
use leader::data::vocab::{CodeEntry, Vocab};
use std::collections::BTreeMap;
use std::path::Path;

/// A vocabulary with medications `codes` (names "drug X") and no diagnoses, procedures or profile.
pub fn vocab(codes: &[&str]) -> Vocab {
    Vocab {
        medications: codes.iter().map(|c| CodeEntry { code: c.to_string(), name: format!("drug {c}") }).collect(),
        diagnoses: vec![],
        procedures: vec![],
        profile: BTreeMap::new(),
    }
}

pub fn ddi(pairs: &[(&str, &str)]) -> DdiPairs {
    DdiPairs { pairs: pairs.iter().map(|(a, b)| [a.to_string(), b.to_string()]).collect() }
}

/// A record with `visits` visits, the last one prescribing `labels`.
pub fn record(subject_id: u64, visits: usize, labels: &[&str]) -> Record {
    let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
    let visits = (0..visits)
        .map(|v| Visit {
            hadm_id: subject_id * 100 + v as u64,
            admittime: format!("2100-01-{:02} 00:00:00", v + 1),
            diagnoses: vec!["4019".into()],
            procedures: vec![],
            medications: if v + 1 == visits { labels.clone() } else { vec!["A".into()] },
        })
        .collect();
    Record { subject_id, visits, profile: BTreeMap::new(), labels, prompt: format!("patient {subject_id}") }
}

/// Writes a data folder: vocab.json, ddi.json (when given), and the named splits.
pub fn write_data(dir: &Path, vocab: &Vocab, ddi: Option<&DdiPairs>, splits: &[(&str, &[Record])]) {
    std::fs::create_dir_all(dir).unwrap();
    vocab.save(&dir.join("vocab.json")).unwrap();
    if let Some(ddi) = ddi {
        ddi.save(&dir.join("ddi.json")).unwrap();
    }
    for (split, records) in splits {
        let text: String = records.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        std::fs::write(dir.join(format!("{split}.jsonl")), text).unwrap();
    }
}

/// The four-record example worked by hand in `eval_report.rs` (medications A, B, C, D; A–B and C–D
/// interact).
pub fn hand_example() -> (Vocab, DdiPairs, Vec<Record>, Vec<f32>) {
    let vocab = vocab(&["A", "B", "C", "D"]);
    let ddi = ddi(&[("A", "B"), ("D", "C")]);
    let records = vec![
        record(1, 1, &["A", "B"]),
        record(2, 2, &["C"]),
        record(3, 4, &["B", "D"]),
        record(4, 8, &["A", "C", "D"]),
    ];
    #[rustfmt::skip]
    let probs = vec![
        0.9, 0.8, 0.1, 0.1,
        0.5, 0.2, 0.4, 0.35,
        0.1, 0.2, 0.3, 0.25,
        0.6, 0.6, 0.6, 0.6,
    ];
    (vocab, ddi, records, probs)
}
