//! `leader synth`: layouts, determinism, realistic shape, dirty rows, aux-file consistency and the
//! learnable structure, all measured on the generated tables themselves.

use leader::config::ConfigArgs;
use leader::data::synth::{run, write_cohort, Flavor, SynthArgs, SynthConfig};
use leader::io::output::FolderArgs;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One CSV line split into fields (RFC 4180 quoting; the tables have no embedded line breaks).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// A table as header + rows of named fields.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn read(path: &Path) -> Table {
        let mut text = String::new();
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if path.extension().is_some_and(|e| e == "gz") {
            flate2::read::GzDecoder::new(file).read_to_string(&mut text).unwrap();
        } else {
            std::io::BufReader::new(file).read_to_string(&mut text).unwrap();
        }
        let mut lines = text.lines();
        let header = split_csv(lines.next().expect("a header"));
        let rows: Vec<Vec<String>> = lines.map(split_csv).collect();
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.len(), header.len(), "{} row {}: {r:?}", path.display(), i + 2);
        }
        Table { header, rows }
    }

    fn col(&self, name: &str) -> usize {
        self.header.iter().position(|h| h.eq_ignore_ascii_case(name)).unwrap_or_else(|| panic!("no column {name}"))
    }

    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let c = self.col(name);
        self.rows.iter().map(move |r| r[c].as_str())
    }
}

fn cohort(flavor: Flavor, patients: usize, seed: u64) -> (tempfile::TempDir, PathBuf) {
    let mut cfg = SynthConfig::default_config();
    cfg.flavor = flavor;
    cfg.patients = patients;
    cfg.seed = seed;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cohort");
    let summary = write_cohort(&cfg, &out, false).unwrap();
    assert_eq!(summary.patients, patients);
    (tmp, out)
}

const MIMIC3_LAYOUT: [(&str, &str); 7] = [
    ("ADMISSIONS", "ROW_ID,SUBJECT_ID,HADM_ID,ADMITTIME,DISCHTIME,DEATHTIME,ADMISSION_TYPE,ADMISSION_LOCATION,DISCHARGE_LOCATION,INSURANCE,LANGUAGE,RELIGION,MARITAL_STATUS,ETHNICITY,EDREGTIME,EDOUTTIME,DIAGNOSIS,HOSPITAL_EXPIRE_FLAG,HAS_CHARTEVENTS_DATA"),
    ("PATIENTS", "ROW_ID,SUBJECT_ID,GENDER,DOB,DOD,DOD_HOSP,DOD_SSN,EXPIRE_FLAG"),
    ("DIAGNOSES_ICD", "ROW_ID,SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE"),
    ("PROCEDURES_ICD", "ROW_ID,SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE"),
    ("PRESCRIPTIONS", "ROW_ID,SUBJECT_ID,HADM_ID,ICUSTAY_ID,STARTDATE,ENDDATE,DRUG_TYPE,DRUG,DRUG_NAME_POE,DRUG_NAME_GENERIC,FORMULARY_DRUG_CD,GSN,NDC,PROD_STRENGTH,DOSE_VAL_RX,DOSE_UNIT_RX,FORM_VAL_DISP,FORM_UNIT_DISP,ROUTE"),
    ("D_ICD_DIAGNOSES", "ROW_ID,ICD9_CODE,SHORT_TITLE,LONG_TITLE"),
    ("D_ICD_PROCEDURES", "ROW_ID,ICD9_CODE,SHORT_TITLE,LONG_TITLE"),
];

const MIMIC4_LAYOUT: [(&str, &str); 7] = [
    ("admissions", "subject_id,hadm_id,admittime,dischtime,deathtime,admission_type,admit_provider_id,admission_location,discharge_location,insurance,language,marital_status,race,edregtime,edouttime,hospital_expire_flag"),
    ("patients", "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod"),
    ("diagnoses_icd", "subject_id,hadm_id,seq_num,icd_code,icd_version"),
    ("procedures_icd", "subject_id,hadm_id,seq_num,chartdate,icd_code,icd_version"),
    ("prescriptions", "subject_id,hadm_id,pharmacy_id,poe_id,poe_seq,order_provider_id,starttime,stoptime,drug_type,drug,formulary_drug_cd,gsn,ndc,prod_strength,form_rx,dose_val_rx,dose_unit_rx,form_val_disp,form_unit_disp,doses_per_24_hrs,route"),
    ("d_icd_diagnoses", "icd_code,icd_version,long_title"),
    ("d_icd_procedures", "icd_code,icd_version,long_title"),
];

const KNOWLEDGE: [&str; 3] = ["knowledge/conditions.txt", "knowledge/drugs.txt", "knowledge/interactions.txt"];

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn mimic3_files_and_headers_are_exactly_the_mimic_layout() {
    let (_tmp, out) = cohort(Flavor::Mimic3, 150, 1);
    let mut expected: Vec<String> = MIMIC3_LAYOUT.iter().map(|(t, _)| format!("{t}.csv.gz")).collect();
    expected.extend(
        ["aux/atc_names.csv", "aux/ddi_pairs.csv", "aux/drug_map.csv", "config.toml", leader::io::output::MARKER]
            .into_iter()
            .chain(KNOWLEDGE)
            .map(String::from),
    );
    expected.sort();
    assert_eq!(files(&out), expected);
    for (table, columns) in MIMIC3_LAYOUT {
        let path = out.join(format!("{table}.csv.gz"));
        assert_eq!(Table::read(&path).header.join(","), columns, "{table}");
        // Full MIMIC-III quotes every header name.
        let mut first = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()).read_to_string(&mut first).unwrap();
        assert!(first.starts_with("\"ROW_ID\","), "{table}: {}", &first[..20]);
    }
}

#[test]
fn mimic4_files_and_headers_are_exactly_the_mimic_layout() {
    let (_tmp, out) = cohort(Flavor::Mimic4, 150, 1);
    let mut expected: Vec<String> = MIMIC4_LAYOUT.iter().map(|(t, _)| format!("hosp/{t}.csv.gz")).collect();
    expected.extend(
        ["aux/atc_names.csv", "aux/ddi_pairs.csv", "aux/drug_map.csv", "config.toml", leader::io::output::MARKER]
            .into_iter()
            .chain(KNOWLEDGE)
            .map(String::from),
    );
    expected.sort();
    assert_eq!(files(&out), expected);
    for (table, columns) in MIMIC4_LAYOUT {
        assert_eq!(Table::read(&out.join(format!("hosp/{table}.csv.gz"))).header.join(","), columns, "{table}");
    }
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_differs() {
    for flavor in [Flavor::Mimic3, Flavor::Mimic4] {
        let (_a, first) = cohort(flavor, 120, 7);
        let (_b, again) = cohort(flavor, 120, 7);
        let (_c, other) = cohort(flavor, 120, 8);
        let names = files(&first);
        assert_eq!(names, files(&again));
        for name in &names {
            let bytes = std::fs::read(first.join(name)).unwrap();
            assert_eq!(bytes, std::fs::read(again.join(name)).unwrap(), "{name} differs between identical runs");
        }
        let rx = names.iter().find(|n| n.to_lowercase().contains("prescriptions")).unwrap();
        assert_ne!(std::fs::read(first.join(rx)).unwrap(), std::fs::read(other.join(rx)).unwrap());
    }
}

#[test]
fn shape_is_realistic() {
    let (_tmp, out) = cohort(Flavor::Mimic3, 400, 3);
    let admissions = Table::read(&out.join("ADMISSIONS.csv.gz"));
    let n_adm = admissions.rows.len() as f64;
    let mut visits: HashMap<&str, usize> = HashMap::new();
    for s in admissions.values("SUBJECT_ID") {
        *visits.entry(s).or_default() += 1;
    }
    assert_eq!(visits.len(), 400);
    let single = visits.values().filter(|&&v| v == 1).count() as f64 / 400.0;
    assert!((0.2..=0.4).contains(&single), "single-visit share {single}");
    assert!(visits.values().any(|&v| v >= 4), "some patients have long histories");
    let hadm: HashSet<&str> = admissions.values("HADM_ID").collect();
    assert_eq!(hadm.len(), admissions.rows.len(), "HADM_IDs are unique");

    let per_admission = |table: &str| Table::read(&out.join(format!("{table}.csv.gz"))).rows.len() as f64 / n_adm;
    let (dx, px, rx) =
        (per_admission("DIAGNOSES_ICD"), per_admission("PROCEDURES_ICD"), per_admission("PRESCRIPTIONS"));
    assert!((10.0..=15.0).contains(&dx), "diagnoses per admission {dx}");
    assert!((3.0..=5.0).contains(&px), "procedures per admission {px}");
    assert!((15.0..=30.0).contains(&rx), "prescription rows per admission {rx}");

    // Zipf-like: a long tail of rare codes and a heavy head; the top code is common but not universal.
    let diagnoses = Table::read(&out.join("DIAGNOSES_ICD.csv.gz"));
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (code, hadm) in diagnoses.values("ICD9_CODE").zip(diagnoses.values("HADM_ID")) {
        assert!(hadm.is_empty() || hadm.len() == 6, "HADM_ID {hadm}");
        *counts.entry(code).or_default() += 1;
    }
    let mut sorted: Vec<usize> = counts.values().copied().collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let total: usize = sorted.iter().sum();
    let top10 = sorted[..10].iter().sum::<usize>() as f64 / total as f64;
    assert!(counts.len() > 800, "distinct diagnosis codes {}", counts.len());
    assert!(top10 > 0.15, "top-10 share {top10}");
    assert!(sorted.iter().filter(|&&c| c <= 2).count() * 4 > counts.len(), "a long tail of codes seen at most twice");
    let top_share = sorted[0] as f64 / n_adm;
    assert!((0.2..0.8).contains(&top_share), "most common code in {top_share} of admissions");
}

#[test]
fn dirty_rows_are_present() {
    let (_tmp, out) = cohort(Flavor::Mimic3, 300, 5);
    let rx = Table::read(&out.join("PRESCRIPTIONS.csv.gz"));
    let map = Table::read(&out.join("aux/drug_map.csv"));
    let mapped: HashSet<&str> = map.values("ndc").collect();
    let ndcs: Vec<&str> = rx.values("NDC").collect();
    assert!(ndcs.iter().any(|n| n.is_empty()), "empty NDC");
    assert!(ndcs.contains(&"0"), "NDC 0");
    assert!(ndcs.iter().any(|n| n.len() == 11 && !mapped.contains(n)), "NDCs missing from drug_map");
    assert!(rx.values("ICUSTAY_ID").any(str::is_empty), "prescriptions outside an ICU stay");
    let adm = Table::read(&out.join("ADMISSIONS.csv.gz"));
    for field in ["LANGUAGE", "MARITAL_STATUS"] {
        assert!(adm.values(field).any(str::is_empty), "missing {field}");
        assert!(adm.values(field).any(|v| !v.is_empty()), "present {field}");
    }
    // A few diagnosis codes have no title in the dictionary, as in real MIMIC-III.
    let titled: HashSet<String> =
        Table::read(&out.join("D_ICD_DIAGNOSES.csv.gz")).values("ICD9_CODE").map(String::from).collect();
    let dx = Table::read(&out.join("DIAGNOSES_ICD.csv.gz"));
    let used: HashSet<&str> = dx.values("ICD9_CODE").filter(|c| !c.is_empty()).collect();
    let untitled = used.iter().filter(|c| !titled.contains(**c)).count();
    assert!(untitled > 0 && untitled * 20 < used.len(), "{untitled} of {} used codes untitled", used.len());

    let (_tmp4, out4) = cohort(Flavor::Mimic4, 300, 5);
    let adm4 = Table::read(&out4.join("hosp/admissions.csv.gz"));
    assert!(adm4.values("marital_status").any(str::is_empty), "missing marital_status");
    let rx4 = Table::read(&out4.join("hosp/prescriptions.csv.gz"));
    assert!(rx4.values("ndc").any(str::is_empty) && rx4.values("ndc").any(|n| n == "0"));
}

/// The knowledge corpus states true things about the world the tables come from: every interacting
/// pair of `aux/ddi_pairs.csv` (by its lower-case ATC-3 names), diagnoses by their D_ICD short titles
/// (what MIMIC-III prompts show), and for each diagnosis drug classes that admissions coded with it
/// receive far more often than admissions at large.
#[test]
fn the_knowledge_corpus_states_what_the_tables_show() {
    let (_tmp, out) = cohort(Flavor::Mimic3, 1500, 4);
    let text = |f: &str| std::fs::read_to_string(out.join("knowledge").join(f)).unwrap();
    let names: HashMap<String, String> =
        Table::read(&out.join("aux/atc_names.csv")).rows.iter().map(|r| (r[0].clone(), r[1].to_lowercase())).collect();
    let interactions = text("interactions.txt");
    let ddi = Table::read(&out.join("aux/ddi_pairs.csv"));
    assert_eq!(interactions.split("\n\n").count(), ddi.rows.len());
    for row in &ddi.rows {
        let claim = format!("{} and {} interact", names[&row[0]], names[&row[1]]);
        assert!(interactions.contains(&claim), "no paragraph says {claim:?}");
    }

    // Admissions → diagnosis titles and drug class names, from the tables alone.
    let d_icd = Table::read(&out.join("D_ICD_DIAGNOSES.csv.gz"));
    let titles: HashMap<&str, &str> = d_icd.values("ICD9_CODE").zip(d_icd.values("SHORT_TITLE")).collect();
    let mut dx_of: HashMap<String, HashSet<String>> = HashMap::new();
    let dx = Table::read(&out.join("DIAGNOSES_ICD.csv.gz"));
    for (hadm, code) in dx.values("HADM_ID").zip(dx.values("ICD9_CODE")) {
        if let Some(title) = titles.get(code) {
            dx_of.entry(hadm.to_string()).or_default().insert(title.to_string());
        }
    }
    let atc_of: HashMap<String, String> =
        Table::read(&out.join("aux/drug_map.csv")).rows.iter().map(|r| (r[0].clone(), r[1][..4].to_string())).collect();
    let mut classes_of: HashMap<String, HashSet<String>> = HashMap::new();
    let rx = Table::read(&out.join("PRESCRIPTIONS.csv.gz"));
    for (hadm, ndc) in rx.values("HADM_ID").zip(rx.values("NDC")) {
        if let Some(atc3) = atc_of.get(ndc) {
            classes_of.entry(hadm.to_string()).or_default().insert(names[atc3].clone());
        }
    }
    let admissions = dx_of.len() as f64;
    let share = |class: &str, with: &dyn Fn(&str) -> bool| {
        let coded: Vec<&String> = dx_of.keys().filter(|h| with(h)).collect();
        let given = coded.iter().filter(|h| classes_of.get(h.as_str()).is_some_and(|c| c.contains(class))).count();
        (given as f64 / coded.len().max(1) as f64, coded.len())
    };
    let (mut lifts, mut checked) = (Vec::new(), 0);
    for paragraph in text("conditions.txt").split("\n\n") {
        let Some(rest) = paragraph.split(" A patient with diagnoses: ").nth(1) else { continue };
        let (diagnosis, classes) = rest.split_once(". The patient should be prescribed: ").unwrap();
        let classes = classes.trim_end_matches(['.', '\n']);
        let (_, coded) = share("", &|h| dx_of[h].contains(diagnosis));
        if coded < 30 || !paragraph.contains(" is a sign of ") {
            continue; // too rare in this cohort to measure
        }
        checked += 1;
        // Class names contain ", " themselves: find the known names that are whole items of the list.
        let listed = format!(", {classes}, ");
        for class in names.values().filter(|n| listed.contains(&format!(", {n}, "))) {
            let (with, _) = share(class, &|h| dx_of[h].contains(diagnosis));
            let (overall, _) = share(class, &|_| true);
            lifts.push(with / overall.max(1.0 / admissions));
        }
    }
    assert!(checked >= 10, "only {checked} diagnoses common enough to check");
    lifts.sort_by(f64::total_cmp);
    let median = lifts[lifts.len() / 2];
    assert!(median > 1.5, "the drug classes the corpus names for a diagnosis are given {median:.2}x as often with it");
}

#[test]
fn aux_files_are_consistent() {
    let (_tmp, out) = cohort(Flavor::Mimic4, 100, 2);
    let names: HashMap<String, String> = {
        let t = Table::read(&out.join("aux/atc_names.csv"));
        assert_eq!(t.header, ["atc_code", "atc_name"]);
        t.rows.iter().map(|r| (r[0].clone(), r[1].clone())).collect()
    };
    let map = Table::read(&out.join("aux/drug_map.csv"));
    assert_eq!(map.header, ["ndc", "atc"]);
    let mut atc3 = HashSet::new();
    for row in &map.rows {
        let (ndc, atc) = (&row[0], &row[1]);
        assert!(ndc.len() == 11 && ndc.bytes().all(|b| b.is_ascii_digit()), "NDC {ndc}");
        assert_eq!(atc.len(), 7, "ATC level 5: {atc}");
        for level in [1, 3, 4, 5, 7] {
            let name = names.get(&atc[..level]).unwrap_or_else(|| panic!("no name for {} ({atc})", &atc[..level]));
            assert!(!name.is_empty());
        }
        atc3.insert(atc[..4].to_string());
    }
    assert!((100..=150).contains(&atc3.len()), "{} ATC-3 codes in the map", atc3.len());
    assert_eq!(map.values("ndc").collect::<HashSet<_>>().len(), map.rows.len(), "each NDC maps once");

    let ddi = Table::read(&out.join("aux/ddi_pairs.csv"));
    assert_eq!(ddi.header, ["atc3_a", "atc3_b"]);
    assert!(ddi.rows.len() > 50);
    let mut seen = HashSet::new();
    for row in &ddi.rows {
        assert!(row[0].len() == 4 && row[1].len() == 4 && row[0] < row[1], "{row:?}");
        assert!(names.contains_key(&row[0]) && names.contains_key(&row[1]));
        assert!(seen.insert(row.clone()), "duplicate pair {row:?}");
    }
}

#[test]
fn mimic4_mixes_icd9_and_icd10_consistently() {
    let (_tmp, out) = cohort(Flavor::Mimic4, 300, 4);
    let dx = Table::read(&out.join("hosp/diagnoses_icd.csv.gz"));
    let dict = Table::read(&out.join("hosp/d_icd_diagnoses.csv.gz"));
    let titled: HashSet<(&str, &str)> = dict.values("icd_code").zip(dict.values("icd_version")).collect();
    let mut by_version: BTreeMap<&str, usize> = BTreeMap::new();
    let mut untitled = 0;
    // Within one admission every code uses the same version.
    let mut version_of: HashMap<&str, &str> = HashMap::new();
    for ((code, version), hadm) in dx.values("icd_code").zip(dx.values("icd_version")).zip(dx.values("hadm_id")) {
        if code.is_empty() {
            continue;
        }
        *by_version.entry(version).or_default() += 1;
        assert_eq!(*version_of.entry(hadm).or_insert(version), version, "admission {hadm}");
        if version == "10" {
            assert!(code.as_bytes()[0].is_ascii_uppercase() && code.len() >= 3, "ICD-10 {code}");
        }
        untitled += usize::from(!titled.contains(&(code, version)));
    }
    let (nine, ten) = (by_version["9"], by_version["10"]);
    assert!(nine > (nine + ten) / 5 && ten > (nine + ten) / 5, "ICD-9 {nine}, ICD-10 {ten}");
    assert!(untitled * 20 < nine + ten, "{untitled} untitled rows");
}

#[test]
fn chronic_drugs_persist_across_admissions() {
    let (_tmp, out) = cohort(Flavor::Mimic3, 500, 11);
    let map: HashMap<String, String> = Table::read(&out.join("aux/drug_map.csv"))
        .rows
        .into_iter()
        .map(|r| (r[0].clone(), r[1][..4].to_string()))
        .collect();
    let rx = Table::read(&out.join("PRESCRIPTIONS.csv.gz"));
    let mut meds: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (hadm, ndc) in rx.values("HADM_ID").zip(rx.values("NDC")) {
        if let Some(atc3) = map.get(ndc) {
            meds.entry(hadm).or_default().insert(atc3);
        }
    }
    let adm = Table::read(&out.join("ADMISSIONS.csv.gz"));
    let mut history: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for ((s, h), t) in adm.values("SUBJECT_ID").zip(adm.values("HADM_ID")).zip(adm.values("ADMITTIME")) {
        history.entry(s).or_default().push((t, h));
    }
    let patients: Vec<Vec<&str>> = history
        .into_values()
        .map(|mut v| {
            v.sort();
            v.into_iter().map(|(_, h)| h).collect()
        })
        .collect();
    let empty = HashSet::new();
    let overlap = |a: &str, b: &str| {
        let (a, b) = (meds.get(a).unwrap_or(&empty), meds.get(b).unwrap_or(&empty));
        (!a.is_empty()).then(|| a.intersection(b).count() as f64 / a.len() as f64)
    };
    // For each consecutive pair of a patient's admissions, the share of the earlier admission's drugs
    // given again, against the same share for the first admission of the next patient.
    let (mut same, mut other) = (Vec::new(), Vec::new());
    for (i, visits) in patients.iter().enumerate() {
        let stranger = patients[(i + 1) % patients.len()][0];
        for pair in visits.windows(2) {
            if let (Some(s), Some(o)) = (overlap(pair[0], pair[1]), overlap(pair[0], stranger)) {
                same.push(s);
                other.push(o);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(same.len() > 200, "{} admission pairs", same.len());
    let (same, other) = (mean(&same), mean(&other));
    assert!(same > other + 0.1, "own history {same:.3} vs another patient {other:.3}");
}

#[test]
fn cli_flags_override_the_config_and_the_effective_config_is_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    let args = SynthArgs {
        flavor: Some(Flavor::Mimic4),
        patients: Some(60),
        seed: Some(9),
        output: FolderArgs { out: out.clone(), overwrite: false },
        config: ConfigArgs { config: None, set: vec!["patients=5".into(), "drugs.ndc_empty_share=0.5".into()] },
    };
    run(&args).unwrap();
    let saved: SynthConfig = toml::from_str(&std::fs::read_to_string(out.join("config.toml")).unwrap()).unwrap();
    assert_eq!((saved.flavor, saved.patients, saved.seed), (Flavor::Mimic4, 60, 9));
    assert_eq!(saved.drugs.ndc_empty_share, 0.5);
    assert_eq!(Table::read(&out.join("hosp/patients.csv.gz")).rows.len(), 60);
    let rx = Table::read(&out.join("hosp/prescriptions.csv.gz"));
    let empty = rx.values("ndc").filter(|n| n.is_empty()).count() as f64 / rx.rows.len() as f64;
    // Half of the rows not already set to NDC "0" (3%): about 0.485.
    assert!((0.4..0.57).contains(&empty), "{empty}");
    // An unknown key is an error naming it.
    let bad = SynthArgs { config: ConfigArgs { config: None, set: vec!["drugs.typo=1".into()] }, ..args };
    assert!(run(&bad).unwrap_err().to_string().contains("typo"));
}

#[test]
fn shared_data_mimic3_columns_match_the_real_demo() {
    let Ok(root) = std::env::var("LEADER_TEST_DATA") else {
        eprintln!("SKIPPED: LEADER_TEST_DATA is not set");
        return;
    };
    let demo = Path::new(&root).join("mimic3-demo");
    let (_tmp, out) = cohort(Flavor::Mimic3, 50, 1);
    for (table, _) in MIMIC3_LAYOUT {
        let file = format!("{table}.csv.gz");
        let real = Table::read(&demo.join(&file)).header;
        let ours = Table::read(&out.join(&file)).header;
        // The demo has lower-case headers; full MIMIC-III (and ours) upper case.
        assert_eq!(ours, real.iter().map(|h| h.to_uppercase()).collect::<Vec<_>>(), "{table}");
    }
    // Value formats: dates like the demo's, 11-digit NDCs.
    let real_adm = Table::read(&demo.join("ADMISSIONS.csv.gz"));
    let ours_adm = Table::read(&out.join("ADMISSIONS.csv.gz"));
    let shape = |s: &str| s.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect::<String>();
    assert_eq!(
        shape(real_adm.values("admittime").next().unwrap()),
        shape(ours_adm.values("ADMITTIME").next().unwrap())
    );
}
