//! The teacher LEADER(T): a LLaMA decoder reading the patient prompt, LoRA adapters and a
//! classification head over the medication vocabulary.
//!
//! [`llama`] is the decoder, [`lora`] the adapted projections, [`model`] decoder + head + loss,
//! [`grads`] one micro-batch's gradients (optionally with activation checkpointing), [`peft`] the
//! checkpoint layout, [`run`] the frozen [`run::Teacher`] other stages load.

pub mod bench;
pub mod cache;
pub mod config;
pub mod export;
pub mod grads;
pub mod init_model;
pub mod llama;
pub mod lora;
pub mod model;
pub mod peft;
pub mod predict;
pub mod run;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use run::Teacher;
