//! Evaluation: paper-exact metrics (reference doc §6), patient groups, resampled confidence and
//! report tables.
//!
//! In memory: [`evaluate`] (the full `metrics.json` report) and [`mean_prauc`] (per-epoch
//! validation). From files: [`command::score`] (what `leader eval` runs). Tables:
//! [`table::group_table`] and [`table::compare_table`].

pub mod baseline;
pub mod command;
pub mod ddi;
mod evaluate;
pub mod groups;
pub mod line_parser;
pub mod metrics;
pub mod predictions;
pub mod report;
pub mod resample;
pub mod scoring;
pub mod table;

pub use evaluate::{evaluate, mean_prauc};
pub use metrics::Threshold;
pub use report::{GroupReport, Metric, MetricsReport, Stat};
pub use resample::ResampleOptions;
