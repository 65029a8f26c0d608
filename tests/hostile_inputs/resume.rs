//! Hostile-input cases: `--resume` continues the saved run with its own config and data, refuses a
//! contradicting option or changed data, and ends bit for bit where the uninterrupted run ends.

use super::support::*;
use std::path::Path;

fn same_bytes(a: &Path, b: &Path, files: &[&str]) {
    for file in files {
        let (x, y) = (std::fs::read(a.join(file)).unwrap(), std::fs::read(b.join(file)).unwrap());
        assert!(x == y, "{file} differs between {} and {}", a.display(), b.display());
    }
}

#[test]
fn teacher_resume_needs_no_flags_and_equals_the_uninterrupted_run() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (straight, split) = (tmp.path().join("straight"), tmp.path().join("split"));
    let (data, base) = (f.path("data"), f.path("base"));
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec!["train-teacher", "--data", s(&data), "--model", s(&base), "--out", s(out)];
        args.extend([
            "--max-steps",
            "6",
            "--max-tokens",
            "48",
            "--micro-batch",
            "2",
            "--grad-accum",
            "2",
            "--seed",
            "3",
        ]);
        args.extend(["--set", "train.checkpoint_every=2", "--set", "train.eval_every=3", "--set", "train.log_every=4"]);
        args.extend(extra);
        leader(&args)
    };
    train(&straight, &[]).assert_success();
    train(&split, &["--stop-after-steps", "3"]).assert_success();
    // Every saved setting differs from the built-in defaults; none is repeated here.
    leader(&["train-teacher", "--resume", s(&split)]).assert_success();
    same_bytes(
        &straight,
        &split,
        &[
            "train_log.jsonl",
            "config.toml",
            "last/adapter_model.safetensors",
            "last/head.safetensors",
            "last/optimizer.safetensors",
            "last/state.json",
            "best/adapter_model.safetensors",
            "best/teacher.json",
        ],
    );

    // A contradicting option names the key and both values; --max-steps may extend the run.
    leader(&["train-teacher", "--resume", s(&split), "--lr", "0.5"]).assert_clear_error(&[
        "train.lr is",
        "but 0.5",
        "only train.max_steps may change",
    ]);
    leader(&["train-teacher", "--resume", s(&split), "--data", s(&f.path("data-other"))])
        .assert_clear_error(&["the run was trained on --data", "a resumed run keeps its data"]);
    leader(&["train-teacher", "--resume", s(&split), "--max-steps", "7"]).assert_success();
    let log = std::fs::read_to_string(split.join("train_log.jsonl")).unwrap();
    assert!(log.lines().last().unwrap().contains("\"step\":7"), "{log}");
}

#[test]
fn student_resume_keeps_its_data_and_refuses_changed_data() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_dir(&f.path("data"), &data);
    let (straight, split) = (tmp.path().join("straight"), tmp.path().join("split"));
    leader(&[
        "train-student",
        "--data",
        s(&data),
        "--out",
        s(&straight),
        "--epochs",
        "2",
        "--set",
        "model.hidden=16",
        "--set",
        "model.heads=2",
    ])
    .assert_success();
    leader(&[
        "train-student",
        "--data",
        s(&data),
        "--out",
        s(&split),
        "--epochs",
        "1",
        "--set",
        "model.hidden=16",
        "--set",
        "model.heads=2",
    ])
    .assert_success();
    // A new run into it is refused and names --resume.
    leader(&["train-student", "--data", s(&data), "--out", s(&split)]).assert_clear_error(&["--resume"]);
    leader(&["train-student", "--resume", s(&split), "--data", s(&f.path("data-other"))])
        .assert_clear_error(&["the run was trained on --data"]);
    leader(&["train-student", "--resume", s(&split), "--epochs", "2", "--batch-size", "3"])
        .assert_clear_error(&["train.batch_size is", "but 3"]);
    leader(&["train-student", "--resume", s(&split), "--epochs", "2"]).assert_success();
    same_bytes(&straight, &split, &["train_log.jsonl", "model.safetensors", "checkpoint.safetensors", "config.toml"]);

    // The data changed under the run: refused, naming both fingerprints.
    let valid = data.join("valid.jsonl");
    let text = std::fs::read_to_string(&valid).unwrap();
    std::fs::write(&valid, text.lines().skip(1).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    leader(&["train-student", "--resume", s(&split), "--epochs", "3"])
        .assert_clear_error(&["changed since the run started", "fingerprint"]);
}

#[test]
fn resume_of_a_run_killed_before_its_first_checkpoint_starts_it_over() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    leader(&["train-student", "--data", s(&f.path("data")), "--out", s(&run), "--epochs", "1"]).assert_success();
    // What a kill during epoch 1 leaves: no checkpoint, no log, a temporary file.
    for file in ["checkpoint.safetensors", "model.safetensors", "train_log.jsonl"] {
        std::fs::remove_file(run.join(file)).unwrap();
    }
    std::fs::write(run.join(".checkpoint.safetensors.tmp-4000003"), "partial").unwrap();
    leader(&["train-student", "--resume", s(&run)]).assert_success();
    assert!(run.join("model.safetensors").is_file());
    assert!(!run.join(".checkpoint.safetensors.tmp-4000003").exists());
    let log = std::fs::read_to_string(run.join("train_log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1);
}
