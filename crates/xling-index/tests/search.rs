//! Search behaviour on random unit vectors: self-queries, filters, recall, threads, save/load.

mod common;

use std::collections::HashSet;

use common::{build, language_of, unit_vectors, MODEL};
use xling_index::{BuildParams, Index, IndexError, SlotSet};

const DIM: usize = 48;

fn langs(codes: &[&str]) -> Vec<String> {
    codes.iter().map(|c| c.to_string()).collect()
}

#[test]
fn self_query_returns_itself_first_without_panicking() {
    let mut index = build(600, DIM, &BuildParams::default());
    index.set_exact_subset_max(0); // the graph, not the exact scan
    for slot in 0..index.len() as u32 {
        let query = index.embedding(slot).unwrap().to_vec();
        let hits = index.search(&query, 5, 32, None).unwrap();
        assert_eq!(hits[0].slot, slot);
        assert!((hits[0].score - 1.0).abs() < 1e-5, "{}", hits[0].score);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    }
}

#[test]
fn filtered_search_returns_only_and_enough_of_the_asked_languages() {
    let n = 2000;
    let mut index = build(n, 16, &BuildParams::default());
    let queries = unit_vectors(20, 16, 7);
    // Both strategies, each with its own recall: the graph with post-filtering (threshold 0:
    // the walk alone must reach 0.95) and the exact subset scan (must be exact).
    for (threshold, min_recall) in [(0, 0.95), (usize::MAX, 1.0)] {
        index.set_exact_subset_max(threshold);
        let (mut found, mut wanted) = (0, 0);
        for filter in [
            langs(&["el"]),
            langs(&["en"]),
            langs(&["de", "el"]),
            langs(&["en", "zh"]),
        ] {
            let available = (0..n)
                .filter(|&i| filter.iter().any(|l| l == language_of(i)))
                .count();
            for q in queries.chunks_exact(16) {
                let hits = index.search(q, 10, 16, Some(&filter)).unwrap();
                assert_eq!(hits.len(), 10.min(available), "filter {filter:?}");
                let exact = index.exact_search(q, 10, Some(&filter)).unwrap();
                found += hits.iter().filter(|h| exact.contains(h)).count();
                wanted += exact.len();
                for hit in &hits {
                    let lang = &index.passage(hit.slot).unwrap().language;
                    assert!(filter.contains(lang), "{lang} not in {filter:?}");
                }
            }
        }
        assert!(
            found as f64 >= min_recall * wanted as f64,
            "threshold {threshold}: recall {found}/{wanted}"
        );
    }
    // A valid code absent from the index matches nothing; an invalid one is an error.
    assert!(index
        .search(&queries[..16], 10, 16, Some(&langs(&["fr"])))
        .unwrap()
        .is_empty());
    let err = index.search(&queries[..16], 10, 16, Some(&langs(&["english"])));
    assert!(matches!(err, Err(IndexError::FilterLanguage { code }) if code == "english"));
}

#[test]
fn removed_slots_never_come_back_and_k_hits_still_do() {
    let n = 2000;
    let mut index = build(n, 16, &BuildParams::default());
    let queries: Vec<Vec<f32>> = (0..20u32)
        .map(|s| index.embedding(s * 97).unwrap().to_vec())
        .collect();
    // Remove each query's own passage and its exact top 5: the walk must step past them.
    let mut removed = SlotSet::new();
    for q in &queries {
        for hit in index.exact_search(q, 6, None).unwrap() {
            removed.insert(hit.slot);
        }
    }
    for threshold in [0, usize::MAX] {
        index.set_exact_subset_max(threshold); // graph walk, then exact scan
        for q in &queries {
            for filter in [None, Some(langs(&["en", "de"]))] {
                let hits = index
                    .search_filtered(q, 10, 32, filter.as_deref(), Some(&removed))
                    .unwrap();
                assert_eq!(hits.len(), 10, "threshold {threshold}, filter {filter:?}");
                assert!(hits.iter().all(|h| !removed.contains(h.slot)));
                let unfiltered = index.search(q, 1, 32, None).unwrap();
                assert!(removed.contains(unfiltered[0].slot), "self-hit was removed");
            }
        }
    }
}

#[test]
fn ann_recall_at_10_against_exact_is_at_least_095() {
    let mut index = build(3000, DIM, &BuildParams::default());
    index.set_exact_subset_max(0);
    let queries = unit_vectors(100, DIM, 99);
    let mut found = 0;
    for q in queries.chunks_exact(DIM) {
        let exact: HashSet<u32> = index
            .exact_search(q, 10, None)
            .unwrap()
            .iter()
            .map(|h| h.slot)
            .collect();
        let ann = index.search(q, 10, 64, None).unwrap();
        found += ann.iter().filter(|h| exact.contains(&h.slot)).count();
    }
    let recall = found as f64 / 1000.0;
    assert!(recall >= 0.95, "recall@10 = {recall}");
}

#[test]
fn small_candidate_sets_are_searched_exactly() {
    let index = build(800, DIM, &BuildParams::default()); // below the default threshold
    for q in unit_vectors(20, DIM, 3).chunks_exact(DIM) {
        let exact = index.exact_search(q, 10, None).unwrap();
        assert_eq!(index.search(q, 10, 10, None).unwrap(), exact);
    }
}

#[test]
fn concurrent_searches_match_serial_ones() {
    let mut index = build(1500, DIM, &BuildParams::default());
    index.set_exact_subset_max(0);
    let queries = unit_vectors(40, DIM, 5);
    let serial: Vec<_> = queries
        .chunks_exact(DIM)
        .map(|q| index.search(q, 10, 32, None).unwrap())
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    queries
                        .chunks_exact(DIM)
                        .map(|q| index.search(q, 10, 32, None).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), serial);
        }
    });
}

#[test]
fn save_then_load_gives_identical_results() {
    let mut index = build(
        1200,
        DIM,
        &BuildParams {
            m: 12,
            ef_construction: 60,
            threads: 2,
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    index.save(&dir, false).unwrap();
    let mut loaded = Index::load(&dir).unwrap();
    assert_eq!(loaded.manifest(), index.manifest());
    index.set_exact_subset_max(0);
    loaded.set_exact_subset_max(0);
    assert_eq!(loaded.manifest().count, 1200);
    assert_eq!(loaded.manifest().m, 12);
    let queries = unit_vectors(30, DIM, 11);
    let filter = langs(&["de"]);
    for q in queries.chunks_exact(DIM) {
        assert_eq!(
            loaded.search(q, 10, 40, None).unwrap(),
            index.search(q, 10, 40, None).unwrap()
        );
        assert_eq!(
            loaded.search(q, 5, 40, Some(&filter)).unwrap(),
            index.search(q, 5, 40, Some(&filter)).unwrap()
        );
    }
    for slot in [0u32, 7, 1199] {
        assert_eq!(loaded.passage(slot), index.passage(slot));
        assert_eq!(loaded.embedding(slot), index.embedding(slot));
    }
    // Saving over an existing index needs `overwrite` and leaves a loadable index.
    assert!(matches!(
        index.save(&dir, false),
        Err(IndexError::OutputExists { .. })
    ));
    index.save(&dir, true).unwrap();
    assert_eq!(Index::load(&dir).unwrap().len(), 1200);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("idx")]);
}

#[test]
fn rebuild_keeps_passages_and_embeddings_with_new_parameters() {
    let index = build(300, DIM, &BuildParams::default());
    let params = BuildParams {
        m: 8,
        ef_construction: 40,
        threads: 1,
    };
    let rebuilt = index.rebuild(&params, &mut |_, _| {}).unwrap();
    assert_eq!(
        (rebuilt.manifest().m, rebuilt.manifest().ef_construction),
        (8, 40)
    );
    assert_eq!(
        rebuilt.manifest().corpus_sha256,
        index.manifest().corpus_sha256
    );
    assert_eq!(rebuilt.manifest().languages, index.manifest().languages);
    for slot in [0u32, 150, 299] {
        assert_eq!(rebuilt.passage(slot), index.passage(slot));
        assert_eq!(rebuilt.embedding(slot), index.embedding(slot));
    }
}

#[test]
fn model_mismatch_is_a_clear_error() {
    let index = build(50, DIM, &BuildParams::default());
    index.check_model(MODEL, DIM).unwrap();
    let err = index.check_model("other-model", DIM).unwrap_err();
    assert!(matches!(err, IndexError::ModelMismatch { .. }));
    assert!(
        err.to_string().contains("other-model") && err.to_string().contains(MODEL),
        "{err}"
    );
    assert!(matches!(
        index.check_model(MODEL, DIM + 1),
        Err(IndexError::ModelMismatch { .. })
    ));
}

#[test]
fn bad_queries_are_errors() {
    let index = build(50, DIM, &BuildParams::default());
    assert!(matches!(
        index.search(&[0.5; 3], 5, 16, None),
        Err(IndexError::QueryDim {
            got: 3,
            expected: DIM
        })
    ));
    let mut nan = vec![0.0; DIM];
    nan[0] = f32::NAN;
    assert!(matches!(
        index.search(&nan, 5, 16, None),
        Err(IndexError::QueryNotFinite)
    ));
    assert!(matches!(
        index.exact_search(&nan, 5, None),
        Err(IndexError::QueryNotFinite)
    ));
    let mut graph = build(300, DIM, &BuildParams::default());
    graph.set_exact_subset_max(0);
    let all = graph.search(graph.embedding(0).unwrap(), usize::MAX, usize::MAX, None);
    assert_eq!(all.unwrap().len(), 300);
    assert!(index
        .search(index.embedding(0).unwrap(), 0, 16, None)
        .unwrap()
        .is_empty());
}
