//! Admissions present in all three code tables → ordered visits → one record per patient (reference
//! §1.4, §1.10), with its profile and prompt.

use super::codes::Coded;
use super::profile::{age_bucket, Admissions, Patient, UNKNOWN};
use super::settings::{PreprocessConfig, VisitOrder};
use super::stats::Report;
use crate::data::prompt::{PromptInput, PromptTemplates, PromptVisit};
use crate::data::record::{Record, Visit};
use anyhow::Result;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// The three code tables with, per code id, the name shown in prompts (the code where none exists).
pub struct CodeTables {
    pub diagnoses: Coded,
    pub procedures: Coded,
    pub medications: Coded,
    pub diagnosis_names: Vec<Option<String>>,
    pub procedure_names: Vec<Option<String>>,
    pub medication_names: Vec<Option<String>>,
}

fn display<'a>(names: &'a [Option<String>], codes: &'a [String], id: u32) -> &'a str {
    names[id as usize].as_deref().unwrap_or(&codes[id as usize])
}

struct VisitIds<'a> {
    hadm: u64,
    row: usize,
    diagnoses: &'a [u32],
    procedures: &'a [u32],
    medications: &'a [u32],
}

/// Joins the tables and builds every patient's record, in ascending subject order.
pub fn records(
    cfg: &PreprocessConfig,
    tables: &CodeTables,
    admissions: &Admissions,
    patients: &FxHashMap<u64, Patient>,
    templates: &PromptTemplates,
    report: &mut Report,
) -> Result<Vec<Record>> {
    let by_patient = visits_by_patient(tables, admissions, report)?;
    let fields = super::profile::fields(cfg.source);
    let mut out = Vec::with_capacity(by_patient.len());
    for (subject, mut visits) in by_patient {
        match cfg.visit_order {
            VisitOrder::Admittime => visits.sort_by_key(|v| (admissions.by_hadm[&v.hadm].time, v.hadm)),
            VisitOrder::HadmId => visits.sort_by_key(|v| v.hadm),
        }
        let target = visits.last().expect("a patient has a visit");
        let patient = patients.get(&subject);
        let mut profile: BTreeMap<String, String> = BTreeMap::new();
        let age = patient.and_then(|p| p.age_at(admissions.by_hadm[&target.hadm].time));
        profile.insert("age".into(), age_bucket(age, &cfg.profile.age_edges));
        let gender = patient.and_then(|p| p.gender.clone()).unwrap_or_else(|| UNKNOWN.to_string());
        profile.insert("gender".into(), gender);
        for (field, value) in admissions.profile(target.row) {
            profile.insert(field.to_string(), value);
        }
        let prompt = prompt(cfg, tables, templates, &visits, &fields, &profile);
        let codes = |ids: &[u32], table: &Coded| -> Vec<String> {
            ids.iter().map(|&i| table.codes[i as usize].clone()).collect()
        };
        let visits: Vec<Visit> = visits
            .iter()
            .map(|v| Visit {
                hadm_id: v.hadm,
                admittime: admissions.admittime(v.row),
                diagnoses: codes(v.diagnoses, &tables.diagnoses),
                procedures: codes(v.procedures, &tables.procedures),
                medications: codes(v.medications, &tables.medications),
            })
            .collect();
        let labels = visits.last().expect("a patient has a visit").medications.clone();
        out.push(Record { subject_id: subject, visits, profile, labels, prompt });
    }
    Ok(out)
}

/// The admissions present in all three code tables and in ADMISSIONS, under the same subject, per
/// patient (the funnel counts the others by reason).
fn visits_by_patient<'a>(
    tables: &'a CodeTables,
    admissions: &Admissions,
    report: &mut Report,
) -> Result<BTreeMap<u64, Vec<VisitIds<'a>>>> {
    let (diag, proc, med) = (&tables.diagnoses.visits, &tables.procedures.visits, &tables.medications.visits);
    let mut all: Vec<u64> = diag.keys().chain(proc.keys()).chain(med.keys()).copied().collect();
    all.sort_unstable();
    all.dedup();
    let (mut no_med, mut no_diag, mut no_proc, mut no_admission, mut other_subject) = (0, 0, 0, 0, 0);
    let mut by_patient: BTreeMap<u64, Vec<VisitIds>> = BTreeMap::new();
    for hadm in &all {
        let (Some(m), Some(d), Some(p)) = (med.get(hadm), diag.get(hadm), proc.get(hadm)) else {
            match (med.contains_key(hadm), diag.contains_key(hadm)) {
                (false, _) => no_med += 1,
                (true, false) => no_diag += 1,
                _ => no_proc += 1,
            }
            continue;
        };
        let Some(adm) = admissions.by_hadm.get(hadm) else {
            no_admission += 1;
            continue;
        };
        if [m.subject, d.subject, p.subject].iter().any(|&s| s != adm.subject) {
            other_subject += 1;
            continue;
        }
        let visit =
            VisitIds { hadm: *hadm, row: adm.row, diagnoses: &d.codes, procedures: &p.codes, medications: &m.codes };
        by_patient.entry(adm.subject).or_default().push(visit);
    }
    report.funnel.push(
        "admissions with diagnoses, procedures and medications",
        "admissions",
        all.len(),
        &[
            ("no medications left", no_med),
            ("no diagnoses left", no_diag),
            ("no procedures left", no_proc),
            ("not in the admissions table", no_admission),
            ("subject_id differs from the admissions table", other_subject),
        ],
    )?;
    Ok(by_patient)
}

/// Renders the prompt: up to `history_visits` earlier visits, then the target visit without its
/// medications, and the profile.
fn prompt(
    cfg: &PreprocessConfig,
    tables: &CodeTables,
    templates: &PromptTemplates,
    visits: &[VisitIds],
    fields: &[&'static str],
    profile: &BTreeMap<String, String>,
) -> String {
    fn names<'a>(ids: &[u32], names: &'a [Option<String>], table: &'a Coded) -> Vec<&'a str> {
        ids.iter().map(|&i| display(names, &table.codes, i)).collect()
    }
    let to_prompt = |v: &VisitIds| PromptVisit {
        diagnoses: names(v.diagnoses, &tables.diagnosis_names, &tables.diagnoses),
        procedures: names(v.procedures, &tables.procedure_names, &tables.procedures),
        medications: names(v.medications, &tables.medication_names, &tables.medications),
    };
    let (target, earlier) = visits.split_last().expect("a patient has a visit");
    let first_shown = earlier.len().saturating_sub(cfg.prompt.history_visits);
    let history = earlier.iter().enumerate().skip(first_shown).map(|(i, v)| (i + 1, to_prompt(v))).collect();
    let mut current = to_prompt(target);
    current.medications.clear();
    let profile = fields.iter().map(|f| (*f, profile.get(*f).map_or(UNKNOWN, String::as_str))).collect();
    templates.render(&PromptInput { history, current, visit_num: earlier.len(), profile })
}
