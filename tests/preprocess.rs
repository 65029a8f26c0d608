//! `leader preprocess` on a tiny hand-written MIMIC-III cohort (every expectation derived by hand in
//! the comments), corrupt inputs, and the real MIMIC-III demo (`shared_data_*`, needs LEADER_TEST_DATA).

use leader::data::ddi::DdiPairs;
use leader::data::preprocess::drugs::DrugMapSource;
use leader::data::preprocess::{preprocess, Inputs, MapKey, PreprocessConfig, Source, SplitMode, Stats, VisitOrder};
use leader::data::record::{read_records, Record};
use leader::data::vocab::Vocab;
use std::io::Write;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if name.ends_with(".gz") {
        let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(&path, text).unwrap();
    }
    path
}

/// Three patients. Patient 1 has admissions 11, 12, 13 whose admission times run 13 < 12 < 11, so the
/// target is 11 by time and 13 by hadm_id. Patient 2 has one admission (21). Patient 3's admission 31
/// has no procedures and is dropped.
///
/// Drug map: n1→N02BE01, n2→B01AB05, n3→A02BC01, n4→"C0" (shorter than 4 characters), n9 unmapped.
/// Prescriptions (12 rows): h12 n1@03-02 n2@03-01 (so by start time: B01A, N02B); h11 n3, "0", empty;
/// h13 n1, n4, n9; h21 n2, n2 and h31 n1, n1 (same admission, start and drug: one duplicate each).
/// Row funnel: read 12 → −1 empty ndc −1 ndc "0" = 10 → −1 unmapped −1 too short = 8 → −2 duplicates = 6.
/// ATC row counts after dedupe: N02B 3 (h12, h13, h31), B01A 2 (h12, h21), A02B 1 (h11).
fn cohort(dir: &Path) -> PathBuf {
    let raw = dir.join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    write(&raw, "PATIENTS.csv", "row_id,subject_id,gender,dob\n1,1,F,2100-01-01 00:00:00\n2,2,M,1830-06-15 00:00:00\n3,3,F,2100-01-01 00:00:00\n");
    write(
        &raw,
        "ADMISSIONS.csv.gz",
        "row_id,subject_id,hadm_id,admittime,admission_type,insurance,language,religion,marital_status,ethnicity\n\
         1,1,11,2150-05-01 10:00:00,EMERGENCY,Medicare,ENGL,CATHOLIC,MARRIED,WHITE\n\
         2,1,12,2150-03-01 10:00:00,EMERGENCY,Private,,CATHOLIC,SINGLE,WHITE\n\
         3,1,13,2149-12-01 10:00:00,ELECTIVE,Private,ENGL,CATHOLIC,SINGLE,WHITE\n\
         4,2,21,2130-01-01 10:00:00,EMERGENCY,Medicaid,SPAN,,,HISPANIC\n\
         5,3,31,2140-01-01 10:00:00,EMERGENCY,Medicare,ENGL,JEWISH,WIDOWED,WHITE\n",
    );
    write(
        &raw,
        "DIAGNOSES_ICD.csv",
        "row_id,subject_id,hadm_id,seq_num,icd9_code\n1,1,12,1,4019\n2,1,12,2,25000\n3,1,11,1,4280\n\
         4,1,13,2,5849\n5,1,13,1,4019\n6,2,21,1,4019\n7,2,21,1,4019\n8,3,31,1,4280\n",
    );
    write(
        &raw,
        "PROCEDURES_ICD.csv",
        "row_id,subject_id,hadm_id,seq_num,icd9_code\n1,1,12,1,3893\n2,1,11,1,9904\n3,1,13,1,3893\n4,2,21,1,9671\n",
    );
    write(
        &raw,
        "PRESCRIPTIONS.csv",
        "row_id,subject_id,hadm_id,startdate,drug,gsn,ndc\n\
         1,1,12,2150-03-02 00:00:00,Acetaminophen,1,n1\n2,1,12,2150-03-01 00:00:00,Heparin,2,n2\n\
         3,1,11,2150-05-01 00:00:00,Omeprazole,3,n3\n4,1,11,2150-05-01 00:00:00,Nothing,0,0\n\
         5,1,11,2150-05-01 00:00:00,Empty,,\n6,1,13,2149-12-01 00:00:00,Acetaminophen,1,n1\n\
         7,1,13,2149-12-01 00:00:00,Short,4,n4\n8,1,13,2149-12-01 00:00:00,Unknown,9,n9\n\
         9,2,21,2130-01-01 00:00:00,Heparin,2,n2\n10,2,21,2130-01-01 00:00:00,Heparin,2,n2\n\
         11,3,31,2140-01-01 00:00:00,Acetaminophen,1,n1\n12,3,31,2140-01-01 00:00:00,Acetaminophen,1,n1\n",
    );
    write(&raw, "D_ICD_DIAGNOSES.csv", "row_id,icd9_code,short_title,long_title\n1,4019,Hypertension NOS,Unspecified essential hypertension\n2,4280,CHF NOS,Congestive heart failure\n");
    write(
        &raw,
        "D_ICD_PROCEDURES.csv",
        "row_id,icd9_code,short_title,long_title\n1,3893,Venous cath NEC,Venous catheterization\n",
    );
    write(dir, "drug_map.csv", "ndc,atc\nn1,N02BE01\nn2,B01AB05\nn3,A02BC01\nn4,C0\n");
    write(
        dir,
        "atc_names.csv",
        "atc_code,atc_name\nN02B,OTHER ANALGESICS AND ANTIPYRETICS\nN02B,duplicate name\nB01A,ANTITHROMBOTIC AGENTS\n",
    );
    write(dir, "ddi.csv", "atc3_a,atc3_b\nB01A,N02B\nA02B,N02B\nX99X,N02B\n");
    raw
}

fn inputs(dir: &Path, raw: PathBuf) -> Inputs {
    Inputs {
        raw,
        drug_map: DrugMapSource::Direct { path: dir.join("drug_map.csv"), key: MapKey::Ndc },
        atc_names: Some(dir.join("atc_names.csv")),
        ddi_pairs: Some(dir.join("ddi.csv")),
        med_whitelist: None,
        vocab: None,
        no_split: true,
    }
}

fn all_records(out: &Path) -> Vec<Record> {
    let mut all = Vec::new();
    for split in ["train", "valid", "test", "records"] {
        let path = out.join(format!("{split}.jsonl"));
        if path.exists() {
            all.extend(read_records(&path).unwrap());
        }
    }
    all.sort_by_key(|r| r.subject_id);
    all
}

fn step<'a>(stats: &'a Stats, name: &str) -> &'a leader::data::preprocess::stats::FunnelStep {
    stats
        .funnel
        .0
        .iter()
        .find(|s| s.step.contains(name))
        .unwrap_or_else(|| panic!("no step {name}: {:?}", stats.funnel))
}

#[test]
fn cohort_records_follow_time_order_profile_and_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let raw = cohort(dir.path());
    let out = dir.path().join("out");
    let cfg = PreprocessConfig::default_for(Source::Mimic3);
    let stats = preprocess(&cfg, &inputs(dir.path(), raw), &out, false).unwrap();

    let records = all_records(&out);
    assert_eq!(records.iter().map(|r| r.subject_id).collect::<Vec<_>>(), [1, 2], "patient 3 has no procedures");
    let p1 = &records[0];
    assert_eq!(p1.visits.iter().map(|v| v.hadm_id).collect::<Vec<_>>(), [13, 12, 11], "admission-time order");
    assert_eq!(p1.visits[0].diagnoses, ["4019", "5849"], "seq_num order");
    assert_eq!(p1.visits[1].medications, ["B01A", "N02B"], "start-time order");
    assert_eq!(p1.visits[0].medications, ["N02B"], "n4 too short, n9 unmapped");
    assert_eq!(p1.labels, ["A02B"]);
    assert_eq!(p1.target().hadm_id, 11);
    // Age at the target (2150-05-01) with DOB 2100-01-01: 50. Profile from the target admission.
    assert_eq!(p1.profile["age"], "50-59");
    assert_eq!(p1.profile["insurance"], "Medicare");
    assert_eq!(p1.profile["gender"], "F");
    // Patient 2: DOB shifted by 300 years as MIMIC-III does for the over-89s; empty religion → unknown.
    let p2 = &records[1];
    assert_eq!((p2.profile["age"].as_str(), p2.profile["religion"].as_str()), ("90+", "unknown"));
    assert_eq!(p2.visits[0].medications, ["B01A"]);
    assert!(p2.is_single_visit());

    // Prompt: each history visit with its own diagnoses, names where known, codes otherwise, never the labels.
    assert!(p1.prompt.contains("In visit 1, the patient had diagnoses: Hypertension NOS, 5849; procedures: Venous cath NEC; and was prescribed: other analgesics and antipyretics."), "{}", p1.prompt);
    assert!(p1.prompt.contains("In visit 2, the patient had diagnoses: Hypertension NOS, 25000;"), "{}", p1.prompt);
    assert!(
        p1.prompt.contains("In the current visit, the patient has diagnoses: CHF NOS; procedures: 9904."),
        "{}",
        p1.prompt
    );
    assert!(p1.prompt.starts_with("Patient profile: age 50-59, gender female, insurance medicare, language engl, religion catholic, marital status married, ethnicity white."), "{}", p1.prompt);
    assert!(!p1.prompt.contains("A02B"), "labels leak into the prompt: {}", p1.prompt);

    // Funnel, as derived in `cohort`'s comment.
    let read = step(&stats, "PRESCRIPTIONS.csv: read");
    assert_eq!((read.rows_in, read.rows_out, read.dropped["empty ndc"], read.dropped["ndc is \"0\""]), (12, 10, 1, 1));
    let map = step(&stats, "map ndc to ATC");
    assert_eq!((map.rows_out, map.dropped["ndc not in the drug map"]), (8, 1));
    assert_eq!(step(&stats, "PRESCRIPTIONS.csv: deduplicate").rows_out, 6);
    let joined = step(&stats, "admissions with diagnoses");
    assert_eq!((joined.rows_in, joined.rows_out, joined.dropped["no procedures left"]), (5, 4, 1));
    assert_eq!((stats.patients, stats.visits, stats.single_visit_patients, stats.multi_visit_patients), (2, 4, 1, 1));

    // Vocab by first appearance over patients then visits; names lower-cased, first name of a repeated code.
    let vocab = Vocab::load(&out.join("vocab.json")).unwrap();
    let meds: Vec<&str> = vocab.medications.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(meds, ["N02B", "B01A", "A02B"]);
    assert_eq!(vocab.medications[0].name, "other analgesics and antipyretics");
    assert_eq!(vocab.medications[2].name, "", "A02B has no name");
    assert_eq!(vocab.profile["gender"], ["F", "M"]);
    // DDI restricted to the vocabulary (X99X dropped), sorted pairs. Labels: p1 [A02B], p2 [B01A]: no pairs → 0.
    let ddi = DdiPairs::load(&out.join("ddi.json")).unwrap();
    assert_eq!(ddi.pairs, [["A02B".to_string(), "N02B".to_string()], ["B01A".to_string(), "N02B".to_string()]]);
    assert_eq!(stats.label_ddi_rate, Some(0.0));
    let saved: PreprocessConfig = toml::from_str(&std::fs::read_to_string(out.join("config.toml")).unwrap()).unwrap();
    assert_eq!(saved, cfg);
}

#[test]
fn cohort_hadm_order_top_n_and_reference_min_visits() {
    let dir = tempfile::tempdir().unwrap();
    let raw = cohort(dir.path());
    let out = dir.path().join("out");
    let mut cfg = PreprocessConfig::default_for(Source::Mimic3);
    cfg.visit_order = VisitOrder::HadmId;
    let stats = preprocess(&cfg, &inputs(dir.path(), raw.clone()), &out, false).unwrap();
    let p1 = &all_records(&out)[0];
    assert_eq!(p1.visits.iter().map(|v| v.hadm_id).collect::<Vec<_>>(), [11, 12, 13]);
    assert_eq!(p1.labels, ["N02B"]);
    assert_eq!(stats.patients, 2);

    // Top-1 medication = N02B (3 rows): admissions 11 (A02B only) and 21 (B01A only) lose all drugs.
    cfg.medications.top_n = 1;
    let stats = preprocess(&cfg, &inputs(dir.path(), raw.clone()), &out, true).unwrap();
    let records = all_records(&out);
    assert_eq!(records.iter().map(|r| r.subject_id).collect::<Vec<_>>(), [1]);
    assert_eq!(records[0].visits.iter().map(|v| v.hadm_id).collect::<Vec<_>>(), [12, 13]);
    assert_eq!(
        step(&stats, "most frequent").dropped["code outside the most frequent"],
        3,
        "h12 B01A, h11 A02B, h21 B01A"
    );

    // min_visits = 2 keeps patient 1 only (3 admissions with prescriptions; patients 2 and 3 have one).
    cfg.medications.top_n = 300;
    cfg.min_visits = 2;
    let stats = preprocess(&cfg, &inputs(dir.path(), raw), &out, true).unwrap();
    assert_eq!((stats.patients, stats.visits), (1, 3));
    assert_eq!(step(&stats, "min_visits = 2").dropped.values().sum::<usize>(), 4, "rows 9, 10, 11, 12");
}

#[test]
fn cohort_split_is_by_patient_and_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let raw = cohort(dir.path());
    let mut inp = inputs(dir.path(), raw);
    inp.no_split = false;
    let mut cfg = PreprocessConfig::default_for(Source::Mimic3);
    // floor(0.5·2) = 1 train, floor(0·2) = 0 valid, 1 test; sequential = ascending subject id.
    cfg.split.train = 0.5;
    cfg.split.valid = 0.0;
    cfg.split.mode = SplitMode::Sequential;
    let out = dir.path().join("out");
    let stats = preprocess(&cfg, &inp, &out, false).unwrap();
    let ids = |s: &str| {
        read_records(&out.join(format!("{s}.jsonl"))).unwrap().iter().map(|r| r.subject_id).collect::<Vec<_>>()
    };
    assert_eq!((ids("train"), ids("valid"), ids("test")), (vec![1], vec![], vec![2]));
    assert_eq!(stats.splits.values().sum::<usize>(), 2);
    assert!(!out.join("records.jsonl").exists());
}

#[test]
fn cohort_reused_vocab_drops_and_counts_outside_codes() {
    let dir = tempfile::tempdir().unwrap();
    let raw = cohort(dir.path());
    let out = dir.path().join("out");
    let cfg = PreprocessConfig::default_for(Source::Mimic3);
    preprocess(&cfg, &inputs(dir.path(), raw.clone()), &out, false).unwrap();
    let mut vocab = Vocab::load(&out.join("vocab.json")).unwrap();
    // Remove B01A and diagnosis 25000; allow only "Private" insurance.
    vocab.medications.retain(|e| e.code != "B01A");
    vocab.diagnoses.retain(|e| e.code != "25000");
    vocab.profile.insert("insurance".into(), vec!["Private".into()]);
    let vocab_path = dir.path().join("vocab.json");
    vocab.save(&vocab_path).unwrap();

    let mut inp = inputs(dir.path(), raw);
    inp.vocab = Some(vocab_path.clone());
    let scored = dir.path().join("scored");
    let stats = preprocess(&cfg, &inp, &scored, false).unwrap();
    let oov = stats.out_of_vocab.clone().unwrap();
    // B01A rows after dedupe: h12 and h21 → 2; 25000 appears once (h12); procedures all known.
    assert_eq!((oov.medications, oov.diagnoses, oov.procedures), (2, 1, 0));
    assert_eq!(stats.profile_out_of_vocab["insurance"], 1, "patient 1's target admission is Medicare");
    assert_eq!(std::fs::read(&vocab_path).unwrap(), std::fs::read(scored.join("vocab.json")).unwrap());
    let records = read_records(&scored.join("records.jsonl")).unwrap();
    // Patient 2's only admission had only B01A: dropped.
    assert_eq!(records.iter().map(|r| r.subject_id).collect::<Vec<_>>(), [1]);
    assert_eq!(records[0].visits[1].medications, ["N02B"]);
    assert_eq!(records[0].profile["insurance"], "unknown");
}

#[test]
fn ndc_rxcui_pair_maps_like_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let raw = cohort(dir.path());
    // n1 → 100 → N02BE01 (first RXCUI row wins over the later A01AA01); n2 → 200 → B01AB05;
    // n3 has an empty RXCUI (dropped); n4, n9 absent. So h11 (n3 only) has no drugs left.
    write(dir.path(), "ndc2RXCUI.txt", "{'n1': u'100', 'n2': u'200', 'n3': u''}");
    write(
        dir.path(),
        "RXCUI2atc4.csv",
        "YEAR,MONTH,NDC,RXCUI,ATC4\n2016,1,x,100,N02BE01\n2016,1,y,100,A01AA01\n2016,1,z,200,B01AB05\n",
    );
    let mut inp = inputs(dir.path(), raw);
    inp.drug_map = DrugMapSource::ViaRxcui {
        ndc_rxcui: dir.path().join("ndc2RXCUI.txt"),
        rxcui_atc: dir.path().join("RXCUI2atc4.csv"),
    };
    let out = dir.path().join("out");
    let stats = preprocess(&PreprocessConfig::default_for(Source::Mimic3), &inp, &out, false).unwrap();
    let records = all_records(&out);
    assert_eq!(records[0].visits.iter().map(|v| v.hadm_id).collect::<Vec<_>>(), [13, 12]);
    assert_eq!(records[0].labels, ["B01A", "N02B"], "target 12: h11 lost its only drug");
    assert_eq!(step(&stats, "map ndc to ATC").dropped["ndc not in the drug map"], 3, "n3, n4, n9");
}

#[test]
fn whitelist_keeps_only_listed_codes() {
    let dir = tempfile::tempdir().unwrap();
    let raw = cohort(dir.path());
    let mut inp = inputs(dir.path(), raw);
    inp.med_whitelist = Some(write(dir.path(), "allowed.txt", "# ATC codes with SMILES\nN02BE01\nA02B\n"));
    let out = dir.path().join("out");
    preprocess(&PreprocessConfig::default_for(Source::Mimic3), &inp, &out, false).unwrap();
    let vocab = Vocab::load(&out.join("vocab.json")).unwrap();
    assert_eq!(vocab.medications.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(), ["N02B", "A02B"]);
}

#[test]
fn garbage_rows_are_counted_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let raw = cohort(dir.path());
    // Line 2 is fine, line 3 has a text hadm_id, line 4 a text subject_id: both counted, neither used.
    write(
        &raw,
        "DIAGNOSES_ICD.csv",
        "row_id,subject_id,hadm_id,seq_num,icd9_code\n1,1,12,1,4019\n2,1,garbage,1,4280\n3,zz,13,1,5849\n4,1,11,1,4280\n5,1,13,1,4019\n6,2,21,1,4019\n",
    );
    let out = dir.path().join("out");
    let stats =
        preprocess(&PreprocessConfig::default_for(Source::Mimic3), &inputs(dir.path(), raw), &out, false).unwrap();
    assert_eq!(stats.bad_rows.per_file["DIAGNOSES_ICD.csv"], 2);
    let lines: Vec<(usize, &str)> = stats.bad_rows.listed.iter().map(|b| (b.line, b.column.as_str())).collect();
    assert_eq!(lines, [(3, "hadm_id"), (4, "subject_id")]);
    assert_eq!(step(&stats, "DIAGNOSES_ICD.csv: read").dropped["unparseable id"], 2);
    let saved: Stats = leader::io::read_json(&out.join("stats.json")).unwrap();
    assert_eq!(saved.bad_rows, stats.bad_rows);
}

#[test]
fn emptying_step_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let raw = cohort(dir.path());
    write(dir.path(), "drug_map.csv", "ndc,atc\nnothing,N02BE01\n");
    let err = preprocess(
        &PreprocessConfig::default_for(Source::Mimic3),
        &inputs(dir.path(), raw),
        &dir.path().join("out"),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("map ndc to ATC") && err.contains("ndc not in the drug map"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The real MIMIC-III demo.

fn demo_dirs() -> Option<(PathBuf, PathBuf)> {
    match std::env::var_os("LEADER_TEST_DATA") {
        Some(root) => {
            let root = PathBuf::from(root);
            Some((root.join("mimic3-demo"), root.join("aux")))
        }
        None => {
            eprintln!("SKIPPED: LEADER_TEST_DATA is not set");
            None
        }
    }
}

fn demo_inputs(demo: &Path, aux: &Path) -> Inputs {
    Inputs {
        raw: demo.to_path_buf(),
        drug_map: DrugMapSource::Direct { path: aux.join("ethos_gsn_atc_ndc_mapping.csv.gz"), key: MapKey::Gsn },
        atc_names: Some(aux.join("ethos_atc_coding.csv.gz")),
        ddi_pairs: Some(aux.join("ddi_atc3_pairs_gamenet.csv")),
        med_whitelist: None,
        vocab: None,
        no_split: false,
    }
}

/// Golden counts derived independently with a short python3 script (csv + gzip only): map each
/// prescription's GSN through the ethos file (first row per GSN, ATC cut to 4 characters), skipping
/// empty/"0" GSNs and rows without hadm_id; keep admissions of ADMISSIONS that have a mapped
/// prescription, a diagnosis and a procedure; count them per subject. Result: 107 admissions,
/// 82 patients, 71 with one admission, 11 with more (the demo's SOURCE.md also gives 107 admissions and
/// 11 multi-admission patients before mapping; GSN mapping loses no admission). 135 distinct ATC
/// codes and 581 diagnosis codes, so the top-300/top-2000 filters keep everything.
/// Prescriptions: 10,398 rows, 1,276 with an empty GSN, 91 with an unmapped GSN.
#[test]
fn shared_data_demo_golden_counts() {
    let Some((demo, aux)) = demo_dirs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let stats =
        preprocess(&PreprocessConfig::default_for(Source::Mimic3), &demo_inputs(&demo, &aux), &out, false).unwrap();
    assert_eq!(
        (stats.visits, stats.patients, stats.single_visit_patients, stats.multi_visit_patients),
        (107, 82, 71, 11)
    );
    let read = step(&stats, "PRESCRIPTIONS.csv.gz: read");
    assert_eq!((read.rows_in, read.dropped["empty gsn"]), (10_398, 1_276));
    assert_eq!(step(&stats, "map gsn to ATC").dropped["gsn not in the drug map"], 91);
    // The two rows of the ethos map whose "ATC" value is no ATC code (T127 and T103, GSNs the demo
    // never prescribes) are counted.
    let bad: Vec<(&str, &str, &str)> =
        stats.bad_rows.listed.iter().map(|b| (b.file.as_str(), b.column.as_str(), b.value.as_str())).collect();
    let map = "ethos_gsn_atc_ndc_mapping.csv.gz";
    assert_eq!(bad, [(map, "atc", "T127"), (map, "atc", "T103")]);
    let records = all_records(&out);
    assert_eq!(records.len(), 82);
    // Splits: floor(0.8·82) = 65, floor(0.1·82) = 8, 9.
    let sizes: Vec<usize> = ["train", "valid", "test"].iter().map(|s| stats.splits[*s]).collect();
    assert_eq!(sizes, [65, 8, 9]);
    let vocab = Vocab::load(&out.join("vocab.json")).unwrap();
    let index = vocab.medication_index();
    for r in &records {
        assert_eq!(&r.labels, &r.target().medications);
        assert!(r.labels.iter().all(|c| index.contains_key(c.as_str()) && c.len() == 4));
        assert!(!r.prompt.is_empty());
    }
    // 135 codes (python: distinct 4-character ATC codes of mapped rows of the 107 admissions); all
    // but L01F (newer than the ethos name file) have a name.
    assert_eq!(vocab.num_medications(), 135);
    let unnamed: Vec<&str> = vocab.medications.iter().filter(|e| e.name.is_empty()).map(|e| e.code.as_str()).collect();
    assert_eq!(unnamed, ["L01F"]);
    let ddi = DdiPairs::load(&out.join("ddi.json")).unwrap();
    assert!(ddi.pairs.iter().all(|[a, b]| a < b && index.contains_key(a.as_str()) && index.contains_key(b.as_str())));
    assert!(!ddi.pairs.is_empty());
}

/// Reference filter (≥2 admissions with a non-empty, non-"0" GSN in PRESCRIPTIONS, before mapping),
/// derived with the same python3 script: 13 patients keep 38 admissions, 2 of them end single-visit.
#[test]
fn shared_data_demo_min_visits_2_reproduces_the_reference_filter() {
    let Some((demo, aux)) = demo_dirs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = PreprocessConfig::default_for(Source::Mimic3);
    cfg.min_visits = 2;
    let stats = preprocess(&cfg, &demo_inputs(&demo, &aux), &dir.path().join("out"), false).unwrap();
    assert_eq!((stats.visits, stats.patients, stats.single_visit_patients), (38, 13, 2));
}

#[test]
fn shared_data_demo_is_deterministic() {
    let Some((demo, aux)) = demo_dirs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = PreprocessConfig::default_for(Source::Mimic3);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    preprocess(&cfg, &demo_inputs(&demo, &aux), &a, false).unwrap();
    preprocess(&cfg, &demo_inputs(&demo, &aux), &b, false).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&a).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names.len(), 8, "{names:?}");
    for name in names {
        assert_eq!(std::fs::read(a.join(&name)).unwrap(), std::fs::read(b.join(&name)).unwrap(), "{name:?} differs");
    }
}

/// A two-admission MIMIC-IV patient in `hosp/` (lower-case, gzipped, v2.2 columns): ICD-9 and ICD-10
/// codes side by side, GSN-keyed drugs, anchor_age 60 in anchor_year 2150.
fn mimic4_cohort(dir: &Path) -> PathBuf {
    let hosp = dir.join("raw4").join("hosp");
    std::fs::create_dir_all(&hosp).unwrap();
    write(
        &hosp,
        "patients.csv.gz",
        "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n1,M,60,2150,2008 - 2010,\n",
    );
    write(
        &hosp,
        "admissions.csv.gz",
        "subject_id,hadm_id,admittime,dischtime,admission_type,insurance,language,marital_status,race\n\
         1,100,2152-01-01 08:00:00,2152-01-03 08:00:00,URGENT,Medicare,ENGLISH,MARRIED,WHITE\n\
         1,101,2153-06-01 08:00:00,2153-06-05 08:00:00,EW EMER.,Medicaid,ENGLISH,,BLACK/AFRICAN AMERICAN\n",
    );
    write(
        &hosp,
        "diagnoses_icd.csv.gz",
        "subject_id,hadm_id,seq_num,icd_code,icd_version\n1,100,1,4019,9\n1,101,1,I10,10\n1,101,2,4019,9\n",
    );
    write(
        &hosp,
        "procedures_icd.csv.gz",
        "subject_id,hadm_id,seq_num,chartdate,icd_code,icd_version\n1,100,1,2152-01-01,3893,9\n1,101,1,2153-06-01,02HV33Z,10\n",
    );
    write(
        &hosp,
        "prescriptions.csv.gz",
        "subject_id,hadm_id,pharmacy_id,starttime,stoptime,drug_type,drug,gsn,ndc\n\
         1,100,7,2152-01-01 09:00:00,,MAIN,Digoxin,000015,0\n1,101,8,2153-06-01 09:00:00,,MAIN,Heparin,000016,0\n",
    );
    write(
        &hosp,
        "d_icd_diagnoses.csv.gz",
        "icd_code,icd_version,long_title\n4019,9,Unspecified essential hypertension\nI10,10,Essential (primary) hypertension\n",
    );
    write(&hosp, "d_icd_procedures.csv.gz", "icd_code,icd_version,long_title\n3893,9,Venous catheterization\n");
    write(dir, "gsn_map.csv", "gsn,atc\n000015,C01AA05\n000016,B01AB05\n");
    dir.join("raw4")
}

#[test]
fn mimic4_cohort_tags_icd_versions_and_uses_anchor_age() {
    let dir = tempfile::tempdir().unwrap();
    let raw = mimic4_cohort(dir.path());
    let inp = Inputs {
        raw,
        drug_map: DrugMapSource::Direct { path: dir.path().join("gsn_map.csv"), key: MapKey::Gsn },
        atc_names: None,
        ddi_pairs: None,
        med_whitelist: None,
        vocab: None,
        no_split: true,
    };
    let out = dir.path().join("out");
    let mut cfg = PreprocessConfig::default_for(Source::Mimic4);
    let stats = preprocess(&cfg, &inp, &out, false).unwrap();
    assert_eq!((stats.patients, stats.visits, stats.source.as_str()), (1, 2, "mimic4"));
    let r = &read_records(&out.join("records.jsonl")).unwrap()[0];
    assert_eq!(r.visits[1].diagnoses, ["ICD10:I10", "ICD9:4019"]);
    assert_eq!(r.visits[1].procedures, ["ICD10:02HV33Z"]);
    assert_eq!(r.labels, ["B01A"]);
    // 60 + (2153 − 2150) = 63; profile from the target admission (101), missing marital status unknown.
    let fields: Vec<(&str, &str)> = r.profile.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        fields,
        [
            ("admission_type", "EW EMER."),
            ("age", "60-69"),
            ("gender", "M"),
            ("insurance", "Medicaid"),
            ("language", "ENGLISH"),
            ("marital_status", "unknown"),
            ("race", "BLACK/AFRICAN AMERICAN")
        ]
    );
    // Names looked up by (version, code); the ICD-10-PCS code has none and shows as its (tagged) code.
    assert!(
        r.prompt.contains(
            "diagnoses: Essential (primary) hypertension, Unspecified essential hypertension; procedures: ICD10:02HV33Z."
        ),
        "{}",
        r.prompt
    );
    assert!(r.prompt.contains("In visit 1, the patient had diagnoses: Unspecified essential hypertension; procedures: Venous catheterization; and was prescribed: C01A."), "{}", r.prompt);

    // The reference's untagged codes.
    cfg.icd.mimic4_version_prefix = false;
    preprocess(&cfg, &inp, &out, true).unwrap();
    let r = &read_records(&out.join("records.jsonl")).unwrap()[0];
    assert_eq!(r.visits[1].diagnoses, ["I10", "4019"]);
}
