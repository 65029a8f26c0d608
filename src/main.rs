//! The `leader` command line: parses arguments and dispatches to the stage modules.

use anyhow::Result;
use clap::{Parser, Subcommand};
use leader::runtime::KernelThreads;
use leader::{data, demo, eval, predict, progress, student, teacher};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "leader",
    version,
    about = "LEADER medication recommendation: LLaMA teacher, distilled student, MIMIC tools"
)]
struct Cli {
    /// Hide progress bars and status lines.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic MIMIC-shaped cohort (the embedded default data set).
    Synth(data::synth::SynthArgs),
    /// Turn MIMIC-III/IV tables into model-ready records, vocabularies and statistics.
    Preprocess(data::preprocess::PreprocessArgs),
    /// Write a random LLaMA in Hugging Face layout with a trained tokenizer.
    InitModel(teacher::init_model::InitModelArgs),
    /// Causal-LM pretraining of a LLaMA base on a text corpus (writes a Hugging Face model folder).
    Pretrain(teacher::pretrain::PretrainArgs),
    /// Fine-tune the teacher (LLaMA + LoRA + classification head).
    TrainTeacher(teacher::train::TrainTeacherArgs),
    /// Export the teacher's pooled hidden states (the student's teacher cache).
    ExportHidden(teacher::export::ExportHiddenArgs),
    /// Train the student without a teacher (the "w/o KD" ablation).
    TrainStudent(student::train::TrainStudentArgs),
    /// Train the student with knowledge distillation from the teacher.
    Distill(student::train::DistillArgs),
    /// Train a classic medication-recommendation baseline (LR, RETAIN, GAMENet, MICRON, Transformer) in the same harness.
    TrainBaseline(leader::baseline::TrainBaselineArgs),
    /// Score records with a trained student, teacher or baseline.
    Predict(predict::PredictArgs),
    /// Compute metrics of a predictions file, or compare metric files.
    Eval(eval::command::EvalArgs),
    /// Run the whole pipeline on the synthetic cohort and write a report.
    Demo(demo::DemoArgs),
}

/// Errors are printed once, here, as one line: what went wrong first, then each cause after a colon
/// (`error: reading m/model.safetensors: header declares ...`). A closed stdout (`leader eval | head`)
/// is a normal end.
fn main() -> ExitCode {
    let cli = Cli::parse();
    leader::runtime::configure(kernel_threads(&cli.command));
    progress::set_quiet(cli.quiet);
    match dispatch(&cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The teacher's stages are large matmuls that candle's own threads speed up; the student's run
/// threads of their own (see `leader::runtime`).
fn kernel_threads(command: &Command) -> KernelThreads {
    match command {
        Command::InitModel(_) | Command::Pretrain(_) | Command::TrainTeacher(_) | Command::ExportHidden(_) => {
            KernelThreads::All
        }
        Command::Predict(a) if a.teacher.is_some() => KernelThreads::All,
        _ => KernelThreads::One,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn dispatch(command: &Command) -> Result<()> {
    match command {
        Command::Synth(a) => data::synth::run(a),
        Command::Preprocess(a) => data::preprocess::run(a),
        Command::InitModel(a) => teacher::init_model::run(a),
        Command::Pretrain(a) => teacher::pretrain::run(a),
        Command::TrainTeacher(a) => teacher::run_train_teacher(a),
        Command::ExportHidden(a) => teacher::export::run(a),
        Command::TrainStudent(a) => student::train::run_train_student(a),
        Command::Distill(a) => student::train::run_distill(a),
        Command::TrainBaseline(a) => leader::baseline::run_train_baseline(a),
        Command::Predict(a) => predict::run(a),
        Command::Eval(a) => eval::command::run(a),
        Command::Demo(a) => demo::run(a),
    }
}
