//! Health, reflection, startup failures and graceful shutdown under load.

mod common;

use std::error::Error as _;
use std::time::Duration;

use common::{metric_sum, query, settings, startup_error, TestServer};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use xling_server::Settings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_not_serving_when_shutdown_starts() {
    let mut server = TestServer::start(Settings {
        drain_timeout_s: Some(2),
        ..settings()
    })
    .await;
    let mut health = HealthClient::new(server.channel().await);
    let request = || HealthCheckRequest {
        service: xling_server::SERVICE_NAME.into(),
    };
    let status = health.check(request()).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);
    let overall = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(overall.into_inner().status, ServingStatus::Serving as i32);

    let mut watch = health.watch(request()).await.unwrap().into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );
    server.shutdown();
    let next = tokio::time::timeout(Duration::from_secs(30), watch.message())
        .await
        .unwrap();
    assert_eq!(
        next.unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
}

/// Lists services through server reflection, as grpcurl and ghz do without proto files.
async fn list_services(server: &TestServer, path: &'static str) -> Vec<String> {
    use tonic_reflection::pb::v1::{
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest, ServerReflectionResponse,
    };
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let codec =
        tonic_prost::ProstCodec::<ServerReflectionRequest, ServerReflectionResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let mut stream = grpc
        .streaming(
            tonic::Request::new(tokio_stream::once(request)),
            path,
            codec,
        )
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services_in_v1_and_v1alpha() {
    let server = TestServer::start(settings()).await;
    for path in [
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ] {
        let services = list_services(&server, path).await;
        assert!(
            services.contains(&"xling.v1.Retrieval".to_string()),
            "{path}: {services:?}"
        );
        assert!(
            services.contains(&"grpc.health.v1.Health".to_string()),
            "{path}: {services:?}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_index_or_model_fails_startup_naming_the_path() {
    for (settings, needle) in [
        (
            Settings {
                index: Some("/nonexistent/idx".into()),
                ..settings()
            },
            "/nonexistent/idx",
        ),
        (
            Settings {
                model: Some("/nonexistent/mdl".into()),
                ..settings()
            },
            "/nonexistent/mdl",
        ),
    ] {
        let message = startup_error(settings).await;
        assert!(message.contains(needle), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_every_admitted_request_and_refuses_new_ones() {
    // Batches of 64 and a wait beyond the test keep the 40 admitted queries queued until
    // shutdown starts (the drain runs them at once).
    let mut server = TestServer::start(Settings {
        max_batch_size: Some(64),
        max_wait_us: Some(10_000_000),
        ..settings()
    })
    .await;
    let client = server.client().await;
    let in_flight: Vec<_> = (0..40)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move { client.search(query(&format!("frage {i}"), 3)).await })
        })
        .collect();
    let mut health = HealthClient::new(server.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: xling_server::SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap();
    // Shut down once all 40 handlers run. (The gauge is process-wide; no other test in this
    // file calls the Retrieval service.)
    server
        .metrics_until("40 requests in flight", |m| {
            metric_sum(m, "xling_in_flight_requests") == 40.0
        })
        .await;
    server.shutdown();
    // Ask once the server says NOT_SERVING, so the call cannot be admitted.
    let next = tokio::time::timeout(Duration::from_secs(30), watch.message()).await;
    assert_eq!(
        next.unwrap().unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
    let late = client
        .clone()
        .search(query("too late", 3))
        .await
        .unwrap_err();
    // An open watch stream would hold the graceful stop.
    drop(watch);
    // Refused, never run: UNAVAILABLE from xling while the admitted queries drain. The drain
    // of one tiny batch can end before the call lands; then the closing connection refuses it
    // instead (CANCELLED "connection closed", or INTERNAL for the GOAWAY), as it would for
    // any gRPC server, and the client retries elsewhere.
    let refused = match late.code() {
        Code::Unavailable => late.message().contains("shutting down"),
        Code::Cancelled | Code::Internal => late.source().is_some(),
        _ => false,
    };
    assert!(refused, "{late:?}");
    // Each of the 40 is answered, or refused before it was queued: a handler counts itself in
    // flight and checks for shutdown, then tokenizes and queues; preempted in between (a busy
    // machine), it finds the queue closed and gets UNAVAILABLE, never run, never lost.
    let (mut answered, mut refused) = (0, 0);
    for task in in_flight {
        match task.await.unwrap() {
            Ok(response) => {
                assert_eq!(response.into_inner().hits.len(), 3);
                answered += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(status.message().contains("shutting down"), "{status:?}");
                refused += 1;
            }
        }
    }
    assert_eq!(answered + refused, 40);
    assert!(answered > 0, "the drain answered no queued request");
    tokio::time::timeout(Duration::from_secs(30), server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
