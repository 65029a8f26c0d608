//! Evaluation: paper-exact metrics, groups, resampled confidence and report tables.

pub mod command;
pub mod metrics;
pub mod predictions;
