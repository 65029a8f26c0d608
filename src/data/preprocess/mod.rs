//! `leader preprocess`: MIMIC-III/IV tables → model-ready records, vocabularies, prompts and
//! statistics (reference §1). Steps: [`meds`] (prescriptions → ATC), [`codes`] (diagnoses,
//! procedures), [`assemble`] (visits, profile, prompt), [`outputs`] (vocab, DDI, split, folder).
//! Where we differ from the reference is said in `configs/preprocess.toml` and at each step.

pub mod assemble;
pub mod codes;
pub mod drugs;
pub mod meds;
pub mod outputs;
pub mod profile;
pub mod settings;
pub mod stats;
pub mod table;

use crate::config::ConfigArgs;
use crate::data::ddi::DdiPairs;
use crate::data::prompt::PromptTemplates;
use crate::data::record::Record;
use crate::data::vocab::{CodeEntry, Vocab};
use crate::progress;
use anyhow::{bail, Result};
use clap::Args;
use codes::{Coded, IcdSpec, Keep};
use drugs::{DrugMap, DrugMapSource};
use rustc_hash::{FxHashMap, FxHashSet};
use stats::BadRows;
use std::path::{Path, PathBuf};
use table::Table;

pub use settings::{MapKey, PreprocessConfig, Source, SplitMode, VisitOrder, DEFAULT_CONFIG};
pub use stats::Stats;

#[derive(Args, Debug, Clone)]
pub struct PreprocessArgs {
    /// MIMIC layout of --raw (overrides `source`).
    #[arg(long, value_enum)]
    pub source: Option<Source>,
    /// Folder with the MIMIC tables (.csv or .csv.gz); for MIMIC-IV the folder holding `hosp/`.
    #[arg(long)]
    pub raw: PathBuf,
    /// CSV mapping prescriptions to ATC: a key column (see --map-key) and an `atc` column.
    #[arg(long, required_unless_present = "ndc_rxcui")]
    pub drug_map: Option<PathBuf>,
    /// Prescriptions column the drug map is keyed by (overrides `medications.map_key`).
    #[arg(long, value_enum)]
    pub map_key: Option<MapKey>,
    /// The reference's NDC → RXCUI file (`ndc2RXCUI.txt` dict literal, or CSV `ndc,rxcui`); needs --rxcui-atc.
    #[arg(long, requires = "rxcui_atc", conflicts_with = "drug_map")]
    pub ndc_rxcui: Option<PathBuf>,
    /// The reference's RXCUI → ATC file (`RXCUI2atc4.csv`, columns RXCUI and ATC4).
    #[arg(long, requires = "ndc_rxcui")]
    pub rxcui_atc: Option<PathBuf>,
    /// CSV of ATC names (`atc_code,atc_name`); codes without a name are shown as codes.
    #[arg(long)]
    pub atc_names: Option<PathBuf>,
    /// CSV of interacting ATC pairs (`atc3_a,atc3_b`); writes ddi.json.
    #[arg(long)]
    pub ddi_pairs: Option<PathBuf>,
    /// Allowed ATC codes, one per line (the reference's SMILES filter as a list).
    #[arg(long)]
    pub med_whitelist: Option<PathBuf>,
    /// Reuse a trained model's vocab.json instead of building one (for scoring new cohorts).
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// Write every patient to records.jsonl instead of train/valid/test.
    #[arg(long)]
    pub no_split: bool,
    /// Patient split (overrides `split.mode`).
    #[arg(long, value_enum)]
    pub split: Option<SplitMode>,
    /// Minimum admissions with prescriptions per patient (overrides `min_visits`; 2 = the reference).
    #[arg(long)]
    pub min_visits: Option<usize>,
    #[command(flatten)]
    pub output: crate::io::output::FolderArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Input files of one run.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub raw: PathBuf,
    pub drug_map: DrugMapSource,
    pub atc_names: Option<PathBuf>,
    pub ddi_pairs: Option<PathBuf>,
    pub med_whitelist: Option<PathBuf>,
    pub vocab: Option<PathBuf>,
    pub no_split: bool,
}

impl PreprocessArgs {
    /// The effective config: defaults, --config, --set, then the explicit flags.
    pub fn effective_config(&self) -> Result<PreprocessConfig> {
        use crate::config::flag;
        let mut flags: Vec<String> = self.source.iter().map(|v| flag("source", v)).collect();
        flags.extend(self.map_key.iter().map(|v| flag("medications.map_key", v)));
        flags.extend(self.split.iter().map(|v| flag("split.mode", v)));
        flags.extend(self.min_visits.iter().map(|v| flag("min_visits", v)));
        crate::config::resolve(DEFAULT_CONFIG, &self.config, &flags)
    }

    pub fn inputs(&self, cfg: &PreprocessConfig) -> Result<Inputs> {
        let drug_map = match (&self.drug_map, &self.ndc_rxcui, &self.rxcui_atc) {
            (Some(path), None, None) => DrugMapSource::Direct { path: path.clone(), key: cfg.medications.map_key },
            (None, Some(a), Some(b)) => DrugMapSource::ViaRxcui { ndc_rxcui: a.clone(), rxcui_atc: b.clone() },
            _ => bail!("give either --drug-map FILE or both --ndc-rxcui FILE and --rxcui-atc FILE"),
        };
        Ok(Inputs {
            raw: self.raw.clone(),
            drug_map,
            atc_names: self.atc_names.clone(),
            ddi_pairs: self.ddi_pairs.clone(),
            med_whitelist: self.med_whitelist.clone(),
            vocab: self.vocab.clone(),
            no_split: self.no_split,
        })
    }
}

pub fn run(args: &PreprocessArgs) -> Result<()> {
    let cfg = args.effective_config()?;
    let inputs = args.inputs(&cfg)?;
    let stats = preprocess(&cfg, &inputs, &args.output.out, args.output.overwrite)?;
    progress::say(stats.table());
    progress::say(format!("wrote {}", args.output.out.display()));
    Ok(())
}

/// The folder holding the tables: MIMIC-IV keeps them in `hosp/`.
fn tables_dir(source: Source, raw: &Path) -> PathBuf {
    match source {
        Source::Mimic4 if raw.join("hosp").is_dir() => raw.join("hosp"),
        _ => raw.to_path_buf(),
    }
}

/// The prompt templates the config asks for.
pub fn templates(cfg: &PreprocessConfig) -> Result<PromptTemplates> {
    let mut t = if cfg.prompt.template_dir.is_empty() {
        PromptTemplates::builtin(&cfg.prompt.template)?
    } else {
        PromptTemplates::from_dir(Path::new(&cfg.prompt.template_dir))?
    };
    t.reference_diagnosis_bug = cfg.prompt.reference_diagnosis_bug;
    Ok(t)
}

/// ICD code → title from a D_ICD_* table, keyed by (icd_version or "", code).
fn icd_titles(dir: &Path, table: &str, title: &str, bad: &mut BadRows) -> Result<FxHashMap<(String, String), String>> {
    let t = Table::read(
        &table::find(dir, table)?,
        &[&["icd9_code", "icd_code"], &[title, "long_title"]],
        &["icd_version"],
        bad,
    )?;
    let (code_col, title_col) = (
        if t.col("icd9_code").is_some() { "icd9_code" } else { "icd_code" },
        if t.col(title).is_some() { title } else { "long_title" },
    );
    let mut out = FxHashMap::default();
    for ((code, name), version) in t.values(code_col).zip(t.values(title_col)).zip(t.values("icd_version")) {
        if let (Some(code), Some(name)) = (code, name) {
            out.entry((version.unwrap_or("").to_string(), code.to_string())).or_insert_with(|| name.to_string());
        }
    }
    Ok(out)
}

/// Per code id the name where one exists.
fn names_of(coded: &Coded, lookup: impl Fn(&(String, String)) -> Option<String>) -> Vec<Option<String>> {
    coded.name_keys.iter().map(lookup).collect()
}

/// Output code → name for vocab.json.
fn code_names(coded: &Coded, names: &[Option<String>]) -> FxHashMap<String, String> {
    coded.codes.iter().zip(names).filter_map(|(c, n)| Some((c.clone(), n.clone()?))).collect()
}

fn code_set(entries: &[CodeEntry]) -> FxHashSet<String> {
    entries.iter().map(|e| e.code.clone()).collect()
}

/// The code sets a reused vocabulary (`--vocab`) keeps, per kind.
type VocabSets = stats::PerKind<FxHashSet<String>>;

/// The whole pipeline; writes `out` atomically (`overwrite` replaces an earlier output there) and
/// returns the statistics.
pub fn preprocess(cfg: &PreprocessConfig, inputs: &Inputs, out: &Path, overwrite: bool) -> Result<Stats> {
    let folder = crate::io::output::OutputDir::create(out, crate::io::output::OutputKind::Preprocess, overwrite)?;
    let started = std::time::Instant::now();
    let stage = |what: &str| progress::say(format!("preprocess: {what} ({:.1} s)", started.elapsed().as_secs_f64()));
    let templates = templates(cfg)?;
    let dir = tables_dir(cfg.source, &inputs.raw);
    let mut report = stats::Report::default();
    let reused = inputs.vocab.as_deref().map(Vocab::load).transpose()?;
    let sets = reused.as_ref().map(|v| stats::PerKind {
        diagnoses: code_set(&v.diagnoses),
        procedures: code_set(&v.procedures),
        medications: code_set(&v.medications),
    });
    let tables = read_code_tables(cfg, inputs, &dir, sets.as_ref(), &mut report, &stage)?;

    stage("admissions, patients, records");
    let admissions = {
        let path = table::find(&dir, "ADMISSIONS")?;
        let t = Table::read(&path, &profile::Admissions::columns(cfg.source), &[], &mut report.bad)?.non_empty()?;
        profile::Admissions::index(t, cfg.source, &mut report)?
    };
    let patients = {
        let t =
            Table::read(&table::find(&dir, "PATIENTS")?, &profile::patient_columns(cfg.source), &[], &mut report.bad)?
                .non_empty()?;
        profile::read_patients(&t, cfg.source, &mut report)?
    };
    let records = assemble::records(cfg, &tables, &admissions, &patients, &templates, &mut report)?;
    let Outcome { parts, vocab, ddi, stats } = vocabulary_and_stats(cfg, inputs, records, reused, &tables, report)?;

    stage("writing");
    outputs::write_folder(folder.path(), &parts, &vocab, ddi.as_ref(), &stats, cfg)?;
    folder.commit()?;
    stage("done");
    Ok(stats)
}

/// The prescriptions (mapped to ATC), diagnoses and procedures per admission, each kind filtered to
/// its top N (or to a reused vocabulary's `sets`), with the names of their codes.
fn read_code_tables(
    cfg: &PreprocessConfig,
    inputs: &Inputs,
    dir: &Path,
    sets: Option<&VocabSets>,
    report: &mut stats::Report,
    stage: &dyn Fn(&str),
) -> Result<assemble::CodeTables> {
    let keep = |top_n: usize, kind: &str| match sets {
        Some(s) => Keep::Vocab(s.kind(kind)),
        None => Keep::TopN(top_n),
    };
    stage("prescriptions");
    let drug_map = DrugMap::load(&inputs.drug_map, cfg.medications.atc_chars, &mut report.bad)?;
    let whitelist =
        inputs.med_whitelist.as_deref().map(|p| drugs::read_whitelist(p, cfg.medications.atc_chars)).transpose()?;
    let key = inputs.drug_map.key();
    let icd_cols: &[&[&str]] = &[&["subject_id"], &["hadm_id"], &["icd9_code", "icd_code"]];
    let read_icd_table = |name: &str, bad: &mut BadRows| {
        Table::read(&table::find(dir, name)?, icd_cols, &["seq_num", "icd_version"], bad)?.non_empty()
    };
    // The ICD tables are decompressed and parsed on a second thread while the prescriptions are processed.
    let (medications, icd_tables) = std::thread::scope(|scope| {
        let icd = scope.spawn(|| {
            let mut bad = BadRows::default();
            let tables = (read_icd_table("DIAGNOSES_ICD", &mut bad)?, read_icd_table("PROCEDURES_ICD", &mut bad)?);
            Ok::<_, anyhow::Error>((tables, bad))
        });
        let medications = (|| {
            let path = table::find(dir, "PRESCRIPTIONS")?;
            let t = Table::read(
                &path,
                &[&["subject_id"], &["hadm_id"], &["startdate", "starttime"], &[key.column()]],
                &["drug"],
                &mut report.bad,
            )?
            .non_empty()?;
            let spec = meds::MedSpec {
                key,
                min_visits: cfg.min_visits,
                keep: keep(cfg.medications.top_n, "medications"),
                whitelist: whitelist.as_ref(),
            };
            meds::read_prescriptions(&t, &drug_map, &spec, report)
        })();
        (medications, icd.join().expect("the ICD table reader panicked"))
    });
    let medications = medications?;
    let ((diagnosis_table, procedure_table), icd_bad) = icd_tables?;
    report.bad.merge(icd_bad);

    stage("diagnoses and procedures");
    let diag_spec =
        IcdSpec { kind: "diagnoses", version_prefix: cfg.icd_prefix(), keep: keep(cfg.diagnoses.top_n, "diagnoses") };
    let diagnoses = codes::read_icd(&diagnosis_table, &diag_spec, report)?;
    drop(diagnosis_table);
    let proc_spec = IcdSpec {
        kind: "procedures",
        version_prefix: cfg.icd_prefix(),
        keep: keep(cfg.top_procedures(), "procedures"),
    };
    let procedures = codes::read_icd(&procedure_table, &proc_spec, report)?;
    drop(procedure_table);

    named(cfg, inputs, dir, [diagnoses, procedures, medications], &mut report.bad)
}

/// The three code tables (diagnoses, procedures, medications) with the names of their codes: ICD
/// titles from the D_ICD_* tables, ATC names from `--atc-names`.
fn named(
    cfg: &PreprocessConfig,
    inputs: &Inputs,
    dir: &Path,
    [diagnoses, procedures, medications]: [Coded; 3],
    bad: &mut BadRows,
) -> Result<assemble::CodeTables> {
    let diag_titles = icd_titles(dir, "D_ICD_DIAGNOSES", &cfg.diagnoses.title, bad)?;
    let proc_titles = icd_titles(dir, "D_ICD_PROCEDURES", &cfg.procedures.title, bad)?;
    let title = |titles: &FxHashMap<(String, String), String>, key: &(String, String)| {
        titles.get(key).or_else(|| titles.get(&(String::new(), key.1.clone()))).cloned()
    };
    let atc_names = match &inputs.atc_names {
        Some(p) => drugs::read_atc_names(p, cfg.medications.lowercase_names, bad)?,
        None => FxHashMap::default(),
    };
    Ok(assemble::CodeTables {
        diagnosis_names: names_of(&diagnoses, |k| title(&diag_titles, k)),
        procedure_names: names_of(&procedures, |k| title(&proc_titles, k)),
        medication_names: names_of(&medications, |k| atc_names.get(&k.1).cloned()),
        diagnoses,
        procedures,
        medications,
    })
}

/// What the output folder holds: the records by split, the vocabulary, the DDI pairs within it and
/// the statistics.
struct Outcome {
    parts: Vec<(&'static str, Vec<Record>)>,
    vocab: Vocab,
    ddi: Option<DdiPairs>,
    stats: Stats,
}

/// The split records, the vocabulary (built from the records, or the reused one the records are
/// fitted to), the DDI pairs within it, and the statistics with the report's funnel and bad rows.
fn vocabulary_and_stats(
    cfg: &PreprocessConfig,
    inputs: &Inputs,
    mut records: Vec<Record>,
    reused: Option<Vocab>,
    tables: &assemble::CodeTables,
    mut report: stats::Report,
) -> Result<Outcome> {
    let mut stats = Stats { source: cfg.source.name().into(), ..Default::default() };
    let vocab = match reused {
        Some(v) => {
            stats.profile_out_of_vocab = outputs::fit_profiles(&mut records, &v);
            stats.out_of_vocab = Some(report.out_of_vocab.clone());
            v
        }
        None => {
            let names = outputs::Names {
                diagnoses: &code_names(&tables.diagnoses, &tables.diagnosis_names),
                procedures: &code_names(&tables.procedures, &tables.procedure_names),
                medications: &code_names(&tables.medications, &tables.medication_names),
            };
            outputs::build_vocab(&records, &names, &profile::fields(cfg.source))
        }
    };
    let ddi = match inputs.ddi_pairs.as_deref() {
        Some(path) => Some(outputs::restrict_ddi(&drugs::read_ddi_pairs(path, &mut report.bad)?, &vocab)),
        None => None,
    };
    outputs::cohort_stats(&records, &mut stats);
    stats.vocab_sizes = stats::PerKind {
        diagnoses: vocab.diagnoses.len(),
        procedures: vocab.procedures.len(),
        medications: vocab.num_medications(),
    };
    if let Some(d) = &ddi {
        stats.label_ddi_rate = Some(outputs::label_ddi_rate(&records, d));
        stats.ddi_pairs = Some(d.pairs.len());
    }
    let parts = outputs::split(records, cfg, inputs.no_split)?;
    stats.splits = parts.iter().map(|(n, r)| (n.to_string(), r.len())).collect();
    stats.funnel = std::mem::take(&mut report.funnel);
    stats.bad_rows = std::mem::take(&mut report.bad);
    Ok(Outcome { parts, vocab, ddi, stats })
}
