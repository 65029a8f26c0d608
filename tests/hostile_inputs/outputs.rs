//! Hostile-input cases: where commands write. `--out` never deletes what leader did not write,
//! `--overwrite` replaces only an earlier output of the same command, a locked destination is refused,
//! temporaries of a killed run are removed, and output files get ordinary modes.

use super::support::*;
use std::path::{Path, PathBuf};

/// A folder holding a user's file and subfolder.
fn foreign_folder(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("important.txt"), "keep").unwrap();
    dir
}

/// Every command whose `--out` is a folder refuses a folder holding foreign files, and changes nothing.
#[test]
fn every_folder_output_refuses_a_folder_with_foreign_files() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| f.path(name).display().to_string();
    let commands: Vec<(&str, Vec<String>)> = vec![
        ("synth", vec!["synth".into(), "--patients".into(), "10".into()]),
        ("preprocess", preprocess_args(&f.path("raw"), &f.path("raw/aux"), Path::new("X"))),
        ("init-model", vec!["init-model".into(), "--shape".into(), "tiny".into()]),
        (
            "train-teacher",
            ["train-teacher", "--data", &p("data"), "--model", &p("base"), "--max-steps", "1"]
                .map(String::from)
                .to_vec(),
        ),
        ("train-student", ["train-student", "--data", &p("data")].map(String::from).to_vec()),
        ("distill", ["distill", "--data", &p("data"), "--teacher", &p("teacher")].map(String::from).to_vec()),
        (
            "eval",
            ["eval", "--data", &p("data"), "--split", "test", "--baseline", "frequency"].map(String::from).to_vec(),
        ),
        ("demo", ["demo", "--patients", "30"].map(String::from).to_vec()),
    ];
    for (name, mut args) in commands {
        let dir = foreign_folder(tmp.path(), name);
        // preprocess_args ends with its own --out.
        if args.iter().any(|a| a == "--out") {
            args.pop();
        } else {
            args.push("--out".into());
        }
        args.push(s(&dir).into());
        let before = tree(&dir);
        let run = leader_owned(&args);
        run.assert_clear_error(&["is not empty and was not written by leader", "important.txt"]);
        assert_eq!(tree(&dir), before, "{name} changed the folder");
        assert_eq!(std::fs::read_to_string(dir.join("important.txt")).unwrap(), "keep");
    }
}

#[test]
fn out_dot_in_a_user_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = foreign_folder(tmp.path(), "home");
    let run = leader_in(&dir, &["synth", "--patients", "10", "--out", "."]);
    run.assert_clear_error(&["is not empty and was not written by leader"]);
    assert_eq!(tree(&dir), ["important.txt", "sub"]);
}

/// File outputs (predict, export-hidden, eval --compare) refuse to replace a file they did not write.
#[test]
fn file_outputs_refuse_a_foreign_file() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("notes.txt");
    std::fs::write(&target, "mine").unwrap();
    let (data, student, teacher) = (f.path("data"), f.path("student"), f.path("teacher"));
    let config = f.path("student/config.toml");
    let cases: [&[&str]; 3] = [
        &["predict", "--model", s(&student), "--data", s(&data), "--split", "test", "--out", s(&target)],
        &["export-hidden", "--teacher", s(&teacher), "--data", s(&data), "--split", "test", "--out", s(&target)],
        &["eval", "--compare", s(&config), "--out", s(&target)],
    ];
    for args in cases {
        for overwrite in [false, true] {
            let mut args = args.to_vec();
            if overwrite {
                args.push("--overwrite");
            }
            leader(&args).assert_clear_error(&["exists and is not an output of", "nothing was changed"]);
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "mine");
        }
    }
}

#[test]
fn overwrite_replaces_only_an_earlier_output_of_the_same_command() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cohort");
    let synth = |seed: &str, overwrite: bool| {
        let mut args = vec!["synth", "--patients", "10", "--seed", seed, "--out", s(&out)];
        if overwrite {
            args.push("--overwrite");
        }
        leader(&args)
    };
    synth("1", false).assert_success();
    let first = std::fs::read(out.join("ADMISSIONS.csv.gz")).unwrap();
    synth("2", false).assert_clear_error(&["already holds an output of `leader synth`", "--overwrite"]);
    assert_eq!(std::fs::read(out.join("ADMISSIONS.csv.gz")).unwrap(), first);
    synth("2", true).assert_success();
    assert_ne!(std::fs::read(out.join("ADMISSIONS.csv.gz")).unwrap(), first, "replaced by seed 2's cohort");

    // Another command's output is never replaced, --overwrite or not.
    let data_args = |overwrite: bool| {
        let mut args = preprocess_args(&out, &out.join("aux"), &out);
        if overwrite {
            args.push("--overwrite".into());
        }
        args
    };
    leader_owned(&data_args(true))
        .assert_clear_error(&["holds the output of `leader synth`, not of `leader preprocess`"]);

    // A file the user added makes --overwrite refuse, and it survives.
    std::fs::write(out.join("my-notes.txt"), "mine").unwrap();
    synth("3", true).assert_clear_error(&["files leader did not write", "my-notes.txt"]);
    assert_eq!(std::fs::read_to_string(out.join("my-notes.txt")).unwrap(), "mine");
}

#[test]
fn a_destination_being_written_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cohort");
    let lock = std::fs::File::create(tmp.path().join(".cohort.lock")).unwrap();
    lock.try_lock().unwrap();
    leader(&["synth", "--patients", "10", "--out", s(&out)])
        .assert_clear_error(&["is being written by another leader command right now"]);
    assert!(!out.exists());
    drop(lock);
    leader(&["synth", "--patients", "10", "--out", s(&out)]).assert_success();
}

#[test]
fn temporaries_of_a_killed_run_are_removed_by_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cohort");
    // What `kill -9` during a synth and during a training run leave behind.
    std::fs::create_dir_all(tmp.path().join(".cohort.tmp-4000001/aux")).unwrap();
    std::fs::write(tmp.path().join(".cohort.lock"), "").unwrap();
    std::fs::write(tmp.path().join(".other.tmp-4000002"), "someone else's").unwrap();
    std::fs::create_dir_all(tmp.path().join(".cohort.v2.tmp-4000004")).unwrap();
    leader(&["synth", "--patients", "10", "--out", s(&out)]).assert_success();
    let mut top: Vec<String> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    top.sort();
    // Another output's temporary (another name) is not ours to remove.
    assert_eq!(top, [".cohort.v2.tmp-4000004", ".other.tmp-4000002", "cohort"]);
}

/// Every file an output holds gets the mode `fs::write` gives under the user's umask (safetensors
/// files were 0600).
#[test]
fn output_files_get_ordinary_modes() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    for dir in ["base", "teacher/best", "teacher/last", "student"] {
        for entry in std::fs::read_dir(f.path(dir)).unwrap().flatten() {
            if entry.path().is_file() && !entry.file_name().to_string_lossy().starts_with('.') {
                let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
                let reference = std::fs::metadata(f.path("data/vocab.json")).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, reference, "{}", entry.path().display());
                assert_ne!(mode & 0o044, 0, "{} is readable by its owner only", entry.path().display());
            }
        }
    }
}
