//! The embedded index behind the `Backend` trait: the same hits as `Index::search`, resolved to
//! passages; passage lookup by id; the snapshot `describe` gives; the model check.

mod common;

use common::{build, MODEL};
use xling_index::{Backend, BuildParams, EmbeddedBackend, IndexError, Query};

#[test]
fn the_embedded_backend_resolves_the_index_hits() {
    let index = build(300, 16, &BuildParams::default());
    let queries: Vec<Vec<f32>> = (0..3)
        .map(|s| index.embedding(s * 7).unwrap().to_vec())
        .collect();
    let de = vec!["de".to_string()];
    let want: Vec<Vec<(String, f32)>> = queries
        .iter()
        .map(|q| {
            index
                .search(q, 5, 32, Some(&de))
                .unwrap()
                .into_iter()
                .map(|h| (index.passage(h.slot).unwrap().id.clone(), h.score))
                .collect()
        })
        .collect();
    let first = index.passage(0).unwrap();
    let backend = EmbeddedBackend::new(index);

    let batch: Vec<Query<'_>> = queries
        .iter()
        .map(|q| Query {
            vector: q,
            k: 5,
            ef: 32,
            languages: Some(&de),
        })
        .collect();
    let found = poll_once(backend.search_batch(&batch, None)).unwrap();
    let got: Vec<Vec<(String, f32)>> = found
        .iter()
        .map(|hits| {
            hits.iter()
                .map(|f| (f.passage.id.clone(), f.score))
                .collect()
        })
        .collect();
    assert_eq!(got, want);
    assert!(found.iter().flatten().all(|f| f.passage.language == "de"));

    let ids = [first.id.clone(), "no-such-id".to_string()];
    let passages = poll_once(backend.passages(&ids)).unwrap();
    assert_eq!(passages, vec![Some(first), None]);

    let info = backend.describe();
    assert_eq!((info.kind, info.passages, info.dim), ("embedded", 300, 16));
    assert_eq!(info.languages.values().sum::<usize>(), 300);
    // The vectors (300 x 16 f32) are mapped, not held; the graph's links are held.
    assert!(info.bytes_mapped >= 300 * 16 * 4, "{info:?}");
    assert!(info.bytes_in_ram > 0, "{info:?}");
    assert!(backend.check_model(MODEL, 16).is_ok());
    assert!(matches!(
        backend.check_model("other", 16),
        Err(IndexError::ModelMismatch { .. })
    ));
}

/// The embedded backend never awaits anything, so one poll finishes it.
fn poll_once<F: std::future::Future>(future: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the embedded backend must not wait"),
    }
}
