//! Hostile-input cases: preprocess. Broken tables are clear errors naming the file (and line and
//! column where there is one); broken rows are counted and listed in `stats.json` with their line and
//! column, never dropped silently or read as something else.

use super::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A copy of the fixture's raw cohort, with its mapping files.
fn raw_copy(dir: &Path) -> PathBuf {
    let raw = dir.join("raw");
    copy_dir(&fixture().path("raw"), &raw);
    raw
}

/// Replaces `TABLE.csv.gz` with a plain `TABLE.csv` holding `text`.
fn replace_table(raw: &Path, table: &str, text: &str) {
    std::fs::remove_file(raw.join(format!("{table}.csv.gz"))).unwrap();
    std::fs::write(raw.join(format!("{table}.csv")), text).unwrap();
}

fn preprocess(raw: &Path, out: &Path) -> Run {
    leader_owned(&preprocess_args(raw, &raw.join("aux"), out))
}

fn bad_rows(out: &Path) -> Vec<(String, usize, String, String)> {
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(out.join("stats.json")).unwrap()).unwrap();
    stats["bad_rows"]["listed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let text = |k: &str| b[k].as_str().unwrap().to_string();
            (text("file"), b["line"].as_u64().unwrap() as usize, text("column"), text("value"))
        })
        .collect()
}

/// The funnel's count of prescription rows dropped for `reason`.
fn dropped(out: &Path, reason: &str) -> u64 {
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(out.join("stats.json")).unwrap()).unwrap();
    stats["funnel"].as_array().unwrap().iter().filter_map(|step| step["dropped"][reason].as_u64()).sum()
}

#[test]
fn missing_table_column_and_truncated_gzip_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = raw_copy(tmp.path());
    let out = tmp.path().join("out");
    std::fs::remove_file(raw.join("PATIENTS.csv.gz")).unwrap();
    preprocess(&raw, &out).assert_clear_error(&["table PATIENTS not found", "PATIENTS.csv.gz"]);

    let raw = raw_copy(&tmp.path().join("2"));
    let procedures = read_table(&raw.join("PROCEDURES_ICD.csv.gz")).replacen("HADM_ID", "HADM", 1);
    replace_table(&raw, "PROCEDURES_ICD", &procedures);
    preprocess(&raw, &out).assert_clear_error(&["PROCEDURES_ICD.csv", "missing column hadm_id"]);

    let raw = raw_copy(&tmp.path().join("3"));
    let gz = raw.join("ADMISSIONS.csv.gz");
    let bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    preprocess(&raw, &out).assert_clear_error(&["ADMISSIONS.csv.gz", "truncated or corrupt gzip"]);
    assert!(!out.exists(), "no output after a failure");
}

#[test]
fn header_only_prescriptions_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = raw_copy(tmp.path());
    let header = read_table(&raw.join("PRESCRIPTIONS.csv.gz")).lines().next().unwrap().to_string();
    replace_table(&raw, "PRESCRIPTIONS", &format!("{header}\n"));
    let out = tmp.path().join("out");
    preprocess(&raw, &out).assert_clear_error(&["PRESCRIPTIONS.csv: no data rows, only a header"]);
    assert!(!out.exists());
}

#[test]
fn invalid_utf8_names_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = raw_copy(tmp.path());
    let text = read_table(&raw.join("DIAGNOSES_ICD.csv.gz"));
    let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    lines[2].splice(2..2, [0xff]);
    std::fs::remove_file(raw.join("DIAGNOSES_ICD.csv.gz")).unwrap();
    std::fs::write(raw.join("DIAGNOSES_ICD.csv"), lines.join(&b'\n')).unwrap();
    preprocess(&raw, &tmp.path().join("out")).assert_clear_error(&["DIAGNOSES_ICD.csv:3:3: invalid UTF-8 (byte 0xff)"]);
}

/// One PRESCRIPTIONS row of the MIMIC-III layout (19 fields).
fn prescription(subject: &str, hadm: &str, start: &str, drug: &str, ndc: &str) -> String {
    ["9000001", subject, hadm, "", start, "", "MAIN", drug, "", "", "", "", ndc, "", "", "", "", "", "PO"].join(",")
}

#[test]
fn broken_prescription_rows_are_counted_with_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = raw_copy(tmp.path());
    let text = read_table(&raw.join("PRESCRIPTIONS.csv.gz"));
    let first: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
    let (subject, hadm) = (first[1], first[2]);
    let drug_map = std::fs::read_to_string(raw.join("aux/drug_map.csv")).unwrap();
    let ndc = drug_map.lines().nth(1).unwrap().split(',').next().unwrap().to_string();
    let n = text.lines().count();
    let ok_row = prescription(subject, hadm, "2150-01-01 00:00:00", "aspirin", &ndc);
    let rows = [
        // line n+1: 5 of 19 fields (was counted as "empty ndc")
        format!("9000002,{subject},{hadm},,2150-01-01"),
        // line n+2: one field too many (was read silently)
        format!("{ok_row},extra"),
        // lines n+3 and n+4: a quoted drug name with a comma, a quote and a line break: a good row
        prescription(subject, hadm, "2150-01-01", "\"Sodium, \"\"normal\"\"\nflush\"", &ndc),
        // line n+5: a subject id that is not a number
        prescription("zz", hadm, "2150-01-01", "aspirin", &ndc),
        // line n+6: a date that is no calendar date
        prescription(subject, hadm, "2191-13-45 99:00:00", "aspirin", &ndc),
    ];
    replace_table(&raw, "PRESCRIPTIONS", &format!("{}\n{}\n", text.trim_end(), rows.join("\n")));
    let out = tmp.path().join("out");
    preprocess(&raw, &out).assert_success();
    let listed = bad_rows(&out);
    let row =
        |line: usize, column: &str, value: &str| ("PRESCRIPTIONS.csv".to_string(), line, column.into(), value.into());
    for expected in [
        row(n + 1, "(row)", "5 fields"),
        row(n + 2, "(row)", "20 fields"),
        row(n + 5, "subject_id", "zz"),
        row(n + 6, "startdate", "2191-13-45 99:00:00"),
    ] {
        assert!(listed.contains(&expected), "{expected:?} not in {listed:?}");
    }
    assert!(!listed.iter().any(|b| b.1 == n + 3 || b.1 == n + 4), "the quoted row is fine: {listed:?}");
    let key_empty = "empty ndc";
    assert_eq!(dropped(&out, key_empty), dropped(&fixture().path("data"), key_empty), "short rows are not empty keys");
}

#[test]
fn drug_map_conflicts_and_non_atc_values_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = raw_copy(tmp.path());
    let map_path = raw.join("aux/drug_map.csv");
    let map = std::fs::read_to_string(&map_path).unwrap();
    let lines: Vec<&str> = map.lines().collect();
    let (key, atc) = lines[1].split_once(',').unwrap();
    let other = if atc.starts_with('A') { "B01AC06" } else { "A02BC01" };
    let (key2, _) = lines[2].split_once(',').unwrap();
    // Line n+1 maps the first key to another code; line n+2 gives a value that is no ATC code.
    std::fs::write(&map_path, format!("{}\n{key},{other}\n{key2}x,garbage!\n", map.trim_end())).unwrap();
    let out = tmp.path().join("out");
    preprocess(&raw, &out).assert_success();
    let listed = bad_rows(&out);
    let n = lines.len();
    assert!(listed.contains(&("drug_map.csv".into(), n + 1, "atc".into(), other.into())), "{listed:?}");
    assert!(listed.contains(&("drug_map.csv".into(), n + 2, "atc".into(), "garbage!".into())), "{listed:?}");
    // The first row of a key is kept: the medications are the fixture's.
    let vocab = |dir: &Path| std::fs::read_to_string(dir.join("vocab.json")).unwrap();
    assert_eq!(vocab(&out), vocab(&fixture().path("data")));
}
