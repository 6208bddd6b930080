//! TLS and mutual TLS on the gRPC port, with throw-away certificates made by rcgen.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{query, settings, TestServer};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};
use xling_proto::v1::retrieval_client::RetrievalClient;
use xling_server::Settings;

/// A certificate authority that signs leaf certificates into PEM files.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// Writes `<name>.pem` and `<name>.key` for a leaf certificate and returns their paths.
    fn leaf(&self, dir: &Path, name: &str, usage: ExtendedKeyUsagePurpose) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let paths = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&paths.0, cert.pem()).unwrap();
        std::fs::write(&paths.1, key.serialize_pem()).unwrap();
        paths
    }

    /// Client TLS that trusts this CA, optionally presenting a client certificate.
    fn client(&self, identity: Option<&(PathBuf, PathBuf)>) -> ClientTlsConfig {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.pem))
            .domain_name("localhost");
        match identity {
            Some((cert, key)) => config.identity(Identity::from_pem(
                std::fs::read(cert).unwrap(),
                std::fs::read(key).unwrap(),
            )),
            None => config,
        }
    }
}

/// One search over a fresh connection with `tls`; any failure (handshake or RPC) is an error.
async fn search_over(server: &TestServer, tls: Option<ClientTlsConfig>) -> Result<usize, String> {
    let channel = server
        .try_channel(tls)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        RetrievalClient::new(channel).search(query("mountain", 2)),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| format!("{e:?}"))?;
    Ok(response.into_inner().hits.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_that_trust_the_ca_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("xling test CA");
    let (cert, key) = ca.leaf(dir.path(), "server", ExtendedKeyUsagePurpose::ServerAuth);
    let server = TestServer::start_tls(
        Settings {
            tls_cert: Some(cert),
            tls_key: Some(key),
            ..settings()
        },
        Some(ca.client(None)),
    )
    .await;

    assert_eq!(search_over(&server, Some(ca.client(None))).await, Ok(2));
    let plaintext = search_over(&server, None).await;
    assert!(plaintext.is_err(), "plaintext got through: {plaintext:?}");
    let stranger = search_over(&server, Some(Ca::new("other CA").client(None))).await;
    assert!(stranger.is_err(), "a client trusting another CA connected");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_client_certificate_from_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("xling test CA");
    let (cert, key) = ca.leaf(dir.path(), "server", ExtendedKeyUsagePurpose::ServerAuth);
    let client_ca = dir.path().join("client-ca.pem");
    let clients = Ca::new("xling client CA");
    std::fs::write(&client_ca, &clients.pem).unwrap();
    let member = clients.leaf(dir.path(), "member", ExtendedKeyUsagePurpose::ClientAuth);
    let outsider =
        Ca::new("other CA").leaf(dir.path(), "outsider", ExtendedKeyUsagePurpose::ClientAuth);

    let server = TestServer::start_tls(
        Settings {
            tls_cert: Some(cert),
            tls_key: Some(key),
            tls_client_ca: Some(client_ca),
            ..settings()
        },
        Some(ca.client(Some(&member))),
    )
    .await;
    assert_eq!(
        search_over(&server, Some(ca.client(Some(&member)))).await,
        Ok(2)
    );
    let anonymous = search_over(&server, Some(ca.client(None))).await;
    assert!(anonymous.is_err(), "no client certificate got through");
    let outsider = search_over(&server, Some(ca.client(Some(&outsider)))).await;
    assert!(
        outsider.is_err(),
        "a certificate from another CA got through"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_settings_fail_startup_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("xling test CA");
    let (cert, key) = ca.leaf(dir.path(), "server", ExtendedKeyUsagePurpose::ServerAuth);

    let half = Settings {
        tls_cert: Some(cert.clone()),
        ..settings()
    };
    assert!(half.resolve().unwrap_err().contains("tls_key"));

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    for (cert, key, needle) in [
        (cert.clone(), dir.path().join("missing.key"), "missing.key"),
        (garbage.clone(), key.clone(), "garbage.pem"),
    ] {
        let config = Settings {
            tls_cert: Some(cert),
            tls_key: Some(key),
            ..settings()
        }
        .resolve()
        .unwrap();
        let listeners = xling_server::Listeners::bind(&config).await.unwrap();
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            xling_server::run(listeners, config, std::future::pending()),
        )
        .await
        .expect("a TLS setup failure must end run()");
        let message = format!("{:#}", result.unwrap_err());
        assert!(message.contains(needle), "{message}");
    }
}
