//! Training machinery shared by the student and the teacher: seeded randomness (candle's CPU RNG
//! cannot be seeded), seeded parameter initialisation, AdamW with saveable state, a finite-difference
//! gradient check that guards against candle ops without a backward pass, fused CPU ops that have
//! one, work split over threads, per-dimension standardisation; and the `--device` / dtype options
//! both models run on.

pub mod adamw;
pub mod device;
pub mod gradcheck;
pub mod layers;
pub mod loss;
pub mod ops;
pub mod parallel;
pub mod params;
pub mod rng;
pub mod standardise;
