//! Data: the synthetic MIMIC-shaped cohort, MIMIC-III/IV preprocessing, and the record, vocabulary
//! and DDI formats every later stage reads.

pub mod ddi;
pub mod preprocess;
pub mod prompt;
pub mod record;
pub mod synth;
pub mod vocab;
