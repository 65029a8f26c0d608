//! `leader`: LEADER medication recommendation (Liu et al., arXiv 2402.02803) in Rust.
//!
//! Stages, one module each: [`data`] (synthetic cohort, MIMIC readers, vocabularies, prompts,
//! records), [`teacher`] (LLaMA + LoRA + classification head), [`student`] (the distilled ID model),
//! [`eval`] (metrics and reports), [`baseline`] (classic models in the same harness), [`demo`] (the whole
//! pipeline). [`nn`] holds the training machinery
//! the two models share.
//!
//! Comments citing "reference §N" point to section N of `docs/reference.md`: what the original
//! PyTorch code does at each stage, and where this crate deliberately differs.

pub mod baseline;
pub mod config;
pub mod data;
pub mod demo;
pub mod eval;
pub mod io;
pub mod nn;
pub mod predict;
pub mod progress;
pub mod runtime;
pub mod student;
pub mod teacher;
