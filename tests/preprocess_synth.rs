//! `leader preprocess` on small synthetic cohorts of both flavours (`leader synth`). The expected cohort
//! is computed here from the generated tables by a second, naive route (a plain CSV reader and
//! string sets), with the frequency filters off so no ranking is involved.

use leader::data::preprocess::drugs::DrugMapSource;
use leader::data::preprocess::{preprocess, Inputs, MapKey, PreprocessConfig, Source};
use leader::data::record::read_records;
use leader::data::synth::{write_cohort, Flavor, SynthConfig};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

/// Splits one CSV line, honouring double quotes (the MIMIC-III flavour quotes text).
fn fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// A table as maps from lower-case column name to value.
fn table(path: &Path) -> Vec<HashMap<String, String>> {
    let mut text = String::new();
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file).read_to_string(&mut text).unwrap();
    } else {
        std::io::BufReader::new(file).read_to_string(&mut text).unwrap();
    }
    let mut lines = text.lines();
    let header: Vec<String> = fields(lines.next().unwrap()).iter().map(|h| h.to_lowercase()).collect();
    lines.map(|l| header.iter().cloned().zip(fields(l)).collect()).collect()
}

fn find(dir: &Path, name: &str) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().to_lowercase().starts_with(&format!("{}.csv", name.to_lowercase()))
        })
        .unwrap_or_else(|| panic!("{name} in {}", dir.display()))
}

struct Expected {
    /// subject → (admission time, hadm) of kept admissions.
    visits: BTreeMap<String, Vec<(String, String)>>,
    /// hadm → its ATC-4 codes.
    meds: HashMap<String, BTreeSet<String>>,
}

/// Admissions of ADMISSIONS with a prescription whose NDC maps to an ATC code of ≥ 4 characters, a
/// diagnosis and a procedure (all with a non-empty hadm_id and code).
fn expected(root: &Path, tables: &Path) -> Expected {
    let mut map: HashMap<String, String> = HashMap::new();
    for row in table(&root.join("aux/drug_map.csv")) {
        map.entry(row["ndc"].clone()).or_insert(row["atc"].clone());
    }
    let mut meds: HashMap<String, BTreeSet<String>> = HashMap::new();
    for row in table(&find(tables, "prescriptions")) {
        let (hadm, ndc) = (&row["hadm_id"], &row["ndc"]);
        if let Some(atc) = map.get(ndc).filter(|a| a.len() >= 4 && !hadm.is_empty() && ndc != "0") {
            meds.entry(hadm.clone()).or_default().insert(atc[..4].to_string());
        }
    }
    let with_code = |name: &str| -> BTreeSet<String> {
        let rows = table(&find(tables, name));
        let code = if rows[0].contains_key("icd9_code") { "icd9_code" } else { "icd_code" };
        rows.iter().filter(|r| !r[code].is_empty() && !r["hadm_id"].is_empty()).map(|r| r["hadm_id"].clone()).collect()
    };
    let (diag, proc) = (with_code("diagnoses_icd"), with_code("procedures_icd"));
    let mut visits: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for row in table(&find(tables, "admissions")) {
        let hadm = &row["hadm_id"];
        if meds.contains_key(hadm) && diag.contains(hadm) && proc.contains(hadm) {
            visits.entry(row["subject_id"].clone()).or_default().push((row["admittime"].clone(), hadm.clone()));
        }
    }
    for v in visits.values_mut() {
        v.sort();
    }
    Expected { visits, meds }
}

fn check_flavor(flavor: Flavor, source: Source) {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let mut synth = SynthConfig::default_config();
    synth.flavor = flavor;
    synth.patients = 300;
    write_cohort(&synth, &raw, false).unwrap();
    let tables = if source == Source::Mimic4 { raw.join("hosp") } else { raw.clone() };
    let want = expected(&raw, &tables);

    let mut cfg = PreprocessConfig::default_for(source);
    (cfg.medications.top_n, cfg.diagnoses.top_n, cfg.procedures.top_n_mimic3, cfg.procedures.top_n_mimic4) =
        (0, 0, 0, 0);
    let inputs = Inputs {
        raw: raw.clone(),
        drug_map: DrugMapSource::Direct { path: raw.join("aux/drug_map.csv"), key: MapKey::Ndc },
        atc_names: Some(raw.join("aux/atc_names.csv")),
        ddi_pairs: Some(raw.join("aux/ddi_pairs.csv")),
        med_whitelist: None,
        vocab: None,
        no_split: true,
    };
    let out = dir.path().join("out");
    let stats = preprocess(&cfg, &inputs, &out, false).unwrap();

    let singles = want.visits.values().filter(|v| v.len() == 1).count();
    let n_visits: usize = want.visits.values().map(Vec::len).sum();
    assert_eq!(
        (stats.patients, stats.visits, stats.single_visit_patients),
        (want.visits.len(), n_visits, singles),
        "{}",
        stats.table()
    );
    assert!(stats.multi_visit_patients > 0 && singles > 0, "the cohort should have both kinds");
    for record in read_records(&out.join("records.jsonl")).unwrap() {
        let visits = &want.visits[&record.subject_id.to_string()];
        let hadms: Vec<String> = record.visits.iter().map(|v| v.hadm_id.to_string()).collect();
        let want_hadms: Vec<String> = visits.iter().map(|(_, h)| h.clone()).collect();
        assert_eq!(hadms, want_hadms, "admission-time order of patient {}", record.subject_id);
        let labels: BTreeSet<String> = record.labels.iter().cloned().collect();
        assert_eq!(&labels, &want.meds[&want_hadms[want_hadms.len() - 1]], "labels of patient {}", record.subject_id);
        assert_eq!(record.labels.len(), labels.len(), "labels are unique");
    }
    assert_eq!(stats.bad_rows.total, 0, "{:?}", stats.bad_rows.listed);
}

#[test]
fn synth_mimic3_cohort_matches_an_independent_count() {
    check_flavor(Flavor::Mimic3, Source::Mimic3);
}

#[test]
fn synth_mimic4_cohort_matches_an_independent_count() {
    check_flavor(Flavor::Mimic4, Source::Mimic4);
}
