//! The Qdrant backend against a real Qdrant server (the binary `support` finds): build to
//! Qdrant from the demo corpus with the tiny mT5 model, serve through the real gRPC server,
//! and compare with the embedded index; model mismatch; Qdrant down; a 3-peer cluster losing
//! a peer under load; an alias swap under load.

mod support;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::Code;
use xling_encoder::{Encoder, EncoderOptions, Mode};
use xling_index::{Backend, BuildParams, Corpus, EmbeddedCorpus, Index};
use xling_proto::v1::retrieval_client::RetrievalClient;
use xling_proto::v1::{InfoRequest, SearchBatchRequest, SearchRequest};
use xling_qdrant::{upload, QdrantBackend, QdrantOptions, Routing, UploadSpec};
use xling_server::{Listeners, Settings};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo corpus embedded once by the tiny model, and the folder index built from it.
struct Fixture {
    corpus: Corpus,
    embeddings: Vec<f32>,
    model_id: String,
    dim: usize,
    index: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let corpus = Corpus::load(&repo().join("data/demo/corpus.jsonl")).unwrap();
        let mut encoder =
            Encoder::load(&repo().join("models/mt5-tiny"), &EncoderOptions::default()).unwrap();
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
        let (model_id, dim) = (encoder.manifest().id.clone(), encoder.manifest().dim);
        let input = EmbeddedCorpus {
            corpus: corpus.clone(),
            embeddings: embeddings.clone(),
            dim,
            model_id: model_id.clone(),
            encode_seconds: 0.0,
        };
        let mut index = Index::build(input, &BuildParams::default(), &mut |_, _| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        index.save(&dir.path().join("index"), false).unwrap();
        Fixture {
            corpus,
            embeddings,
            model_id,
            dim,
            index: dir,
        }
    })
}

fn spec(url: &str, collection: &str) -> UploadSpec {
    let f = fixture();
    UploadSpec {
        url: url.to_string(),
        api_key: None,
        collection: collection.to_string(),
        alias: None,
        drop_old: false,
        force: false,
        model_id: f.model_id.clone(),
        dim: f.dim,
        corpus_sha256: f.corpus.sha256().to_string(),
        quantize_int8: false,
        shards: 1,
        replication_factor: 1,
        routing: Routing::Tenant,
        m: 16,
        ef_construction: 200,
        batch: 64,
        timeout: Duration::from_secs(30),
    }
}

async fn build(spec: &UploadSpec) -> xling_qdrant::UploadReport {
    let f = fixture();
    upload(spec, f.corpus.passages(), &f.embeddings, &mut |_| {})
        .await
        .unwrap()
}

fn base_settings() -> Settings {
    Settings {
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        metrics_addr: Some("off".into()),
        model: Some(repo().join("models/mt5-tiny")),
        index: Some(fixture().index.path().join("index")),
        intra_threads: Some(1),
        drain_timeout_s: Some(5),
        ..Settings::default()
    }
}

fn qdrant_settings(urls: &[String], collection: &str) -> Settings {
    Settings {
        index_backend: Some("qdrant".into()),
        qdrant_url: Some(urls.join(",")),
        qdrant_collection: Some(collection.into()),
        qdrant_timeout_ms: Some(3000),
        ..base_settings()
    }
}

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Runs the real server with both backends known, as `xling serve` does.
    async fn start(settings: Settings) -> Result<Server, String> {
        let config = settings.resolve().unwrap();
        let grpc = TcpListener::bind(config.grpc_addr).await.unwrap();
        let addr = grpc.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            grpc,
            metrics: None,
        };
        let mut task = tokio::spawn(xling_server::run_with(
            listeners,
            config,
            Arc::new(xling_qdrant::open_backend),
            async {
                let _ = stopped.await;
            },
        ));
        let mut client = RetrievalClient::new(
            Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect_lazy(),
        );
        for _ in 0..1200 {
            if task.is_finished() {
                let result = (&mut task).await.unwrap();
                return Err(format!("{:#}", result.expect_err("run ended early")));
            }
            if client.info(InfoRequest {}).await.is_ok() {
                return Ok(Server {
                    addr,
                    stop: Some(stop),
                    task,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not start in 60 s");
    }

    fn client(&self) -> RetrievalClient<Channel> {
        client(self.addr)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

fn client(addr: std::net::SocketAddr) -> RetrievalClient<Channel> {
    RetrievalClient::new(
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy(),
    )
}

fn search(query: &str, top_k: u32, languages: &[&str]) -> SearchRequest {
    SearchRequest {
        query: query.into(),
        top_k,
        languages: languages.iter().map(|l| l.to_string()).collect(),
        ef: 0,
        vector: vec![],
    }
}

async fn ids(client: &mut RetrievalClient<Channel>, request: SearchRequest) -> Vec<(String, f32)> {
    client
        .search(request)
        .await
        .unwrap()
        .into_inner()
        .hits
        .into_iter()
        .map(|h| (h.passage_id, h.score))
        .collect()
}

const QUERIES: [&str; 6] = [
    "Warum ist der Mars rot?",
    "Who first climbed Mount Everest?",
    "カカオの原産地",
    "¿Dónde nace el río Amazonas?",
    "Какая самая длинная река?",
    "珠穆朗玛峰有多高",
];

fn same_hits(a: &[(String, f32)], b: &[(String, f32)], what: &str) {
    let ids = |h: &[(String, f32)]| h.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(a), ids(b), "{what}: ids differ");
    for ((_, x), (_, y)) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-4, "{what}: scores {x} vs {y}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_backend_answers_like_the_embedded_index() {
    let Some(bin) = support::qdrant_bin() else {
        return;
    };
    let qdrant = support::standalone(&bin);
    let report = build(&spec(&qdrant.grpc_url(), "demo")).await;
    assert_eq!(report.points, fixture().corpus.len());

    assert_serves_like_the_embedded_index(&qdrant.grpc_url(), "demo").await;

    // Passage lookup by id.
    let backend = QdrantBackend::open(options(&[qdrant.grpc_url()], "demo"))
        .await
        .unwrap();
    let found = backend
        .passages(&["en-everest-1".to_string(), "no-such-id".to_string()])
        .await
        .unwrap();
    assert_eq!(found[0].as_ref().map(|p| p.language.as_str()), Some("en"));
    assert!(found[0].as_ref().unwrap().text.contains("Everest"));
    assert_eq!(found[1], None);
}

/// Serves the folder index and the collection side by side and compares their answers.
async fn assert_serves_like_the_embedded_index(url: &str, collection: &str) {
    let embedded = Server::start(base_settings()).await.unwrap();
    let remote = Server::start(qdrant_settings(&[url.to_string()], collection))
        .await
        .unwrap();
    let (mut e, mut q) = (embedded.client(), remote.client());

    for query in QUERIES {
        let want = ids(&mut e, search(query, 10, &[])).await;
        assert_eq!(want.len(), 10);
        same_hits(&want, &ids(&mut q, search(query, 10, &[])).await, query);
        let filtered = ids(&mut q, search(query, 7, &["de", "ja"])).await;
        assert_eq!(filtered.len(), 7);
        assert!(
            filtered
                .iter()
                .all(|(id, _)| id.starts_with("de-") || id.starts_with("ja-")),
            "{filtered:?}"
        );
        same_hits(
            &ids(&mut e, search(query, 7, &["de", "ja"])).await,
            &filtered,
            query,
        );
    }

    // A batch is one Qdrant query_batch; its answers equal the single searches'.
    let batch = SearchBatchRequest {
        queries: QUERIES.iter().map(|q| search(q, 5, &["es"])).collect(),
    };
    let from_e = e.search_batch(batch.clone()).await.unwrap().into_inner();
    let from_q = q.search_batch(batch).await.unwrap().into_inner();
    assert_eq!(from_q.results.len(), QUERIES.len());
    for (a, b) in from_e.results.iter().zip(&from_q.results) {
        let hits = |r: &xling_proto::v1::SearchResponse| {
            r.hits
                .iter()
                .map(|h| (h.passage_id.clone(), h.score))
                .collect::<Vec<_>>()
        };
        same_hits(&hits(a), &hits(b), "batch");
        assert!(b
            .hits
            .iter()
            .all(|h| h.language == "es" && !h.text.is_empty()));
    }

    // Info reads the backend's snapshot: same size and language counts.
    let info_e = e.info(InfoRequest {}).await.unwrap().into_inner();
    let info_q = q.info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info_q.index_size, 400);
    assert_eq!(info_e.index_size, info_q.index_size);
    assert_eq!(info_e.languages, info_q.languages);

    // A language the collection lacks is refused by the validator, as for folders.
    let status = q.search(search("x", 3, &["sw"])).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    remote.stop().await;
    embedded.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_key_routing_answers_like_the_embedded_index() {
    let Some(bin) = support::qdrant_bin() else {
        return;
    };
    // Custom sharding needs cluster mode, even for one peer.
    let peers = support::cluster(&bin, 1);
    let mut routed = spec(&peers[0].grpc_url(), "demo-keys");
    routed.routing = Routing::ShardKey;
    build(&routed).await;
    assert_serves_like_the_embedded_index(&peers[0].grpc_url(), "demo-keys").await;
}

fn options(urls: &[String], collection: &str) -> QdrantOptions {
    QdrantOptions {
        urls: urls.to_vec(),
        collection: collection.into(),
        api_key: None,
        timeout: Duration::from_secs(3),
        refresh: Duration::from_secs(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_of_another_model_is_refused() {
    let Some(bin) = support::qdrant_bin() else {
        return;
    };
    let qdrant = support::standalone(&bin);
    let mut other = spec(&qdrant.grpc_url(), "other");
    other.model_id = "another-model".into();
    build(&other).await;
    let error = Server::start(qdrant_settings(&[qdrant.grpc_url()], "other"))
        .await
        .err()
        .expect("a mismatched model must fail startup");
    assert!(error.contains("another-model"), "{error}");
    assert!(error.contains("rebuild"), "{error}");

    // And a collection that does not exist is a clear startup error, not a hang.
    let error = Server::start(qdrant_settings(&[qdrant.grpc_url()], "missing"))
        .await
        .err()
        .expect("a missing collection must fail startup");
    assert!(error.contains("missing"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_going_down_answers_unavailable_not_a_hang() {
    let Some(bin) = support::qdrant_bin() else {
        return;
    };
    let mut qdrant = support::standalone(&bin);
    build(&spec(&qdrant.grpc_url(), "demo")).await;
    let server = Server::start(qdrant_settings(&[qdrant.grpc_url()], "demo"))
        .await
        .unwrap();
    let mut client = server.client();
    assert_eq!(ids(&mut client, search(QUERIES[0], 3, &[])).await.len(), 3);
    qdrant.kill();
    let started = Instant::now();
    let status = tokio::time::timeout(
        Duration::from_secs(20),
        client.search(search(QUERIES[1], 3, &[])),
    )
    .await
    .expect("a search must not hang when Qdrant is down")
    .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("qdrant"), "{status:?}");
    // A deadline shorter than the Qdrant timeout is honoured: DEADLINE_EXCEEDED or
    // UNAVAILABLE (whichever comes first), well within the deadline's order.
    let mut request = tonic::Request::new(search(QUERIES[2], 3, &[]));
    request.set_timeout(Duration::from_millis(300));
    let status = client.search(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{status:?}"
    );
    println!("down: first answer after {:?}", started.elapsed());
    server.stop().await;
}

/// Runs `clients` loops of Search until `stop`; returns (latencies, failures).
async fn load(
    addr: std::net::SocketAddr,
    clients: usize,
    stop: Arc<tokio::sync::Notify>,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<Duration>, Vec<String>) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = client(addr);
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut failures) = (Vec::new(), Vec::new());
            let mut i = c;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let started = Instant::now();
                let mut request = tonic::Request::new(search(QUERIES[i % QUERIES.len()], 5, &[]));
                request.set_timeout(Duration::from_secs(10));
                match client.search(request).await {
                    Ok(r) if r.get_ref().hits.len() == 5 => latencies.push(started.elapsed()),
                    Ok(r) => failures.push(format!("{} hits", r.get_ref().hits.len())),
                    Err(s) => failures.push(format!("{:?}: {}", s.code(), s.message())),
                }
                i += 1;
            }
            (latencies, failures)
        }));
    }
    stop.notified().await;
    done.store(true, std::sync::atomic::Ordering::Release);
    let mut all = (Vec::new(), Vec::new());
    for task in tasks {
        let (l, f) = task.await.unwrap();
        all.0.extend(l);
        all.1.extend(f);
    }
    all
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_swap_under_load_fails_no_request() {
    let Some(bin) = support::qdrant_bin() else {
        return;
    };
    let qdrant = support::standalone(&bin);
    let mut first = spec(&qdrant.grpc_url(), "demo-a");
    first.alias = Some("demo".into());
    build(&first).await;
    let server = Server::start(qdrant_settings(&[qdrant.grpc_url()], "demo"))
        .await
        .unwrap();
    let stop = Arc::new(tokio::sync::Notify::new());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = tokio::spawn(load(server.addr, 4, stop.clone(), done));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut second = spec(&qdrant.grpc_url(), "demo-b");
    second.alias = Some("demo".into());
    second.drop_old = true;
    let report = build(&second).await;
    assert_eq!(report.previous.as_deref(), Some("demo-a"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.notify_one();
    let (mut latencies, failures) = running.await.unwrap();
    println!(
        "alias swap: {} searches, {} failed, p99 {:?}",
        latencies.len(),
        failures.len(),
        p99(&mut latencies)
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(latencies.len() > 10);
    // The old collection is gone and the alias serves the new one.
    let mut client = server.client();
    assert_eq!(ids(&mut client, search(QUERIES[0], 3, &[])).await.len(), 3);
    let old = QdrantBackend::open(options(&[qdrant.grpc_url()], "demo-a")).await;
    assert!(old.is_err(), "demo-a must be dropped");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_losing_one_peer_under_load_fails_no_request() {
    let Some(bin) = support::qdrant_bin() else {
        return;
    };
    let mut peers = support::cluster(&bin, 3);
    let urls: Vec<String> = peers.iter().map(support::Peer::grpc_url).collect();
    let cluster = support::http_get(peers[0].http_port, "/cluster").unwrap_or_default();
    assert_eq!(
        cluster.matches("\"uri\"").count(),
        3,
        "3 peers joined: {cluster}"
    );
    let mut replicated = spec(&urls[0], "demo");
    replicated.shards = 3;
    replicated.replication_factor = 2;
    build(&replicated).await;
    let server = Server::start(qdrant_settings(&urls, "demo")).await.unwrap();
    let stop = Arc::new(tokio::sync::Notify::new());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = tokio::spawn(load(server.addr, 4, stop.clone(), done));
    tokio::time::sleep(Duration::from_secs(1)).await;
    peers[1].kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.notify_one();
    let (mut latencies, failures) = running.await.unwrap();
    println!(
        "failover: {} searches, {} failed, p99 {:?} (peer killed {:?} before the end)",
        latencies.len(),
        failures.len(),
        p99(&mut latencies),
        killed.elapsed()
    );
    assert!(failures.is_empty(), "{failures:?}");
    server.stop().await;
}
