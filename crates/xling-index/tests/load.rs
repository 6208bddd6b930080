//! Damaged or foreign index folders and bad build inputs give errors naming the problem.

mod common;

use std::path::{Path, PathBuf};

use common::{build, passages, unit_vectors, MODEL};
use xling_index::{
    BuildParams, Corpus, EmbeddedCorpus, Index, IndexError, ADJACENCY_FILE, MANIFEST_FILE,
    PASSAGES_FILE, VECTORS_FILE,
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
    dir.join(ADJACENCY_FILE)
}

/// Makes index.json agree with the file `name` as it is now (size and SHA-256).
fn accept_file(dir: &Path, name: &str) {
    let manifest_path = dir.join(MANIFEST_FILE);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let path = dir.join(name);
    manifest["files"][name]["sha256"] = sha256sum(&path).into();
    manifest["files"][name]["bytes"] = std::fs::metadata(&path).unwrap().len().into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
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
    std::fs::write(&graph, b"not a graph file at all, 40 bytes long..").unwrap();
    // Make index.json agree with the garbage so the graph loader itself sees it.
    accept_file(&dir, ADJACENCY_FILE);
    assert_eq!(corrupt_path(Index::load(&dir).unwrap_err()), graph);
}

#[test]
fn links_past_the_index_are_skipped_by_the_walk_not_followed() {
    let (_tmp, dir) = saved();
    let mut index = Index::load(&dir).unwrap();
    index.set_exact_subset_max(0);
    let query = index.embedding(7).unwrap().to_vec();
    let before = index.search(&query, 5, 64, None).unwrap();
    drop(index);
    // Point every layer-0 link of the whole file past the 200 passages: header 16 words,
    // offsets 201 words, then blocks of [n, ids...]; only ids change, counts stay.
    let graph = graph_file(&dir);
    let mut words: Vec<u32> = std::fs::read(&graph)
        .unwrap()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let (m0, layer0) = (words[3] as usize, 16 + 201);
    for block in words[layer0..layer0 + 200 * (1 + m0)].chunks_exact_mut(1 + m0) {
        let n = block[0] as usize;
        block[1..=n].iter_mut().for_each(|id| *id += 1_000_000);
    }
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    std::fs::write(&graph, bytes).unwrap();
    accept_file(&dir, ADJACENCY_FILE);
    let mut index = Index::load(&dir).unwrap();
    index.set_exact_subset_max(0);
    // The walk sees no usable link on layer 0, so it comes back short and the search falls
    // back to an exact scan: the same best hit, no panic.
    let after = index.search(&query, 5, 64, None).unwrap();
    assert_eq!(after.len(), 5);
    assert_eq!(after[0].slot, before[0].slot);
}

#[test]
fn bad_manifest_and_other_versions_are_errors() {
    let (_tmp, dir) = saved();
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(
        &manifest_path,
        text.replace("\"format_version\": 3", "\"format_version\": 99"),
    )
    .unwrap();
    let err = Index::load(&dir).unwrap_err();
    assert!(
        matches!(
            err,
            IndexError::FormatVersion {
                found: 99,
                expected: 3,
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
