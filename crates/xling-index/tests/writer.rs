//! The streaming writer: format 2 folders, checkpoints and resume, int8 walks.

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::{passages, unit_vectors, MODEL};
use xling_index::{
    BuildParams, Index, IndexError, IndexWriter, Quantize, WriterSpec, MANIFEST_FILE,
};

const DIM: usize = 32;

fn spec(quantize: Quantize) -> WriterSpec {
    WriterSpec {
        model_id: MODEL.into(),
        dim: DIM,
        params: BuildParams::default(),
        quantize,
        corpus_sha256: "abc".into(),
    }
}

fn partial(dir: &Path) -> std::path::PathBuf {
    dir.with_file_name("idx.partial")
}

#[test]
fn resume_continues_at_the_last_checkpoint_and_drops_what_came_after() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let (all, vectors) = (passages(500), unit_vectors(500, DIM, 1));
    let mut writer = IndexWriter::create(&dir, spec(Quantize::None), false).unwrap();
    writer.append(&all[..200], &vectors[..200 * DIM]).unwrap();
    writer.checkpoint().unwrap();
    writer
        .append(&all[200..300], &vectors[200 * DIM..300 * DIM])
        .unwrap();
    assert_eq!(writer.rows(), 300);
    assert_eq!(writer.passage_id(250).as_deref(), Some("p250"));
    drop(writer); // a crash: rows 200..300 were never checkpointed

    let mut writer = IndexWriter::create(&dir, spec(Quantize::None), true).unwrap();
    assert_eq!(writer.rows(), 200);
    assert_eq!(writer.passage_id(199).as_deref(), Some("p199"));
    assert_eq!(writer.passage_id(200), None);
    writer.append(&all[200..], &vectors[200 * DIM..]).unwrap();
    let manifest = writer.finish(false, &mut |_, _| {}).unwrap();
    assert_eq!(manifest.count, 500);
    assert!(!partial(&dir).exists());

    let index = Index::load(&dir).unwrap();
    Index::verify(&dir).unwrap();
    for slot in [0u32, 199, 200, 499] {
        assert_eq!(index.passage(slot).as_ref(), Some(&all[slot as usize]));
        assert_eq!(index.slot_of(&format!("p{slot}")), Some(slot));
        let row = &vectors[slot as usize * DIM..(slot as usize + 1) * DIM];
        assert_eq!(index.embedding(slot), Some(row));
    }
    assert_eq!(index.slot_of("p500"), None);
    assert_eq!(index.passages_iter().count(), 500);

    // A resume with another model is refused; a fresh create replaces the partial folder.
    let mut other = spec(Quantize::None);
    other.model_id = "other".into();
    let writer = IndexWriter::create(&tmp.path().join("b"), spec(Quantize::None), false).unwrap();
    drop(writer);
    let err = IndexWriter::create(&tmp.path().join("b"), other, true).unwrap_err();
    assert!(err.to_string().contains("other"), "{err}");
}

#[test]
fn duplicate_ids_and_existing_output_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let mut dup = passages(20);
    dup[13].id = "p4".into();
    let mut writer = IndexWriter::create(&dir, spec(Quantize::None), false).unwrap();
    writer.append(&dup, &unit_vectors(20, DIM, 2)).unwrap();
    let err = writer.finish(false, &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(&err, IndexError::DuplicateId { id, line: 14, first_line: 5, .. } if id == "p4"),
        "{err:?}"
    );

    let mut writer = IndexWriter::create(&dir, spec(Quantize::None), false).unwrap();
    writer
        .append(&passages(20), &unit_vectors(20, DIM, 2))
        .unwrap();
    writer.finish(false, &mut |_, _| {}).unwrap();
    let mut writer = IndexWriter::create(&dir, spec(Quantize::None), false).unwrap();
    writer
        .append(&passages(20), &unit_vectors(20, DIM, 2))
        .unwrap();
    let err = writer.finish(false, &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, IndexError::OutputExists { .. }), "{err:?}");
}

#[test]
fn a_format_1_folder_asks_for_a_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join(MANIFEST_FILE),
        r#"{"format_version": 1, "model_id": "m"}"#,
    )
    .unwrap();
    let err = Index::load(tmp.path()).unwrap_err();
    assert!(
        matches!(
            err,
            IndexError::FormatVersion {
                found: 1,
                expected: xling_index::FORMAT_VERSION,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("rebuild"), "{err}");
}

#[test]
fn int8_walk_with_rescoring_keeps_recall_and_exact_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let n = 4000;
    let vectors = unit_vectors(n, DIM, 3);
    let mut writer = IndexWriter::create(&dir, spec(Quantize::Int8), false).unwrap();
    writer.append(&passages(n), &vectors).unwrap();
    let manifest = writer.finish(false, &mut |_, _| {}).unwrap();
    assert_eq!(manifest.quantization.as_ref().unwrap().scale.len(), DIM);
    let mut index = Index::load(&dir).unwrap();
    index.set_exact_subset_max(0); // the int8 graph walk
    let mut found = 0;
    for q in unit_vectors(100, DIM, 4).chunks_exact(DIM) {
        let exact = index.exact_search(q, 10, None).unwrap();
        let ann = index.search(q, 10, 64, None).unwrap();
        // Rescored: each hit's score is its exact fp32 score.
        for hit in &ann {
            let row = index.embedding(hit.slot).unwrap();
            let dot: f32 = row.iter().zip(q).map(|(a, b)| a * b).sum();
            assert!((hit.score - dot).abs() < 1e-5);
        }
        let exact: HashSet<u32> = exact.iter().map(|h| h.slot).collect();
        found += ann.iter().filter(|h| exact.contains(&h.slot)).count();
    }
    let recall = found as f64 / 1000.0;
    assert!(recall >= 0.95, "int8 recall@10 = {recall}");
}
