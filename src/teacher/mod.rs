//! The teacher LEADER(T): a LLaMA decoder reading the patient prompt, LoRA adapters and a
//! classification head over the medication vocabulary.

pub mod cache;
pub mod export;
pub mod init_model;
pub mod predict;
pub mod train;
