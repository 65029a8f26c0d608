//! The student LEADER(S): a small ID-embedding model trained with BCE, feature distillation from the
//! teacher and profile alignment (reference doc §4-§5).

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod kd;
pub mod losses;
pub mod model;
pub mod predict;
pub mod step;
pub mod train;
