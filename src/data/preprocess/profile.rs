//! Admissions (admission time, profile columns) and patients (gender, age) → the per-patient profile.
//!
//! Profile fields (the keys of `Record::profile` and `vocab.json`'s `profile`): `age`, `gender`,
//! `insurance`, `language`, `religion` (MIMIC-III) or `admission_type` (MIMIC-IV), `marital_status`,
//! `ethnicity` (III) or `race` (IV). Values are the raw MIMIC strings, `unknown` where missing; the
//! age is bucketed. The reference has no age or gender (§1.9, bug §7.24) and takes the profile from the
//! first visit; we take it from the target visit, the one being predicted.

use super::meds::time_number;
use super::settings::Source;
use super::stats::Report;
use super::table::{parse_id, Table};
use anyhow::Result;
use rustc_hash::FxHashMap;

pub const UNKNOWN: &str = "unknown";

/// Profile fields of a source, in display order, with the ADMISSIONS column each comes from.
pub fn fields(source: Source) -> Vec<&'static str> {
    match source {
        Source::Mimic3 => vec!["age", "gender", "insurance", "language", "religion", "marital_status", "ethnicity"],
        Source::Mimic4 => vec!["age", "gender", "insurance", "language", "admission_type", "marital_status", "race"],
    }
}

/// The fields read from ADMISSIONS (all but age and gender).
fn admission_fields(source: Source) -> Vec<&'static str> {
    fields(source).into_iter().skip(2).collect()
}

pub struct Admission {
    pub subject: u64,
    pub row: usize,
    /// Admission time as a sortable number (u64::MAX when unparseable).
    pub time: u64,
}

/// The ADMISSIONS table indexed by admission.
pub struct Admissions {
    pub table: Table,
    pub by_hadm: FxHashMap<u64, Admission>,
    source: Source,
}

impl Admissions {
    pub fn columns(source: Source) -> Vec<&'static [&'static str]> {
        let mut cols: Vec<&'static [&'static str]> = vec![&["subject_id"], &["hadm_id"], &["admittime"]];
        for field in admission_fields(source) {
            cols.push(match field {
                "insurance" => &["insurance"],
                "language" => &["language"],
                "religion" => &["religion"],
                "admission_type" => &["admission_type"],
                "marital_status" => &["marital_status"],
                "ethnicity" => &["ethnicity"],
                _ => &["race"],
            });
        }
        cols
    }

    pub fn index(table: Table, source: Source, report: &mut Report) -> Result<Self> {
        let mut by_hadm = FxHashMap::default();
        let (mut missing, mut unparseable, mut repeated) = (0, 0, 0);
        let rows = table.values("subject_id").zip(table.values("hadm_id")).zip(table.values("admittime"));
        for (i, ((subject, hadm), admittime)) in rows.enumerate() {
            let before = report.bad.total;
            let ids = (
                parse_id(subject, &table, i, "subject_id", &mut report.bad),
                parse_id(hadm, &table, i, "hadm_id", &mut report.bad),
            );
            let (Some(subject), Some(hadm)) = ids else {
                if report.bad.total > before {
                    unparseable += 1;
                } else {
                    missing += 1;
                }
                continue;
            };
            let time = admittime.and_then(time_number).unwrap_or_else(|| {
                let value = admittime.unwrap_or("");
                report.bad.record(&table.file, table.line(i), "admittime", value, "a date-time (kept, sorted last)");
                u64::MAX
            });
            if by_hadm.insert(hadm, Admission { subject, row: i, time }).is_some() {
                repeated += 1;
            }
        }
        let dropped = [
            ("missing subject_id or hadm_id", missing),
            ("unparseable id", unparseable),
            ("repeated hadm_id (last kept)", repeated),
        ];
        report.funnel.push(&format!("{}: read", table.file), "rows", table.height(), &dropped)?;
        Ok(Self { table, by_hadm, source })
    }

    /// The admission time string of a row ("" when missing).
    pub fn admittime(&self, row: usize) -> String {
        self.table.req("admittime").get(row).unwrap_or("").trim().to_string()
    }

    /// (field, value) of the ADMISSIONS profile fields of a row.
    pub fn profile(&self, row: usize) -> Vec<(&'static str, String)> {
        admission_fields(self.source)
            .into_iter()
            .map(|f| {
                let v = self.table.req(f).get(row).map(str::trim).filter(|v| !v.is_empty());
                (f, v.unwrap_or(UNKNOWN).to_string())
            })
            .collect()
    }
}

/// What PATIENTS gives: gender and what is needed for the age.
pub struct Patient {
    pub gender: Option<String>,
    /// MIMIC-III: date of birth as YYYYMMDDhhmmss; MIMIC-IV: (anchor_age, anchor_year).
    birth: Birth,
}

enum Birth {
    Dob(u64),
    Anchor(u32, u32),
    Unknown,
}

pub fn patient_columns(source: Source) -> Vec<&'static [&'static str]> {
    match source {
        Source::Mimic3 => vec![&["subject_id"], &["gender"], &["dob"]],
        Source::Mimic4 => vec![&["subject_id"], &["gender"], &["anchor_age"], &["anchor_year"]],
    }
}

pub fn read_patients(table: &Table, source: Source, report: &mut Report) -> Result<FxHashMap<u64, Patient>> {
    let mut out = FxHashMap::default();
    let mut skipped = 0;
    let (first, second) = match source {
        Source::Mimic3 => ("dob", "dob"),
        Source::Mimic4 => ("anchor_age", "anchor_year"),
    };
    let rows =
        table.values("subject_id").zip(table.values("gender")).zip(table.values(first).zip(table.values(second)));
    for (i, ((subject, gender), (a, b))) in rows.enumerate() {
        let Some(subject) = parse_id(subject, table, i, "subject_id", &mut report.bad) else {
            skipped += 1;
            continue;
        };
        let birth = match source {
            Source::Mimic3 => a.and_then(time_number).map_or(Birth::Unknown, Birth::Dob),
            Source::Mimic4 => match (a.map(str::parse::<u32>), b.map(str::parse::<u32>)) {
                (Some(Ok(age)), Some(Ok(year))) => Birth::Anchor(age, year),
                _ => Birth::Unknown,
            },
        };
        if matches!(birth, Birth::Unknown) {
            let value = format!("{}/{}", a.unwrap_or(""), b.unwrap_or(""));
            report.bad.record(
                &table.file,
                table.line(i),
                first,
                &value,
                "a birth date or anchor age/year (age unknown)",
            );
        }
        out.insert(subject, Patient { gender: gender.map(str::to_string), birth });
    }
    report.funnel.push(
        &format!("{}: read", table.file),
        "rows",
        table.height(),
        &[("missing or unparseable subject_id", skipped)],
    )?;
    Ok(out)
}

impl Patient {
    /// Age in whole years at an admission time (YYYYMMDDhhmmss).
    pub fn age_at(&self, admit: u64) -> Option<u32> {
        if admit == u64::MAX {
            return None;
        }
        let year = (admit / 10_000_000_000) as i64;
        match self.birth {
            Birth::Dob(dob) => {
                let (by, bmd) = ((dob / 10_000_000_000) as i64, (dob / 1_000_000) % 10_000);
                let amd = (admit / 1_000_000) % 10_000;
                let age = year - by - i64::from(amd < bmd);
                u32::try_from(age).ok()
            }
            Birth::Anchor(age, anchor_year) => u32::try_from(i64::from(age) + year - i64::from(anchor_year)).ok(),
            Birth::Unknown => None,
        }
    }
}

/// The age bucket: edges [30, 40, 90] give "<30", "30-39", "40-89", "90+".
pub fn age_bucket(age: Option<u32>, edges: &[u32]) -> String {
    let Some(age) = age else { return UNKNOWN.to_string() };
    match edges.iter().position(|&e| age < e) {
        Some(0) => format!("<{}", edges[0]),
        Some(i) => format!("{}-{}", edges[i - 1], edges[i] - 1),
        None => format!("{}+", edges.last().copied().unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_buckets_follow_the_edges() {
        let edges = [30, 40, 50, 60, 70, 80, 90];
        let got: Vec<String> = [Some(0), Some(29), Some(30), Some(39), Some(89), Some(90), Some(300), None]
            .iter()
            .map(|a| age_bucket(*a, &edges))
            .collect();
        assert_eq!(got, ["<30", "<30", "30-39", "30-39", "80-89", "90+", "90+", "unknown"]);
    }

    #[test]
    fn age_counts_whole_years_and_the_mimic3_shift_lands_in_90_plus() {
        let p = Patient { gender: None, birth: Birth::Dob(time_number("2094-03-05 00:00:00").unwrap()) };
        // 2164-10-23 is after the 70th birthday (2164-03-05); 2164-03-04 is the day before it.
        assert_eq!(p.age_at(time_number("2164-10-23 21:09:00").unwrap()), Some(70));
        assert_eq!(p.age_at(time_number("2164-03-04 23:00:00").unwrap()), Some(69));
        let shifted = Patient { gender: None, birth: Birth::Dob(time_number("1800-01-01").unwrap()) };
        assert_eq!(age_bucket(shifted.age_at(time_number("2100-06-01").unwrap()), &[30, 90]), "90+");
        let anchored = Patient { gender: None, birth: Birth::Anchor(52, 2150) };
        assert_eq!(anchored.age_at(time_number("2153-01-01").unwrap()), Some(55));
    }
}
