//! The latent patient model: draws one patient (sex, age, latent conditions, profile, admissions
//! with their diagnoses, procedures and prescriptions) from the world. See the module docs of
//! `synth` for the story; every probability comes from the config.

use super::catalogue::{AgePreference, SexPreference};
use super::dates::{days_from_civil, year_of, MINUTES_PER_DAY};
use super::profile::{profile_fields, MEDICARE};
use super::sampling::{between, chance, geometric, permute, Weighted};
use super::world::{age_bucket, World};
use super::{Flavor, SynthConfig};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A diagnosis row whose code is empty (MIMIC-III has a few dozen).
pub const EMPTY_CODE: u32 = u32::MAX;
/// Admission type index meaning MIMIC-III's NEWBORN; discharge location index meaning death.
pub const NEWBORN: u16 = u16::MAX;
pub const DIED: u16 = u16::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdcState {
    Kept,
    /// Written as "0".
    Zero,
    /// Written empty.
    Empty,
}

#[derive(Debug, Clone)]
pub struct Prescription {
    pub product: u32,
    pub start: i64,
    pub stop: i64,
    pub ndc: NdcState,
    pub in_icu: bool,
}

#[derive(Debug, Clone)]
pub struct Visit {
    pub hadm_id: u64,
    pub icustay_id: u64,
    pub admit: i64,
    pub discharge: i64,
    /// Emergency-department registration and exit, for some emergency admissions.
    pub ed: Option<(i64, i64)>,
    pub admission_type: u16,
    pub admission_location: u16,
    pub discharge_location: u16,
    /// MIMIC-IV: coded in ICD-10 (admissions after October 2015 in real time).
    pub icd10: bool,
    pub primary: u16,
    pub diagnoses: Vec<u32>,
    pub procedures: Vec<u32>,
    pub prescriptions: Vec<Prescription>,
}

#[derive(Debug, Clone)]
pub struct Patient {
    pub subject_id: u64,
    pub male: bool,
    /// Age at the first admission (0 for newborns; 90+ are shifted as MIMIC does when written).
    pub age: u32,
    /// One value index per profile field of the flavour, `None` when left empty.
    pub profile: Vec<Option<u16>>,
    /// Chronological.
    pub visits: Vec<Visit>,
    pub death: Option<i64>,
    pub died_in_hospital: bool,
    /// MIMIC-IV: the anchor year (shifted) and the index of the real-year group it stands for.
    pub anchor_year: i64,
    pub anchor_year_group: usize,
}

/// MIMIC-IV's anchor year groups; the first year of each.
pub const ANCHOR_YEAR_GROUPS: [(&str, i64); 4] =
    [("2008 - 2010", 2008), ("2011 - 2013", 2011), ("2014 - 2016", 2014), ("2017 - 2019", 2017)];

fn age_factor(pref: AgePreference, bucket: usize) -> f64 {
    match pref {
        AgePreference::Any => 1.0,
        AgePreference::Newborn => 0.0,
        AgePreference::Young => [3.0, 1.0, 0.3][bucket],
        AgePreference::Mid => [1.0, 3.0, 1.0][bucket],
        AgePreference::Old => [0.3, 1.0, 3.0][bucket],
    }
}

fn sex_factor(pref: SexPreference, male: bool) -> f64 {
    match (pref, male) {
        (SexPreference::Any, _) => 1.0,
        (SexPreference::Male, true) | (SexPreference::Female, false) => 1.8,
        (SexPreference::Male, false) | (SexPreference::Female, true) => 0.55,
        (SexPreference::FemaleOnly, male) => f64::from(u8::from(!male)),
    }
}

/// Adult age at first admission: 18-44, 45-64, 65-89, 90+ with MIMIC-like shares.
fn draw_age(rng: &mut ChaCha8Rng) -> u32 {
    match Weighted::new([0.2, 0.33, 0.42, 0.05]).sample(rng) {
        0 => rng.random_range(18..45),
        1 => rng.random_range(45..65),
        2 => rng.random_range(65..90),
        _ => rng.random_range(90..100),
    }
}

/// The patient's latent conditions, without replacement, weighted by prevalence, age and sex (a
/// newborn's first is the newborn condition).
fn draw_conditions(
    world: &World,
    cfg: &SynthConfig,
    rng: &mut ChaCha8Rng,
    newborn: bool,
    bucket: usize,
    male: bool,
) -> Vec<u16> {
    let cat = &world.catalogue;
    let mut weights: Vec<f64> = cat
        .conditions
        .iter()
        .map(|c| match c.age {
            AgePreference::Newborn => 0.0,
            pref => c.weight * age_factor(pref, bucket) * sex_factor(c.sex, male),
        })
        .collect();
    let mut conditions = Vec::new();
    if newborn {
        conditions
            .push(cat.conditions.iter().position(|c| c.age == AgePreference::Newborn).expect("a newborn condition")
                as u16);
    }
    let wanted = if newborn { 2 } else { 1 + Weighted::new(cfg.latent.conditions_weights.iter().copied()).sample(rng) };
    while conditions.len() < wanted {
        let c = Weighted::new(weights.iter().copied()).sample(rng);
        weights[c] = 0.0;
        conditions.push(c as u16);
    }
    conditions
}

/// The profile: per field the main condition's leaning value with probability `profile_signal`,
/// else a draw from the population; some left missing.
fn draw_profile(
    world: &World,
    cfg: &SynthConfig,
    rng: &mut ChaCha8Rng,
    main: usize,
    age: u32,
    newborn: bool,
) -> Vec<Option<u16>> {
    let mut profile = Vec::new();
    for (f, field) in profile_fields(world.flavor).iter().enumerate() {
        let value = if f == 0 && age >= 65 && chance(rng, 0.8) {
            MEDICARE
        } else if chance(rng, cfg.latent.profile_signal) {
            world.profile_preference[main][f]
        } else {
            world.profile_marginal[f].sample(rng) as u16
        };
        let missing = field.missing + if newborn && f > 0 { 0.5 } else { 0.0 };
        profile.push((!chance(rng, missing)).then_some(value));
    }
    profile
}

/// The chronic regimen: fixed per patient, so it recurs across admissions.
fn draw_regimen(
    world: &World,
    cfg: &SynthConfig,
    rng: &mut ChaCha8Rng,
    conditions: &[u16],
    bucket: usize,
    male: bool,
) -> Vec<u32> {
    let mut regimen = Vec::new();
    for &c in conditions {
        for &d in &world.catalogue.conditions[c as usize].chronic {
            if chance(rng, cfg.drugs.chronic_uptake * world.drug_modifier[d as usize][bucket][male as usize]) {
                regimen.push(d);
            }
        }
    }
    regimen
}

/// Draws patient number `index` (0-based) from its own stream.
pub fn draw_patient(world: &World, cfg: &SynthConfig, index: usize, rng: &mut ChaCha8Rng) -> Patient {
    let newborn = world.flavor == Flavor::Mimic3 && chance(rng, cfg.visits.newborn_share);
    let male = chance(rng, if newborn { 0.52 } else { 0.56 });
    let age = if newborn { 0 } else { draw_age(rng) };
    let bucket = age_bucket(age);

    let conditions = draw_conditions(world, cfg, rng, newborn, bucket, male);
    let main = conditions[0] as usize;

    let profile = draw_profile(world, cfg, rng, main, age, newborn);

    let comorbidities: Vec<u32> =
        (0..cfg.latent.comorbidities).map(|_| world.general_diagnosis(world.comorbidity.sample(rng))).collect();
    let regimen = draw_regimen(world, cfg, rng, &conditions, bucket, male);

    let n_visits = if chance(rng, cfg.visits.single_visit_share) {
        1
    } else {
        (2 + geometric(rng, cfg.visits.extra_visits_mean)).min(cfg.visits.max_visits.max(2))
    };
    let anchor_year_group = rng.random_range(0..ANCHOR_YEAR_GROUPS.len());
    let anchor_offset = rng.random_range(0..3);
    let first_year = match world.flavor {
        Flavor::Mimic3 => rng.random_range(2100..2200),
        Flavor::Mimic4 => rng.random_range(2110..2187),
    };
    let mut admit = (days_from_civil(first_year, 1, 1) + rng.random_range(0..365)) * MINUTES_PER_DAY
        + rng.random_range(0..MINUTES_PER_DAY);
    let mut visits = Vec::new();
    for v in 0..n_visits {
        if v > 0 {
            let gap_days = 2.0 - 250.0 * (1.0 - rng.random::<f64>()).ln();
            admit = visits.last().map_or(admit, |p: &Visit| p.discharge) + (gap_days * MINUTES_PER_DAY as f64) as i64;
        }
        let primary = if v == 0 || conditions.len() == 1 {
            main
        } else {
            // Later admissions: any condition but the newborn one, the main one twice as likely.
            let start = usize::from(newborn);
            conditions
                [start + Weighted::new((start..conditions.len()).map(|k| if k == 0 { 2.0 } else { 1.0 })).sample(rng)]
                as usize
        };
        let real_year = ANCHOR_YEAR_GROUPS[anchor_year_group].1 + anchor_offset + (year_of(admit) - first_year);
        let icd10 = world.flavor == Flavor::Mimic4 && (real_year >= 2016 || (real_year == 2015 && chance(rng, 0.25)));
        visits.push(draw_visit(
            world,
            cfg,
            rng,
            VisitContext {
                newborn_visit: newborn && v == 0,
                conditions: &conditions,
                primary,
                comorbidities: &comorbidities,
                regimen: &regimen,
                bucket,
                male,
                admit,
                icd10,
            },
        ));
    }

    let death_risk = cfg.visits.death_in_hospital * [0.5, 1.0, 1.5][bucket];
    let died_in_hospital = !newborn && chance(rng, death_risk);
    let last = visits.last_mut().expect("at least one visit");
    let death = if died_in_hospital {
        last.discharge_location = DIED;
        Some(last.discharge)
    } else if chance(rng, 0.2 * (bucket as f64 + 0.5)) {
        Some(last.discharge + rng.random_range(30..3000) * MINUTES_PER_DAY)
    } else {
        None
    };
    Patient {
        subject_id: 0,
        male,
        age,
        profile,
        visits,
        death,
        died_in_hospital,
        anchor_year: first_year,
        anchor_year_group,
    }
    .with_subject_id(world.flavor, index, rng)
}

impl Patient {
    /// Increasing, unique, gapped ids: MIMIC-III uses 2..99999, MIMIC-IV 10000000..19999999.
    fn with_subject_id(mut self, flavor: Flavor, index: usize, rng: &mut ChaCha8Rng) -> Self {
        let i = index as u64;
        self.subject_id = match flavor {
            Flavor::Mimic3 => 10 + 2 * i + rng.random_range(0..2),
            Flavor::Mimic4 => 10_000_000 + 200 * i + rng.random_range(0..200),
        };
        self
    }
}

struct VisitContext<'a> {
    newborn_visit: bool,
    conditions: &'a [u16],
    primary: usize,
    comorbidities: &'a [u32],
    regimen: &'a [u32],
    bucket: usize,
    male: bool,
    admit: i64,
    icd10: bool,
}

/// Pushes codes from `draw` until `n` new distinct ones are in `out` (giving up after `3n` draws).
fn push_distinct(out: &mut Vec<u32>, n: u32, rng: &mut ChaCha8Rng, draw: impl Fn(&mut ChaCha8Rng) -> u32) {
    let mut added = 0;
    for _ in 0..3 * n {
        if added == n {
            break;
        }
        let code = draw(rng);
        if !out.contains(&code) {
            out.push(code);
            added += 1;
        }
    }
}

fn draw_visit(world: &World, cfg: &SynthConfig, rng: &mut ChaCha8Rng, ctx: VisitContext) -> Visit {
    let los_days =
        if ctx.newborn_visit { rng.random_range(2.0..4.0) } else { (1.5 + 0.7 * normal(rng)).exp().clamp(1.0, 60.0) };
    let discharge = ctx.admit + (los_days * MINUTES_PER_DAY as f64) as i64;

    let diagnoses = draw_diagnoses(world, cfg, rng, &ctx);
    let procedures = draw_procedures(world, cfg, rng, &ctx);
    let drugs = draw_drugs(world, cfg, rng, &ctx, &diagnoses);
    let prescriptions = draw_prescriptions(world, cfg, rng, (ctx.admit, discharge), &drugs);

    let admission_type = if ctx.newborn_visit {
        NEWBORN
    } else if chance(rng, cfg.latent.profile_signal) {
        world.admission_preference[ctx.primary]
    } else {
        world.admission_marginal.sample(rng) as u16
    };
    let ed = (admission_type == 0 && chance(rng, 0.7))
        .then(|| (ctx.admit - rng.random_range(60..600), ctx.admit + rng.random_range(0..90)));
    Visit {
        hadm_id: 0,
        icustay_id: 0,
        admit: ctx.admit,
        discharge,
        ed,
        admission_type,
        admission_location: world.admission_location.sample(rng) as u16,
        discharge_location: world.discharge_location.sample(rng) as u16,
        icd10: ctx.icd10,
        primary: ctx.primary as u16,
        diagnoses,
        procedures,
        prescriptions,
    }
}

/// The visit's diagnoses: the primary condition's codes first (SEQ_NUM 1 is the principal
/// diagnosis), then the other conditions', the patient's recurring comorbidities and Zipf noise.
fn draw_diagnoses(world: &World, cfg: &SynthConfig, rng: &mut ChaCha8Rng, ctx: &VisitContext) -> Vec<u32> {
    let cat = &world.catalogue;
    let mut diagnoses = Vec::new();
    let cond_dx =
        |c: usize| move |rng: &mut ChaCha8Rng| cat.conditions[c].diagnoses[world.condition_diagnoses[c].sample(rng)].0;
    push_distinct(&mut diagnoses, between(rng, cfg.diagnoses.primary), rng, cond_dx(ctx.primary));
    let primary_count = diagnoses.len();
    for &c in ctx.conditions.iter().filter(|&&c| c as usize != ctx.primary) {
        push_distinct(&mut diagnoses, between(rng, cfg.diagnoses.secondary), rng, cond_dx(c as usize));
    }
    for &code in ctx.comorbidities {
        if chance(rng, cfg.latent.comorbidity_recurrence) && !diagnoses.contains(&code) {
            diagnoses.push(code);
        }
    }
    let (noise_codes, noise) = &world.diagnosis_noise;
    push_distinct(&mut diagnoses, between(rng, cfg.diagnoses.noise), rng, |rng| noise_codes[noise.sample(rng)]);
    use rand::seq::SliceRandom;
    diagnoses[primary_count..].shuffle(rng);
    if chance(rng, cfg.diagnoses.empty_code_share * diagnoses.len() as f64) {
        diagnoses.push(EMPTY_CODE);
    }
    diagnoses
}

/// The visit's procedures: a few of the primary condition's, ward procedures by rank, Zipf noise.
fn draw_procedures(world: &World, cfg: &SynthConfig, rng: &mut ChaCha8Rng, ctx: &VisitContext) -> Vec<u32> {
    let cat = &world.catalogue;
    let primary = &cat.conditions[ctx.primary];
    let mut procedures = Vec::new();
    if !chance(rng, cfg.procedures.none_share) {
        if !primary.procedures.is_empty() {
            let draw = |rng: &mut ChaCha8Rng| primary.procedures[world.condition_procedures[ctx.primary].sample(rng)].0;
            push_distinct(&mut procedures, between(rng, cfg.procedures.primary), rng, draw);
        }
        for (rank, &(code, _)) in
            cat.general.procedures.iter().take_while(|p| (p.0 as usize) < cat.real_procedures).enumerate()
        {
            if chance(rng, cfg.procedures.ward_rate / (rank + 1) as f64) && !procedures.contains(&code) {
                procedures.push(code);
            }
        }
        let (codes, noise) = &world.procedure_noise;
        let extra = geometric(rng, cfg.procedures.noise_mean);
        push_distinct(&mut procedures, extra, rng, |rng| codes[noise.sample(rng)]);
    }
    procedures
}

/// The visit's drugs: ward drugs, the chronic regimen, acute drugs of coded diagnoses, noise; every
/// probability scaled by the drug's age/sex leaning.
fn draw_drugs(
    world: &World,
    cfg: &SynthConfig,
    rng: &mut ChaCha8Rng,
    ctx: &VisitContext,
    diagnoses: &[u32],
) -> Vec<u32> {
    let cat = &world.catalogue;
    let modifier = |d: u32| world.drug_modifier[d as usize][ctx.bucket][ctx.male as usize];
    let mut drugs: Vec<u32> = Vec::new();
    let give = |d: u32, p: f64, rng: &mut ChaCha8Rng, drugs: &mut Vec<u32>| {
        if chance(rng, p * modifier(d)) && !drugs.contains(&d) {
            drugs.push(d);
        }
    };
    if !chance(rng, cfg.drugs.none_share) {
        for &(d, rate) in &cat.background {
            give(d, rate, rng, &mut drugs);
        }
        for &d in ctx.regimen {
            give(d, cfg.drugs.chronic_persistence, rng, &mut drugs);
        }
        for &c in ctx.conditions {
            let cond = &cat.conditions[c as usize];
            for (j, &d) in cond.acute.iter().enumerate() {
                let linked = cond.diagnoses[j % cond.real_diagnoses].0;
                let p = if diagnoses.contains(&linked) {
                    cfg.drugs.acute_with_diagnosis
                } else if c as usize == ctx.primary {
                    cfg.drugs.acute_primary
                } else {
                    cfg.drugs.acute_other
                };
                give(d, p, rng, &mut drugs);
            }
        }
        let (codes, noise) = &world.drug_noise;
        for _ in 0..geometric(rng, cfg.drugs.noise_mean) {
            give(codes[noise.sample(rng)], 1.0, rng, &mut drugs);
        }
    }
    drugs
}

/// The prescription rows of `drugs` within the stay, sorted by start.
fn draw_prescriptions(
    world: &World,
    cfg: &SynthConfig,
    rng: &mut ChaCha8Rng,
    (admit, discharge): (i64, i64),
    drugs: &[u32],
) -> Vec<Prescription> {
    let admit_day = admit.div_euclid(MINUTES_PER_DAY);
    let stay_days = discharge.div_euclid(MINUTES_PER_DAY) - admit_day;
    let mut prescriptions = Vec::new();
    for &d in drugs {
        let rows = (1 + geometric(rng, cfg.drugs.extra_rows_mean)).min(cfg.drugs.max_rows_per_drug);
        for _ in 0..rows {
            let product = world.products_of[d as usize][world.product_choice[d as usize].sample(rng)];
            let start =
                (admit_day + rng.random_range(0..=stay_days)) * MINUTES_PER_DAY + rng.random_range(0..MINUTES_PER_DAY);
            let stop = start + rng.random_range(1..=5) * MINUTES_PER_DAY;
            let ndc = if chance(rng, cfg.drugs.ndc_zero_share) {
                NdcState::Zero
            } else if chance(rng, cfg.drugs.ndc_empty_share) {
                NdcState::Empty
            } else {
                NdcState::Kept
            };
            prescriptions.push(Prescription {
                product,
                start,
                stop,
                ndc,
                in_icu: !chance(rng, cfg.drugs.icustay_missing_share),
            });
        }
    }
    prescriptions.sort_by_key(|p| p.start);
    prescriptions
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Gives every admission its HADM_ID and ICU stay id: unique, drawn without order from MIMIC's
/// ranges (III: 100000-199999, IV: 20000000-29999999, widened when the cohort needs more), so that
/// id order and time order disagree as they do in MIMIC.
pub fn assign_admission_ids(patients: &mut [Patient], flavor: Flavor, seed: u64) {
    let total: u64 = patients.iter().map(|p| p.visits.len() as u64).sum();
    let (base, span) = match flavor {
        Flavor::Mimic3 => (100_000, 100_000),
        Flavor::Mimic4 => (20_000_000, 10_000_000),
    };
    let range = total.max(span);
    for (g, visit) in patients.iter_mut().flat_map(|p| p.visits.iter_mut()).enumerate() {
        visit.hadm_id = base + permute(g as u64, range, seed ^ 0x4841_444d);
        visit.icustay_id = 2 * base + permute(g as u64, range, seed ^ 0x4943_5553);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth::sampling::stream;

    /// Drug choice shifts with age: relative to the drugs the world makes lean to young patients,
    /// old patients get the old-leaning drugs far more often than young patients do (a ratio of
    /// ratios, so overall prescription volume per age group cancels out).
    #[test]
    fn age_shifts_drug_choice() {
        let cfg = SynthConfig::default_config();
        let world = World::build(&cfg).unwrap();
        let leaning: Vec<i8> =
            world.drug_modifier.iter().map(|m| (m[2][0] > m[0][0]) as i8 - (m[2][0] < m[0][0]) as i8).collect();
        // Per age bucket: rows of [young-leaning, old-leaning] drugs.
        let mut rows = [[0usize; 2]; 3];
        for i in 0..1500 {
            let p = draw_patient(&world, &cfg, i, &mut stream(cfg.seed, 1 + i as u64));
            for rx in p.visits.iter().flat_map(|v| &v.prescriptions) {
                match leaning[world.products[rx.product as usize].drug as usize] {
                    -1 => rows[age_bucket(p.age)][0] += 1,
                    1 => rows[age_bucket(p.age)][1] += 1,
                    _ => {}
                }
            }
        }
        let old_over_young = |[young, old]: [usize; 2]| old as f64 / young as f64;
        let (in_young, in_old) = (old_over_young(rows[0]), old_over_young(rows[2]));
        // The leanings give (1.8 / 0.5)^2 = 13x between the buckets; drugs given regardless of age dilute it.
        assert!(in_old > 3.0 * in_young, "old/young-leaning row ratio: young patients {in_young:.2}, old {in_old:.2}");
    }
}
