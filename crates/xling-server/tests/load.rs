//! Concurrency: batches form, a full queue refuses, requests beyond the per-connection limit are
//! refused at once, deadlines and cancellations drop queries before encoding; checked through
//! the responses and the real /metrics endpoint. Metrics are process-wide, so the steps run in
//! order in one test.

mod common;

use std::time::Duration;

use common::{metric_sum, settings, TestServer};
use tonic::{Code, Request};
use xling_proto::v1::SearchRequest;
use xling_server::Settings;

fn query(i: usize) -> SearchRequest {
    common::query(&format!("Frage Nummer {i} über Berge und Flüsse"), 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_overload_deadlines_and_cancellation() {
    concurrent_queries_share_batches().await;
    a_full_queue_refuses_fast_and_loses_nothing().await;
    beyond_the_connection_limit_is_refused_at_once().await;
    queued_past_its_deadline_is_dropped_unencoded().await;
    a_client_that_gives_up_is_dropped_unencoded().await;
}

async fn concurrent_queries_share_batches() {
    let server = TestServer::start(Settings {
        max_batch_size: Some(16),
        max_wait_us: Some(20_000),
        ..settings()
    })
    .await;
    let before = server.metrics().await;
    let client = server.client().await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move { client.search(query(i)).await })
        })
        .collect();
    let mut largest = 0;
    for task in tasks {
        let response = task.await.unwrap().unwrap().into_inner();
        largest = largest.max(response.timing.unwrap().batch_size);
    }
    assert!(largest > 1, "no batch held more than one query");
    let after = server.metrics().await;
    let delta = |name: &str| metric_sum(&after, name) - metric_sum(&before, name);
    let batches = delta("xling_batch_size_count");
    let queries = delta("xling_batch_size_sum");
    assert_eq!(queries, 64.0);
    assert!(batches < 64.0, "{batches} batches for 64 queries");
    assert_eq!(
        delta(r#"xling_requests_total{method="Search",code="OK""#),
        64.0
    );
    assert!(after.contains("xling_queue_wait_seconds_bucket"));
    assert!(after.contains("process_resident_memory_bytes"));
    server.stop().await.unwrap();
}

async fn a_full_queue_refuses_fast_and_loses_nothing() {
    let server = TestServer::start(Settings {
        max_batch_size: Some(4),
        queue_capacity: Some(4),
        max_wait_us: Some(50_000),
        ..settings()
    })
    .await;
    let before = server.metrics().await;
    let client = server.client().await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move { client.search(query(i)).await.map(|_| ()) })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(status.message().contains("overloaded"));
                refused += 1;
            }
        }
    }
    assert_eq!(ok + refused, 100, "every request got an answer");
    assert!(refused > 0 && ok >= 4, "ok {ok}, refused {refused}");
    let after = server.metrics().await;
    let rejected = metric_sum(&after, r#"xling_rejected_total{reason="queue_full""#)
        - metric_sum(&before, r#"xling_rejected_total{reason="queue_full""#);
    assert_eq!(rejected, refused as f64);
    server.stop().await.unwrap();
}

/// Two queries on one connection hold its limit of 2 (each waits a whole second for company);
/// a third on the same connection gets RESOURCE_EXHAUSTED while they still wait, instead of
/// queueing unseen by admission; the two are then answered.
async fn beyond_the_connection_limit_is_refused_at_once() {
    let server = TestServer::start(Settings {
        max_batch_size: Some(64),
        max_wait_us: Some(1_000_000),
        max_concurrency_per_connection: Some(2),
        ..settings()
    })
    .await;
    let in_flight = |text: &str| metric_sum(text, "xling_in_flight_requests");
    let base = in_flight(&server.metrics().await);
    let client = server.client().await;
    let holding: Vec<_> = (0..2)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move { client.search(query(i)).await.map(|_| ()) })
        })
        .collect();
    while in_flight(&server.metrics().await) < base + 2.0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = client.clone().search(query(3)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("Too many active requests"),
        "{}",
        status.message()
    );
    assert!(
        holding.iter().all(|task| !task.is_finished()),
        "refused while the two still wait, not after"
    );
    for task in holding {
        task.await.unwrap().unwrap();
    }
    server.stop().await.unwrap();
}

/// A server whose lone queries wait 200 ms for company: time to give up while queued.
async fn slow_server() -> TestServer {
    TestServer::start(Settings {
        max_batch_size: Some(64),
        max_wait_us: Some(200_000),
        ..settings()
    })
    .await
}

fn delta(before: &str, after: &str, name: &str) -> f64 {
    metric_sum(after, name) - metric_sum(before, name)
}

async fn queued_past_its_deadline_is_dropped_unencoded() {
    let server = slow_server().await;
    let before = server.metrics().await;
    // tonic's own client enforces grpc-timeout itself (and would cancel first); a bare HTTP/2
    // client sends the header and waits for the server's answer, as grpc-go clients can.
    // With Nagle on, the DATA frame waits ~40 ms for the ACK of the HEADERS frame: longer
    // than the deadline, so the handler would never see the request.
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let http2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    let origin = format!("http://{}", server.addr).parse().unwrap();
    let mut client = xling_proto::v1::retrieval_client::RetrievalClient::with_origin(http2, origin);
    let mut request = Request::new(query(1));
    request
        .metadata_mut()
        .insert("grpc-timeout", "30m".parse().unwrap());
    let status = client.search(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("deadline exceeded"),
        "{}",
        status.message()
    );
    // The batcher counts it when the batch it waited for closes (max_wait later).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = server.metrics().await;
    assert_eq!(delta(&before, &after, "xling_expired_total"), 1.0);
    assert_eq!(
        delta(&before, &after, "xling_batch_size_count"),
        0.0,
        "nothing encoded"
    );
    server.stop().await.unwrap();
}

async fn a_client_that_gives_up_is_dropped_unencoded() {
    let server = slow_server().await;
    let before = server.metrics().await;
    let mut client = server.client().await;
    let gave_up = tokio::time::timeout(Duration::from_millis(30), client.search(query(2))).await;
    assert!(gave_up.is_err(), "the query should still be queued");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = server.metrics().await;
    assert_eq!(delta(&before, &after, "xling_cancelled_total"), 1.0);
    assert_eq!(
        delta(&before, &after, "xling_batch_size_count"),
        0.0,
        "nothing encoded"
    );
    let cancelled_rpcs = r#"xling_requests_total{method="Search",code="CANCELLED""#;
    assert_eq!(delta(&before, &after, cancelled_rpcs), 1.0);
    server.stop().await.unwrap();
}
