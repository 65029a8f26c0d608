//! Hostile-input cases: outputs.
