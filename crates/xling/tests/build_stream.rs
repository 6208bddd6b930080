//! The streaming `xling index build --out`: the real binary and the tiny real model over the
//! 400-passage demo corpus, in small chunks. A build stopped with `--stop-after` and finished
//! with `--resume` equals an uninterrupted one; `--resume` refuses another corpus; `--reuse`
//! encodes only what changed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use xling_index::Index;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn demo_corpus() -> PathBuf {
    repo().join("data/demo/corpus.jsonl")
}

/// `xling index build` over `corpus` into `out` in chunks of 32 rows (a checkpoint every
/// 10,000 rows: only at `--stop-after` and at the end), one thread (so two
/// builds of the same rows give the same bits), plus `extra`.
fn command(corpus: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xling"));
    command
        .args(["index", "build", "--corpus"])
        .arg(corpus)
        .arg("--model")
        .arg(repo().join("models/mt5-tiny"))
        .arg("--out")
        .arg(out)
        .args(["--threads", "1", "--chunk-size", "32"])
        .args(extra);
    command
}

fn build(corpus: &Path, out: &Path, extra: &[&str]) -> Output {
    command(corpus, out, extra).output().unwrap()
}

/// The build's stdout, after checking that it succeeded.
fn succeeded(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "build failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The `vectors:` line's counts: (reused, encoded, from file, written before).
fn counts(stdout: &str) -> (usize, usize, usize, usize) {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("vectors:"))
        .unwrap_or_else(|| panic!("no vectors line in\n{stdout}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    match numbers[..] {
        [reused, encoded, from_file, before] => (reused, encoded, from_file, before),
        _ => panic!("unexpected vectors line {line:?}"),
    }
}

/// Every (id, stored vector) in slot order.
fn rows(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let index = Index::load(dir).unwrap();
    (0..index.len() as u32)
        .map(|slot| {
            let id = index.passage(slot).unwrap().id;
            (id, index.embedding(slot).unwrap().to_vec())
        })
        .collect()
}

/// The demo corpus's lines as JSON values.
fn demo_lines() -> Vec<serde_json::Value> {
    std::fs::read_to_string(demo_corpus())
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_corpus(path: &Path, lines: &[serde_json::Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_stopped_build_resumes_to_the_same_index() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, resumed) = (dir.path().join("whole"), dir.path().join("resumed"));
    succeeded(build(&demo_corpus(), &whole, &[]));

    // Stops at the first chunk boundary at or past 100 rows: 4 chunks of 32.
    let stopped = succeeded(build(&demo_corpus(), &resumed, &["--stop-after", "100"]));
    assert!(
        stopped.contains("stopped with 128 of 400 rows"),
        "{stopped}"
    );
    assert_eq!(counts(&stopped), (0, 128, 0, 0));
    assert!(
        !resumed.exists(),
        "a stopped build leaves only the .partial folder"
    );

    let finished = succeeded(build(&demo_corpus(), &resumed, &["--resume"]));
    assert_eq!(
        counts(&finished),
        (0, 272, 0, 128),
        "the resumed run encodes only the remaining rows:\n{finished}"
    );
    let (a, b) = (rows(&whole), rows(&resumed));
    assert_eq!(a.len(), 400);
    assert!(
        a == b,
        "the resumed index differs from the uninterrupted one"
    );
}

#[test]
fn a_killed_build_resumes_from_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, killed) = (dir.path().join("whole"), dir.path().join("killed"));
    // One passage per encoder batch throughout: batches pad, and padding moves the last bits.
    let slow = ["--batch-size", "1"];
    succeeded(build(&demo_corpus(), &whole, &slow));

    // A checkpoint after every 32-row chunk: the build runs for a while after its first
    // checkpoint, and SIGKILL lands somewhere in it.
    let mut child = command(
        &demo_corpus(),
        &killed,
        &["--checkpoint-every", "1", "--batch-size", "1"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let checkpoint = dir.path().join("killed.partial/checkpoint.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !checkpoint.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the build ended early");
        assert!(Instant::now() < deadline, "no checkpoint within a minute");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.exists(), "the build finished before it was killed");

    let finished = succeeded(build(
        &demo_corpus(),
        &killed,
        &["--resume", "--batch-size", "1"],
    ));
    let (reused, encoded, from_file, before) = counts(&finished);
    assert!(before >= 32 && before % 32 == 0, "resumed at row {before}");
    assert_eq!((reused, encoded, from_file), (0, 400 - before, 0));
    assert!(rows(&whole) == rows(&killed), "the resumed index differs");
}

#[test]
fn resume_refuses_another_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("index");
    succeeded(build(&demo_corpus(), &out, &["--stop-after", "64"]));

    // Same length, same first 50 rows; row 50 has another id.
    let mut lines = demo_lines();
    lines[50]["id"] = "someone-else".into();
    let other = dir.path().join("other.jsonl");
    write_corpus(&other, &lines);
    let output = build(&other, &out, &["--resume"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("at row 50 where the corpus has \"someone-else\"")
            && stderr.contains("build without --resume"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn reuse_encodes_only_changed_and_new_passages() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    succeeded(build(&demo_corpus(), &old, &[]));

    let mut lines = demo_lines();
    let changed = lines[7]["id"].as_str().unwrap().to_string();
    lines[7]["text"] = "A passage whose text was edited after the first build.".into();
    lines.push(serde_json::json!({
        "id": "new-passage",
        "text": "A passage added after the first build.",
        "language": "en",
    }));
    let corpus = dir.path().join("corpus.jsonl");
    write_corpus(&corpus, &lines);
    let reuse = old.to_str().unwrap();
    let stdout = succeeded(build(&corpus, &new, &["--reuse", reuse]));
    assert_eq!(counts(&stdout), (399, 2, 0, 0), "{stdout}");

    let before = rows(&old);
    let after = rows(&new);
    assert_eq!(after.len(), 401);
    for (slot, (id, vector)) in after.iter().enumerate() {
        assert_eq!(id, lines[slot]["id"].as_str().unwrap());
        match before.get(slot) {
            Some((old_id, old_vector)) if *id != changed => {
                assert_eq!(old_id, id);
                assert!(old_vector == vector, "{id}: a reused vector differs");
            }
            Some((_, old_vector)) => assert!(old_vector != vector, "{id} was not re-encoded"),
            None => assert_eq!(id, "new-passage"),
        }
    }
}

#[test]
fn reuse_refuses_an_index_of_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    // An index of dim 3 made by another model, written directly.
    let spec = xling_index::WriterSpec {
        model_id: "another/model".into(),
        dim: 3,
        params: xling_index::BuildParams::default(),
        quantize: xling_index::Quantize::None,
        corpus_sha256: String::new(),
    };
    let passages: Vec<xling_index::Passage> = demo_lines()[..2]
        .iter()
        .map(|l| serde_json::from_value(l.clone()).unwrap())
        .collect();
    let mut writer = xling_index::IndexWriter::create(&old, spec, false).unwrap();
    writer
        .append(&passages, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
        .unwrap();
    writer.finish(false, &mut |_, _| {}).unwrap();
    let output = build(&demo_corpus(), &new, &["--reuse", old.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--reuse needs an index built by the same model")
            && stderr.contains("another/model"),
        "{stderr}"
    );
}
