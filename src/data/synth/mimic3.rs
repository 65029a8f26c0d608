//! The MIMIC-III v1.4 tables: upper-case names and headers, text fields quoted, one `.csv.gz` each.

use super::csv::Table;
use super::dates::MINUTES_PER_DAY;
use super::model::{NdcState, Patient, DIED, EMPTY_CODE, NEWBORN};
use super::products::{dose_multiple, format_number};
use super::profile::{
    admission_location, admission_type, died_location, discharge_location, profile_fields, NEWBORN_ADMISSION,
};
use super::sampling::mix;
use super::world::World;
use super::{Flavor, TableJob};
use anyhow::Result;
use std::path::Path;

pub const JOBS: &[TableJob] = &[
    ("ADMISSIONS.csv.gz", admissions),
    ("PATIENTS.csv.gz", patients),
    ("DIAGNOSES_ICD.csv.gz", diagnoses),
    ("PROCEDURES_ICD.csv.gz", procedures),
    ("PRESCRIPTIONS.csv.gz", prescriptions),
    ("D_ICD_DIAGNOSES.csv.gz", d_icd_diagnoses),
    ("D_ICD_PROCEDURES.csv.gz", d_icd_procedures),
];

const FLAVOR: Flavor = Flavor::Mimic3;

fn admissions(world: &World, patients: &[Patient], path: &Path, level: u32) -> Result<u64> {
    let columns = [
        "ROW_ID",
        "SUBJECT_ID",
        "HADM_ID",
        "ADMITTIME",
        "DISCHTIME",
        "DEATHTIME",
        "ADMISSION_TYPE",
        "ADMISSION_LOCATION",
        "DISCHARGE_LOCATION",
        "INSURANCE",
        "LANGUAGE",
        "RELIGION",
        "MARITAL_STATUS",
        "ETHNICITY",
        "EDREGTIME",
        "EDOUTTIME",
        "DIAGNOSIS",
        "HOSPITAL_EXPIRE_FLAG",
        "HAS_CHARTEVENTS_DATA",
    ];
    let mut t = Table::create(path, &columns, true, level)?;
    let fields = profile_fields(FLAVOR);
    let mut row = 0u64;
    for p in patients {
        for v in &p.visits {
            row += 1;
            let died = v.discharge_location == DIED;
            t.int(row).int(p.subject_id).int(v.hadm_id).datetime(v.admit).datetime(v.discharge);
            t.opt_datetime(died.then_some(v.discharge));
            t.text(if v.admission_type == NEWBORN {
                NEWBORN_ADMISSION
            } else {
                admission_type(FLAVOR).values[v.admission_type as usize].0
            });
            t.text(admission_location(FLAVOR)[v.admission_location as usize].0);
            t.text(if died {
                died_location(FLAVOR)
            } else {
                discharge_location(FLAVOR)[v.discharge_location as usize].0
            });
            for (field, value) in fields.iter().zip(&p.profile) {
                t.opt_text(value.map(|i| field.values[i as usize].0));
            }
            t.opt_datetime(v.ed.map(|e| e.0)).opt_datetime(v.ed.map(|e| e.1));
            t.text(&world.catalogue.conditions[v.primary as usize].label.to_uppercase());
            t.int(u64::from(died)).int(1u64).end()?;
        }
    }
    t.finish()
}

fn patients(_: &World, patients: &[Patient], path: &Path, level: u32) -> Result<u64> {
    let columns = ["ROW_ID", "SUBJECT_ID", "GENDER", "DOB", "DOD", "DOD_HOSP", "DOD_SSN", "EXPIRE_FLAG"];
    let mut t = Table::create(path, &columns, true, level)?;
    for (i, p) in patients.iter().enumerate() {
        let first = p.visits[0].admit;
        // Patients over 89 get a date of birth 300 years earlier, as MIMIC-III hides their age.
        let years = i64::from(p.age) + if p.age > 89 { 300 } else { 0 };
        // Newborns are born on their admission day; others some days before their birthday.
        let days_before =
            if p.age == 0 { 0 } else { (years as f64 * 365.2425) as i64 + (mix(p.subject_id, 1) % 365) as i64 };
        let dob = (first.div_euclid(MINUTES_PER_DAY) - days_before) * MINUTES_PER_DAY;
        let dod = p.death.map(|d| d.div_euclid(MINUTES_PER_DAY) * MINUTES_PER_DAY);
        let ssn = dod.filter(|_| !p.died_in_hospital || mix(p.subject_id, 2) % 10 < 7);
        t.int(i + 1).int(p.subject_id).text(if p.male { "M" } else { "F" }).datetime(dob);
        t.opt_datetime(dod).opt_datetime(dod.filter(|_| p.died_in_hospital)).opt_datetime(ssn);
        t.int(u64::from(p.death.is_some())).end()?;
    }
    t.finish()
}

fn diagnoses(world: &World, patients: &[Patient], path: &Path, level: u32) -> Result<u64> {
    let mut t = Table::create(path, &["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"], true, level)?;
    let mut row = 0u64;
    for p in patients {
        for v in &p.visits {
            for (seq, &code) in v.diagnoses.iter().enumerate() {
                row += 1;
                t.int(row).int(p.subject_id).int(v.hadm_id);
                if code == EMPTY_CODE {
                    t.empty().empty();
                } else {
                    t.int(seq + 1).text(&world.catalogue.diagnoses[code as usize].icd9);
                }
                t.end()?;
            }
        }
    }
    t.finish()
}

fn procedures(world: &World, patients: &[Patient], path: &Path, level: u32) -> Result<u64> {
    let mut t = Table::create(path, &["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"], true, level)?;
    let mut row = 0u64;
    for p in patients {
        for v in &p.visits {
            for (seq, &code) in v.procedures.iter().enumerate() {
                row += 1;
                t.int(row).int(p.subject_id).int(v.hadm_id).int(seq + 1);
                t.text(&world.catalogue.procedures[code as usize].icd9).end()?;
            }
        }
    }
    t.finish()
}

fn prescriptions(world: &World, patients: &[Patient], path: &Path, level: u32) -> Result<u64> {
    let columns = [
        "ROW_ID",
        "SUBJECT_ID",
        "HADM_ID",
        "ICUSTAY_ID",
        "STARTDATE",
        "ENDDATE",
        "DRUG_TYPE",
        "DRUG",
        "DRUG_NAME_POE",
        "DRUG_NAME_GENERIC",
        "FORMULARY_DRUG_CD",
        "GSN",
        "NDC",
        "PROD_STRENGTH",
        "DOSE_VAL_RX",
        "DOSE_UNIT_RX",
        "FORM_VAL_DISP",
        "FORM_UNIT_DISP",
        "ROUTE",
    ];
    let mut t = Table::create(path, &columns, true, level)?;
    let day = |m: i64| m.div_euclid(MINUTES_PER_DAY) * MINUTES_PER_DAY;
    let mut row = 0u64;
    for p in patients {
        for v in &p.visits {
            for rx in &v.prescriptions {
                row += 1;
                let product = &world.products[rx.product as usize];
                let base = product.drug_type == "BASE";
                t.int(row).int(p.subject_id).int(v.hadm_id).opt_int(rx.in_icu.then_some(v.icustay_id));
                t.datetime(day(rx.start)).datetime(day(rx.stop)).text(product.drug_type).text(&product.display);
                t.text(if base { "" } else { &product.display }).text(&product.generic).text(&product.formulary_code);
                let (gsn, ndc) = match rx.ndc {
                    NdcState::Kept => (product.gsn.as_str(), product.ndc.as_str()),
                    NdcState::Zero => (product.gsn.as_str(), "0"),
                    NdcState::Empty => ("", ""),
                };
                let multiple = dose_multiple(row);
                t.text(gsn).text(ndc).text(&product.strength);
                t.text(&format_number(product.dose_value * multiple)).text(product.dose_unit);
                t.text(&format_number(multiple)).text(product.form_unit).text(product.route).end()?;
            }
        }
    }
    t.finish()
}

fn d_icd(list: &[super::catalogue::Concept], path: &Path, level: u32) -> Result<u64> {
    let mut t = Table::create(path, &["ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE"], true, level)?;
    for (i, c) in list.iter().filter(|c| c.titled).enumerate() {
        t.int(i + 1).text(&c.icd9).text(&c.short_title).text(&c.long_title).end()?;
    }
    t.finish()
}

fn d_icd_diagnoses(world: &World, _: &[Patient], path: &Path, level: u32) -> Result<u64> {
    d_icd(&world.catalogue.diagnoses, path, level)
}

fn d_icd_procedures(world: &World, _: &[Patient], path: &Path, level: u32) -> Result<u64> {
    d_icd(&world.catalogue.procedures, path, level)
}
