//! kill -9 during a stream of upserts and deletes: the real `xling serve` binary, the tiny
//! real model, an index built by `xling index build`. After a restart every acknowledged
//! write is there, and the write in flight when the process died is there whole or not at all.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tonic::transport::Channel;
use xling_proto::v1::admin_client::AdminClient;
use xling_proto::v1::retrieval_client::RetrievalClient;
use xling_proto::v1::{DeleteRequest, InfoRequest, Passage, SearchRequest, UpsertRequest};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn xling() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xling"))
}

fn build_index(out: &Path) {
    let status = xling()
        .args(["index", "build", "--corpus"])
        .arg(repo().join("data/demo/corpus.jsonl"))
        .arg("--model")
        .arg(repo().join("models/mt5-tiny"))
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "xling index build failed");
}

/// A free port: bound and released (another process could take it; unlikely in a test).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    async fn start(index: &Path) -> Server {
        let port = free_port();
        let child = xling()
            .arg("serve")
            .arg("--model")
            .arg(repo().join("models/mt5-tiny"))
            .arg("--index")
            .arg(index)
            .args(["--grpc-addr", &format!("127.0.0.1:{port}")])
            .args(["--metrics-addr", "off", "--intra-threads", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child, port };
        server.wait_serving().await;
        server
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn wait_serving(&self) {
        for _ in 0..600 {
            if let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
                .unwrap()
                .connect()
                .await
            {
                if RetrievalClient::new(channel)
                    .info(InfoRequest {})
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("xling serve did not answer Info within 60 s");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lowercase words of the demo corpus, in order of first use: the tiny model's vocabulary
/// knows them, while most digits are one unknown token to it, so a text built from a few of
/// these words embeds apart from the other writes' texts (numbers alone would not).
fn words() -> &'static [String] {
    static WORDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| {
        let corpus = std::fs::read_to_string(repo().join("data/demo/corpus.jsonl")).unwrap();
        let mut seen = std::collections::HashSet::new();
        corpus
            .split(|c: char| !c.is_ascii_alphabetic())
            .filter(|w| w.len() >= 4 && w.chars().all(|c| c.is_ascii_lowercase()))
            .filter(|w| seen.insert(w.to_string()))
            .map(str::to_string)
            .collect()
    })
}

fn text(i: usize, half: &str) -> String {
    let words = words();
    let pick =
        |j: usize| words[(i * 7 + j * 3 + usize::from(half == "b") * 5) % words.len()].as_str();
    format!(
        "crash test {half} {i}: {} {} {} {}",
        pick(0),
        pick(1),
        pick(2),
        pick(3)
    )
}

/// Whether a search for `text` finds passage `id` among its nearest hits.
async fn found(client: &mut RetrievalClient<Channel>, text: &str, id: &str) -> bool {
    let hits = client
        .search(SearchRequest {
            query: text.into(),
            top_k: 20,
            ..SearchRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits;
    let hit = hits
        .iter()
        .position(|h| h.passage_id == id && h.text == text);
    if hit != Some(0) {
        eprintln!(
            "{id}: at {hit:?}; first: {:?}",
            hits.iter()
                .take(3)
                .map(|h| (&h.passage_id, h.score))
                .collect::<Vec<_>>()
        );
    }
    hit.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_every_acknowledged_write_and_no_half_write() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    build_index(&index);
    let server = Server::start(&index).await;
    let mut client = RetrievalClient::new(server.channel().await);
    let base_size = client
        .info(InfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .index_size;
    // Base passages to delete along the way.
    let victims: Vec<(String, String)> = client
        .search(SearchRequest {
            query: "music".into(),
            top_k: 10,
            ..SearchRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits
        .into_iter()
        .map(|h| (h.passage_id, h.text))
        .collect();

    // Writes one after another: upserts of two passages each, every fourth a delete.
    let channel = server.channel().await;
    let targets = victims.clone();
    let writer = tokio::spawn(async move {
        let victims = targets;
        let mut admin = AdminClient::new(channel);
        let (mut upserted, mut deleted) = (Vec::new(), Vec::new());
        for i in 0.. {
            let result = if i % 4 == 3 && deleted.len() < victims.len() {
                let (id, text) = victims[deleted.len()].clone();
                admin
                    .delete(DeleteRequest {
                        ids: vec![id.clone()],
                    })
                    .await
                    .map(|_| deleted.push((id, text)))
            } else {
                let passages = ["a", "b"]
                    .map(|half| Passage {
                        id: format!("crash-{i}-{half}"),
                        text: text(i, half),
                        language: "en".into(),
                        title: String::new(),
                    })
                    .to_vec();
                admin
                    .upsert(UpsertRequest { passages })
                    .await
                    .map(|_| upserted.push(i))
            };
            if result.is_err() {
                // The server died: this write is the one in flight.
                return (upserted, deleted, i);
            }
        }
        unreachable!()
    });
    // Let a few dozen writes land, then kill -9 in the middle of the stream.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let (upserted, deleted, in_flight) = writer.await.unwrap();
    drop(server);
    assert!(
        upserted.len() >= 5,
        "only {} upserts before the kill",
        upserted.len()
    );

    let server = Server::start(&index).await;
    let mut client = RetrievalClient::new(server.channel().await);
    let mut lost = Vec::new();
    for &i in &upserted {
        for half in ["a", "b"] {
            let id = format!("crash-{i}-{half}");
            if !found(&mut client, &text(i, half), &id).await {
                lost.push(id);
            }
        }
    }
    assert!(
        lost.is_empty(),
        "acknowledged upserts lost: {lost:?} of {} writes, in flight {in_flight}",
        upserted.len()
    );
    for (id, text) in &deleted {
        assert!(
            !found(&mut client, text, id).await,
            "acknowledged delete of {id} lost"
        );
    }
    // The write in flight: an upsert's both halves or neither; a delete done or not.
    let delete_in_flight = in_flight % 4 == 3 && deleted.len() < victims.len();
    let delete_landed = delete_in_flight && {
        let (id, text) = &victims[deleted.len()];
        !found(&mut client, text, id).await
    };
    let halves = [
        found(
            &mut client,
            &text(in_flight, "a"),
            &format!("crash-{in_flight}-a"),
        )
        .await,
        found(
            &mut client,
            &text(in_flight, "b"),
            &format!("crash-{in_flight}-b"),
        )
        .await,
    ];
    assert_eq!(halves[0], halves[1], "write {in_flight} half applied");
    // And nothing else: the size adds up.
    let landed = usize::from(halves[0]) * 2;
    let size = client
        .info(InfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .index_size;
    assert_eq!(
        size as usize,
        base_size as usize + 2 * upserted.len() + landed
            - deleted.len()
            - usize::from(delete_landed),
        "in flight: {in_flight}"
    );
}
