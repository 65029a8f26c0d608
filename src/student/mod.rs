//! The student LEADER(S): a small ID-embedding model trained with BCE, feature distillation from the
//! teacher and profile alignment.

pub mod predict;
pub mod train;
