//! Damaged or foreign index folders and bad build inputs give errors naming the problem.

mod common;

use std::path::{Path, PathBuf};

use common::{build, passages, unit_vectors, MODEL};
use xling_index::{
    BuildParams, Corpus, EmbeddedCorpus, Index, IndexError, MANIFEST_FILE, PASSAGES_FILE,
    VECTORS_FILE,
};

const DIM: usize = 8;

/// A saved 200-passage index in a fresh temp folder.
fn saved() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    build(200, DIM, &BuildParams::default())
        .save(&dir, false)
        .unwrap();
    (tmp, dir)
}

fn graph_file(dir: &Path) -> PathBuf {
    let manifest = Index::load(dir).unwrap().manifest().clone();
    dir.join(format!("{}.hnsw.graph", manifest.hnsw_basename))
}

fn corrupt_path(err: IndexError) -> PathBuf {
    match err {
        IndexError::Corrupt { path, .. } => path,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn missing_folder_or_file_is_named() {
    let err = Index::load(Path::new("/nonexistent/idx")).unwrap_err();
    assert!(
        matches!(&err, IndexError::MissingFile { path } if path.ends_with(MANIFEST_FILE)),
        "{err:?}"
    );
    let (_tmp, dir) = saved();
    std::fs::remove_file(dir.join(PASSAGES_FILE)).unwrap();
    let err = Index::load(&dir).unwrap_err();
    assert!(
        matches!(&err, IndexError::MissingFile { path } if path.ends_with(PASSAGES_FILE)),
        "{err:?}"
    );
}

#[test]
fn damaged_files_fail_verify_and_cut_files_fail_load() {
    let (_tmp, dir) = saved();
    Index::verify(&dir).unwrap();
    let graph = graph_file(&dir);
    let mut bytes = std::fs::read(&graph).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&graph, bytes).unwrap();
    assert_eq!(corrupt_path(Index::verify(&dir).unwrap_err()), graph);

    let (_tmp, dir) = saved();
    let vectors = dir.join(VECTORS_FILE);
    let bytes = std::fs::read(&vectors).unwrap();
    std::fs::write(&vectors, &bytes[..bytes.len() - 4]).unwrap();
    assert_eq!(corrupt_path(Index::load(&dir).unwrap_err()), vectors);
    assert_eq!(corrupt_path(Index::verify(&dir).unwrap_err()), vectors);
}

#[test]
fn garbage_graph_with_a_matching_checksum_is_an_error_not_a_panic() {
    let (_tmp, dir) = saved();
    let graph = graph_file(&dir);
    std::fs::write(&graph, b"not an hnsw graph at all").unwrap();
    // Make index.json agree with the garbage so the hnsw_rs loader itself sees it.
    let manifest_path = dir.join(MANIFEST_FILE);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let name = graph.file_name().unwrap().to_str().unwrap();
    manifest["files"][name]["sha256"] = sha256sum(&graph).into();
    manifest["files"][name]["bytes"] = std::fs::metadata(&graph).unwrap().len().into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    assert_eq!(corrupt_path(Index::load(&dir).unwrap_err()), graph);
}

#[test]
fn bad_manifest_and_other_versions_are_errors() {
    let (_tmp, dir) = saved();
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(
        &manifest_path,
        text.replace("\"format_version\": 2", "\"format_version\": 99"),
    )
    .unwrap();
    let err = Index::load(&dir).unwrap_err();
    assert!(
        matches!(
            err,
            IndexError::FormatVersion {
                found: 99,
                expected: 2,
                ..
            }
        ),
        "{err:?}"
    );
    std::fs::write(&manifest_path, "{ not json").unwrap();
    assert_eq!(corrupt_path(Index::load(&dir).unwrap_err()), manifest_path);
}

#[test]
fn loaded_index_checks_its_model() {
    let (_tmp, dir) = saved();
    let index = Index::load(&dir).unwrap();
    index.check_model(MODEL, DIM).unwrap();
    let err = index
        .check_model("intfloat/multilingual-e5-small", 384)
        .unwrap_err();
    assert!(err.to_string().contains(dir.to_str().unwrap()), "{err}");
}

#[test]
fn save_never_replaces_a_folder_that_is_not_an_index() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious.txt"), "keep me").unwrap();
    let err = build(20, DIM, &BuildParams::default())
        .save(tmp.path(), true)
        .unwrap_err();
    assert!(matches!(err, IndexError::OutputNotIndex { .. }), "{err:?}");
    assert!(tmp.path().join("precious.txt").exists());
}

#[test]
fn bad_build_inputs_are_errors() {
    let input = |embeddings: Vec<f32>| EmbeddedCorpus {
        corpus: Corpus::from_passages(passages(10)).unwrap(),
        embeddings,
        dim: DIM,
        model_id: MODEL.into(),
        encode_seconds: 0.0,
    };
    let params = BuildParams::default();
    let err = Index::build(input(unit_vectors(9, DIM, 1)), &params, &mut |_, _| {});
    assert!(matches!(
        err,
        Err(IndexError::EmbeddingCount {
            got: 72,
            expected: 80,
            ..
        })
    ));
    let mut scaled = unit_vectors(10, DIM, 1);
    scaled[3 * DIM] += 1.0;
    let err = Index::build(input(scaled), &params, &mut |_, _| {});
    assert!(matches!(err, Err(IndexError::NotNormalized { id, .. }) if id == "p3"));
    for m in [0, 1, 256, 300] {
        let params = BuildParams {
            m,
            ..BuildParams::default()
        };
        let err = Index::build(input(unit_vectors(10, DIM, 1)), &params, &mut |_, _| {});
        assert!(
            matches!(err, Err(IndexError::BuildParam { name: "m", .. })),
            "m={m}"
        );
    }
}

fn sha256sum(path: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
