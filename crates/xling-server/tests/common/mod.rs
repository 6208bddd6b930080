//! Test fixtures: the committed tiny mT5-shaped model, a real index built from the demo
//! corpus with it, and a real server on port 0.

#![allow(dead_code)] // each test binary uses its own part of the fixtures

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::{Channel, ClientTlsConfig};
use xling_encoder::{Encoder, EncoderOptions, Mode};
use xling_index::{BuildParams, Corpus, EmbeddedCorpus, Index};
use xling_proto::v1::retrieval_client::RetrievalClient;
use xling_proto::v1::SearchRequest;
use xling_server::{Config, Listeners, Settings};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn model_dir() -> PathBuf {
    repo().join("models/mt5-tiny")
}

/// A real HNSW index of the demo corpus embedded by the tiny model, built once per process.
pub fn index_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        build_index(&model_dir(), &dir.path().join("index"));
        dir
    })
    .path()
    .join("index")
    .leak()
}

/// Embeds the demo corpus with the model in `model` and saves a real HNSW index to `out`.
pub fn build_index(model: &Path, out: &Path) {
    let corpus = Corpus::load(&repo().join("data/demo/corpus.jsonl")).unwrap();
    build_index_of(corpus, model, out);
}

/// Embeds `corpus` with the model in `model` and saves a real HNSW index to `out`.
pub fn build_index_of(corpus: Corpus, model: &Path, out: &Path) {
    let mut encoder = Encoder::load(model, &EncoderOptions::default()).unwrap();
    let texts: Vec<&str> = corpus.passages().iter().map(|p| p.text.as_str()).collect();
    let mut embeddings = Vec::new();
    for chunk in texts.chunks(64) {
        embeddings.extend(
            encoder
                .embed(chunk, Mode::Passage)
                .unwrap()
                .into_iter()
                .flatten(),
        );
    }
    let input = EmbeddedCorpus {
        corpus,
        embeddings,
        dim: encoder.manifest().dim,
        model_id: encoder.manifest().id.clone(),
        encode_seconds: 0.0,
    };
    let mut index = Index::build(input, &BuildParams::default(), &mut |_, _| {}).unwrap();
    index.save(out, false).unwrap();
}

/// Settings for a test server: tiny model, test index, port 0, metrics on port 0.
pub fn settings() -> Settings {
    Settings {
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        metrics_addr: Some("127.0.0.1:0".into()),
        model: Some(model_dir()),
        index: Some(index_dir().to_path_buf()),
        intra_threads: Some(1),
        drain_timeout_s: Some(10),
        ..Settings::default()
    }
}

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub metrics_addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// How clients reach a TLS server; `None` = plaintext.
    pub client_tls: Option<ClientTlsConfig>,
}

impl TestServer {
    pub async fn start(settings: Settings) -> TestServer {
        TestServer::start_tls(settings, None).await
    }

    /// Starts a server whose clients connect with `client_tls` (TLS settings given).
    pub async fn start_tls(settings: Settings, client_tls: Option<ClientTlsConfig>) -> TestServer {
        let config: Config = settings.resolve().unwrap();
        let grpc = TcpListener::bind(config.grpc_addr).await.unwrap();
        let metrics = TcpListener::bind(config.metrics_addr.unwrap())
            .await
            .unwrap();
        let addr = grpc.local_addr().unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            grpc,
            metrics: Some(metrics),
        };
        let task = tokio::spawn(xling_server::run(listeners, config, async {
            let _ = stopped.await;
        }));
        let server = TestServer {
            addr,
            metrics_addr,
            stop: Some(stop),
            task,
            client_tls,
        };
        server.wait_serving().await;
        server
    }

    pub async fn channel(&self) -> Channel {
        self.try_channel(self.client_tls.clone()).await.unwrap()
    }

    /// A channel with the given client TLS (plaintext when `None`).
    pub async fn try_channel(
        &self,
        tls: Option<ClientTlsConfig>,
    ) -> Result<Channel, tonic::transport::Error> {
        let endpoint = match tls {
            Some(tls) => Channel::from_shared(format!("https://{}", self.addr))
                .unwrap()
                .tls_config(tls)?,
            None => Channel::from_shared(format!("http://{}", self.addr)).unwrap(),
        };
        endpoint.connect().await
    }

    pub async fn client(&self) -> RetrievalClient<Channel> {
        RetrievalClient::new(self.channel().await)
    }

    /// Polls the health service until the Retrieval service reports SERVING.
    pub async fn wait_serving(&self) {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
        let mut health = HealthClient::new(self.channel().await);
        for _ in 0..600 {
            let request = HealthCheckRequest {
                service: xling_server::SERVICE_NAME.into(),
            };
            if let Ok(response) = health.check(request).await {
                if response.into_inner().status == ServingStatus::Serving as i32 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not become SERVING within 30 s");
    }

    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown();
        (&mut self.task).await.unwrap()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.metrics_addr)
            .await
            .unwrap();
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics_addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        body
    }

    /// Polls `/metrics` until `holds` is true of it and returns that text. The bound (30 s)
    /// is for a server that never gets there, not a timing the test relies on.
    pub async fn metrics_until(&self, what: &str, holds: impl Fn(&str) -> bool) -> String {
        let started = std::time::Instant::now();
        loop {
            let text = self.metrics().await;
            if holds(&text) {
                return text;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not within 30 s: {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A Search over every language with the server's default ef.
pub fn query(text: &str, top_k: u32) -> SearchRequest {
    SearchRequest {
        query: text.into(),
        top_k,
        languages: vec![],
        ef: 0,
        vector: vec![],
    }
}

/// Runs the server until startup fails and returns the error chain as text.
pub async fn startup_error(settings: Settings) -> String {
    let config = settings.resolve().unwrap();
    let listeners = Listeners::bind(&config).await.unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        xling_server::run(listeners, config, std::future::pending()),
    )
    .await
    .expect("a startup failure must end run()");
    format!("{:#}", result.expect_err("startup must fail"))
}

/// Sum of a metric's samples whose name and labels start with `prefix` (e.g.
/// `xling_batch_size_count` or `xling_requests_total{method="Search",code="OK"`).
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter(|l| {
            let rest = &l[prefix.len()..];
            rest.starts_with(' ')
                || rest.starts_with('{')
                || rest.starts_with(',')
                || rest.starts_with('}')
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
