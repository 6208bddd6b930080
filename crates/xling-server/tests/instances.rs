//! Encoder instances and the benchmark backends through the real server: several ONNX
//! Runtime sessions give the embeddings one gives; `null` and `sim:` serve real searches.

mod common;

use common::{metric_sum, query, settings, TestServer};
use xling_proto::v1::{EmbedMode, EmbedRequest, InfoRequest};
use xling_server::Settings;

/// Metrics are process-wide: one test's batches must not land in another's deltas.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn texts() -> Vec<String> {
    let base = [
        "Wo liegt der höchste Berg Europas?",
        "¿Cuándo se fundó la ciudad de Lima?",
        "カカオの原産地はどこですか",
        "What is the capital of Australia?",
        "Почему небо голубое?",
        "a",
    ];
    // Different lengths in every batch, so padding differs between the two servers' batches.
    (0..36)
        .map(|i| format!("{} {}", base[i % base.len()], "mehr ".repeat(i % 5)))
        .collect()
}

async fn embed_all(server: &TestServer) -> Vec<Vec<f32>> {
    let mut client = server.client().await;
    let request = EmbedRequest {
        texts: texts(),
        mode: EmbedMode::Query as i32,
    };
    let response = client.embed(request).await.unwrap().into_inner();
    response.embeddings.into_iter().map(|e| e.values).collect()
}

fn with(instances: usize, extra: Settings) -> Settings {
    Settings {
        encoder_instances: Some(instances),
        max_batch_size: Some(4),
        max_wait_us: Some(0),
        split_by_length: Some(false),
        ..extra
    }
}

#[tokio::test]
async fn three_instances_embed_as_one_does() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let one = TestServer::start(with(1, settings())).await;
    let three = TestServer::start(with(3, settings())).await;
    let info = three
        .client()
        .await
        .info(InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.batching.unwrap().encoder_instances, 3);
    assert_eq!(info.encoder, "onnx");
    let (a, b) = (embed_all(&one).await, embed_all(&three).await);
    assert_eq!((a.len(), b.len()), (36, 36));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let diff = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(diff <= 1e-5, "text {i}: max abs diff {diff}");
    }
    let metrics = three.metrics().await;
    assert!(metric_sum(&metrics, "xling_encoder_busy_seconds") > 0.0);
    one.stop().await.unwrap();
    three.stop().await.unwrap();
}

/// The simulated device charges exactly `fixed + per_token x padded tokens` per batch: its
/// busy time equals what the batcher's own metrics say it ran.
#[tokio::test]
async fn the_simulated_device_serves_real_searches_and_counts_its_time() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let sim = "sim:fixed_us=300,per_token_ns=2000,host_us=0";
    let server = TestServer::start(with(
        2,
        Settings {
            encoder: Some(sim.into()),
            ..settings()
        },
    ))
    .await;
    let mut client = server.client().await;
    let info = client.info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.encoder, sim);
    let before = server.metrics().await;
    let searches = (0..24).map(|i| {
        let mut client = client.clone();
        async move {
            let text = format!("Frage Nummer {i} über Berge");
            client.search(query(&text, 5)).await.map(|r| r.into_inner())
        }
    });
    for response in futures::future::join_all(searches).await {
        assert_eq!(response.unwrap().hits.len(), 5);
    }
    let after = server.metrics().await;
    let delta = |name: &str| metric_sum(&after, name) - metric_sum(&before, name);
    let expected = delta("xling_encode_duration_seconds_count") * 300e-6
        + delta("xling_batch_tokens_sum") * 2000e-9;
    let busy = delta("xling_sim_device_busy_seconds");
    assert!(expected > 0.0);
    assert!(
        (busy - expected).abs() < 1e-6,
        "device {busy} s, batches say {expected} s"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_null_encoder_serves_searches_with_repeatable_results() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start(Settings {
        encoder: Some("null".into()),
        ..settings()
    })
    .await;
    let mut client = server.client().await;
    let a = client.search(query("Berge", 5)).await.unwrap().into_inner();
    let b = client.search(query("Berge", 5)).await.unwrap().into_inner();
    let ids = |r: &xling_proto::v1::SearchResponse| {
        r.hits
            .iter()
            .map(|h| h.passage_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&a).len(), 5);
    assert_eq!(ids(&a), ids(&b));
    server.stop().await.unwrap();
}
