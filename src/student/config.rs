//! The student's stage config (`configs/student.toml`, every key documented there).

use serde::{Deserialize, Serialize};

/// The embedded default config.
pub const DEFAULT: &str = include_str!("../../configs/student.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudentConfig {
    pub seed: u64,
    /// Worker threads of training and scoring; 0 = every available core (results do not depend on it).
    #[serde(default)]
    pub threads: usize,
    pub model: ModelDims,
    pub loss: LossConfig,
    pub train: TrainConfig,
    pub predict: PredictConfig,
    /// Absent in configs written before it existed: no teacher.
    #[serde(default)]
    pub teacher: TeacherSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDims {
    pub hidden: usize,
    pub heads: usize,
    pub ffn: usize,
    pub hidden_dropout: f64,
    pub attention_dropout: f64,
    pub layer_norm_eps: f64,
    pub max_visits: usize,
    pub max_codes: usize,
}

impl ModelDims {
    /// The set and visit encoders' block sizes.
    pub fn block(&self) -> crate::nn::layers::BlockDims {
        crate::nn::layers::BlockDims {
            hidden: self.hidden,
            heads: self.heads,
            ffn: self.ffn,
            hidden_dropout: self.hidden_dropout,
            attention_dropout: self.attention_dropout,
            layer_norm_eps: self.layer_norm_eps,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    pub alpha: f64,
    pub beta: f64,
    pub temperature: f64,
    pub exclude_positive: bool,
    /// Standardise each dimension of the teacher vectors over the training split before the KD loss.
    pub standardise_teacher: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub lr: f64,
    pub batch_size: usize,
    /// Parts of each batch that run forward and backward on their own threads.
    #[serde(default = "default_shards")]
    pub shards: usize,
    pub epochs: usize,
    pub patience: usize,
    pub eval_batch_size: usize,
    pub threshold: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictConfig {
    pub batch_size: usize,
    pub read_chunk: usize,
}

/// The KD target's source (`distill --teacher-cache` / `--teacher`); empty paths mean none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherSection {
    pub cache: std::path::PathBuf,
    pub run: std::path::PathBuf,
    pub device: crate::nn::device::DeviceSpec,
    pub dtype: crate::nn::device::Precision,
}

impl Default for TeacherSection {
    fn default() -> Self {
        Self {
            cache: Default::default(),
            run: Default::default(),
            device: crate::nn::device::DeviceSpec::Cpu,
            dtype: crate::nn::device::Precision::F32,
        }
    }
}

/// Configs written before `train.shards` existed load with the default.
fn default_shards() -> usize {
    2
}

impl StudentConfig {
    /// The built-in defaults.
    pub fn default_config() -> Self {
        crate::config::load(DEFAULT, &Default::default()).expect("configs/student.toml is valid")
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let m = &self.model;
        anyhow::ensure!(
            m.hidden > 0 && m.heads > 0 && m.hidden.is_multiple_of(m.heads),
            "model.hidden must be a positive multiple of model.heads"
        );
        anyhow::ensure!(m.max_visits > 0 && m.max_codes > 0, "model.max_visits and model.max_codes must be positive");
        anyhow::ensure!(
            (0.0..1.0).contains(&m.hidden_dropout) && (0.0..1.0).contains(&m.attention_dropout),
            "dropouts must be in [0, 1)"
        );
        anyhow::ensure!(self.loss.temperature > 0.0, "loss.temperature must be positive");
        anyhow::ensure!(self.train.batch_size > 0 && self.train.eval_batch_size > 0, "batch sizes must be positive");
        anyhow::ensure!(self.train.shards > 0, "train.shards must be positive");
        let t = &self.train;
        anyhow::ensure!(
            t.lr.is_finite() && t.lr > 0.0,
            "train.lr = {}: the learning rate must be a positive number",
            t.lr
        );
        anyhow::ensure!(t.epochs > 0 && t.patience > 0, "train.epochs and train.patience must be at least 1");
        anyhow::ensure!(
            self.loss.alpha.is_finite()
                && self.loss.alpha >= 0.0
                && self.loss.beta.is_finite()
                && self.loss.beta >= 0.0,
            "loss.alpha and loss.beta must be 0 or more"
        );
        anyhow::ensure!(self.predict.batch_size > 0 && self.predict.read_chunk > 0, "predict sizes must be positive");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_reference_mimic3_run() {
        let c = StudentConfig::default_config();
        assert_eq!((c.model.hidden, c.model.heads, c.model.ffn), (64, 4, 300));
        assert_eq!((c.model.max_visits, c.model.max_codes), (10, 100));
        assert_eq!((c.loss.alpha, c.loss.beta, c.train.lr, c.train.patience), (0.4, 0.005, 5e-4, 10));
        c.validate().unwrap();
    }
}
