//! The hostile-input matrix: each case runs the `leader` binary on broken or adversarial input and
//! asserts a clear error (or a counted, reported skip), never a panic, never a partial output, within
//! a memory bound. The README's "What bad input gets" lists the same cases.

mod hostile_inputs {
    pub mod outputs;
    pub mod preprocess;
    pub mod resume;
    pub mod scoring;
    pub mod support;
    pub mod teacher;
}
