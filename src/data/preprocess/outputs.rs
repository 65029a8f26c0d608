//! What goes into the output folder: vocabularies (built or reused), DDI pairs, the patient split,
//! the cohort figures and the atomic folder write.

use super::profile::UNKNOWN;
use super::settings::{PreprocessConfig, SplitMode};
use super::stats::{PerKind, Stats};
use crate::data::ddi::DdiPairs;
use crate::data::record::Record;
use crate::data::vocab::{CodeEntry, Vocab};
use anyhow::{ensure, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Code → name lookups for the vocabulary entries ("" where the source has no name).
pub struct Names<'a> {
    pub diagnoses: &'a FxHashMap<String, String>,
    pub procedures: &'a FxHashMap<String, String>,
    pub medications: &'a FxHashMap<String, String>,
}

/// Builds the vocabulary by first appearance over the records in subject order (the reference's
/// `Voc`, §1.6); profile values likewise (§1.9).
pub fn build_vocab(records: &[Record], names: &Names, fields: &[&str]) -> Vocab {
    fn add(list: &mut Vec<CodeEntry>, seen: &mut FxHashSet<String>, code: &str, names: &FxHashMap<String, String>) {
        if seen.insert(code.to_string()) {
            list.push(CodeEntry { code: code.to_string(), name: names.get(code).cloned().unwrap_or_default() });
        }
    }
    let mut vocab = Vocab { medications: vec![], diagnoses: vec![], procedures: vec![], profile: BTreeMap::new() };
    let mut seen: PerKind<FxHashSet<String>> = PerKind::default();
    for visit in records.iter().flat_map(|r| &r.visits) {
        for c in &visit.diagnoses {
            add(&mut vocab.diagnoses, &mut seen.diagnoses, c, names.diagnoses);
        }
        for c in &visit.procedures {
            add(&mut vocab.procedures, &mut seen.procedures, c, names.procedures);
        }
        for c in &visit.medications {
            add(&mut vocab.medications, &mut seen.medications, c, names.medications);
        }
    }
    for field in fields {
        let values = vocab.profile.entry(field.to_string()).or_default();
        for record in records {
            let value = record.profile.get(*field).map_or(UNKNOWN, String::as_str);
            if !values.iter().any(|v| v == value) {
                values.push(value.to_string());
            }
        }
    }
    vocab
}

/// With a reused vocabulary: profile values it does not list become "unknown"; counts per field.
pub fn fit_profiles(records: &mut [Record], vocab: &Vocab) -> BTreeMap<String, usize> {
    let mut outside = BTreeMap::new();
    for record in records.iter_mut() {
        for (field, value) in record.profile.iter_mut() {
            let known = vocab.profile.get(field).is_some_and(|vals| vals.contains(value));
            if !known && value != UNKNOWN {
                *outside.entry(field.clone()).or_insert(0) += 1;
                *value = UNKNOWN.to_string();
            }
        }
    }
    outside
}

/// DDI pairs restricted to the medication vocabulary: each unordered pair once, sorted.
pub fn restrict_ddi(pairs: &[(String, String)], vocab: &Vocab) -> DdiPairs {
    let index = vocab.medication_index();
    let mut kept: Vec<[String; 2]> = pairs
        .iter()
        .filter(|(a, b)| a != b && index.contains_key(a.as_str()) && index.contains_key(b.as_str()))
        .map(|(a, b)| if a < b { [a.clone(), b.clone()] } else { [b.clone(), a.clone()] })
        .collect();
    kept.sort();
    kept.dedup();
    DdiPairs { pairs: kept }
}

/// Interacting label pairs / all label pairs over every record (the reference's global DDI ratio).
pub fn label_ddi_rate(records: &[Record], ddi: &DdiPairs) -> f64 {
    let set: FxHashSet<(&str, &str)> = ddi.pairs.iter().map(|[a, b]| (a.as_str(), b.as_str())).collect();
    let (mut hits, mut total) = (0usize, 0usize);
    for labels in records.iter().map(|r| &r.labels) {
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                total += 1;
                let pair = if a < b { (a.as_str(), b.as_str()) } else { (b.as_str(), a.as_str()) };
                hits += usize::from(set.contains(&pair));
            }
        }
    }
    if total == 0 {
        0.0
    } else {
        hits as f64 / total as f64
    }
}

/// Patient split: `(name, records)`; sizes floor(train·n), floor(valid·n), rest. Each file is in
/// subject order. `--no-split` gives one `records` file.
pub fn split(records: Vec<Record>, cfg: &PreprocessConfig, no_split: bool) -> Result<Vec<(&'static str, Vec<Record>)>> {
    if no_split {
        return Ok(vec![("records", records)]);
    }
    let s = &cfg.split;
    ensure!(
        s.train >= 0.0 && s.valid >= 0.0 && s.train + s.valid <= 1.0,
        "split.train ({}) and split.valid ({}) must be fractions adding up to at most 1",
        s.train,
        s.valid
    );
    let n = records.len();
    let mut order: Vec<usize> = (0..n).collect();
    if s.mode == SplitMode::Shuffle {
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(s.seed));
    }
    let n_train = (s.train * n as f64) as usize;
    let n_valid = (s.valid * n as f64) as usize;
    let mut slot = vec![0u8; n];
    for (rank, &i) in order.iter().enumerate() {
        slot[i] = if rank < n_train {
            0
        } else if rank < n_train + n_valid {
            1
        } else {
            2
        };
    }
    let mut parts: [Vec<Record>; 3] = Default::default();
    for (record, s) in records.into_iter().zip(slot) {
        parts[s as usize].push(record);
    }
    let [train, valid, test] = parts;
    Ok(vec![("train", train), ("valid", valid), ("test", test)])
}

/// Cohort figures over all records.
pub fn cohort_stats(records: &[Record], stats: &mut Stats) {
    let n = records.len();
    stats.patients = n;
    stats.visits = records.iter().map(|r| r.visits.len()).sum();
    stats.single_visit_patients = records.iter().filter(|r| r.is_single_visit()).count();
    stats.multi_visit_patients = n - stats.single_visit_patients;
    stats.max_visits = records.iter().map(|r| r.visits.len()).max().unwrap_or(0);
    let per = |x: usize, d: usize| if d == 0 { 0.0 } else { x as f64 / d as f64 };
    stats.mean_visits_per_patient = per(stats.visits, n);
    let visits = records.iter().flat_map(|r| &r.visits);
    let sum = |f: fn(&crate::data::record::Visit) -> usize| visits.clone().map(f).sum::<usize>();
    stats.mean_codes_per_visit = PerKind {
        diagnoses: per(sum(|v| v.diagnoses.len()), stats.visits),
        procedures: per(sum(|v| v.procedures.len()), stats.visits),
        medications: per(sum(|v| v.medications.len()), stats.visits),
    };
    stats.mean_prompt_chars = per(records.iter().map(|r| r.prompt.chars().count()).sum(), n);
}

/// Writes the split files, `vocab.json`, `ddi.json`, `stats.json` and `config.toml` into `dir`.
pub fn write_folder(
    dir: &Path,
    parts: &[(&str, Vec<Record>)],
    vocab: &Vocab,
    ddi: Option<&DdiPairs>,
    stats: &Stats,
    cfg: &PreprocessConfig,
) -> Result<()> {
    for (name, records) in parts {
        let path = dir.join(format!("{name}.jsonl"));
        let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        for r in records {
            serde_json::to_writer(&mut w, r)?;
            w.write_all(b"\n")?;
        }
        w.flush().with_context(|| format!("writing {}", path.display()))?;
    }
    vocab.save(&dir.join("vocab.json"))?;
    if let Some(ddi) = ddi {
        ddi.save(&dir.join("ddi.json"))?;
    }
    crate::io::write_json(&dir.join("stats.json"), stats)?;
    crate::config::save(cfg, &dir.join("config.toml"))
}
