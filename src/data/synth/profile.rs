//! Admission-level value lists of each flavour, with population frequencies close to the real
//! tables: the five LEADER profile fields, admission type, admission and discharge locations.

use super::Flavor;

/// One categorical column (in the flavour's column order): values with population weights and the share of rows left empty.
#[derive(Debug)]
pub struct Field {
    pub values: &'static [(&'static str, f64)],
    pub missing: f64,
}

const INSURANCE_III: &[(&str, f64)] =
    &[("Medicare", 0.48), ("Private", 0.38), ("Medicaid", 0.10), ("Government", 0.03), ("Self Pay", 0.01)];
const LANGUAGE_III: &[(&str, f64)] = &[
    ("ENGL", 0.82),
    ("SPAN", 0.05),
    ("RUSS", 0.02),
    ("PTUN", 0.02),
    ("CANT", 0.015),
    ("MAND", 0.01),
    ("PORT", 0.01),
    ("HAIT", 0.01),
    ("VIET", 0.008),
    ("ITAL", 0.008),
    ("CAPE", 0.006),
    ("GREE", 0.005),
    ("POLI", 0.004),
    ("ARAB", 0.004),
];
const RELIGION_III: &[(&str, f64)] = &[
    ("CATHOLIC", 0.35),
    ("NOT SPECIFIED", 0.19),
    ("UNOBTAINABLE", 0.14),
    ("PROTESTANT QUAKER", 0.13),
    ("JEWISH", 0.09),
    ("OTHER", 0.04),
    ("EPISCOPALIAN", 0.012),
    ("GREEK ORTHODOX", 0.008),
    ("CHRISTIAN SCIENTIST", 0.007),
    ("BUDDHIST", 0.005),
    ("MUSLIM", 0.004),
    ("JEHOVAH'S WITNESS", 0.003),
    ("UNITARIAN-UNIVERSALIST", 0.003),
    ("HINDU", 0.002),
    ("7TH DAY ADVENTIST", 0.002),
];
const MARITAL_III: &[(&str, f64)] = &[
    ("MARRIED", 0.46),
    ("SINGLE", 0.28),
    ("WIDOWED", 0.14),
    ("DIVORCED", 0.07),
    ("SEPARATED", 0.012),
    ("UNKNOWN (DEFAULT)", 0.007),
    ("LIFE PARTNER", 0.001),
];
const ETHNICITY_III: &[(&str, f64)] = &[
    ("WHITE", 0.70),
    ("BLACK/AFRICAN AMERICAN", 0.09),
    ("UNKNOWN/NOT SPECIFIED", 0.08),
    ("HISPANIC OR LATINO", 0.03),
    ("OTHER", 0.03),
    ("ASIAN", 0.02),
    ("UNABLE TO OBTAIN", 0.015),
    ("PATIENT DECLINED TO ANSWER", 0.01),
    ("ASIAN - CHINESE", 0.005),
    ("HISPANIC/LATINO - PUERTO RICAN", 0.004),
    ("BLACK/CAPE VERDEAN", 0.003),
    ("WHITE - RUSSIAN", 0.003),
    ("MULTI RACE ETHNICITY", 0.002),
    ("AMERICAN INDIAN/ALASKA NATIVE", 0.001),
];
const INSURANCE_IV: &[(&str, f64)] = &[("Medicare", 0.42), ("Other", 0.47), ("Medicaid", 0.11)];
const LANGUAGE_IV: &[(&str, f64)] = &[("ENGLISH", 0.9), ("?", 0.1)];
const MARITAL_IV: &[(&str, f64)] = &[("MARRIED", 0.43), ("SINGLE", 0.36), ("WIDOWED", 0.12), ("DIVORCED", 0.07)];
const RACE_IV: &[(&str, f64)] = &[
    ("WHITE", 0.65),
    ("BLACK/AFRICAN AMERICAN", 0.14),
    ("OTHER", 0.04),
    ("UNKNOWN", 0.04),
    ("WHITE - OTHER EUROPEAN", 0.02),
    ("HISPANIC/LATINO - PUERTO RICAN", 0.02),
    ("ASIAN", 0.015),
    ("ASIAN - CHINESE", 0.012),
    ("HISPANIC OR LATINO", 0.01),
    ("UNABLE TO OBTAIN", 0.008),
    ("WHITE - RUSSIAN", 0.007),
    ("BLACK/CAPE VERDEAN", 0.007),
    ("HISPANIC/LATINO - DOMINICAN", 0.007),
    ("PATIENT DECLINED TO ANSWER", 0.004),
    ("ASIAN - SOUTH EAST ASIAN", 0.003),
];
/// MIMIC-III admission types; NEWBORN is reserved for newborns.
pub const NEWBORN_ADMISSION: &str = "NEWBORN";
const ADMISSION_TYPE_III: &[(&str, f64)] = &[("EMERGENCY", 0.80), ("ELECTIVE", 0.16), ("URGENT", 0.04)];
const ADMISSION_TYPE_IV: &[(&str, f64)] = &[
    ("EW EMER.", 0.35),
    ("EU OBSERVATION", 0.2),
    ("OBSERVATION ADMIT", 0.12),
    ("URGENT", 0.1),
    ("SURGICAL SAME DAY ADMISSION", 0.08),
    ("DIRECT EMER.", 0.05),
    ("DIRECT OBSERVATION", 0.04),
    ("ELECTIVE", 0.04),
    ("AMBULATORY OBSERVATION", 0.02),
];
const ADMISSION_LOCATION_III: &[(&str, f64)] = &[
    ("EMERGENCY ROOM ADMIT", 0.4),
    ("PHYS REFERRAL/NORMAL DELI", 0.26),
    ("CLINIC REFERRAL/PREMATURE", 0.2),
    ("TRANSFER FROM HOSP/EXTRAM", 0.13),
    ("TRANSFER FROM SKILLED NUR", 0.01),
];
const ADMISSION_LOCATION_IV: &[(&str, f64)] = &[
    ("EMERGENCY ROOM", 0.45),
    ("PHYSICIAN REFERRAL", 0.2),
    ("TRANSFER FROM HOSPITAL", 0.1),
    ("WALK-IN/SELF REFERRAL", 0.1),
    ("CLINIC REFERRAL", 0.05),
    ("PROCEDURE SITE", 0.04),
    ("PACU", 0.03),
    ("TRANSFER FROM SKILLED NURSING FACILITY", 0.02),
    ("INFORMATION NOT AVAILABLE", 0.01),
];
const DISCHARGE_LOCATION_III: &[(&str, f64)] = &[
    ("HOME", 0.32),
    ("HOME HEALTH CARE", 0.24),
    ("SNF", 0.13),
    ("REHAB/DISTINCT PART HOSP", 0.11),
    ("LONG TERM CARE HOSPITAL", 0.04),
    ("DISC-TCP ACUTE CARE HOSP", 0.02),
    ("SHORT TERM HOSPITAL", 0.02),
    ("HOSPICE-HOME", 0.01),
    ("LEFT AGAINST MEDICAL ADVI", 0.01),
];
const DISCHARGE_LOCATION_IV: &[(&str, f64)] = &[
    ("HOME", 0.4),
    ("HOME HEALTH CARE", 0.22),
    ("SKILLED NURSING FACILITY", 0.1),
    ("REHAB", 0.05),
    ("CHRONIC/LONG TERM ACUTE CARE", 0.02),
    ("HOSPICE", 0.01),
    ("AGAINST ADVICE", 0.01),
    ("ACUTE HOSPITAL", 0.01),
    ("PSYCH FACILITY", 0.01),
];
/// Discharge location of a patient who dies in hospital.
pub fn died_location(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Mimic3 => "DEAD/EXPIRED",
        Flavor::Mimic4 => "DIED",
    }
}

/// The patient-level profile fields in the order LEADER uses them (reference §1.9), minus MIMIC-IV's
/// admission type, which is an admission-level column (see [`admission_type`]).
pub fn profile_fields(flavor: Flavor) -> &'static [Field] {
    const III: &[Field] = &[
        Field { values: INSURANCE_III, missing: 0.0 },
        Field { values: LANGUAGE_III, missing: 0.35 },
        Field { values: RELIGION_III, missing: 0.01 },
        Field { values: MARITAL_III, missing: 0.10 },
        Field { values: ETHNICITY_III, missing: 0.0 },
    ];
    const IV: &[Field] = &[
        Field { values: INSURANCE_IV, missing: 0.0 },
        Field { values: LANGUAGE_IV, missing: 0.0 },
        Field { values: MARITAL_IV, missing: 0.05 },
        Field { values: RACE_IV, missing: 0.0 },
    ];
    match flavor {
        Flavor::Mimic3 => III,
        Flavor::Mimic4 => IV,
    }
}

pub fn admission_type(flavor: Flavor) -> &'static Field {
    const III: Field = Field { values: ADMISSION_TYPE_III, missing: 0.0 };
    const IV: Field = Field { values: ADMISSION_TYPE_IV, missing: 0.0 };
    match flavor {
        Flavor::Mimic3 => &III,
        Flavor::Mimic4 => &IV,
    }
}

pub fn admission_location(flavor: Flavor) -> &'static [(&'static str, f64)] {
    match flavor {
        Flavor::Mimic3 => ADMISSION_LOCATION_III,
        Flavor::Mimic4 => ADMISSION_LOCATION_IV,
    }
}

pub fn discharge_location(flavor: Flavor) -> &'static [(&'static str, f64)] {
    match flavor {
        Flavor::Mimic3 => DISCHARGE_LOCATION_III,
        Flavor::Mimic4 => DISCHARGE_LOCATION_IV,
    }
}

/// Index of the Medicare value in the insurance field (older patients mostly have it).
pub const MEDICARE: u16 = 0;
