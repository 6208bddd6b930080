//! `Index::upgrade`: a format 2 folder (graph in hnsw_rs's own dump, as xling wrote it before
//! `graph.adj`) is converted in place and then searches through the graph it held.

mod common;

use std::path::Path;

use common::build;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Hnsw;
use xling_index::{BuildParams, Index, IndexError, UnitDot, ADJACENCY_FILE, MANIFEST_FILE};

const DIM: usize = 16;
const COUNT: usize = 600;

/// Turns a saved format 3 folder into the format 2 layout: an hnsw_rs graph over its
/// vectors dumped as `graph.hnsw.*`, listed in a version 2 manifest, no `graph.adj`.
/// Returns the dumped graph, the one the upgrade must carry over.
fn make_format2(dir: &Path) -> Hnsw<'static, f32, UnitDot> {
    let index = Index::load(dir).unwrap();
    let graph = Hnsw::new(8, COUNT, 16, 100, UnitDot);
    for (slot, row) in index.embeddings().chunks_exact(DIM).enumerate() {
        graph.insert_slice((row, slot));
    }
    drop(index);
    assert_eq!(graph.file_dump(dir, "graph").unwrap(), "graph");
    std::fs::remove_file(dir.join(ADJACENCY_FILE)).unwrap();
    let path = dir.join(MANIFEST_FILE);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["format_version"] = 2.into();
    manifest["hnsw_basename"] = "graph".into();
    let files = manifest["files"].as_object_mut().unwrap();
    files.remove(ADJACENCY_FILE);
    for name in ["graph.hnsw.graph", "graph.hnsw.data"] {
        let bytes = std::fs::metadata(dir.join(name)).unwrap().len();
        files.insert(
            name.into(),
            serde_json::json!({"bytes": bytes, "sha256": "not checked by load"}),
        );
    }
    std::fs::write(&path, manifest.to_string()).unwrap();
    graph
}

#[test]
fn a_format2_folder_is_refused_with_the_command_then_upgraded_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    build(COUNT, DIM, &BuildParams::default())
        .save(&dir, false)
        .unwrap();
    let old = make_format2(&dir);

    let err = Index::load(&dir).unwrap_err();
    assert!(matches!(err, IndexError::NeedsUpgrade { .. }), "{err:?}");
    assert!(err.to_string().contains("xling index upgrade"), "{err}");

    let (manifest, changed) = Index::upgrade(&dir).unwrap();
    assert!(changed);
    assert_eq!(manifest.format_version, xling_index::FORMAT_VERSION);
    assert!(!dir.join("graph.hnsw.graph").exists() && !dir.join("graph.hnsw.data").exists());
    let (_, again) = Index::upgrade(&dir).unwrap();
    assert!(!again, "a current folder is left as is");
    Index::verify(&dir).unwrap();

    // The upgraded walk follows the dumped graph: at a breadth that reaches most of it, its
    // answers equal hnsw_rs's own search of that graph, slot for slot.
    let mut index = Index::load(&dir).unwrap();
    index.set_exact_subset_max(0);
    for slot in [0u32, 17, 333, 599] {
        let query = index.embedding(slot).unwrap().to_vec();
        let ours: Vec<u32> = index
            .search(&query, 10, 200, None)
            .unwrap()
            .iter()
            .map(|h| h.slot)
            .collect();
        let theirs: Vec<u32> = old
            .search(&query, 10, 200)
            .iter()
            .map(|n| n.d_id as u32)
            .collect();
        assert_eq!(ours, theirs, "query {slot}");
        assert_eq!(ours[0], slot);
    }
}
