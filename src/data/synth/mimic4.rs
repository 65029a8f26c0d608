//! The MIMIC-IV v2.2 `hosp` tables: lower-case headers, minimal quoting, ICD-9 and ICD-10 codes
//! mixed with an `icd_version` column, ages as `anchor_age` / `anchor_year`.

use super::catalogue::Concept;
use super::csv::Table;
use super::dates::MINUTES_PER_DAY;
use super::model::{NdcState, Patient, ANCHOR_YEAR_GROUPS, DIED, EMPTY_CODE};
use super::products::{dose_multiple, format_number};
use super::profile::{admission_location, admission_type, died_location, discharge_location, profile_fields};
use super::sampling::{mix, permute};
use super::world::World;
use super::{Flavor, TableJob};
use anyhow::Result;
use std::path::Path;

pub const JOBS: &[TableJob] = &[
    ("hosp/admissions.csv.gz", admissions),
    ("hosp/patients.csv.gz", patients),
    ("hosp/diagnoses_icd.csv.gz", diagnoses),
    ("hosp/procedures_icd.csv.gz", procedures),
    ("hosp/prescriptions.csv.gz", prescriptions),
    ("hosp/d_icd_diagnoses.csv.gz", d_icd_diagnoses),
    ("hosp/d_icd_procedures.csv.gz", d_icd_procedures),
];

const FLAVOR: Flavor = Flavor::Mimic4;

/// A provider id like MIMIC-IV's `P4T2QX`.
fn provider(key: u64) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut h = mix(key, 7);
    let mut id = String::from("P");
    for _ in 0..5 {
        id.push(char::from(ALPHABET[(h % 36) as usize]));
        h /= 36;
    }
    id
}

fn code_of(c: &Concept, icd10: bool) -> (&str, u64) {
    if icd10 {
        (&c.icd10, 10)
    } else {
        (&c.icd9, 9)
    }
}

fn admissions(_: &World, patients: &[Patient], path: &Path, level: u32) -> Result<u64> {
    let columns = [
        "subject_id",
        "hadm_id",
        "admittime",
        "dischtime",
        "deathtime",
        "admission_type",
        "admit_provider_id",
        "admission_location",
        "discharge_location",
        "insurance",
        "language",
        "marital_status",
        "race",
        "edregtime",
        "edouttime",
        "hospital_expire_flag",
    ];
    let mut t = Table::create(path, &columns, false, level)?;
    let fields = profile_fields(FLAVOR);
    for p in patients {
        for v in &p.visits {
            let died = v.discharge_location == DIED;
            t.int(p.subject_id).int(v.hadm_id).datetime(v.admit).datetime(v.discharge);
            t.opt_datetime(died.then_some(v.discharge));
            t.text(admission_type(FLAVOR).values[v.admission_type as usize].0).text(&provider(v.hadm_id));
            t.text(admission_location(FLAVOR)[v.admission_location as usize].0);
            t.text(if died {
                died_location(FLAVOR)
            } else {
                discharge_location(FLAVOR)[v.discharge_location as usize].0
            });
            for (field, value) in fields.iter().zip(&p.profile) {
                t.opt_text(value.map(|i| field.values[i as usize].0));
            }
            t.opt_datetime(v.ed.map(|e| e.0)).opt_datetime(v.ed.map(|e| e.1)).int(u64::from(died)).end()?;
        }
    }
    t.finish()
}

fn patients(_: &World, patients: &[Patient], path: &Path, level: u32) -> Result<u64> {
    let columns = ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"];
    let mut t = Table::create(path, &columns, false, level)?;
    for p in patients {
        // MIMIC-IV shows patients over 89 as 91.
        let age = if p.age > 89 { 91 } else { p.age };
        t.int(p.subject_id).text(if p.male { "M" } else { "F" }).int(age).int(p.anchor_year as u64);
        t.text(ANCHOR_YEAR_GROUPS[p.anchor_year_group].0);
        match p.death {
            Some(d) => t.date(d),
            None => t.empty(),
        };
        t.end()?;
    }
    t.finish()
}

fn diagnoses(world: &World, patients: &[Patient], path: &Path, level: u32) -> Result<u64> {
    let mut t = Table::create(path, &["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"], false, level)?;
    for p in patients {
        for v in &p.visits {
            for (seq, &code) in v.diagnoses.iter().enumerate() {
                t.int(p.subject_id).int(v.hadm_id).int(seq + 1);
                if code == EMPTY_CODE {
                    t.empty().empty();
                } else {
                    let (code, version) = code_of(&world.catalogue.diagnoses[code as usize], v.icd10);
                    t.text(code).int(version);
                }
                t.end()?;
            }
        }
    }
    t.finish()
}

fn procedures(world: &World, patients: &[Patient], path: &Path, level: u32) -> Result<u64> {
    let columns = ["subject_id", "hadm_id", "seq_num", "chartdate", "icd_code", "icd_version"];
    let mut t = Table::create(path, &columns, false, level)?;
    for p in patients {
        for v in &p.visits {
            let stay_days = (v.discharge - v.admit).div_euclid(MINUTES_PER_DAY) as u64 + 1;
            for (seq, &code) in v.procedures.iter().enumerate() {
                let day = (mix(v.hadm_id, seq as u64) % stay_days) as i64;
                let (code, version) = code_of(&world.catalogue.procedures[code as usize], v.icd10);
                t.int(p.subject_id).int(v.hadm_id).int(seq + 1).date(v.admit + day * MINUTES_PER_DAY);
                t.text(code).int(version).end()?;
            }
        }
    }
    t.finish()
}

fn prescriptions(world: &World, patients: &[Patient], path: &Path, level: u32) -> Result<u64> {
    let columns = [
        "subject_id",
        "hadm_id",
        "pharmacy_id",
        "poe_id",
        "poe_seq",
        "order_provider_id",
        "starttime",
        "stoptime",
        "drug_type",
        "drug",
        "formulary_drug_cd",
        "gsn",
        "ndc",
        "prod_strength",
        "form_rx",
        "dose_val_rx",
        "dose_unit_rx",
        "form_val_disp",
        "form_unit_disp",
        "doses_per_24_hrs",
        "route",
    ];
    let mut t = Table::create(path, &columns, false, level)?;
    let mut row = 0u64;
    for p in patients {
        let mut poe_seq = 0u64;
        for v in &p.visits {
            for rx in &v.prescriptions {
                row += 1;
                let product = &world.products[rx.product as usize];
                let ordered = product.drug_type != "BASE";
                t.int(p.subject_id).int(v.hadm_id).int(permute(row - 1, 100_000_000.max(row), 0x5048_4152));
                if ordered {
                    poe_seq += 1;
                    t.text(&format!("{}-{poe_seq}", p.subject_id))
                        .int(poe_seq)
                        .text(&provider(mix(v.hadm_id, poe_seq)));
                } else {
                    t.empty().empty().empty();
                }
                t.datetime(rx.start).datetime(rx.stop).text(product.drug_type).text(&product.display);
                t.text(&product.formulary_code);
                let (gsn, ndc) = match rx.ndc {
                    NdcState::Kept => (product.gsn.as_str(), product.ndc.as_str()),
                    NdcState::Zero => (product.gsn.as_str(), "0"),
                    NdcState::Empty => ("", ""),
                };
                let multiple = dose_multiple(row);
                t.text(gsn).text(ndc).text(&product.strength).text(product.form_rx);
                t.text(&format_number(product.dose_value * multiple)).text(product.dose_unit);
                t.text(&format_number(multiple)).text(product.form_unit);
                if ordered {
                    t.int(1 + mix(row, 4) % 4);
                } else {
                    t.empty();
                }
                t.text(product.route).end()?;
            }
        }
    }
    t.finish()
}

fn d_icd(list: &[Concept], path: &Path, level: u32) -> Result<u64> {
    let mut t = Table::create(path, &["icd_code", "icd_version", "long_title"], false, level)?;
    for icd10 in [false, true] {
        for c in list.iter().filter(|c| c.titled) {
            let (code, version) = code_of(c, icd10);
            t.text(code).int(version).text(&c.long_title).end()?;
        }
    }
    t.finish()
}

fn d_icd_diagnoses(world: &World, _: &[Patient], path: &Path, level: u32) -> Result<u64> {
    d_icd(&world.catalogue.diagnoses, path, level)
}

fn d_icd_procedures(world: &World, _: &[Patient], path: &Path, level: u32) -> Result<u64> {
    d_icd(&world.catalogue.procedures, path, level)
}
