//! Hostile-input cases: base models and teacher runs. Incomplete or corrupt checkpoints are clear
//! errors naming the file, a header declaring a giant tensor is refused before anything is
//! allocated, and a teacher refuses a base model that changed under it. Also: a full disk.

use super::support::*;
use std::path::{Path, PathBuf};

fn base_copy(dir: &Path) -> PathBuf {
    let base = dir.join("base");
    copy_dir(&fixture().path("base"), &base);
    base
}

fn train_teacher(base: &Path, out: &Path) -> Run {
    let data = fixture().path("data");
    leader(&[
        "train-teacher",
        "--data",
        s(&data),
        "--model",
        s(base),
        "--out",
        s(out),
        "--max-steps",
        "1",
        "--max-tokens",
        "32",
    ])
}

#[test]
fn model_folders_missing_a_file_name_it() {
    let tmp = tempfile::tempdir().unwrap();
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        let base = base_copy(&tmp.path().join(file));
        std::fs::remove_file(base.join(file)).unwrap();
        let out = tmp.path().join(file).join("run");
        train_teacher(&base, &out).assert_clear_error(&[file, "not found"]);
        assert!(!out.exists(), "{file}: no run folder after a failure");
    }
}

#[test]
fn truncated_or_byte_flipped_weights_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base_copy(&tmp.path().join("cut"));
    let weights = base.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() - 100]).unwrap();
    train_teacher(&base, &tmp.path().join("cut/run")).assert_clear_error(&["model.safetensors"]);

    let base = base_copy(&tmp.path().join("flipped"));
    let weights = base.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[12] ^= 0xff; // inside the JSON header
    std::fs::write(&weights, &bytes).unwrap();
    train_teacher(&base, &tmp.path().join("flipped/run")).assert_clear_error(&["model.safetensors"]);
}

/// A header that declares `model.embed_tokens.weight` as a 3 GiB tensor (the file is sparse):
/// without the shape check against config.json it would be read into memory first.
#[test]
fn a_header_declaring_a_giant_tensor_is_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base_copy(tmp.path());
    let weights = base.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let data = &bytes[8 + header_len..];
    let name = "model.embed_tokens.weight";
    let hidden = header[name]["shape"][1].as_u64().unwrap();
    let rows = (3u64 << 30) / 4 / hidden;
    // The giant tensor goes last; the others keep their bytes.
    let mut kept: Vec<(String, serde_json::Value)> = header.clone().into_iter().filter(|(k, _)| k != name).collect();
    kept.sort_by_key(|(_, v)| v["data_offsets"][0].as_u64().unwrap());
    let mut body = Vec::new();
    for (key, value) in &mut kept {
        let (a, b) =
            (value["data_offsets"][0].as_u64().unwrap() as usize, value["data_offsets"][1].as_u64().unwrap() as usize);
        let start = body.len();
        body.extend_from_slice(&data[a..b]);
        value["data_offsets"] = serde_json::json!([start, body.len()]);
        header.insert(key.clone(), value.clone());
    }
    let start = body.len() as u64;
    header.insert(
        name.into(),
        serde_json::json!({"dtype": "F32", "shape": [rows, hidden], "data_offsets": [start, start + rows * hidden * 4]}),
    );
    let mut head = serde_json::to_vec(&header).unwrap();
    head.resize(head.len().next_multiple_of(8), b' ');
    let mut file = std::fs::File::create(&weights).unwrap();
    use std::io::Write;
    file.write_all(&(head.len() as u64).to_le_bytes()).unwrap();
    file.write_all(&head).unwrap();
    file.write_all(&body).unwrap();
    file.set_len(8 + head.len() as u64 + start + rows * hidden * 4).unwrap();
    drop(file);
    let run = leader_with_limit(
        Path::new("."),
        &[
            "train-teacher",
            "--data",
            s(&fixture().path("data")),
            "--model",
            s(&base),
            "--out",
            s(&tmp.path().join("run")),
            "--max-steps",
            "1",
        ],
        5 << 30,
    );
    run.assert_clear_error(&["tensor model.embed_tokens.weight is stored with shape", "config.json gives"]);
}

#[test]
fn a_teacher_refuses_a_base_model_that_changed() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let base = base_copy(tmp.path());
    let run = tmp.path().join("teacher");
    train_teacher(&base, &run).assert_success();
    // Re-running init-model into the base folder (another seed) makes other weights.
    leader(&[
        "init-model",
        "--shape",
        "tiny",
        "--data",
        s(&f.path("data")),
        "--seed",
        "5",
        "--overwrite",
        "--out",
        s(&base),
    ])
    .assert_success();
    let out = tmp.path().join("p.jsonl");
    leader(&["predict", "--teacher", s(&run), "--data", s(&f.path("data")), "--split", "test", "--out", s(&out)])
        .assert_clear_error(&["changed since this teacher was trained"]);
    assert!(!out.exists());
}

/// A full disk: a 256 KiB tmpfs in a private mount namespace (where user namespaces are allowed).
#[test]
fn a_full_disk_says_so_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let out = mount.join("cohort");
    let script = format!(
        "mount -t tmpfs -o size=256k tmpfs {m} || exit 77; \"$0\" --quiet synth --patients 3000 --out {o}; code=$?; ls -A {m}; exit $code",
        m = s(&mount),
        o = s(&out)
    );
    let result = std::process::Command::new("unshare")
        .args(["-r", "-m", "sh", "-c", &script, env!("CARGO_BIN_EXE_leader")])
        .output();
    let Ok(result) = result else {
        eprintln!("SKIPPED a_full_disk_says_so_and_leaves_nothing: no unshare on this machine");
        return;
    };
    if result.status.code() == Some(77) || String::from_utf8_lossy(&result.stderr).contains("unshare:") {
        eprintln!("SKIPPED a_full_disk_says_so_and_leaves_nothing: cannot mount a tmpfs here");
        return;
    }
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: ") && first.contains("No space left on device"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // `ls -A` of the tmpfs after the failure: nothing left, not even temporaries.
    assert_eq!(String::from_utf8_lossy(&result.stdout).trim(), "", "left behind on the full disk");
}

/// A corpus file that is not UTF-8 is named with its line; a run resumed on a changed corpus is
/// refused; neither leaves a run behind or changes one.
#[test]
fn pretrain_names_a_non_utf8_corpus_line_and_refuses_a_changed_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let text: String = (0..60).map(|i| format!("Note {i}: gout is treated with allopurinol.\n\n")).collect();
    std::fs::write(corpus.join("a.txt"), &text).unwrap();
    std::fs::write(corpus.join("b.txt"), b"first line\nsecond \xff line\n").unwrap();
    let base = fixture().path("base");
    let run = |out: &Path| {
        leader(&["pretrain", "--model", s(&base), "--corpus", s(&corpus), "--out", s(out), "--max-steps", "2"])
    };
    let out = tmp.path().join("run");
    run(&out).assert_clear_error(&["b.txt:2", "not UTF-8"]);
    assert!(!out.exists(), "no run folder after a failure");

    std::fs::remove_file(corpus.join("b.txt")).unwrap();
    let first = run(&out);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    std::fs::write(corpus.join("c.txt"), "Note: asthma is treated with salbutamol.\n").unwrap();
    let log = std::fs::read(out.join("train_log.jsonl")).unwrap();
    leader(&["pretrain", "--resume", s(&out), "--max-steps", "4"]).assert_clear_error(&["the corpus changed"]);
    assert_eq!(std::fs::read(out.join("train_log.jsonl")).unwrap(), log);
}
