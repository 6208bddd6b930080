//! Faults: a real encoder error fails only its batch; damaged model or index files fail
//! startup with a message that names the file.
//!
//! The failing model is `tests/fixtures/failing-model` (built by its `make.py`): a real ONNX
//! graph whose Gather goes out of bounds when a query holds the piece for "talent".

mod common;

use std::path::{Path, PathBuf};

use common::{build_index, metric_sum, query, repo, settings, startup_error, TestServer};
use tonic::Code;
use xling_server::Settings;

/// Small batches, so that a failed batch is a small part of a burst.
const MAX_BATCH: usize = 4;

/// A query text the failing model cannot encode.
const POISON: &str = "talent";

/// Copies the failing model fixture into `dir`, with the tiny model's tokenizer.
fn failing_model(dir: &Path) -> PathBuf {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/failing-model");
    let model = dir.join("failing-model");
    std::fs::create_dir_all(&model).unwrap();
    for name in ["model.toml", "failing.onnx"] {
        std::fs::copy(fixture.join(name), model.join(name)).unwrap();
    }
    std::fs::copy(
        repo().join("models/mt5-tiny/tokenizer.json"),
        model.join("tokenizer.json"),
    )
    .unwrap();
    model
}

/// A failing model and a real index built with it, in one temporary folder.
fn failing_setup() -> (tempfile::TempDir, Settings) {
    let dir = tempfile::tempdir().unwrap();
    let model = failing_model(dir.path());
    let index = dir.path().join("index");
    build_index(&model, &index);
    let settings = Settings {
        model: Some(model),
        index: Some(index),
        ..settings()
    };
    (dir, settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_fails_only_its_requests_and_the_server_keeps_serving() {
    let (_dir, settings) = failing_setup();
    let server = TestServer::start(Settings {
        max_batch_size: Some(MAX_BATCH),
        ..settings
    })
    .await;
    let client = server.client().await;

    let ok = client.clone().search(query("mountain", 3)).await.unwrap();
    assert_eq!(ok.into_inner().hits.len(), 3);

    let failed = client.clone().search(query(POISON, 3)).await.unwrap_err();
    assert_eq!(failed.code(), Code::Internal, "{failed:?}");
    assert!(
        failed.message().contains("encoder failed"),
        "{}",
        failed.message()
    );

    // One poison query among healthy ones sent at once: only the healthy queries that shared
    // its batch (at most MAX_BATCH - 1) may fail, and they fail with INTERNAL.
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let mut client = client.clone();
            let text = if i == 12 {
                POISON.to_string()
            } else {
                format!("river {i}")
            };
            tokio::spawn(async move { (text.clone(), client.search(query(&text, 3)).await) })
        })
        .collect();
    let mut healthy_failed = 0;
    for task in tasks {
        let (text, result) = task.await.unwrap();
        match result {
            Ok(response) => {
                assert_ne!(text, POISON, "the poison query cannot succeed");
                assert_eq!(response.into_inner().hits.len(), 3);
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Internal, "{text}: {status:?}");
                healthy_failed += usize::from(text != POISON);
            }
        }
    }
    assert!(
        healthy_failed < MAX_BATCH,
        "{healthy_failed} healthy queries failed: more than one batch"
    );

    // After the failures, healthy queries (alone in their batches) all succeed.
    for i in 0..5 {
        let response = client
            .clone()
            .search(query(&format!("lake {i}"), 3))
            .await
            .expect("the server must keep serving after a failed batch");
        assert_eq!(response.into_inner().hits.len(), 3);
    }
    let metrics = server.metrics().await;
    assert!(metric_sum(&metrics, "xling_encoder_failures_total") >= 1.0);
    assert!(
        metric_sum(
            &metrics,
            r#"xling_requests_total{method="Search",code="INTERNAL""#
        ) >= 1.0,
        "{metrics}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_model_or_index_file_fails_startup_naming_the_file() {
    let (dir, good) = failing_setup();

    let model = good.model.clone().unwrap();
    std::fs::write(model.join("failing.onnx"), b"not an onnx graph").unwrap();
    let message = startup_error(good.clone()).await;
    assert!(message.contains("failing.onnx"), "{message}");

    let copy = failing_model(&dir.path().join("fresh"));
    std::fs::write(copy.join("tokenizer.json"), b"{ truncated").unwrap();
    let message = startup_error(Settings {
        model: Some(copy.clone()),
        ..good.clone()
    })
    .await;
    assert!(message.contains("tokenizer.json"), "{message}");

    let fresh = failing_model(&dir.path().join("fresh2"));
    let index = good.index.clone().unwrap();
    // Load checks sizes (hashes are `xling index verify`'s): a cut file is named.
    let passages = index.join("passages.bin");
    let bytes = std::fs::read(&passages).unwrap();
    std::fs::write(&passages, &bytes[..bytes.len() - 3]).unwrap();
    let message = startup_error(Settings {
        model: Some(fresh),
        ..good
    })
    .await;
    assert!(message.contains("passages.bin"), "{message}");
}
