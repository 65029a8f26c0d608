//! Hostile-input cases: teacher.
