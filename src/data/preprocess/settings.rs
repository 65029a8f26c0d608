//! The preprocess config (`configs/preprocess.toml`, every key commented there).

use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/preprocess.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Mimic3,
    Mimic4,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Mimic3 => "mimic3",
            Source::Mimic4 => "mimic4",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MapKey {
    Ndc,
    Gsn,
}

impl MapKey {
    pub fn column(self) -> &'static str {
        match self {
            MapKey::Ndc => "ndc",
            MapKey::Gsn => "gsn",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitOrder {
    Admittime,
    HadmId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SplitMode {
    Shuffle,
    Sequential,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicationSettings {
    pub map_key: MapKey,
    pub atc_chars: usize,
    pub top_n: usize,
    pub lowercase_names: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosisSettings {
    pub top_n: usize,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureSettings {
    pub top_n_mimic3: usize,
    pub top_n_mimic4: usize,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcdSettings {
    pub mimic4_version_prefix: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSettings {
    pub age_edges: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSettings {
    pub mode: SplitMode,
    pub seed: u64,
    pub train: f64,
    pub valid: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSettings {
    pub template: String,
    pub template_dir: String,
    pub history_visits: usize,
    pub reference_diagnosis_bug: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessConfig {
    pub source: Source,
    pub min_visits: usize,
    pub visit_order: VisitOrder,
    pub medications: MedicationSettings,
    pub diagnoses: DiagnosisSettings,
    pub procedures: ProcedureSettings,
    pub icd: IcdSettings,
    pub profile: ProfileSettings,
    pub split: SplitSettings,
    pub prompt: PromptSettings,
}

impl PreprocessConfig {
    /// The built-in defaults.
    pub fn default_for(source: Source) -> Self {
        let mut cfg: Self = toml::from_str(DEFAULT_CONFIG).expect("the embedded preprocess config is valid");
        cfg.source = source;
        cfg
    }

    pub fn top_procedures(&self) -> usize {
        match self.source {
            Source::Mimic3 => self.procedures.top_n_mimic3,
            Source::Mimic4 => self.procedures.top_n_mimic4,
        }
    }

    /// Whether ICD codes get an `ICD9:`/`ICD10:` prefix.
    pub fn icd_prefix(&self) -> bool {
        self.source == Source::Mimic4 && self.icd.mimic4_version_prefix
    }
}
