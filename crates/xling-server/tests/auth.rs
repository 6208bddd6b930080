//! Bearer-token authentication: Retrieval RPCs need the token; health stays open.

mod common;

use common::{metric_sum, query, settings, TestServer};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use xling_proto::v1::retrieval_client::RetrievalClient;
use xling_proto::v1::InfoRequest;
use xling_server::Settings;

const TOKEN: &str = "s3cret-T0ken_for.tests";

/// Searches with `header` as the `authorization` metadata.
async fn search_with(channel: &Channel, header: &str) -> Result<usize, Status> {
    let mut request = Request::new(query("mountain", 2));
    request
        .metadata_mut()
        .insert("authorization", header.parse().unwrap());
    let response = RetrievalClient::new(channel.clone())
        .search(request)
        .await?;
    Ok(response.into_inner().hits.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieval_needs_the_token_and_health_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    // TestServer::start waits for SERVING through health without a token: health is open.
    let server = TestServer::start(Settings {
        auth_token_file: Some(file),
        ..settings()
    })
    .await;
    let channel = server.channel().await;

    let mut anonymous = RetrievalClient::new(channel.clone());
    let status = anonymous.search(query("mountain", 2)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(!status.message().contains(TOKEN));
    let status = anonymous.info(InfoRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    for wrong in [
        "Bearer s3cret-T0ken_for.test",
        "Bearer s3cret-T0ken_for.testsX",
        "Basic s3cret-T0ken_for.tests",
    ] {
        let status = search_with(&channel, wrong).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{wrong}: {status:?}");
    }

    let header = format!("Bearer {TOKEN}");
    assert_eq!(search_with(&channel, &header).await.unwrap(), 2);
    let mut info = Request::new(InfoRequest {});
    info.metadata_mut()
        .insert("authorization", header.parse().unwrap());
    anonymous.info(info).await.unwrap();

    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: xling_server::SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    let metrics = server.metrics().await;
    assert!(
        metric_sum(&metrics, r#"xling_rejected_total{reason="unauthenticated""#) >= 5.0,
        "{metrics}"
    );
    server.stop().await.unwrap();
}

#[test]
fn a_bad_token_setting_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let error = Settings {
        auth_token_file: Some(empty.clone()),
        ..Settings::default()
    }
    .resolve()
    .unwrap_err();
    assert!(
        error.contains("auth_token_file") && error.contains("empty"),
        "{error}"
    );

    let error = Settings {
        auth_token_file: Some(dir.path().join("missing")),
        ..Settings::default()
    }
    .resolve()
    .unwrap_err();
    assert!(error.contains("missing"), "{error}");

    let error = Settings {
        auth_token_file: Some(empty),
        auth_token: Some("abc".parse().unwrap()),
        ..Settings::default()
    }
    .resolve()
    .unwrap_err();
    assert!(error.contains("not both"), "{error}");

    let config = Settings {
        auth_token: Some(TOKEN.parse().unwrap()),
        ..Settings::default()
    }
    .resolve()
    .unwrap();
    assert!(
        !format!("{config:?}").contains(TOKEN),
        "the token leaks into Debug"
    );
}
