//! `leader synth`: a synthetic cohort in the exact file layouts of MIMIC-III v1.4 or MIMIC-IV v2.2
//! (`hosp/`), plus the auxiliary mapping files, so every later command runs on a fresh machine with
//! no credentials. The reference has no such thing (it needs credentialed MIMIC); everything here
//! is ours.
//!
//! # Output
//!
//! * MIMIC-III flavour: `ADMISSIONS, PATIENTS, DIAGNOSES_ICD, PROCEDURES_ICD, PRESCRIPTIONS,
//!   D_ICD_DIAGNOSES, D_ICD_PROCEDURES` as `.csv.gz`, upper-case quoted headers and quoted text
//!   fields as in the full MIMIC-III release.
//! * MIMIC-IV flavour: `hosp/{admissions, patients, diagnoses_icd, procedures_icd, prescriptions,
//!   d_icd_diagnoses, d_icd_procedures}.csv.gz`, lower-case headers, ICD-9 and ICD-10 codes mixed
//!   with `icd_version` (ICD-10 for admissions whose real year, from `anchor_year_group`, is after
//!   2015), `anchor_age`/`anchor_year`, `race`.
//! * `aux/drug_map.csv` (`ndc,atc`, ATC level 5), `aux/atc_names.csv` (`atc_code,atc_name`, all five
//!   levels), `aux/ddi_pairs.csv` (`atc3_a,atc3_b`, sorted pairs of 4-character codes).
//! * `knowledge/{conditions,drugs,interactions}.txt`: textbook-style text about this world — each
//!   condition's diagnoses and procedures by the names the prompts use, the drug classes that treat
//!   it (chronic or acute) with example substances, the ward drugs, the interacting class pairs —
//!   and never a patient record: the literature a pretrained model would have read, for
//!   `leader pretrain --corpus` (see `knowledge.rs`).
//! * `config.toml`: the effective config.
//!
//! # Codes
//!
//! The catalogue (`atc.txt`, `conditions.txt`) holds about 210 real ICD-9-CM diagnoses with their
//! MIMIC-III short and long titles and an ICD-10-CM twin, 80 real procedures (ICD-9-CM vol. 3 and
//! ICD-10-PCS) and 223 real ATC substances in 111 level-3 groups with WHO names of every level.
//! Each real code grows generated siblings in its own category (`tail_per_code`, e.g. 4280 → 42883
//! "CHF NOS chr"), and each substance a "combinations" code (N02BE01 → N02BE51), giving a few
//! thousand diagnoses, a few hundred procedures and about 440 ATC-5 codes. As in real ICD-9 some
//! diagnosis and procedure strings coincide (3961, 9671, 311). Every substance has one to three
//! products (NDC, GSN, strength, form, route); some NDCs are missing from `drug_map.csv`.
//!
//! # Generative model
//!
//! Per patient (own random stream, so the result does not depend on threads):
//!
//! 1. **Sex and age** at first admission (18-44: 20%, 45-64: 33%, 65-89: 42%, 90+: 5%); in the
//!    MIMIC-III flavour a share of patients are newborns (age 0, condition "Newborn", admission type
//!    NEWBORN, mostly empty profile fields).
//! 2. **Latent conditions**: one to three of the ~43 conditions of `conditions.txt` (heart failure,
//!    sepsis, COPD, ...), drawn without replacement by prevalence × age preference (×3 in the
//!    preferred age bucket, ×0.3 in the opposite one) × sex preference (×1.8 / ×0.55; delivery is
//!    female-only). The first is the *main* condition.
//! 3. **Profile** (the five LEADER fields of the flavour): each field takes the main condition's
//!    leaning value (one of the six most common, drawn per world) with probability `profile_signal`,
//!    else a draw from population frequencies; patients over 65 mostly have Medicare; some fields
//!    are left empty (LANGUAGE in about a third of MIMIC-III rows, as in the real table). So the
//!    profile carries a weak signal about the conditions even for single-visit patients.
//! 4. **Chronic regimen**: each chronic drug of each condition is taken with probability
//!    `chronic_uptake` × the drug's age/sex leaning (per world, each drug leans to young or old
//!    patients ×1.8/×0.5 or to neither, and to one sex ×1.6/×0.6 or neither). The regimen is fixed
//!    for the patient, so it **persists across admissions**.
//! 5. **Admissions**: one with probability `single_visit_share`, else 2 + geometric(`extra_visits_mean`);
//!    gaps of days to years, lengths of stay log-normal around 4.5 days. HADM_IDs are a keyed
//!    permutation, so id order and time order disagree as in MIMIC.
//! 6. Per admission a **primary condition** (the main one first, later any of the patient's), then
//!    * diagnoses: `diagnoses.primary` distinct codes from the primary condition (Zipf within the
//!      condition, generated siblings share 25% of their parent's weight; these come first, SEQ_NUM
//!      1 is the principal diagnosis), `diagnoses.secondary` from each other condition, the
//!      patient's recurring comorbidities, and `diagnoses.noise` draws from a global Zipf law over
//!      all codes (common comorbidities such as 4019 ranked first);
//!    * procedures: some of the primary condition's, ward procedures (venous catheter, transfusion,
//!      ...) by rank, and Zipf noise;
//!    * drugs: ward drugs at their base rates (heparin, potassium, paracetamol, ...), the chronic
//!      regimen (each with probability `chronic_persistence`), each **acute drug** of a condition with
//!      probability `acute_with_diagnosis` when its linked diagnosis is coded in this admission
//!      (lower without: `acute_primary`, `acute_other`), and Zipf noise; every probability is
//!      scaled by the drug's age/sex leaning;
//!    * prescription rows: 1 + geometric(`extra_rows_mean`) per drug, at most `max_rows_per_drug`,
//!      each naming one of the drug's products, dated within the stay.
//!
//! So history predicts the chronic drugs, the current diagnoses predict the acute drugs, and age,
//! sex and profile shift both: a model that uses history beats one that does not, and single-visit
//! patients need the profile.
//!
//! # Dirty rows (as real MIMIC has)
//!
//! NDC "0" (base solutions always, other rows at `ndc_zero_share`), empty NDC and GSN
//! (`ndc_empty_share`), empty ICUSTAY_ID, NDCs absent from the drug map (`unmapped_product_share`),
//! empty profile fields, diagnosis rows with an empty code (`empty_code_share`), and generated codes
//! missing from the D_ICD dictionaries (`untitled_share`). Readers must count, not silently drop,
//! these.

mod aux_files;
mod catalogue;
mod csv;
mod dates;
mod knowledge;
mod mimic3;
mod mimic4;
mod model;
mod products;
mod profile;
mod sampling;
mod world;

use crate::config::ConfigArgs;
use crate::io::output::{OutputDir, OutputKind};
use crate::nn::parallel;
use crate::progress;
use anyhow::{ensure, Context, Result};
use clap::{Args, ValueEnum};
use model::{assign_admission_ids, draw_patient, Patient};
use serde::{Deserialize, Serialize};
use std::path::Path;
use world::World;

/// The built-in default config (`configs/synth.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/synth.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Mimic3,
    Mimic4,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthConfig {
    pub flavor: Flavor,
    pub patients: usize,
    pub seed: u64,
    pub gzip_level: u32,
    pub visits: VisitConfig,
    pub latent: LatentConfig,
    pub diagnoses: DiagnosisConfig,
    pub procedures: ProcedureConfig,
    pub drugs: DrugConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitConfig {
    pub single_visit_share: f64,
    pub extra_visits_mean: f64,
    pub max_visits: u32,
    pub newborn_share: f64,
    pub death_in_hospital: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentConfig {
    pub conditions_weights: Vec<f64>,
    pub profile_signal: f64,
    pub comorbidities: u32,
    pub comorbidity_recurrence: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosisConfig {
    pub tail_per_code: usize,
    pub primary: [u32; 2],
    pub secondary: [u32; 2],
    pub noise: [u32; 2],
    pub untitled_share: f64,
    pub empty_code_share: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureConfig {
    pub tail_per_code: usize,
    pub primary: [u32; 2],
    pub ward_rate: f64,
    pub noise_mean: f64,
    pub none_share: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrugConfig {
    pub chronic_uptake: f64,
    pub chronic_persistence: f64,
    pub acute_with_diagnosis: f64,
    pub acute_primary: f64,
    pub acute_other: f64,
    pub noise_mean: f64,
    pub extra_rows_mean: f64,
    pub max_rows_per_drug: u32,
    pub none_share: f64,
    pub unmapped_product_share: f64,
    pub ndc_zero_share: f64,
    pub ndc_empty_share: f64,
    pub icustay_missing_share: f64,
    pub ddi_density: f64,
}

impl SynthConfig {
    /// The built-in defaults.
    pub fn default_config() -> Self {
        crate::config::load(DEFAULT_CONFIG, &ConfigArgs::default()).expect("configs/synth.toml is valid")
    }

    fn validate(&self) -> Result<()> {
        ensure!(self.patients > 0, "patients must be at least 1");
        ensure!(self.gzip_level <= 9, "gzip_level must be 0-9, got {}", self.gzip_level);
        ensure!(
            !self.latent.conditions_weights.is_empty() && self.latent.conditions_weights.len() <= 3,
            "latent.conditions_weights needs 1 to 3 entries (patients have 1-3 conditions)"
        );
        for (name, [lo, hi]) in [
            ("diagnoses.primary", self.diagnoses.primary),
            ("diagnoses.secondary", self.diagnoses.secondary),
            ("diagnoses.noise", self.diagnoses.noise),
            ("procedures.primary", self.procedures.primary),
        ] {
            ensure!(lo <= hi, "{name} = [{lo}, {hi}]: expected [low, high] with low <= high");
        }
        ensure!(self.drugs.max_rows_per_drug >= 1, "drugs.max_rows_per_drug must be at least 1");
        Ok(())
    }
}

#[derive(Args, Debug, Clone)]
pub struct SynthArgs {
    /// Table layout: MIMIC-III v1.4 or MIMIC-IV v2.2 (overrides `flavor`).
    #[arg(long, value_enum)]
    pub flavor: Option<Flavor>,
    /// Number of patients (overrides `patients`; full MIMIC-III has 46520).
    #[arg(long)]
    pub patients: Option<usize>,
    /// Random seed (overrides `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub output: crate::io::output::FolderArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// What was written: counts per table and of the cohort.
#[derive(Debug, Clone, Serialize)]
pub struct CohortSummary {
    pub flavor: Flavor,
    pub patients: usize,
    pub admissions: usize,
    pub single_visit_patients: usize,
    /// `(path relative to the output folder, data rows)`.
    pub tables: Vec<(String, u64)>,
    pub diagnosis_codes: usize,
    pub procedure_codes: usize,
    pub atc5_codes: usize,
    pub products: usize,
    pub mapped_products: u64,
    pub ddi_pairs: u64,
    /// Paragraphs of `knowledge/*.txt`.
    pub knowledge_paragraphs: usize,
}

/// A table writer: `(world, patients, file, gzip level) -> data rows`.
type TableJob = (&'static str, fn(&world::World, &[Patient], &Path, u32) -> Result<u64>);

pub fn run(args: &SynthArgs) -> Result<()> {
    use crate::config::flag;
    let mut flags: Vec<String> = args.flavor.iter().map(|v| flag("flavor", v)).collect();
    flags.extend(args.patients.iter().map(|v| flag("patients", v)));
    flags.extend(args.seed.iter().map(|v| flag("seed", v)));
    let cfg: SynthConfig = crate::config::resolve(DEFAULT_CONFIG, &args.config, &flags)?;
    let summary = write_cohort(&cfg, &args.output.out, args.output.overwrite)?;
    progress::say(format!(
        "synth: {} patients, {} admissions ({:.1}% single-visit) in {}",
        summary.patients,
        summary.admissions,
        100.0 * summary.single_visit_patients as f64 / summary.patients as f64,
        args.output.out.display()
    ));
    for (table, rows) in &summary.tables {
        progress::say(format!("  {table:<32} {rows:>10} rows"));
    }
    progress::say(format!(
        "  codes: {} diagnoses, {} procedures, {} ATC-5 ({} products, {} mapped NDCs), {} DDI pairs",
        summary.diagnosis_codes,
        summary.procedure_codes,
        summary.atc5_codes,
        summary.products,
        summary.mapped_products,
        summary.ddi_pairs
    ));
    progress::say(format!("  knowledge/: {} paragraphs for `leader pretrain --corpus`", summary.knowledge_paragraphs));
    Ok(())
}

/// Draws all patients, in parallel over contiguous chunks; patient `i` always uses stream `1 + i`.
fn draw_patients(world: &World, cfg: &SynthConfig) -> Result<Vec<Patient>> {
    let bar = progress::bar(cfg.patients as u64, "patients");
    let draw = |i: usize| {
        let mut rng = sampling::stream(cfg.seed, 1 + i as u64);
        let patient = draw_patient(world, cfg, i, &mut rng);
        bar.inc(1);
        Ok(patient)
    };
    let patients = parallel::map((0..cfg.patients).collect(), parallel::threads(0), draw);
    bar.finish_and_clear();
    patients
}

/// Writes the cohort of `cfg` (flavour, size, seed and model) to `out`, atomically; `overwrite`
/// replaces an earlier cohort there.
pub fn write_cohort(cfg: &SynthConfig, out: &Path, overwrite: bool) -> Result<CohortSummary> {
    cfg.validate()?;
    let dir = OutputDir::create(out, OutputKind::Synth, overwrite)?;
    let world = World::build(cfg)?;
    let mut patients = draw_patients(&world, cfg)?;
    assign_admission_ids(&mut patients, cfg.flavor, cfg.seed);

    let root = dir.path();
    let jobs = match cfg.flavor {
        Flavor::Mimic3 => mimic3::JOBS,
        Flavor::Mimic4 => {
            std::fs::create_dir_all(root.join("hosp"))
                .with_context(|| format!("creating {}", root.join("hosp").display()))?;
            mimic4::JOBS
        }
    };
    let (tables, aux) = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|&(name, job)| {
                let (world, patients) = (&world, &patients);
                scope.spawn(move || {
                    job(world, patients, &root.join(name), cfg.gzip_level).map(|rows| (name.to_string(), rows))
                })
            })
            .collect();
        let aux = aux_files::write_aux(&world, &root.join("aux"));
        let tables = handles.into_iter().map(|h| h.join().expect("table thread panicked")).collect::<Result<Vec<_>>>();
        (tables, aux)
    });
    let (tables, [mapped_products, _, ddi_pairs]) = (tables?, aux?);
    let knowledge = knowledge::write_knowledge(&world, &root.join("knowledge"))?;
    crate::config::save(cfg, &root.join("config.toml"))?;
    dir.commit()?;

    Ok(CohortSummary {
        flavor: cfg.flavor,
        patients: patients.len(),
        admissions: patients.iter().map(|p| p.visits.len()).sum(),
        single_visit_patients: patients.iter().filter(|p| p.visits.len() == 1).count(),
        tables,
        diagnosis_codes: world.catalogue.diagnoses.len(),
        procedure_codes: world.catalogue.procedures.len(),
        atc5_codes: world.catalogue.drugs.len(),
        products: world.products.len(),
        mapped_products,
        ddi_pairs,
        knowledge_paragraphs: knowledge.iter().sum(),
    })
}
