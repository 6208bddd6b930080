//! Concurrency: batches form, a full queue refuses, requests beyond the per-connection limit are
//! refused at once, deadlines and cancellations drop queries before encoding; checked through
//! the responses and the real /metrics endpoint. Metrics are process-wide, so the steps run in
//! order in one test.
//!
//! No step races the wall clock: batches close on size (the wait is set far beyond the test),
//! and each step waits for the state it needs (a query queued, an RPC cancelled) by polling
//! /metrics, with a generous bound that only a broken server reaches.

mod common;

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
    // Batches close only when full: 64 concurrent queries make exactly 4 batches of 16,
    // however slowly they arrive. No length split, so each batch runs whole.
    let server = TestServer::start(Settings {
        max_batch_size: Some(16),
        max_wait_us: Some(NEVER_US),
        split_by_length: Some(false),
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
    for task in tasks {
        let response = task.await.unwrap().unwrap().into_inner();
        assert_eq!(response.timing.unwrap().batch_size, 16);
    }
    let after = server.metrics().await;
    assert_eq!(delta(&before, &after, "xling_batch_size_count"), 4.0);
    assert_eq!(delta(&before, &after, "xling_batch_size_sum"), 64.0);
    assert_eq!(
        delta(
            &before,
            &after,
            r#"xling_requests_total{method="Search",code="OK""#
        ),
        64.0
    );
    assert!(after.contains("xling_queue_wait_seconds_bucket"));
    assert!(after.contains("process_resident_memory_bytes"));
    server.stop().await.unwrap();
}

async fn a_full_queue_refuses_fast_and_loses_nothing() {
    // Whether a burst overflows a queue of 4 depends on how fast the encoder drains it, so
    // bursts repeat until one is refused (the first, unless the machine is very busy).
    let server = TestServer::start(Settings {
        max_batch_size: Some(4),
        queue_capacity: Some(4),
        max_wait_us: Some(50_000),
        // Only the count limit refuses here (the wait budget has its own batcher test).
        max_queue_wait_ms: Some(0),
        ..settings()
    })
    .await;
    let before = server.metrics().await;
    let client = server.client().await;
    let (mut ok, mut refused) = (0, 0);
    for _burst in 0..50 {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let mut client = client.clone();
                tokio::spawn(async move { client.search(query(i)).await.map(|_| ()) })
            })
            .collect();
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => ok += 1,
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                    assert!(status.message().contains("overloaded"), "{status:?}");
                    refused += 1;
                }
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(refused > 0, "50 bursts of 100 never filled a queue of 4");
    assert!(ok >= 4, "ok {ok}, refused {refused}");
    let after = server.metrics().await;
    let count = |code: &str| {
        let name = format!(r#"xling_requests_total{{method="Search",code="{code}""#);
        delta(&before, &after, &name)
    };
    assert_eq!(count("OK"), ok as f64, "every request got an answer");
    assert_eq!(count("RESOURCE_EXHAUSTED"), refused as f64);
    let rejected = r#"xling_rejected_total{reason="queue_full""#;
    assert_eq!(delta(&before, &after, rejected), refused as f64);
    // Admission comes before tokenizing: a refusal costs no tokenizer time.
    let tokenized = delta(&before, &after, "xling_tokenize_duration_seconds_count");
    assert_eq!(tokenized, ok as f64, "only admitted queries are tokenized");
    server.stop().await.unwrap();
}

/// Two queries on one connection hold its limit of 2 (their batch closes only at three); a
/// third on the same connection gets RESOURCE_EXHAUSTED while they still wait, instead of
/// queueing unseen by admission; a third from another connection then closes the batch.
async fn beyond_the_connection_limit_is_refused_at_once() {
    let server = TestServer::start(Settings {
        max_batch_size: Some(3),
        max_wait_us: Some(NEVER_US),
        max_concurrency_per_connection: Some(2),
        ..settings()
    })
    .await;
    let client = server.client().await;
    let holding: Vec<_> = (0..2)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move { client.search(query(i)).await.map(|_| ()) })
        })
        .collect();
    server
        .metrics_until("two queries queued", |m| {
            metric_sum(m, "xling_queue_depth") == 2.0
        })
        .await;
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
    let third = server.client().await.search(query(4)).await.unwrap();
    assert_eq!(third.into_inner().timing.unwrap().batch_size, 3);
    for task in holding {
        task.await.unwrap().unwrap();
    }
    server.stop().await.unwrap();
}

/// A max wait no step of this test reaches (the most the batcher accepts): batches close
/// when full.
const NEVER_US: u64 = 10_000_000;

/// A server whose batches close at two queries: a lone query waits until a second one comes.
async fn pairing_server() -> TestServer {
    TestServer::start(Settings {
        max_batch_size: Some(2),
        max_wait_us: Some(NEVER_US),
        ..settings()
    })
    .await
}

fn delta(before: &str, after: &str, name: &str) -> f64 {
    metric_sum(after, name) - metric_sum(before, name)
}

/// Closes the batch a dropped query waits in with a second query, which runs alone; by its
/// answer the batcher has counted the dropped one. Checks that nothing else was encoded.
async fn a_partner_runs_alone(server: &TestServer, before: &str) -> String {
    let mut client = server.client().await;
    let partner = client.search(query(3)).await.unwrap().into_inner();
    assert_eq!(
        partner.timing.unwrap().batch_size,
        1,
        "the dropped query ran"
    );
    let after = server.metrics().await;
    assert_eq!(delta(before, &after, "xling_batch_size_count"), 1.0);
    assert_eq!(
        delta(before, &after, "xling_batch_size_sum"),
        1.0,
        "only the partner was encoded"
    );
    after
}

async fn queued_past_its_deadline_is_dropped_unencoded() {
    let server = pairing_server().await;
    let before = server.metrics().await;
    // tonic's own client enforces grpc-timeout itself (and would cancel first); a bare HTTP/2
    // client sends the header and waits for the server's answer, as grpc-go clients can.
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let http2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    let origin = format!("http://{}", server.addr).parse().unwrap();
    let mut client = xling_proto::v1::retrieval_client::RetrievalClient::with_origin(http2, origin);
    let mut request = Request::new(query(1));
    // The deadline counts from the server's receipt, and the lone query's batch cannot close
    // before it passes: DEADLINE_EXCEEDED from xling, however late the request arrives.
    request
        .metadata_mut()
        .insert("grpc-timeout", "500m".parse().unwrap());
    let status = client.search(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("deadline exceeded"),
        "{}",
        status.message()
    );
    let after = a_partner_runs_alone(&server, &before).await;
    assert_eq!(delta(&before, &after, "xling_expired_total"), 1.0);
    assert_eq!(delta(&before, &after, "xling_cancelled_total"), 0.0);
    server.stop().await.unwrap();
}

async fn a_client_that_gives_up_is_dropped_unencoded() {
    let server = pairing_server().await;
    let before = server.metrics().await;
    let mut client = server.client().await;
    let waiting = tokio::spawn(async move { client.search(query(2)).await });
    // Give up only once the query is queued (it stays there: its batch needs a partner).
    server
        .metrics_until("the query queued", |m| {
            metric_sum(m, "xling_queue_depth") == 1.0
        })
        .await;
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    // The server counts the RPC cancelled when it drops the handler, and with it the
    // query's ticket (dropped first: it is inside the handler's body).
    let cancelled_rpcs = r#"xling_requests_total{method="Search",code="CANCELLED""#;
    server
        .metrics_until("the RPC counted cancelled", |m| {
            delta(&before, m, cancelled_rpcs) == 1.0
        })
        .await;
    let after = a_partner_runs_alone(&server, &before).await;
    assert_eq!(delta(&before, &after, "xling_cancelled_total"), 1.0);
    assert_eq!(delta(&before, &after, "xling_expired_total"), 0.0);
    server.stop().await.unwrap();
}
