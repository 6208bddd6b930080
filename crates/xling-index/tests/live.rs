//! The live index on a real HNSW folder: writes searched and counted, replay after a reopen,
//! compaction into a new base, swaps.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{build, unit_vectors, MODEL};
use xling_index::{
    Backend, BuildParams, CompactionPolicy, IndexError, LiveIndex, Passage, Query, Writable,
};

const DIM: usize = 16;

fn folder(dir: &Path, n: usize) -> std::path::PathBuf {
    let path = dir.join(format!("index-{n}"));
    build(n, DIM, &BuildParams::default())
        .save(&path, false)
        .unwrap();
    path
}

fn passage(id: &str) -> Passage {
    Passage {
        id: id.into(),
        text: format!("text of {id}"),
        language: "en".into(),
        title: None,
    }
}

fn ids(live: &LiveIndex, vector: &[f32], k: usize) -> Vec<String> {
    let query = Query {
        vector,
        k,
        ef: 64,
        languages: None,
    };
    let found = futures_lite(live.search_batch(&[query], None)).unwrap();
    found[0].iter().map(|f| f.passage.id.clone()).collect()
}

/// Runs a future that never waits (the embedded backend's are plain CPU work).
fn futures_lite<T>(future: impl std::future::Future<Output = T>) -> T {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("the embedded backend never waits"),
    }
}

#[test]
fn writes_are_searched_counted_and_replayed_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = folder(dir.path(), 300);
    let live = LiveIndex::open(&path, CompactionPolicy::never()).unwrap();
    let fresh = unit_vectors(2, DIM, 7);
    let (new_vector, moved_vector) = fresh.split_at(DIM);

    let written = live
        .upsert(vec![passage("new")], new_vector.to_vec())
        .unwrap();
    assert_eq!((written.generation, written.changed), (1, 1));
    assert_eq!(ids(&live, new_vector, 1), ["new"]);
    assert_eq!(live.describe().passages, 301);

    // p5 replaced: found at its new vector, and only once anywhere.
    live.upsert(vec![passage("p5")], moved_vector.to_vec())
        .unwrap();
    assert_eq!(ids(&live, moved_vector, 1), ["p5"]);
    assert_eq!(live.describe().passages, 301);

    // Deletes: one from the delta, one from the base, one unknown.
    let wanted = ["p6".to_string()];
    let p6 = live.passages(&wanted);
    assert!(futures_lite(p6).unwrap()[0].is_some());
    let written = live
        .delete(vec!["p5".into(), "p6".into(), "nope".into()])
        .unwrap();
    assert_eq!(written.changed, 2);
    let base = xling_index::Index::load(&path).unwrap();
    let p6_vector = base
        .embedding(base.slot_of("p6").unwrap())
        .unwrap()
        .to_vec();
    let near_p6 = ids(&live, &p6_vector, 10);
    assert_eq!(near_p6.len(), 10);
    assert!(
        !near_p6.iter().any(|id| id == "p6" || id == "p5"),
        "{near_p6:?}"
    );
    let info = live.describe();
    assert_eq!(info.passages, 299);
    assert_eq!(info.languages.values().sum::<usize>(), 299);
    let stats = live.stats();
    assert_eq!(
        (stats.pending_log, stats.delta, stats.tombstones),
        (3, 1, 2)
    );

    // Reopened: the log replays to the same state.
    drop(live);
    let live = LiveIndex::open(&path, CompactionPolicy::never()).unwrap();
    assert_eq!(live.describe().passages, 299);
    assert_eq!(ids(&live, new_vector, 1), ["new"]);
    assert_eq!(ids(&live, &p6_vector, 10), near_p6);
}

#[test]
fn compaction_folds_the_writes_into_a_new_base_and_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = folder(dir.path(), 200);
    let live = LiveIndex::open(&path, compact_after(5)).unwrap();
    let vectors = unit_vectors(8, DIM, 11);
    for (i, v) in vectors.chunks(DIM).enumerate() {
        live.upsert(vec![passage(&format!("n{i}"))], v.to_vec())
            .unwrap();
    }
    live.delete(vec!["p1".into()]).unwrap();
    let started = Instant::now();
    while live.stats().compactions == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no compaction");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The log now holds only the writes that came after the snapshot.
    let stats = live.stats();
    assert!(stats.pending_log < 9, "{stats:?}");
    assert_eq!(live.describe().passages, 207);
    for (i, v) in vectors.chunks(DIM).enumerate() {
        assert_eq!(ids(&live, v, 1), [format!("n{i}")]);
    }
    // n0 came before the snapshot, so it is in the new base itself.
    let compacted = xling_index::Index::load(&path).unwrap();
    assert!(compacted.slot_of("n0").is_some());
    assert!(!dir.path().join("index-200.compacting").exists());
    assert!(!dir.path().join("index-200.compacted-old").exists());

    drop(live);
    let live = LiveIndex::open(&path, CompactionPolicy::never()).unwrap();
    assert_eq!(live.describe().passages, 207);
    assert_eq!(ids(&live, &vectors[7 * DIM..], 1), ["n7"]);
}

#[test]
fn swap_serves_the_new_folder_and_a_failed_swap_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (folder(dir.path(), 100), folder(dir.path(), 150));
    let live: Arc<LiveIndex> = LiveIndex::open(&old, CompactionPolicy::never()).unwrap();
    live.upsert(vec![passage("x")], unit_vectors(1, DIM, 3))
        .unwrap();

    let err = live.swap(&new, "another-model", DIM).unwrap_err();
    assert!(matches!(err, IndexError::ModelMismatch { .. }), "{err}");
    let err = live
        .swap(&dir.path().join("missing"), MODEL, DIM)
        .unwrap_err();
    assert!(matches!(err, IndexError::MissingFile { .. }), "{err}");
    assert_eq!(live.describe().passages, 101);

    let info = live.swap(&new, MODEL, DIM).unwrap();
    assert_eq!(info.passages, 150);
    assert!(futures_lite(live.passages(&["x".into()])).unwrap()[0].is_none());
    // Later writes go to the new folder's log, not the old one's.
    live.delete(vec!["p0".into()]).unwrap();
    assert!(new.join("wal/log").is_file());
    assert_eq!(
        LiveIndex::open(&old, CompactionPolicy::never())
            .unwrap()
            .describe()
            .passages,
        101
    );
    assert_eq!(
        LiveIndex::open(&new, CompactionPolicy::never())
            .unwrap()
            .describe()
            .passages,
        149
    );
}

#[test]
fn a_failed_compaction_waits_before_the_next_and_loses_no_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = folder(dir.path(), 200);
    let live = LiveIndex::open(&path, compact_after(3)).unwrap();
    // The swap-in moves the served folder aside to this name; a non-empty folder there makes
    // every compaction fail at that step.
    let blocker = dir.path().join("index-200.compacted-old");
    std::fs::create_dir_all(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), b"x").unwrap();
    let vectors = unit_vectors(20, DIM, 5);
    let upsert = |i: usize| {
        let v = vectors[i * DIM..(i + 1) * DIM].to_vec();
        live.upsert(vec![passage(&format!("n{i}"))], v).unwrap();
    };
    (0..3).for_each(upsert);
    let started = Instant::now();
    while live.stats().compaction_failures == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no compaction ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every later write is past the threshold too; none may start another attempt yet (one
    // would fail again well within these 3 s: the first took less).
    (3..20).for_each(upsert);
    std::thread::sleep(Duration::from_secs(3));
    let stats = live.stats();
    assert_eq!(
        (stats.compaction_failures, stats.compactions),
        (1, 0),
        "{stats:?}"
    );
    assert!(!dir.path().join("index-200.compacting").exists());
    assert_eq!(live.describe().passages, 220);
    for i in 0..20 {
        assert_eq!(
            ids(&live, &vectors[i * DIM..(i + 1) * DIM], 1),
            [format!("n{i}")]
        );
    }
}

/// Compaction once `changes` writes pile up, on one thread.
fn compact_after(changes: usize) -> CompactionPolicy {
    CompactionPolicy {
        max_changes: changes,
        max_share: 0.0,
        threads: 1,
        exact_subset_max: None,
    }
}
