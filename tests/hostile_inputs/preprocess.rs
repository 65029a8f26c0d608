//! Hostile-input cases: preprocess.
